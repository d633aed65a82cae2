package experience

import (
	"context"
	"errors"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/fault"
)

// PasswordSignIn is a backend's request to sign a user in with a password.
type PasswordSignIn struct {
	Identifier Identifier
	Password   string
	SessionID  string // optional: an existing session to authenticate into
	Meta       SessionMeta
	// EnforceMFA is the calling application's choice; when false, tokens
	// are issued after the password and the application checks amr.
	EnforceMFA bool
	// InTx, when set, runs inside the transaction that completes a
	// successful sign-in (not one left waiting for MFA), with its session:
	// work that must commit with the sign-in, such as storing its refresh
	// token, in the same commit. Its error rolls the sign-in back.
	InTx func(tx *gorm.DB, s *SignIn) error
}

// SignIn is a completed sign-in: the user, their active session and, in an
// organization's context, the organization with the user's roles and
// permissions there (nil for a plain sign-in). The tokens carry Org, not
// the session's org_id: a refresh may ask for another organization's token.
type SignIn struct {
	User    *User
	Session *Session
	Org     *OrgContext
}

// SignInWithPassword verifies a password and opens (or extends) a session.
// Outcomes besides success are *fault.Error values: invalid credentials,
// locked, suspended, password expired/temporary (with a reset token in
// Data), MFA required (with a pending session in Data).
func (e *Engine) SignInWithPassword(ctx context.Context, req PasswordSignIn) (*SignIn, error) {
	org, err := e.requestedOrg(ctx, req.Meta.OrgID)
	if err != nil {
		return nil, err
	}
	var existing *Session
	if req.SessionID != "" {
		s, err := e.sessionFor(ctx, req.SessionID, req.Meta, true)
		if err != nil {
			return nil, err
		}
		existing = s
	}
	// One engine, one set of rules: the sign-in mode and the enabled
	// methods bind /v1 as they bind the Experience API's identification.
	if err := e.passwordSignInAllowed(ctx, req.Identifier.Type); err != nil {
		return nil, err
	}
	if err := e.requireNotSSO(ctx, req.Identifier); err != nil {
		return nil, err
	}
	user, res, err := e.verifyPassword(ctx, req.Identifier, req.Password, req.Meta)
	defer e.releaseUnsettled(ctx, res)
	if user != nil && err != nil {
		// A right password that may not sign in as is: the attempt
		// succeeded as far as the sentinel is concerned.
		if cerr := e.Sentinel.Clear(ctx, res); cerr != nil {
			return nil, cerr
		}
	}
	var state *passwordStateError
	if errors.As(err, &state) {
		return nil, e.offerReset(ctx, state, req.Meta)
	}
	if err != nil {
		return nil, err
	}
	if existing != nil && existing.UserID != user.ID {
		if cerr := e.Sentinel.Clear(ctx, res); cerr != nil {
			return nil, cerr
		}
		return nil, errSessionNotFound()
	}
	// Without org_id, an e-mail sign-in may find its organization by the
	// address's domain.
	ask := orgAsk{org: org, discover: org == nil && req.Identifier.Type == IdentifierEmail}
	return e.completeFirstFactor(ctx, user, existing, []string{AMRPassword}, req.Meta, req.EnforceMFA, res, ask, req.InTx)
}

// passwordSignInAllowed refuses a password sign-in the settings close:
// SignIn interactions off (Register-only mode) or password sign-in disabled
// for the identifier type. It depends on settings alone, so it is checked
// before the password and reveals nothing about any account.
func (e *Engine) passwordSignInAllowed(ctx context.Context, idType string) error {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if !eventOpen(settings, EventSignInFlow) || !settings.SignIn.allows(idType, false) {
		return fault.New(CodeMethodNotEnabled, http.StatusForbidden, "This sign-in method is not enabled.")
	}
	return nil
}

// offerReset mints a single-use reset token for an expired or temporary
// password and returns the error carrying it.
func (e *Engine) offerReset(ctx context.Context, state *passwordStateError, meta SessionMeta) error {
	raw, err := e.resets.issue(ctx, state.user.ID, meta.ClientID, state.fe.Code)
	if err != nil {
		return err
	}
	e.audit(ctx, AuditEvent{Event: EventSignIn, Outcome: OutcomeFailure, UserID: state.user.ID, ClientID: meta.ClientID,
		IPAddress: meta.IPAddress, Data: map[string]any{"method": AMRPassword, "reason": state.fe.Code}})
	return state.fe.With("reset_token", raw).With("expires_in", int64(e.opts.ResetTokenTTL/time.Second))
}

// completeFirstFactor opens the session after a first factor: pending with
// mfa_required when the user must still prove a second factor, else active.
// It decides the organization context first (ask): a named organization
// requires membership, and one that requires MFA requires it whatever the
// client enforces. Everything it writes — the sentinel reservation to
// clear (if any), the session, the last sign-in time, the audit event and
// what inTx adds to a completed sign-in — commits in one transaction.
func (e *Engine) completeFirstFactor(ctx context.Context, user *User, existing *Session, amr []string, meta SessionMeta, enforceMFA bool, res *Verdict, ask orgAsk, inTx func(*gorm.DB, *SignIn) error) (*SignIn, error) {
	org, err := ask.resolve(ctx, e, user)
	if err != nil {
		if fault.Is(err, CodeOrgMembershipRequired) {
			// The credential was right: the attempt succeeded as far as
			// the sentinel is concerned.
			if cerr := e.Sentinel.Clear(ctx, res); cerr != nil {
				return nil, cerr
			}
			e.refuseOrg(ctx, user, meta, amr[0], ask.org.ID)
		}
		return nil, err
	}
	meta.OrgID = org.orgID()
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, err
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	// MFA is due when the user has factors, or when the policy makes it
	// mandatory, or the organization requires it; a user without factors
	// then proves a code sent to an address they have (under the Mandatory
	// policy), or cannot sign in until they enrol one.
	mandatory := settings.MFA.Policy == PolicyMandatory
	needMFA := (enforceMFA && settings.MFA.Enforce && (len(factors) > 0 || mandatory) || org.requiresMFA()) &&
		!(existing != nil && existing.State == SessionActive && hasAMR(existing.AMR, AMRMFA))
	offered := factorTypes(factors)
	if needMFA && len(factors) == 0 {
		offered = nil
		if mandatory {
			offered = e.codeChannels(user, settings)
		}
		if len(offered) == 0 {
			if err := e.Sentinel.Clear(ctx, res); err != nil {
				return nil, err
			}
			if !mandatory {
				return nil, errOrgMissingMFA()
			}
			return nil, fault.New(CodeMissingMFA, http.StatusForbidden,
				"Multi-factor authentication is mandatory and the user has no factor to use; enrol one first.")
		}
	}
	var sess *Session
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := e.Sentinel.clear(tx, res); err != nil {
			return err
		}
		var err error
		if sess, err = e.Sessions.authenticate(ctx, tx, existing, user.ID, amr, needMFA, meta); err != nil {
			return err
		}
		if needMFA {
			return e.Audit.record(tx, AuditEvent{Event: EventSignIn, Outcome: OutcomeFailure, UserID: user.ID, ClientID: meta.ClientID,
				IPAddress: meta.IPAddress, Data: map[string]any{"method": amr[0], "reason": "mfa_required", "session_id": sess.ID}})
		}
		if err := e.markSignedIn(tx, user, sess, amr, meta); err != nil {
			return err
		}
		if inTx != nil {
			return inTx(tx, &SignIn{User: user, Session: sess, Org: org})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.markSettled()
	if needMFA {
		return nil, mfaRequired(user, sess, offered)
	}
	return &SignIn{User: user, Session: sess, Org: org}, nil
}

// codeChannels lists the one-time-code factors a user without enrolled
// factors can still use: an enabled channel, a connector, and an address.
func (e *Engine) codeChannels(user *User, settings Settings) []string {
	var out []string
	if user.PrimaryEmail != nil && user.EmailVerified && settings.MFA.factorEnabled(FactorEmailCode) {
		if _, err := e.sender(IdentifierEmail); err == nil {
			out = append(out, FactorEmailCode)
		}
	}
	if user.PrimaryPhone != nil && user.PhoneVerified && settings.MFA.factorEnabled(FactorPhoneCode) {
		if _, err := e.sender(IdentifierPhone); err == nil {
			out = append(out, FactorPhoneCode)
		}
	}
	return out
}

// markSignedIn records a completed sign-in through db (a transaction).
func (e *Engine) markSignedIn(db *gorm.DB, user *User, sess *Session, amr []string, meta SessionMeta) error {
	now := e.now()
	if err := db.Model(&directory.Row{}).Where("id = ?", user.ID).Update("last_sign_in_at", now).Error; err != nil {
		return err
	}
	user.LastSignInAt = &now
	return e.Audit.record(db, AuditEvent{Event: EventSignIn, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: meta.ClientID,
		IPAddress: meta.IPAddress, Data: map[string]any{"methods": amr, "session_id": sess.ID}})
}

// mfaRequired builds the MFA-required outcome with what the backend needs
// to continue: the pending session and the available factors, and masked
// contact points for one-time codes.
func mfaRequired(user *User, sess *Session, types []string) error {
	fe := fault.New(CodeMFARequired, http.StatusForbidden, "Multi-factor authentication is required to finish signing in.").
		With("session_id", sess.ID).With("mfa_factors", types)
	if user.PrimaryEmail != nil {
		fe = fe.With("email", MaskEmail(*user.PrimaryEmail))
	}
	if user.PrimaryPhone != nil {
		fe = fe.With("phone_number", MaskPhone(*user.PrimaryPhone))
	}
	return fe
}

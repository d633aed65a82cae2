// Package experience is the Experience engine: it decides every sign-in.
// It owns users, verification (passwords now; codes and MFA factors next),
// the lockout sentinel, sessions, the stored sign-in settings and the audit
// log. It knows nothing of HTTP or tokens: it says who authenticated and how,
// and app turns that into tokens.
package experience

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Options configure the engine.
type Options struct {
	SessionTTL            time.Duration
	PendingSessionTTL     time.Duration
	ResetTokenTTL         time.Duration
	UsernameCaseSensitive bool
	SettingsCacheTTL      time.Duration
	// CodePepper keys verification-code digests (derived from the
	// deployment's secret key).
	CodePepper []byte
	// Connectors deliver codes; nil channels answer 501.
	Connectors *messaging.Connectors
	// Sealer encrypts TOTP secrets at rest.
	Sealer *credentials.Sealer
	// BackupCodePepper keys backup-code digests.
	BackupCodePepper []byte
	// WebAuthn runs passkey ceremonies (nil: WebAuthn unavailable).
	WebAuthn *credentials.WebAuthn
	// TOTPIssuer names the service in authenticator apps.
	TOTPIssuer string
	// Clients tells which OAuth clients share sessions (cross-application
	// SSO); nil: no client ever uses another's session.
	Clients ClientDirectory
}

// ClientDirectory is what the engine must know of OAuth clients, which it
// does not own.
type ClientDirectory interface {
	// SharesSessions reports whether a client exists and takes part in
	// cross-application SSO.
	SharesSessions(ctx context.Context, clientID string) (bool, error)
}

// Engine is the Experience engine.
type Engine struct {
	db     *store.DB
	hasher *credentials.Hasher
	log    *slog.Logger
	opts   Options
	now    func() time.Time
	norm   Normalizer

	Users    *Users
	Sessions *Sessions
	Sentinel *Sentinel
	Settings *SettingsStore
	Audit    *Audit
	Factors  *Factors
	resets   *resetTokens

	interactions *Interactions
	codes        *Codes
	connectors   *messaging.Connectors
	sealer       *credentials.Sealer
	webauthn     *credentials.WebAuthn
}

// New returns an engine over db.
func New(db *store.DB, hasher *credentials.Hasher, log *slog.Logger, opts Options) *Engine {
	now := func() time.Time { return time.Now().UTC() }
	norm := Normalizer{UsernameCaseSensitive: opts.UsernameCaseSensitive}
	return &Engine{
		db: db, hasher: hasher, log: log, opts: opts, now: now, norm: norm,
		Users:    &Users{db: db, norm: norm, now: now},
		Sessions: &Sessions{db: db, now: now, ttl: opts.SessionTTL, pendingTTL: opts.PendingSessionTTL},
		Sentinel: &Sentinel{db: db, now: now},
		Settings: &SettingsStore{db: db, ttl: opts.SettingsCacheTTL, now: now},
		Audit:    &Audit{db: db, now: now},
		Factors:  &Factors{db: db, now: now},
		resets:   &resetTokens{db: db, now: now, ttl: opts.ResetTokenTTL},

		interactions: &Interactions{db: db, now: now},
		codes:        &Codes{db: db, now: now, pepper: opts.CodePepper},
		connectors:   opts.Connectors,
		sealer:       opts.Sealer,
		webauthn:     opts.WebAuthn,
	}
}

// Normalizer returns the engine's identifier normalizer.
func (e *Engine) Normalizer() Normalizer { return e.norm }

// audit records an event; a failure to record is logged, never shown to the
// caller (the sign-in itself already happened or failed).
func (e *Engine) audit(ctx context.Context, ev AuditEvent) {
	if err := e.Audit.Record(ctx, ev); err != nil {
		e.log.ErrorContext(ctx, "audit write failed", slog.String("event", ev.Event), slog.String("error", err.Error()))
	}
}

// passwordStateError is a correct password whose account may not sign in
// with it as is: expired or temporary. It carries the user so the caller
// can offer the change-password step.
type passwordStateError struct {
	fe   *fault.Error
	user *User
}

func (e *passwordStateError) Error() string { return e.fe.Error() }
func (e *passwordStateError) Unwrap() error { return e.fe }

// VerifyPassword is the Password verification: it checks an identifier and
// password, guarded by the sentinel, and returns the user. It is the one code
// path behind both POST /v1/auth/password/authenticate and
// POST /api/experience/verification/password.
//
// Only a correct password reveals the account's state: suspended, expired
// or temporary. An unknown identifier costs a real hash (no timing oracle)
// and fails exactly like a wrong password.
func (e *Engine) VerifyPassword(ctx context.Context, id Identifier, password string, meta SessionMeta) (*User, error) {
	user, key, err := e.verifyPassword(ctx, id, password, meta)
	if user == nil {
		return nil, err
	}
	if cerr := e.Sentinel.Clear(ctx, key); cerr != nil {
		return nil, cerr
	}
	return user, err
}

// verifyPassword is VerifyPassword without clearing the sentinel key on
// success: it returns the key so the caller can clear it in the same
// transaction as the rest of the sign-in (one commit instead of several on
// the hot path). A non-nil user means the password was right; err may then
// still carry the account state (suspended, expired, temporary).
func (e *Engine) verifyPassword(ctx context.Context, id Identifier, password string, meta SessionMeta) (*User, string, error) {
	normalized, err := e.norm.Normalize(id)
	if err != nil {
		return nil, "", err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, "", err
	}
	// Under overload, refuse before any database work: a refusal must be
	// cheap, or the flood of them slows the requests that were admitted.
	if e.hasher.Saturated() {
		return nil, "", credentials.BusyError()
	}
	// The user is looked up first so the attempt counts in the account's
	// one pool, whichever identifier names it (an unknown identifier has a
	// pool of its own). The reservation stays one atomic upsert on that
	// key, before any secret is checked: parallel attempts through any
	// identifier, on any replica, still evaluate at most MaxFailures
	// passwords per window. Both lookup and reservation run for known and
	// unknown identifiers alike, so neither timing nor order tells them apart.
	user, err := e.Users.FindByIdentifier(ctx, id.Type, normalized)
	if err != nil {
		return nil, "", err
	}
	key := signInKey(id.Type, normalized, user)
	verdict, err := e.Sentinel.Reserve(ctx, key, settings.Lockout)
	if err != nil {
		return nil, "", err
	}
	fail := AuditEvent{Event: EventSignIn, Outcome: OutcomeFailure, ClientID: meta.ClientID, IPAddress: meta.IPAddress,
		Data: map[string]any{"method": AMRPassword, "identifier_type": id.Type}}
	if !verdict.Allowed {
		// Refusals are counted, not written one by one: one row per pool,
		// lockout window and identifier type, however many attempts come.
		fail.Data["reason"] = "locked"
		fold := key + "|" + verdict.Window.UTC().Format(time.RFC3339Nano) + "|" + id.Type
		if err := e.Audit.RecordRepeated(ctx, fold, fail); err != nil {
			e.log.ErrorContext(ctx, "audit write failed", slog.String("event", fail.Event), slog.String("error", err.Error()))
		}
		return nil, "", errLocked(verdict.RetryAfter)
	}
	ok, needsRehash := false, false
	if user == nil || !user.HasPassword {
		err = e.hasher.VerifyDummy(ctx, password)
	} else {
		ok, needsRehash, err = e.hasher.Verify(ctx, password, user.passwordHash)
	}
	if err != nil {
		// The attempt was never evaluated (e.g. the hashing gate is full):
		// it must not count against the user.
		if rerr := e.Sentinel.Release(ctx, key, settings.Lockout); rerr != nil {
			e.log.ErrorContext(ctx, "sentinel release failed", slog.String("error", rerr.Error()))
		}
		return nil, "", err
	}
	if !ok {
		if user != nil {
			fail.UserID = user.ID
		}
		fail.Data["reason"] = "invalid_credentials"
		e.audit(ctx, fail)
		locked, err := e.Sentinel.Fail(ctx, key, verdict, settings.Lockout)
		if err != nil {
			return nil, "", err
		}
		if locked {
			e.audit(ctx, AuditEvent{Event: EventLockout, Outcome: OutcomeSuccess, UserID: fail.UserID, ClientID: meta.ClientID,
				IPAddress: meta.IPAddress, Data: map[string]any{"identifier_type": id.Type, "lockout_seconds": settings.Lockout.LockoutSeconds}})
		}
		return nil, "", errInvalidCredentials
	}
	if needsRehash {
		e.rehash(ctx, user, password)
	}
	return user, key, e.accountState(user, settings, meta)
}

// accountState says whether a user who gave the right password may go on.
func (e *Engine) accountState(user *User, settings Settings, meta SessionMeta) error {
	if user.Suspended {
		return errSuspended
	}
	now := e.now()
	if user.PasswordTemporary {
		window := time.Duration(settings.PasswordExpiry.TemporaryValidHours) * time.Hour
		if user.PasswordUpdatedAt != nil && now.Sub(*user.PasswordUpdatedAt) > window {
			// A stale temporary password no longer opens anything: an
			// administrator has to issue a new one.
			return errInvalidCredentials
		}
		return &passwordStateError{fault.New(CodePasswordTemporary, http.StatusUnprocessableEntity,
			"The password is temporary and must be changed."), user}
	}
	expired := user.PasswordExpired
	if settings.PasswordExpiry.Enabled && user.PasswordUpdatedAt != nil &&
		now.Sub(*user.PasswordUpdatedAt) > time.Duration(settings.PasswordExpiry.ValidDays)*24*time.Hour {
		expired = true
	}
	if expired {
		return &passwordStateError{fault.New(CodePasswordExpired, http.StatusUnprocessableEntity,
			"The password has expired and must be changed."), user}
	}
	return nil
}

// rehash upgrades a verified password to the current algorithm and
// parameters, unless the stored hash changed meanwhile.
func (e *Engine) rehash(ctx context.Context, user *User, password string) {
	encoded, err := e.hasher.Hash(ctx, password)
	if err != nil {
		e.log.WarnContext(ctx, "password rehash skipped", slog.String("user_id", user.ID), slog.String("error", err.Error()))
		return
	}
	res := e.db.WithContext(ctx).Model(&userRow{}).Where("id = ? AND password_hash = ?", user.ID, user.passwordHash).
		Update("password_hash", encoded)
	if res.Error != nil {
		e.log.ErrorContext(ctx, "password rehash failed", slog.String("user_id", user.ID), slog.String("error", res.Error.Error()))
		return
	}
	if res.RowsAffected == 1 {
		user.passwordHash = encoded
		e.audit(ctx, AuditEvent{Event: EventPasswordRehash, Outcome: OutcomeSuccess, UserID: user.ID})
	}
}

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

// SignIn is a completed sign-in: the user and their active session.
type SignIn struct {
	User    *User
	Session *Session
}

// SignInWithPassword verifies a password and opens (or extends) a session.
// Outcomes besides success are *fault.Error values: invalid credentials,
// locked, suspended, password expired/temporary (with a reset token in
// Data), MFA required (with a pending session in Data).
func (e *Engine) SignInWithPassword(ctx context.Context, req PasswordSignIn) (*SignIn, error) {
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
	user, key, err := e.verifyPassword(ctx, req.Identifier, req.Password, req.Meta)
	if user != nil && err != nil {
		// A right password that may not sign in as is: the attempt
		// succeeded as far as the sentinel is concerned.
		if cerr := e.Sentinel.Clear(ctx, key); cerr != nil {
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
		if cerr := e.Sentinel.Clear(ctx, key); cerr != nil {
			return nil, cerr
		}
		return nil, errSessionNotFound()
	}
	return e.completeFirstFactor(ctx, user, existing, []string{AMRPassword}, req.Meta, req.EnforceMFA, key, req.InTx)
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
// Everything it writes — the sentinel key to clear (if any), the session, the
// last sign-in time, the audit event and what inTx adds to a completed
// sign-in — commits in one transaction.
func (e *Engine) completeFirstFactor(ctx context.Context, user *User, existing *Session, amr []string, meta SessionMeta, enforceMFA bool, clearKey string, inTx func(*gorm.DB, *SignIn) error) (*SignIn, error) {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, err
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	// MFA is due when the user has factors, or when the policy makes it
	// mandatory; a user without factors then proves a code sent to an
	// address they have, or cannot sign in until they enrol one.
	mandatory := settings.MFA.Policy == PolicyMandatory
	needMFA := enforceMFA && settings.MFA.Enforce && (len(factors) > 0 || mandatory) &&
		!(existing != nil && existing.State == SessionActive && hasAMR(existing.AMR, AMRMFA))
	offered := factorTypes(factors)
	if needMFA && len(factors) == 0 {
		offered = e.codeChannels(user, settings)
		if len(offered) == 0 {
			if clearKey != "" {
				if err := e.Sentinel.Clear(ctx, clearKey); err != nil {
					return nil, err
				}
			}
			return nil, fault.New(CodeMissingMFA, http.StatusForbidden,
				"Multi-factor authentication is mandatory and the user has no factor to use; enrol one first.")
		}
	}
	var sess *Session
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if clearKey != "" {
			if err := e.Sentinel.clear(tx, clearKey); err != nil {
				return err
			}
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
			return inTx(tx, &SignIn{User: user, Session: sess})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if needMFA {
		return nil, mfaRequired(user, sess, offered)
	}
	return &SignIn{User: user, Session: sess}, nil
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
	if err := db.Model(&userRow{}).Where("id = ?", user.ID).Update("last_sign_in_at", now).Error; err != nil {
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

// ReauthenticateSession checks that a session is live and active, that its
// user may still sign in, and extends it (silent authentication). For a
// calling application that enforces MFA (enforceMFA), a session opened
// without MFA (by an application that does not enforce it) of a user with
// factors answers mfa_required with that session, to be stepped up first.
func (e *Engine) ReauthenticateSession(ctx context.Context, sessionID string, caller SessionMeta, enforceMFA bool) (*SignIn, error) {
	signIn, err := e.ActiveSession(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if ok, err := e.mayUse(ctx, signIn.Session, caller, true); err != nil || !ok {
		return nil, orSessionNotFound(err)
	}
	orgID := caller.OrgID
	if enforceMFA && !hasAMR(signIn.Session.AMR, AMRMFA) {
		settings, err := e.Settings.Get(ctx)
		if err != nil {
			return nil, err
		}
		if settings.MFA.Enforce {
			factors, err := e.Factors.List(ctx, signIn.User.ID)
			if err != nil {
				return nil, err
			}
			if len(factors) > 0 {
				return nil, mfaRequired(signIn.User, signIn.Session, factorTypes(factors))
			}
		}
	}
	sess, err := e.Sessions.Touch(ctx, signIn.Session, orgID)
	if err != nil {
		return nil, err
	}
	return &SignIn{User: signIn.User, Session: sess}, nil
}

// ActiveSession returns a live, active session and its user, who must still
// be allowed to sign in. It does not extend the session (refreshing tokens
// is not an authentication).
func (e *Engine) ActiveSession(ctx context.Context, sessionID string) (*SignIn, error) {
	sess, user, err := e.Sessions.getWithUser(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if sess.State != SessionActive {
		return nil, errSessionNotFound()
	}
	if user.Suspended {
		return nil, errSuspended
	}
	return &SignIn{User: user, Session: sess}, nil
}

// sessionFor returns a live session (pending or active) that the calling
// client may use: its own or, to re-authenticate (reauth), one of another
// SSO client when the caller is one too. Any other session is answered as
// if it did not exist: a session id is no bearer credential for strangers.
func (e *Engine) sessionFor(ctx context.Context, id string, caller SessionMeta, reauth bool) (*Session, error) {
	sess, err := e.Sessions.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if ok, err := e.mayUse(ctx, sess, caller, reauth); err != nil || !ok {
		return nil, orSessionNotFound(err)
	}
	return sess, nil
}

// mayUse applies the session ownership rule (see sessionFor).
func (e *Engine) mayUse(ctx context.Context, sess *Session, caller SessionMeta, reauth bool) (bool, error) {
	if sess.ClientID == caller.ClientID {
		return true, nil
	}
	if !reauth || !caller.SSO || e.opts.Clients == nil {
		return false, nil
	}
	return e.opts.Clients.SharesSessions(ctx, sess.ClientID)
}

func orSessionNotFound(err error) error {
	if err != nil {
		return err
	}
	return errSessionNotFound()
}

// EndSession logs out a session of the calling client; the caller revokes
// its tokens.
func (e *Engine) EndSession(ctx context.Context, sessionID string, caller SessionMeta) error {
	if _, err := e.sessionFor(ctx, sessionID, caller, false); err != nil {
		return err
	}
	ok, err := e.Sessions.Revoke(ctx, sessionID)
	if err == nil && ok {
		e.audit(ctx, AuditEvent{Event: EventSessionRevoked, Outcome: OutcomeSuccess, ClientID: caller.ClientID,
			Data: map[string]any{"session_id": sessionID, "reason": "logout"}})
	}
	return err
}

// SessionListing is one of a user's live sessions as a management caller
// may see it: the session without its id unless the caller could use it
// anyway (its own, or an SSO peer's); ListingID always identifies the entry
// without being usable as a session id.
type SessionListing struct {
	ListingID string `json:"listing_id"`
	Session
}

// ListUserSessions lists a user's live sessions for a management caller.
func (e *Engine) ListUserSessions(ctx context.Context, userID string, caller SessionMeta) ([]SessionListing, error) {
	if _, err := e.Users.Get(ctx, userID); err != nil {
		return nil, err
	}
	sessions, err := e.Sessions.ListUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	usable := map[string]bool{}
	out := make([]SessionListing, 0, len(sessions))
	for _, s := range sessions {
		ok, seen := usable[s.ClientID]
		if !seen {
			if ok, err = e.mayUse(ctx, s, caller, true); err != nil {
				return nil, err
			}
			usable[s.ClientID] = ok
		}
		l := SessionListing{ListingID: "lsl_" + credentials.Digest(s.ID)[:24], Session: *s}
		if !ok {
			l.Session.ID = ""
		}
		out = append(out, l)
	}
	return out, nil
}

// RevokeSession ends a session; the caller revokes its tokens.
func (e *Engine) RevokeSession(ctx context.Context, sessionID, reason string) (bool, error) {
	ok, err := e.Sessions.Revoke(ctx, sessionID)
	if err == nil && ok {
		e.audit(ctx, AuditEvent{Event: EventSessionRevoked, Outcome: OutcomeSuccess, Data: map[string]any{"session_id": sessionID, "reason": reason}})
	}
	return ok, err
}

// RecordRefreshReuse logs a refresh-token reuse and ends the session.
func (e *Engine) RecordRefreshReuse(ctx context.Context, sessionID, userID, clientID string) error {
	e.audit(ctx, AuditEvent{Event: EventRefreshReuse, Outcome: OutcomeFailure, UserID: userID, ClientID: clientID,
		Data: map[string]any{"session_id": sessionID}})
	_, err := e.RevokeSession(ctx, sessionID, "refresh_token_reuse")
	return err
}

func hasAMR(list []string, m string) bool {
	for _, v := range list {
		if v == m {
			return true
		}
	}
	return false
}

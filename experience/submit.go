package experience

import (
	"context"
	"net/http"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/fault"
)

// SubmitResult is a submitted interaction: a sign-in (SignIn, Register), or
// nothing more to do (ForgotPassword).
type SubmitResult struct {
	Event  string
	SignIn *SignIn
}

// SubmitInteraction completes an interaction. Every rule (MFA, required
// profile, uniqueness) is checked before anything is written; then the
// interaction is claimed (deleted against its version: one interaction, one
// submit) and the profile changes, the session and the audit rows commit in
// one transaction, so a refused submit changes nothing.
func (e *Engine) SubmitInteraction(ctx context.Context, handle, clientID string, meta SessionMeta) (*SubmitResult, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return nil, err
	}
	if in.UserID == "" {
		return nil, errNotIdentified()
	}
	user, err := e.Users.Get(ctx, in.UserID)
	if err != nil {
		return nil, err
	}
	if user.Suspended {
		return nil, errSuspended
	}
	if in.Event == EventForgotPasswordFlow {
		return e.submitForgotPassword(ctx, in, user, meta)
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, err
	}
	p := in.Profile
	if in.Event == EventRegisterFlow && settings.SignUp.Password && !user.HasPassword && p.PasswordHash == "" && !in.Federated {
		return nil, fault.New(CodeMissingProfile, http.StatusUnprocessableEntity, "A password is required to register.").
			With("missingProfile", []string{"password"})
	}
	// A member of an organization that requires MFA may be under the
	// Mandatory policy here (mfa.organization_required_mfa_policy).
	mfaSettings, err := e.orgMFASettings(ctx, user, settings)
	if err != nil {
		return nil, err
	}
	// A submit in an organization's context (meta.OrgID: an authorization
	// request with organization_id) requires membership — checked here for
	// a sign-in, and in the transaction for a registration, which may have
	// just earned it (just-in-time) — and the organization's MFA.
	org, err := e.requestedOrg(ctx, meta.OrgID)
	if err != nil {
		return nil, err
	}
	var orgCtx *OrgContext
	if org != nil && in.Event != EventRegisterFlow {
		if orgCtx, err = e.orgAccess(ctx, org, user.ID); err != nil {
			if fault.Is(err, CodeOrgMembershipRequired) {
				e.refuseOrg(ctx, user, meta, "experience", org.ID)
			}
			return nil, err
		}
	}
	if org != nil && org.MFARequired {
		mfaSettings.MFA.Policy, mfaSettings.MFA.Enforce = PolicyMandatory, true
	}
	if err := e.requireInteractionMFA(ctx, in, user, mfaSettings); err != nil {
		return nil, err
	}
	if err := e.checkProfileFree(ctx, p, user); err != nil {
		return nil, err
	}
	amr := interactionAMR(in)
	var sess *Session
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := e.interactions.claimTx(tx, in); err != nil {
			return err
		}
		var err error
		if user, err = e.applyPendingProfile(ctx, tx, in, user, meta); err != nil {
			return err
		}
		if in.Event == EventRegisterFlow {
			// The address may have been verified after the account was
			// created (POST /profile): just-in-time membership counts it.
			if err := e.provisionJIT(tx, user, meta, "experience"); err != nil {
				return err
			}
			if org != nil {
				if orgCtx, err = e.orgContextTx(tx, org, user.ID); err != nil {
					return err
				}
			}
		}
		if sess, err = e.Sessions.authenticate(ctx, tx, nil, user.ID, amr, false, meta); err != nil {
			return err
		}
		if p.PasswordHash != "" && in.Event == EventSignInFlow {
			if err := e.endOtherSessions(ctx, tx, user.ID, sess.ID, settings); err != nil {
				return err
			}
		}
		return e.markSignedIn(tx, user, sess, amr, meta)
	})
	if fault.Is(err, CodeOrgMembershipRequired) {
		e.refuseOrg(ctx, user, meta, "experience", org.ID)
	}
	if err != nil {
		return nil, err
	}
	return &SubmitResult{Event: in.Event, SignIn: &SignIn{User: user, Session: sess, Org: orgCtx}}, nil
}

func (e *Engine) submitForgotPassword(ctx context.Context, in *Interaction, user *User, meta SessionMeta) (*SubmitResult, error) {
	if in.NewPasswordHash == "" {
		return nil, fault.New(CodeMissingProfile, http.StatusUnprocessableEntity, "Set the new password first (PUT /api/experience/profile/password).").
			With("missingProfile", []string{"password"})
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, err
	}
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := e.interactions.claimTx(tx, in); err != nil {
			return err
		}
		if err := e.storePassword(ctx, tx, user, in.NewPasswordHash, false); err != nil {
			return err
		}
		if err := e.endOtherSessions(ctx, tx, user.ID, "", settings); err != nil {
			return err
		}
		return e.Audit.record(tx, AuditEvent{Event: EventPasswordReset, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: meta.ClientID,
			IPAddress: meta.IPAddress, Data: map[string]any{"via": "forgot_password"}})
	})
	if err != nil {
		return nil, err
	}
	return &SubmitResult{Event: in.Event}, nil
}

// applyPendingProfile writes, inside tx, the profile data gathered after
// identification, and audits which fields changed (never their values when
// secret).
func (e *Engine) applyPendingProfile(ctx context.Context, tx *gorm.DB, in *Interaction, user *User, meta SessionMeta) (*User, error) {
	p := in.Profile
	changed := p.fields()
	if len(changed) == 0 {
		return user, nil
	}
	updated := user
	if p.Username != nil || p.Email != nil || p.Phone != nil || p.Name != nil || p.CustomData != nil {
		var err error
		updated, err = e.Users.UpdateTx(tx, user.ID, Profile{Username: p.Username, Email: p.Email, Phone: p.Phone, Name: p.Name,
			CustomData: p.CustomData, EmailVerified: trueOrNil(p.EmailVerified), PhoneVerified: trueOrNil(p.PhoneVerified)})
		if err != nil {
			return nil, err
		}
	}
	if p.PasswordHash != "" {
		if err := e.storePassword(ctx, tx, updated, p.PasswordHash, false); err != nil {
			return nil, err
		}
		if err := e.Audit.record(tx, AuditEvent{Event: EventPasswordSet, Outcome: OutcomeSuccess, UserID: user.ID,
			ClientID: meta.ClientID, IPAddress: meta.IPAddress, Data: map[string]any{"via": "experience"}}); err != nil {
			return nil, err
		}
		var err error
		if updated, err = e.Users.GetTx(tx, user.ID); err != nil {
			return nil, err
		}
	}
	if err := e.Audit.record(tx, AuditEvent{Event: EventProfileUpdated, Outcome: OutcomeSuccess, UserID: user.ID,
		ClientID: meta.ClientID, IPAddress: meta.IPAddress, Data: map[string]any{"via": "experience", "fields": changed}}); err != nil {
		return nil, err
	}
	return updated, nil
}

// interactionAMR lists the methods the interaction's records prove.
func interactionAMR(in *Interaction) []string {
	var amr []string
	for m := range firstFactors(in) {
		amr = append(amr, m)
	}
	for factor := range in.MFA {
		if m, ok := amrOfFactor[factor]; ok {
			amr = append(amr, m)
		}
	}
	if upstreamMFAProven(in) {
		amr = append(amr, AMRMFA)
	}
	if len(amr) == 0 {
		amr = []string{AMRPassword}
	}
	return amr
}

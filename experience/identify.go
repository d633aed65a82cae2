package experience

import (
	"context"
	"net/http"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/fault"
)

// Identify identifies the interaction's user from a verification record
// (SignIn, ForgotPassword), or creates the account (Register). It reports
// whether an account was created.
func (e *Engine) Identify(ctx context.Context, handle, clientID, recordID string, meta SessionMeta) (bool, error) {
	return e.IdentifyWith(ctx, handle, clientID, recordID, false, meta)
}

// IdentifyWith is Identify; link (linkSocialIdentity) lets a SignIn with
// an unknown social identity link it to the account with its verified
// e-mail address.
func (e *Engine) IdentifyWith(ctx context.Context, handle, clientID, recordID string, link bool, meta SessionMeta) (bool, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return false, err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return false, err
	}
	if !eventOpen(settings, in.Event) {
		return false, errEventNotEnabled(in.Event)
	}
	if up, ok := in.record(recordID).(upstream); ok && recordID != "" {
		return e.identifyUpstream(ctx, handle, in, up, link, settings, meta)
	}
	if in.Event == EventRegisterFlow {
		return true, e.register(ctx, handle, in, recordID, settings, meta)
	}
	if recordID == "" {
		return false, fault.New(CodeInvalidTarget, http.StatusBadRequest, "verificationId is required to identify a user.")
	}
	v := in.record(recordID)
	if v == nil {
		return false, errRecordNotFound()
	}
	rec, ok := v.(identifying)
	proof := v.Proof()
	if !ok || !v.Verified() || proof.Identifier == nil || !rec.identifies(in.Event) {
		return false, fault.New(CodeVerificationFailed, http.StatusBadRequest, "The verification record is not verified or cannot identify a user.")
	}
	if err := methodAllowed(settings, in.Event, proof); err != nil {
		return false, err
	}
	if proof.UserID == "" {
		return false, fault.New(CodeUserNotExist, http.StatusNotFound, "No account has this identifier.")
	}
	user, err := e.Users.Get(ctx, proof.UserID)
	if err != nil {
		if fault.Is(err, CodeUserNotFound) {
			return false, fault.New(CodeUserNotExist, http.StatusNotFound, "No account has this identifier.")
		}
		return false, err
	}
	if user.Suspended {
		return false, errSuspended
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if in.UserID != "" && in.UserID != user.ID {
			return fault.New(CodeIdentityConflict, http.StatusConflict, "The interaction already identified another user.")
		}
		in.UserID = user.ID
		return nil
	})
	return false, err
}

// methodAllowed checks the sign-in or recovery method a record proved.
func methodAllowed(s Settings, event string, p Proof) error {
	if event == EventForgotPasswordFlow {
		return codeMethodEnabled(s, event, p.Identifier.Type)
	}
	if !s.SignIn.allows(p.Identifier.Type, p.Method != AMRPassword) {
		return fault.New(CodeMethodNotEnabled, http.StatusForbidden, "This sign-in method is not enabled.")
	}
	return nil
}

// register creates the account of a Register interaction.
func (e *Engine) register(ctx context.Context, handle string, in *Interaction, recordID string, settings Settings, meta SessionMeta) error {
	if in.UserID != "" {
		return fault.New(CodeIdentityConflict, http.StatusConflict, "The interaction already created an account.")
	}
	profile := in.Profile
	if recordID != "" {
		v := in.record(recordID)
		if v == nil {
			return errRecordNotFound()
		}
		if !v.Verified() || v.Proof().Identifier == nil {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The verification record is not verified.")
		}
		rec, ok := v.(registering)
		if !ok {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "This verification record cannot register an account.")
		}
		rec.applyTo(&profile)
	}
	if missing := missingIdentifiers(settings.SignUp, profile); len(missing) > 0 {
		return fault.New(CodeMissingProfile, http.StatusUnprocessableEntity, "The registration lacks a required identifier.").
			With("missingProfile", missing)
	}
	// Seed 004 creates the account here, so everything sign-up requires
	// must be present first: an account without the password it needs would
	// hold its username forever and could never sign in.
	if settings.SignUp.Password && profile.PasswordHash == "" {
		return fault.New(CodeMissingProfile, http.StatusUnprocessableEntity, "A password is required to register.").
			With("missingProfile", []string{"password"})
	}
	var row *directory.Row
	err := e.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if row, err = e.Users.CreateTx(tx, Profile{Username: profile.Username, Email: profile.Email, Phone: profile.Phone,
			Name: profile.Name, CustomData: profile.CustomData, EmailVerified: boolPtr(profile.EmailVerified),
			PhoneVerified: boolPtr(profile.PhoneVerified)}, profile.PasswordHash, false); err != nil {
			return err
		}
		return e.provisionJIT(tx, row.User(), meta, "experience")
	})
	if err != nil {
		return err
	}
	e.audit(ctx, AuditEvent{Event: EventUserCreated, Outcome: OutcomeSuccess, UserID: row.ID, ClientID: meta.ClientID,
		IPAddress: meta.IPAddress, Data: map[string]any{"via": "experience", "password": profile.PasswordHash != ""}})
	_, err = e.interactions.update(ctx, handle, in.ClientID, func(fresh *Interaction) error {
		if fresh.UserID != "" {
			return fault.New(CodeIdentityConflict, http.StatusConflict, "The interaction already created an account.")
		}
		fresh.UserID = row.ID
		fresh.Profile = pendingProfile{}
		return nil
	})
	return err
}

// missingIdentifiers lists required sign-up identifiers when none is given.
func missingIdentifiers(req SignUpRequirements, p pendingProfile) []string {
	if len(req.Identifiers) == 0 {
		return nil
	}
	for _, id := range req.Identifiers {
		switch id {
		case IdentifierUsername:
			if p.Username != nil {
				return nil
			}
		case IdentifierEmail:
			if p.Email != nil && (p.EmailVerified || !req.Verify) {
				return nil
			}
		case IdentifierPhone:
			if p.Phone != nil && (p.PhoneVerified || !req.Verify) {
				return nil
			}
		}
	}
	return req.Identifiers
}

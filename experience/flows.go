package experience

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/fault"
)

// This file is the Experience API's flows over interactions: start, switch
// event, verification records (password, codes, new password identity),
// identification, profile, password reset and submit.

// eventOpen says whether settings allow an interaction event.
func eventOpen(s Settings, event string) bool {
	switch event {
	case EventSignInFlow:
		return s.SignInMode != ModeRegister
	case EventRegisterFlow:
		return s.SignInMode != ModeSignIn
	case EventForgotPasswordFlow:
		return s.ForgotPassword.Email || s.ForgotPassword.Phone
	}
	return false
}

func validEvent(event string) bool {
	return event == EventSignInFlow || event == EventRegisterFlow || event == EventForgotPasswordFlow
}

func errEventNotEnabled(event string) *fault.Error {
	return fault.New(CodeEventNotEnabled, http.StatusForbidden, "The %s interaction is not enabled in the sign-in experience settings.", event)
}

// StartInteraction begins a new interaction for clientID and returns its
// handle (for the cookie and header).
func (e *Engine) StartInteraction(ctx context.Context, clientID, event string) (string, error) {
	if !validEvent(event) {
		return "", fault.Invalid(fault.Detail{Field: "interactionEvent", Message: "must be SignIn, Register or ForgotPassword"})
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return "", err
	}
	if !eventOpen(settings, event) {
		return "", errEventNotEnabled(event)
	}
	return e.interactions.create(ctx, clientID, event)
}

// InteractionClient returns the client a live interaction belongs to: the
// handle alone authorises Experience API calls (seed 004), and the client
// stored with the interaction is the one they act for. A caller that also
// names a client (a Bearer token) must name the owner; any other is told
// the interaction does not exist.
func (e *Engine) InteractionClient(ctx context.Context, handle, clientID string) (string, error) {
	owner, err := e.interactions.owner(ctx, handle)
	if err != nil {
		return "", err
	}
	if clientID != "" && clientID != owner {
		return "", errInteractionNotFound()
	}
	return owner, nil
}

// EndInteraction deletes the interaction behind handle if it is clientID's
// (re-initialising clears the previous interaction, seed 004); an unknown
// handle or another client's interaction is left alone.
func (e *Engine) EndInteraction(ctx context.Context, handle, clientID string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		if fault.Is(err, CodeInteractionNotFound) {
			return nil
		}
		return err
	}
	return e.interactions.delete(ctx, in)
}

// Interaction returns the sanitised state of an interaction.
func (e *Engine) Interaction(ctx context.Context, handle, clientID string) (*InteractionView, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return nil, err
	}
	return in.view(), nil
}

// SetInteractionEvent switches between SignIn and Register, keeping the
// verification records.
func (e *Engine) SetInteractionEvent(ctx context.Context, handle, clientID, event string) error {
	if !validEvent(event) {
		return fault.Invalid(fault.Detail{Field: "interactionEvent", Message: "must be SignIn, Register or ForgotPassword"})
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if in.Event == EventForgotPasswordFlow || event == EventForgotPasswordFlow {
			if in.Event == event {
				return nil
			}
			return fault.New(CodeNotForForgotPassword, http.StatusBadRequest,
				"Only SignIn and Register are interchangeable; a ForgotPassword interaction keeps its event.")
		}
		if !eventOpen(settings, event) {
			return errEventNotEnabled(event)
		}
		if in.Event != event && in.UserID != "" {
			// An identified user belongs to the flow that identified them.
			return fault.New(CodeIdentityConflict, http.StatusBadRequest, "The interaction already identified a user; start a new one.")
		}
		in.Event = event
		return nil
	})
	return err
}

// AddPasswordVerification creates a verified Password record (the engine
// path shared with POST /v1/auth/password/authenticate).
func (e *Engine) AddPasswordVerification(ctx context.Context, handle, clientID string, id Identifier, password string, meta SessionMeta) (string, error) {
	if _, err := e.interactions.load(ctx, handle, clientID); err != nil {
		return "", err
	}
	user, err := e.VerifyPassword(ctx, id, password, meta)
	var state *passwordStateError
	if errors.As(err, &state) {
		return "", state.fe
	}
	if err != nil {
		return "", err
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordPassword, Identifier: &id, Verified: true, UserID: user.ID}
	if _, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.Records = append(in.Records, rec)
		return nil
	}); err != nil {
		return "", err
	}
	return rec.ID, nil
}

// codeRecordType maps an identifier type to its code record type.
func codeRecordType(idType string) string {
	if idType == IdentifierPhone {
		return RecordPhoneCode
	}
	return RecordEmailCode
}

// sender returns the connector for an identifier type, or 501.
func (e *Engine) sender(idType string) (messaging.Sender, error) {
	var s messaging.Sender
	if e.connectors != nil {
		if idType == IdentifierPhone {
			s = e.connectors.SMS
		} else {
			s = e.connectors.Email
		}
	}
	if s == nil {
		kind := "email"
		if idType == IdentifierPhone {
			kind = "SMS"
		}
		return nil, fault.New(CodeConnectorNotFound, http.StatusNotImplemented, "No %s connector is configured.", kind)
	}
	return s, nil
}

// codeIdentifier validates an email/phone identifier for codes.
func (e *Engine) codeIdentifier(id Identifier) (string, error) {
	if id.Type != IdentifierEmail && id.Type != IdentifierPhone {
		return "", fault.Invalid(fault.Detail{Field: "identifier.type", Message: "must be email or phone"})
	}
	return e.norm.Normalize(id)
}

// quietSendTimeout bounds a delivery that runs after the answer (the
// connectors bound each attempt; this bounds the retries).
const quietSendTimeout = 2 * time.Minute

// issueCode creates a code for an address and delivers it unless deliver is
// false, within the send limit of the recipient and purpose. When quiet, the answer must
// not reveal whether the address has an account: delivery then runs after
// the answer and a failure is only logged, so neither the status nor the
// latency of the answer depends on whether a message was sent.
func (e *Engine) issueCode(ctx context.Context, purpose string, id Identifier, normalized, clientID string, deliver, quiet bool, settings Settings) (*Issued, error) {
	sender, err := e.sender(id.Type)
	if err != nil {
		return nil, err
	}
	p := settings.Code
	limit := LockoutPolicy{Enabled: true, MaxFailures: p.SendLimit, WindowSeconds: p.SendWindowSeconds, LockoutSeconds: p.SendWindowSeconds}
	// One budget per recipient and purpose: sends of one kind (say,
	// ForgotPassword, which anyone can ask for) cannot use up another's
	// (the MFA code of a user who just gave the right password).
	key := "send:" + purpose + ":" + id.Type + ":" + normalized
	verdict, err := e.Sentinel.Reserve(ctx, key, limit)
	if err != nil {
		return nil, err
	}
	if !verdict.Allowed {
		// The send budget never locks: it comes back when its window ends
		// (the verdict's own RetryAfter would say 1 second).
		retry, err := e.Sentinel.WindowRemaining(ctx, key, limit)
		if err != nil {
			return nil, err
		}
		return nil, fault.New(CodeMessageLimited, http.StatusTooManyRequests, "Too many codes were sent to this address; try again later.").
			Retry(secondsToDuration(retry))
	}
	issued, err := e.codes.Create(ctx, purpose, id.Type, normalized, clientID, p)
	if err != nil {
		return nil, err
	}
	if !deliver {
		return issued, nil
	}
	msg := messaging.Message{To: normalized, Purpose: purpose, Code: issued.Code, ExpiresIn: secondsToDuration(int64(p.ExpirySeconds))}
	send := func(ctx context.Context) error {
		err := sender.Send(ctx, msg)
		if err != nil {
			e.log.ErrorContext(ctx, "verification code delivery failed", slog.String("connector", sender.Kind()),
				slog.String("purpose", purpose), slog.String("error", err.Error()))
		}
		return err
	}
	if quiet {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), quietSendTimeout)
			defer cancel()
			_ = send(ctx)
		}()
		return issued, nil
	}
	if err := send(ctx); err != nil {
		return nil, fault.New("connector.send_failed", http.StatusBadGateway, "The code could not be delivered; try again later.")
	}
	return issued, nil
}

// SendVerificationCode creates a code record for an email or phone and
// sends the code. In SignIn and ForgotPassword it is sent only when an
// account has that address, without saying so either way.
func (e *Engine) SendVerificationCode(ctx context.Context, handle, clientID string, id Identifier, purpose string) (string, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	if purpose == "" {
		purpose = in.Event
	}
	if !validEvent(purpose) {
		return "", fault.Invalid(fault.Detail{Field: "interactionEvent", Message: "must be SignIn, Register or ForgotPassword"})
	}
	normalized, err := e.codeIdentifier(id)
	if err != nil {
		return "", err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return "", err
	}
	if err := codeMethodEnabled(settings, purpose, id.Type); err != nil {
		return "", err
	}
	deliver, err := e.deliversTo(ctx, in, id.Type, normalized, purpose, settings)
	if err != nil {
		return "", err
	}
	issued, err := e.issueCode(ctx, purpose, id, normalized, clientID, deliver, purpose != EventRegisterFlow, settings)
	if err != nil {
		return "", err
	}
	rec := &Record{ID: credentials.RandomID(20), Type: codeRecordType(id.Type),
		Identifier: &Identifier{Type: id.Type, Value: normalized}, CodeID: issued.ID}
	if _, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.Records = append(in.Records, rec)
		return nil
	}); err != nil {
		return "", err
	}
	return rec.ID, nil
}

// deliversTo says whether a code for purpose is sent to an address. Any
// address may register, and in SignInAndRegister mode a sign-in page may
// send a SignIn code first and switch to Register on user.user_not_exist
// (seed 004), so those codes always go out; so do codes of an identified
// interaction binding a new address. Otherwise (ForgotPassword, SignIn-only
// mode) a code is sent only to an address an account has — and created
// either way, so the answer tells nothing. The message goes to the address
// itself, so delivering reveals nothing to the caller.
func (e *Engine) deliversTo(ctx context.Context, in *Interaction, idType, normalized, purpose string, settings Settings) (bool, error) {
	switch {
	case purpose == EventRegisterFlow:
		return true, nil
	case purpose == EventSignInFlow && (settings.SignInMode == ModeSignInAndRegister || in.UserID != ""):
		return true, nil
	}
	user, err := e.Users.FindByIdentifier(ctx, idType, normalized)
	return user != nil, err
}

// codeMethodEnabled checks the settings allow codes for purpose and type.
func codeMethodEnabled(s Settings, purpose, idType string) error {
	ok := false
	switch purpose {
	case EventSignInFlow:
		ok = s.SignIn.allows(idType, true)
	case EventRegisterFlow:
		// A registration may prove an address whether it is the required
		// identifier or extra profile; identification checks the rules.
		// With registration closed, no code goes out for it at all.
		ok = eventOpen(s, EventRegisterFlow)
	case EventForgotPasswordFlow:
		ok = (idType == IdentifierEmail && s.ForgotPassword.Email) || (idType == IdentifierPhone && s.ForgotPassword.Phone)
	}
	if !ok {
		return fault.New(CodeMethodNotEnabled, http.StatusForbidden, "Verification codes by %s are not enabled for %s.", idType, purpose)
	}
	return nil
}

// VerifyVerificationCode checks a code against its record. Failures count
// in the sentinel pool shared with passwords for that address's account.
func (e *Engine) VerifyVerificationCode(ctx context.Context, handle, clientID, recordID string, id Identifier, code string) (string, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	// Seed 004 documents 501 for verify too when the identifier's connector
	// is not configured (no code can have been sent through it).
	if _, err := e.sender(id.Type); err != nil {
		return "", err
	}
	rec := in.record(recordID)
	if rec == nil || (rec.Type != RecordEmailCode && rec.Type != RecordPhoneCode) {
		return "", errRecordNotFound()
	}
	normalized, err := e.codeIdentifier(id)
	if err != nil {
		return "", err
	}
	if rec.Identifier == nil || rec.Identifier.Type != id.Type || rec.Identifier.Value != normalized {
		return "", fault.New(CodeVerificationFailed, http.StatusBadRequest, "The identifier does not match the verification record.")
	}
	if err := e.checkCode(ctx, rec.CodeID, id.Type, normalized, code); err != nil {
		return "", err
	}
	user, err := e.Users.FindByIdentifier(ctx, id.Type, normalized)
	if err != nil {
		return "", err
	}
	if _, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		r := in.record(recordID)
		if r == nil {
			return errRecordNotFound()
		}
		r.Verified = true
		if user != nil {
			r.UserID = user.ID
		}
		return nil
	}); err != nil {
		return "", err
	}
	return recordID, nil
}

// checkCode verifies a code under the sentinel pool passwords use for the
// address: its account's when it has one (a code to the address signs the
// account in as its password does, so both count against one budget), else
// the address's own.
func (e *Engine) checkCode(ctx context.Context, codeID, idType, normalized, code string) error {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	owner, err := e.Users.FindByIdentifier(ctx, idType, normalized)
	if err != nil {
		return err
	}
	key := signInKey(idType, normalized, owner)
	verdict, err := e.Sentinel.Reserve(ctx, key, settings.Lockout)
	if err != nil {
		return err
	}
	if !verdict.Allowed {
		return errLocked(verdict.RetryAfter)
	}
	if err := e.codes.Verify(ctx, codeID, idType, normalized, code); err != nil {
		if fault.Is(err, CodeCodeMismatch) {
			if _, ferr := e.Sentinel.Fail(ctx, key, verdict, settings.Lockout); ferr != nil {
				return ferr
			}
		} else if rerr := e.Sentinel.Release(ctx, key, settings.Lockout); rerr != nil {
			return rerr
		}
		return err
	}
	return e.Sentinel.Clear(ctx, key)
}

// AddNewPasswordIdentity creates a NewPasswordIdentity record: a username
// that is free and a password that passes the policy, for registration.
func (e *Engine) AddNewPasswordIdentity(ctx context.Context, handle, clientID string, id Identifier, password string) (string, error) {
	if _, err := e.interactions.load(ctx, handle, clientID); err != nil {
		return "", err
	}
	if id.Type != IdentifierUsername {
		return "", fault.Invalid(fault.Detail{Field: "identifier.type", Message: "must be username"})
	}
	normalized, err := e.norm.Normalize(id)
	if err != nil {
		return "", err
	}
	if err := e.checkFree(ctx, IdentifierUsername, normalized, nil); err != nil {
		return "", err
	}
	hash, err := e.newPasswordHash(ctx, password, credentials.UserInfo{Username: id.Value}, nil, CodePasswordRejected)
	if err != nil {
		return "", err
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordNewPasswordIdentity, Verified: true,
		Identifier: &Identifier{Type: IdentifierUsername, Value: id.Value}, PasswordHash: hash}
	if _, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.Records = append(in.Records, rec)
		return nil
	}); err != nil {
		return "", err
	}
	return rec.ID, nil
}

// newPasswordHash checks a new password (policy, and history for an
// existing user) and hashes it; violations are reported under code.
func (e *Engine) newPasswordHash(ctx context.Context, password string, info credentials.UserInfo, user *User, code string) (string, error) {
	if len(password) > maxPasswordBytes {
		return "", fault.New(code, http.StatusUnprocessableEntity, "The password is too long.").
			With("issues", []credentials.Violation{{Code: "password_rejected.too_long", Message: "The password is too long."}})
	}
	violations, err := e.ValidatePassword(ctx, password, info, user)
	if err != nil {
		return "", err
	}
	if len(violations) > 0 {
		return "", fault.New(code, http.StatusUnprocessableEntity, "%s", violations[0].Message).With("issues", violations)
	}
	return e.hasher.Hash(ctx, password)
}

// Identify identifies the interaction's user from a verification record
// (SignIn, ForgotPassword), or creates the account (Register). It reports
// whether an account was created.
func (e *Engine) Identify(ctx context.Context, handle, clientID, recordID string, meta SessionMeta) (bool, error) {
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
	if in.Event == EventRegisterFlow {
		return true, e.register(ctx, handle, in, recordID, settings, meta)
	}
	if recordID == "" {
		return false, fault.New(CodeInvalidTarget, http.StatusBadRequest, "verificationId is required to identify a user.")
	}
	rec := in.record(recordID)
	if rec == nil {
		return false, errRecordNotFound()
	}
	if !rec.Verified || rec.Identifier == nil || !identifiesUser(in.Event, rec.Type) {
		return false, fault.New(CodeVerificationFailed, http.StatusBadRequest, "The verification record is not verified or cannot identify a user.")
	}
	if err := methodAllowed(settings, in.Event, rec); err != nil {
		return false, err
	}
	if rec.UserID == "" {
		return false, fault.New(CodeUserNotExist, http.StatusNotFound, "No account has this identifier.")
	}
	user, err := e.Users.Get(ctx, rec.UserID)
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

// identifiesUser says which records may identify a user in an event.
func identifiesUser(event, recordType string) bool {
	switch recordType {
	case RecordPassword:
		return event == EventSignInFlow
	case RecordEmailCode, RecordPhoneCode:
		return true
	}
	return false
}

// methodAllowed checks the sign-in or recovery method of a record.
func methodAllowed(s Settings, event string, rec *Record) error {
	if event == EventForgotPasswordFlow {
		return codeMethodEnabled(s, event, rec.Identifier.Type)
	}
	if !s.SignIn.allows(rec.Identifier.Type, rec.Type != RecordPassword) {
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
		rec := in.record(recordID)
		if rec == nil {
			return errRecordNotFound()
		}
		if !rec.Verified || rec.Identifier == nil {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The verification record is not verified.")
		}
		if err := applyRecordToProfile(&profile, rec); err != nil {
			return err
		}
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
		row, err = e.Users.CreateTx(tx, Profile{Username: profile.Username, Email: profile.Email, Phone: profile.Phone,
			Name: profile.Name, CustomData: profile.CustomData, EmailVerified: boolPtr(profile.EmailVerified),
			PhoneVerified: boolPtr(profile.PhoneVerified)}, profile.PasswordHash, false)
		return err
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

// applyRecordToProfile copies what a verified record proves into a profile.
func applyRecordToProfile(p *pendingProfile, rec *Record) error {
	switch rec.Type {
	case RecordNewPasswordIdentity:
		v := rec.Identifier.Value
		p.Username, p.PasswordHash = &v, rec.PasswordHash
	case RecordEmailCode:
		v := rec.Identifier.Value
		p.Email, p.EmailVerified = &v, true
	case RecordPhoneCode:
		v := rec.Identifier.Value
		p.Phone, p.PhoneVerified = &v, true
	default:
		return fault.New(CodeVerificationFailed, http.StatusBadRequest, "This verification record cannot register an account.")
	}
	return nil
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

// ProfileInput is one POST /profile request.
type ProfileInput struct {
	Type           string // username, password, email, phone, extraProfile
	Value          string
	VerificationID string
	Name           *string
	CustomData     json.RawMessage
}

// AddProfile adds profile data to the interaction: before identification
// (Register) it shapes the new account; after, it updates the user at
// submit.
func (e *Engine) AddProfile(ctx context.Context, handle, clientID string, p ProfileInput) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event == EventForgotPasswordFlow {
		return fault.New(CodeNotForForgotPassword, http.StatusBadRequest, "Profile data cannot be added in a ForgotPassword interaction.")
	}
	if in.Event == EventSignInFlow && in.UserID == "" {
		return errNotIdentified()
	}
	var user *User
	if in.UserID != "" {
		if user, err = e.Users.Get(ctx, in.UserID); err != nil {
			return err
		}
		// Seed 004: in a SignIn, a user with MFA must prove it before
		// changing anything about the account — else a password alone could
		// swap the e-mail that receives the MFA codes.
		if err := e.requireMFAForChange(ctx, in, user); err != nil {
			return err
		}
	}
	var apply func(*pendingProfile)
	switch p.Type {
	case "username":
		v := p.Value
		key, err := e.norm.Normalize(Identifier{Type: IdentifierUsername, Value: v})
		if err != nil {
			return err
		}
		if err := e.checkFree(ctx, IdentifierUsername, key, user); err != nil {
			return err
		}
		apply = func(pp *pendingProfile) { pp.Username = &v }
	case "password":
		info := credentials.UserInfo{}
		if user != nil {
			info = user.Info()
		} else if in.Profile.Username != nil {
			info.Username = *in.Profile.Username
		}
		hash, err := e.newPasswordHash(ctx, p.Value, info, user, CodePasswordRejected)
		if err != nil {
			return err
		}
		apply = func(pp *pendingProfile) { pp.PasswordHash = hash }
	case IdentifierEmail, IdentifierPhone:
		if p.VerificationID == "" {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "A verified code record (verificationId) is required for %s.", p.Type)
		}
		rec := in.record(p.VerificationID)
		if rec == nil {
			return errRecordNotFound()
		}
		if !rec.Verified || rec.Identifier == nil || rec.Identifier.Type != p.Type {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The verification record is not verified for this %s.", p.Type)
		}
		if err := e.checkFree(ctx, p.Type, rec.Identifier.Value, user); err != nil {
			return err
		}
		apply = func(pp *pendingProfile) { _ = applyRecordToProfile(pp, rec) }
	case "extraProfile":
		probe := &directory.Row{CustomData: "{}", UsernameKey: new(string)}
		if err := e.Users.Apply(probe, Profile{Name: p.Name, CustomData: p.CustomData}); err != nil {
			return err
		}
		apply = func(pp *pendingProfile) {
			if p.Name != nil {
				pp.Name = p.Name
			}
			if p.CustomData != nil {
				pp.CustomData = p.CustomData
			}
		}
	default:
		return fault.Invalid(fault.Detail{Field: "type", Message: "must be username, password, email, phone or extraProfile"})
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		apply(&in.Profile)
		return nil
	})
	return err
}

// checkFree refuses an identifier used by another account (for a username,
// also one that looks like another account's, or mixes scripts).
func (e *Engine) checkFree(ctx context.Context, idType, normalized string, self *User) error {
	var other *User
	var err error
	if idType == IdentifierUsername {
		other, err = e.Users.UsernameHolder(ctx, normalized)
	} else {
		other, err = e.Users.FindByIdentifier(ctx, idType, normalized)
	}
	if err != nil {
		return err
	}
	if other == nil || (self != nil && other.ID == self.ID) {
		return nil
	}
	switch idType {
	case IdentifierEmail:
		return fault.New(CodeEmailInUse, http.StatusUnprocessableEntity, "The email address is already in use.")
	case IdentifierPhone:
		return fault.New(CodePhoneInUse, http.StatusUnprocessableEntity, "The phone number is already in use.")
	}
	return directory.ErrUsernameTaken()
}

// ResetPasswordInInteraction sets the new password of a ForgotPassword
// interaction; submit stores it.
func (e *Engine) ResetPasswordInInteraction(ctx context.Context, handle, clientID, password string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event != EventForgotPasswordFlow {
		return fault.New("session.invalid_interaction_type", http.StatusBadRequest, "The password can only be reset in a ForgotPassword interaction.")
	}
	if in.UserID == "" {
		return errNotIdentified()
	}
	user, err := e.Users.Get(ctx, in.UserID)
	if err != nil {
		return err
	}
	if user.HasPassword {
		same, _, err := e.hasher.Verify(ctx, password, user.PasswordHash())
		if err != nil {
			return err
		}
		if same {
			return fault.New(CodeSamePassword, http.StatusUnprocessableEntity, "The new password must differ from the current one.")
		}
	}
	hash, err := e.newPasswordHash(ctx, password, user.Info(), user, CodePasswordPolicyViolation)
	if err != nil {
		return err
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.NewPasswordHash = hash
		return nil
	})
	return err
}

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
	if in.Event == EventRegisterFlow && settings.SignUp.Password && !user.HasPassword && p.PasswordHash == "" {
		return nil, fault.New(CodeMissingProfile, http.StatusUnprocessableEntity, "A password is required to register.").
			With("missingProfile", []string{"password"})
	}
	if err := e.requireInteractionMFA(ctx, in, user, settings); err != nil {
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
	if err != nil {
		return nil, err
	}
	return &SubmitResult{Event: in.Event, SignIn: &SignIn{User: user, Session: sess}}, nil
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

// checkProfileFree refuses pending identifiers another account took since
// they were added (the database's unique indexes stay the last word).
func (e *Engine) checkProfileFree(ctx context.Context, p pendingProfile, user *User) error {
	pairs := []struct {
		idType string
		value  *string
	}{{IdentifierUsername, p.Username}, {IdentifierEmail, p.Email}, {IdentifierPhone, p.Phone}}
	for _, pair := range pairs {
		if pair.value == nil {
			continue
		}
		key, err := e.norm.Normalize(Identifier{Type: pair.idType, Value: *pair.value})
		if err != nil {
			return err
		}
		if err := e.checkFree(ctx, pair.idType, key, user); err != nil {
			return err
		}
	}
	return nil
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
	for _, r := range in.Records {
		if !r.Verified {
			continue
		}
		switch r.Type {
		case RecordPassword, RecordNewPasswordIdentity:
			amr = append(amr, AMRPassword)
		case RecordEmailCode, RecordPhoneCode:
			amr = append(amr, AMROTP)
		}
	}
	for factor := range in.MFA {
		if m, ok := amrOfFactor[factor]; ok {
			amr = append(amr, m)
		}
	}
	if len(amr) == 0 {
		amr = []string{AMRPassword}
	}
	return amr
}

func boolPtr(b bool) *bool { return &b }

func trueOrNil(b bool) *bool {
	if b {
		return &b
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// SendGenericCode creates and sends a Generic-purpose code to an address
// (the management API, seed 002): a backend verifying an address itself.
func (e *Engine) SendGenericCode(ctx context.Context, id Identifier, clientID string) error {
	normalized, err := e.codeIdentifier(id)
	if err != nil {
		return err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	_, err = e.issueCode(ctx, messaging.PurposeGeneric, id, normalized, clientID, true, false, settings)
	return err
}

// VerifyGenericCode checks the newest Generic code sent to an address.
func (e *Engine) VerifyGenericCode(ctx context.Context, id Identifier, code string) error {
	normalized, err := e.codeIdentifier(id)
	if err != nil {
		return err
	}
	if _, err := e.sender(id.Type); err != nil {
		return err
	}
	codeID, err := e.codes.Latest(ctx, messaging.PurposeGeneric, id.Type, normalized)
	if err != nil {
		return err
	}
	return e.checkCode(ctx, codeID, id.Type, normalized, code)
}

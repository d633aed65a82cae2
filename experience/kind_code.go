package experience

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/fault"
)

// Verification code kinds: a code sent to an e-mail address or phone
// number proves the address (seed 002).
const (
	RecordEmailCode = "EmailVerificationCode"
	RecordPhoneCode = "PhoneVerificationCode"
)

func init() {
	registerKind(RecordEmailCode, func() Verification { return &codeRecord{} })
	registerKind(RecordPhoneCode, func() Verification { return &codeRecord{} })
}

type codeRecord struct {
	record
	Identifier Identifier `json:"identifier"`
	CodeID     string     `json:"code_id"`
	// UserID is the account with this address, found when verified.
	UserID string `json:"user_id,omitempty"`
}

func (r *codeRecord) Kind() string { return codeRecordType(r.Identifier.Type) }

func (r *codeRecord) Proof() Proof {
	id := r.Identifier
	return Proof{Identifier: &id, UserID: r.UserID, Method: AMROTP, FirstFactor: true}
}

// identifies: the address's owner, in any event.
func (r *codeRecord) identifies(string) bool { return true }

// applyTo: a new account gets the address, verified.
func (r *codeRecord) applyTo(p *pendingProfile) {
	v := r.Identifier.Value
	if r.Identifier.Type == IdentifierPhone {
		p.Phone, p.PhoneVerified = &v, true
		return
	}
	p.Email, p.EmailVerified = &v, true
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
	allowed, err := e.Sentinel.Take(ctx, key, limit)
	if err != nil {
		return nil, err
	}
	if !allowed {
		// The send budget never locks: it comes back when its window ends.
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
	// Not for ForgotPassword (a user recovers the password they have), but
	// also when an identified user binds a new address: an SSO domain's
	// address is linked through its connector only (seed 004, /profile).
	if purpose != EventForgotPasswordFlow {
		if err := e.requireNotSSO(ctx, Identifier{Type: id.Type, Value: normalized}); err != nil {
			return "", err
		}
	}
	deliver, err := e.deliversTo(ctx, in, id.Type, normalized, purpose, settings)
	if err != nil {
		return "", err
	}
	issued, err := e.issueCode(ctx, purpose, id, normalized, clientID, deliver, purpose != EventRegisterFlow, settings)
	if err != nil {
		return "", err
	}
	rec := &codeRecord{record: newRecord(), Identifier: Identifier{Type: id.Type, Value: normalized}, CodeID: issued.ID}
	return e.addRecord(ctx, handle, clientID, rec)
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
	rec, ok := recordAs[*codeRecord](in, recordID)
	if !ok {
		return "", errRecordNotFound()
	}
	normalized, err := e.codeIdentifier(id)
	if err != nil {
		return "", err
	}
	if rec.Identifier.Type != id.Type || rec.Identifier.Value != normalized {
		return "", fault.New(CodeVerificationFailed, http.StatusBadRequest, "The identifier does not match the verification record.")
	}
	if err := e.checkCode(ctx, rec.CodeID, id.Type, normalized, code); err != nil {
		return "", err
	}
	user, err := e.Users.FindByIdentifier(ctx, id.Type, normalized)
	if err != nil {
		return "", err
	}
	rec.markVerified()
	if user != nil {
		rec.UserID = user.ID
	}
	return recordID, e.replaceRecord(ctx, handle, clientID, rec)
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
	// Whatever is not settled below (an error, a request that ended) is
	// given back: it was not evaluated.
	defer e.releaseUnsettled(ctx, verdict)
	if err := e.codes.Verify(ctx, codeID, idType, normalized, code); err != nil {
		if fault.Is(err, CodeCodeMismatch) && ctx.Err() == nil {
			if _, ferr := e.Sentinel.Fail(ctx, verdict); ferr != nil {
				return ferr
			}
		}
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return e.Sentinel.Clear(ctx, verdict)
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

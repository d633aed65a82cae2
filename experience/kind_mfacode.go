package experience

import (
	"context"
	"net/http"
	"strings"

	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/fault"
)

// MFA verification code kinds (seed 001): a code sent to the identified
// user's own e-mail or phone, as a second factor they enrolled, or to prove
// the address they are enrolling as one.
const (
	RecordMFAEmailCode = "MfaEmailVerificationCode"
	RecordMFAPhoneCode = "MfaPhoneVerificationCode"
)

func init() {
	registerKind(RecordMFAEmailCode, func() Verification { return &mfaCodeRecord{} })
	registerKind(RecordMFAPhoneCode, func() Verification { return &mfaCodeRecord{} })
}

type mfaCodeRecord struct {
	record
	UserID     string     `json:"user_id"`
	Identifier Identifier `json:"identifier"`
	CodeID     string     `json:"code_id"`
}

func (r *mfaCodeRecord) Kind() string {
	if r.Identifier.Type == IdentifierPhone {
		return RecordMFAPhoneCode
	}
	return RecordMFAEmailCode
}

func (r *mfaCodeRecord) Proof() Proof {
	id := r.Identifier
	return Proof{Identifier: &id, UserID: r.UserID, Method: AMROTP}
}

func (r *mfaCodeRecord) factor() string { return codeFactor(r.Identifier.Type) }
func (r *mfaCodeRecord) forget()        {}

// enrolment: the code went to the user's address as it is now; an address
// changed since then is not the one that was proven.
func (r *mfaCodeRecord) enrolment(e *Engine, user *User, _ []Factor) (*enrolment, error) {
	if r.UserID != user.ID || !user.HasAddress(r.Identifier) {
		return nil, fault.New(CodeVerificationFailed, http.StatusBadRequest, "The code record does not prove the user's current address.")
	}
	return &enrolment{row: e.newFactorRow(user, r.factor())}, nil
}

// mfaCodeIdentifier picks the user's bound address for a channel.
func mfaCodeIdentifier(user *User, identifierType string) (Identifier, error) {
	switch strings.ToLower(identifierType) {
	case "email":
		if user.PrimaryEmail != nil {
			return Identifier{Type: IdentifierEmail, Value: *user.PrimaryEmail}, nil
		}
	case "phone", "sms":
		if user.PrimaryPhone != nil {
			return Identifier{Type: IdentifierPhone, Value: *user.PrimaryPhone}, nil
		}
	default:
		return Identifier{}, fault.Invalid(fault.Detail{Field: "identifierType", Message: "must be email or phone"})
	}
	return Identifier{}, fault.New(CodeMFAIdentifierNotBound, http.StatusBadRequest, "The user has no %s to send a code to.", identifierType)
}

// mfaChannelEnabled refuses a one-time-code channel whose factor
// (email_code, phone_code) the settings do not enable: mfa.factors says
// which factors users may use, and a code channel is open to every user
// with an address, enrolled or not.
func mfaChannelEnabled(s Settings, idType string) error {
	factor := FactorEmailCode
	if idType == IdentifierPhone {
		factor = FactorPhoneCode
	}
	if !s.MFA.factorEnabled(factor) {
		return fault.New(CodeFactorNotEnabled, http.StatusBadRequest, "The %s factor is not enabled.", factor)
	}
	return nil
}

// codeFactor is the MFA factor of one-time codes sent to an identifier type.
func codeFactor(idType string) string {
	if idType == IdentifierPhone {
		return FactorPhoneCode
	}
	return FactorEmailCode
}

// codeFactorUsable says whether a one-time code to the user's address of
// idType proves a second factor: only when the user enrolled that factor,
// or when the policy makes MFA mandatory for a user without factors and the
// address was verified before (a code to an address nobody proved owning, or
// to the inbox of a TOTP-only user, is no second factor).
func codeFactorUsable(factors []Factor, user *User, idType string, settings Settings) bool {
	factor := codeFactor(idType)
	for _, f := range factors {
		if f.Type == factor {
			return true
		}
	}
	if len(factors) > 0 || settings.MFA.Policy != PolicyMandatory {
		return false
	}
	if idType == IdentifierPhone {
		return user.PrimaryPhone != nil && user.PhoneVerified
	}
	return user.PrimaryEmail != nil && user.EmailVerified
}

func errCodeFactorNotEnrolled(idType string) *fault.Error {
	return fault.New(CodeFactorNotEnrolled, http.StatusBadRequest, "The user has not enrolled %s as a second factor.", codeFactor(idType))
}

// SendMFACode sends a one-time code to the user's bound email or phone: as
// a second factor the user enrolled, or as the proof of an address being
// enrolled as one (when the interaction may add factors).
func (e *Engine) SendMFACode(ctx context.Context, handle, clientID, identifierType string) (string, error) {
	in, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	id, err := mfaCodeIdentifier(user, identifierType)
	if err != nil {
		return "", err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return "", err
	}
	if err := mfaChannelEnabled(settings, id.Type); err != nil {
		return "", err
	}
	if _, err := e.sender(id.Type); err != nil {
		return "", err
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return "", err
	}
	if !codeFactorUsable(factors, user, id.Type, settings) {
		if err := e.requireMFAForChange(ctx, in, user); err != nil {
			return "", errCodeFactorNotEnrolled(id.Type)
		}
	}
	issued, err := e.issueCode(ctx, messaging.PurposeMfaVerification, id, id.Value, clientID, true, false, settings)
	if err != nil {
		return "", err
	}
	return e.addRecord(ctx, handle, clientID, &mfaCodeRecord{record: newRecord(), UserID: user.ID, Identifier: id, CodeID: issued.ID})
}

// VerifyMFACode checks an MFA code sent by SendMFACode.
func (e *Engine) VerifyMFACode(ctx context.Context, handle, clientID, recordID, identifierType, code string) (string, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	want := IdentifierEmail
	if t := strings.ToLower(identifierType); t == "phone" || t == "sms" {
		want = IdentifierPhone
	}
	// Seed 001: 501 when the channel's connector is not configured (no code
	// can have been sent through it, whatever the verificationId), and 400
	// (not 404) when the user is not identified.
	if _, err := e.sender(want); err != nil {
		return "", err
	}
	if in.UserID == "" {
		return "", fault.New(CodeIdentifierNotFound, http.StatusBadRequest, "The interaction has not identified a user yet.")
	}
	rec, ok := recordAs[*mfaCodeRecord](in, recordID)
	if !ok {
		return "", errRecordNotFound()
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return "", err
	}
	if rec.Identifier.Type != want || rec.UserID != user.ID {
		return "", fault.New(CodeVerificationFailed, http.StatusBadRequest, "The identifier type does not match the verification record.")
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return "", err
	}
	if err := mfaChannelEnabled(settings, want); err != nil {
		return "", err
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return "", err
	}
	if err := e.guardFactor(ctx, user, "otp", func() error {
		return e.codes.Verify(ctx, rec.CodeID, rec.Identifier.Type, rec.Identifier.Value, code)
	}); err != nil {
		return "", err
	}
	rec.markVerified()
	if !codeFactorUsable(factors, user, want, settings) {
		// The address is proven, ready to be bound (POST /profile/mfa); it
		// is not a second factor of this sign-in.
		return recordID, e.replaceRecord(ctx, handle, clientID, rec)
	}
	return recordID, e.markMFA(ctx, handle, clientID, rec, codeFactor(want))
}

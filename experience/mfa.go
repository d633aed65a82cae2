package experience

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/messaging"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// MFA verification record types.
const (
	RecordTOTP         = "Totp"
	RecordBackupCode   = "BackupCode"
	RecordWebAuthn     = "WebAuthn"
	RecordMFAEmailCode = "MfaEmailVerificationCode"
	RecordMFAPhoneCode = "MfaPhoneVerificationCode"
)

// MFA error codes (Logto's).
const (
	CodeRequireMFA            = "session.mfa.require_mfa_verification"
	CodeFactorNotEnabled      = "session.mfa.mfa_factor_not_enabled"
	CodePendingInfoNotFound   = "session.mfa.pending_info_not_found"
	CodeWebAuthnFailed        = "session.mfa.webauthn_verification_failed"
	CodeInvalidTOTP           = "session.mfa.invalid_totp_code"
	CodeInvalidBackupCode     = "session.mfa.invalid_backup_code"
	CodeBackupCodeAlone       = "session.mfa.backup_code_can_not_be_alone"
	CodePolicyNotUserControl  = "session.mfa.mfa_policy_not_user_controlled"
	CodeTOTPInUse             = "user.totp_already_in_use"
	CodeMissingMFA            = "user.missing_mfa"
	CodeSuggestMFA            = "user.suggest_mfa"
	CodeMFAFactorsExist       = "session.mfa.mfa_factors_exist"
	CodeFactorNotEnrolled     = "session.mfa.factor_not_enrolled"
	CodeMFAIdentifierNotBound = "session.mfa.identifier_not_bound"
	CodeMFAFactorBound        = "user.mfa_factor_already_bound"
)

// amrOfFactor maps factor types to authentication method references.
var amrOfFactor = map[string]string{
	FactorTOTP: AMRTOTP, FactorBackupCode: AMRBackupCode, FactorWebAuthn: AMRWebAuthn,
	FactorEmailCode: AMROTP, FactorPhoneCode: AMROTP,
}

// factorKey is the per-user sentinel pool of one factor type: MFA failures
// lock that factor, never password sign-in.
func factorKey(userID, factor string) string { return userKey(userID) + ":" + factor }

// identifiedInteraction loads an interaction and its identified user (or
// 404 identifier_not_found): the precondition of every MFA step.
func (e *Engine) identifiedInteraction(ctx context.Context, handle, clientID string) (*Interaction, *User, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return nil, nil, err
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return nil, nil, err
	}
	return in, user, nil
}

// identifiedUser loads the interaction's user, or 404 identifier_not_found.
func (e *Engine) identifiedUser(ctx context.Context, in *Interaction) (*User, error) {
	if in.UserID == "" {
		return nil, errNotIdentified()
	}
	return e.Users.Get(ctx, in.UserID)
}

// addRecord appends a record to an interaction.
func (e *Engine) addRecord(ctx context.Context, handle, clientID string, rec *Record) (string, error) {
	_, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.Records = append(in.Records, rec)
		return nil
	})
	return rec.ID, err
}

// markMFA records in the interaction that a factor was proven.
func (e *Engine) markMFA(ctx context.Context, handle, clientID string, rec *Record, factor string) error {
	_, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if rec != nil {
			if r := in.record(rec.ID); r != nil {
				*r = *rec
			} else {
				in.Records = append(in.Records, rec)
			}
		}
		if in.MFA == nil {
			in.MFA = map[string]bool{}
		}
		in.MFA[factor] = true
		return nil
	})
	return err
}

// replaceRecord stores a changed record in its interaction.
func (e *Engine) replaceRecord(ctx context.Context, handle, clientID string, rec *Record) error {
	_, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		r := in.record(rec.ID)
		if r == nil {
			return errRecordNotFound()
		}
		*r = *rec
		return nil
	})
	return err
}

// sealTOTP encrypts a TOTP secret bound to its owner.
func (e *Engine) sealTOTP(userID, secret string) (string, error) {
	sealed, err := e.sealer.Seal([]byte(secret), []byte("totp:"+userID))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sealed), nil
}

func (e *Engine) openTOTP(userID, sealed string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return "", err
	}
	plain, err := e.sealer.Open(raw, []byte("totp:"+userID))
	return string(plain), err
}

// TOTPSecret is a new TOTP secret for the user to add to an authenticator.
type TOTPSecret struct {
	VerificationID string `json:"verificationId"`
	Secret         string `json:"secret"`
	SecretQRCode   string `json:"secretQrCode"`
}

// CreateTOTPSecret starts binding a new TOTP authenticator.
func (e *Engine) CreateTOTPSecret(ctx context.Context, handle, clientID string) (*TOTPSecret, error) {
	_, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return nil, err
	}
	account := user.ID
	for _, id := range user.Identifiers() {
		account = id.Value
		break
	}
	key, err := credentials.NewTOTP(e.opts.TOTPIssuer, account)
	if err != nil {
		return nil, err
	}
	sealed, err := e.sealTOTP(user.ID, key.Secret)
	if err != nil {
		return nil, err
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordTOTP, UserID: user.ID, Extra: map[string]string{"secret": sealed}}
	if _, err := e.addRecord(ctx, handle, clientID, rec); err != nil {
		return nil, err
	}
	return &TOTPSecret{VerificationID: rec.ID, Secret: key.Secret, SecretQRCode: key.QRCodePNG}, nil
}

// VerifyTOTP checks a TOTP code: against a new secret's record (binding),
// or, without a record, against the user's enrolled authenticator (MFA).
func (e *Engine) VerifyTOTP(ctx context.Context, handle, clientID, recordID, code string) (string, error) {
	in, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	if recordID != "" {
		rec := in.record(recordID)
		if rec == nil || rec.Type != RecordTOTP || rec.Extra["secret"] == "" {
			return "", errRecordNotFound()
		}
		secret, err := e.openTOTP(user.ID, rec.Extra["secret"])
		if err != nil {
			return "", err
		}
		step, ok := credentials.VerifyTOTP(secret, code, e.now())
		if !ok {
			return "", fault.New(CodeInvalidTOTP, http.StatusBadRequest, "The TOTP code is invalid.")
		}
		rec.Verified = true
		rec.Extra["step"] = fmt.Sprint(step)
		_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
			r := in.record(recordID)
			if r == nil {
				return errRecordNotFound()
			}
			*r = *rec
			return nil
		})
		return recordID, err
	}
	if err := e.verifyEnrolledTOTP(ctx, user, code); err != nil {
		return "", err
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordTOTP, UserID: user.ID, Verified: true}
	return rec.ID, e.markMFA(ctx, handle, clientID, rec, FactorTOTP)
}

// guardFactor runs check under the user's sentinel pool for a factor.
func (e *Engine) guardFactor(ctx context.Context, user *User, factor string, check func() error) error {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	key := factorKey(user.ID, factor)
	verdict, err := e.Sentinel.Reserve(ctx, key, settings.Lockout)
	if err != nil {
		return err
	}
	if !verdict.Allowed {
		return errLocked(verdict.RetryAfter)
	}
	if err := check(); err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) && fe.Status < 500 {
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

// verifyEnrolledTOTP checks a code against the user's TOTP factor; a time
// step is accepted once (replay protection, atomic in the database).
func (e *Engine) verifyEnrolledTOTP(ctx context.Context, user *User, code string) error {
	var row factorRow
	err := e.db.WithContext(ctx).Where("user_id = ? AND type = ?", user.ID, FactorTOTP).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fault.New(CodeFactorNotEnrolled, http.StatusBadRequest, "The user has no TOTP authenticator.")
	}
	if err != nil {
		return fmt.Errorf("experience: load totp: %w", err)
	}
	return e.guardFactor(ctx, user, FactorTOTP, func() error {
		secret, err := e.sealer.Open(row.Secret, []byte("totp:"+user.ID))
		if err != nil {
			return err
		}
		step, ok := credentials.VerifyTOTP(string(secret), code, e.now())
		if !ok {
			return fault.New(CodeInvalidTOTP, http.StatusBadRequest, "The TOTP code is invalid.")
		}
		res := e.db.WithContext(ctx).Model(&factorRow{}).
			Where("id = ? AND (last_used_step IS NULL OR last_used_step < ?)", row.ID, step).
			Updates(map[string]any{"last_used_step": step, "last_used_at": e.now()})
		if res.Error != nil {
			return fmt.Errorf("experience: totp replay check: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return fault.New(CodeInvalidTOTP, http.StatusBadRequest, "The TOTP code was already used.")
		}
		return nil
	})
}

// BackupCodes are freshly generated codes, shown once.
type BackupCodes struct {
	VerificationID string   `json:"verificationId"`
	Codes          []string `json:"codes"`
}

// GenerateBackupCodes creates a set of backup codes to bind.
func (e *Engine) GenerateBackupCodes(ctx context.Context, handle, clientID string) (*BackupCodes, error) {
	_, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return nil, err
	}
	codes := credentials.NewBackupCodes()
	digests := make([]string, len(codes))
	for i, c := range codes {
		digests[i] = credentials.BackupCodeDigest(e.opts.BackupCodePepper, c)
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordBackupCode, UserID: user.ID, Verified: true,
		Extra: map[string]string{"digests": strings.Join(digests, ",")}}
	if _, err := e.addRecord(ctx, handle, clientID, rec); err != nil {
		return nil, err
	}
	return &BackupCodes{VerificationID: rec.ID, Codes: codes}, nil
}

// VerifyBackupCode spends one of the user's backup codes as MFA.
func (e *Engine) VerifyBackupCode(ctx context.Context, handle, clientID, code string) (string, error) {
	_, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	if err := e.useBackupCode(ctx, user, code); err != nil {
		return "", err
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordBackupCode, UserID: user.ID, Verified: true}
	return rec.ID, e.markMFA(ctx, handle, clientID, rec, FactorBackupCode)
}

// useBackupCode marks a code used; of concurrent uses exactly one wins.
func (e *Engine) useBackupCode(ctx context.Context, user *User, code string) error {
	return e.guardFactor(ctx, user, FactorBackupCode, func() error {
		normalized, ok := credentials.NormalizeBackupCode(code)
		if !ok {
			return fault.New(CodeInvalidBackupCode, http.StatusBadRequest, "The backup code is invalid.")
		}
		res := e.db.WithContext(ctx).Table("backup_codes").
			Where("user_id = ? AND digest = ? AND used_at IS NULL", user.ID, credentials.BackupCodeDigest(e.opts.BackupCodePepper, normalized)).
			Update("used_at", e.now())
		if res.Error != nil {
			return fmt.Errorf("experience: use backup code: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return fault.New(CodeInvalidBackupCode, http.StatusBadRequest, "The backup code is invalid or already used.")
		}
		return nil
	})
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
	typ := RecordMFAEmailCode
	if id.Type == IdentifierPhone {
		typ = RecordMFAPhoneCode
	}
	return e.addRecord(ctx, handle, clientID, &Record{ID: credentials.RandomID(20), Type: typ, UserID: user.ID, Identifier: &id, CodeID: issued.ID})
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
	rec := in.record(recordID)
	if rec == nil || (rec.Type != RecordMFAEmailCode && rec.Type != RecordMFAPhoneCode) {
		return "", errRecordNotFound()
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return "", err
	}
	if rec.Identifier == nil || rec.Identifier.Type != want || rec.UserID != user.ID {
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
	verified := *rec
	verified.Verified = true
	if !codeFactorUsable(factors, user, want, settings) {
		// The address is proven, ready to be bound (POST /profile/mfa); it
		// is not a second factor of this sign-in.
		return recordID, e.replaceRecord(ctx, handle, clientID, &verified)
	}
	return recordID, e.markMFA(ctx, handle, clientID, &verified, codeFactor(want))
}

// webAuthnUser builds the ceremony user with the user's credentials.
func (e *Engine) webAuthnUser(ctx context.Context, user *User) (credentials.WebAuthnUser, []factorRow, error) {
	var rows []factorRow
	if err := e.db.WithContext(ctx).Where("user_id = ? AND type = ?", user.ID, FactorWebAuthn).Find(&rows).Error; err != nil {
		return credentials.WebAuthnUser{}, nil, fmt.Errorf("experience: load webauthn: %w", err)
	}
	wu := credentials.WebAuthnUser{ID: []byte(user.ID), Name: user.ID, DisplayName: user.Name}
	if ids := user.Identifiers(); len(ids) > 0 {
		wu.Name = ids[0].Value
	}
	if wu.DisplayName == "" {
		wu.DisplayName = wu.Name
	}
	for _, r := range rows {
		c, err := credentials.UnmarshalCredential(r.Data)
		if err != nil {
			return credentials.WebAuthnUser{}, nil, err
		}
		wu.Credentials = append(wu.Credentials, *c)
	}
	return wu, rows, nil
}

// WebAuthnOptions are the options of a started ceremony.
type WebAuthnOptions struct {
	VerificationID string          `json:"verificationId"`
	Options        json.RawMessage `json:"-"`
}

// StartWebAuthn begins a registration (register=true) or authentication.
func (e *Engine) StartWebAuthn(ctx context.Context, handle, clientID string, register bool) (*WebAuthnOptions, error) {
	if e.webauthn == nil {
		return nil, fault.New(CodeFactorNotEnabled, http.StatusBadRequest, "WebAuthn is not configured.")
	}
	_, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return nil, err
	}
	wu, _, err := e.webAuthnUser(ctx, user)
	if err != nil {
		return nil, err
	}
	var opts json.RawMessage
	var session string
	if register {
		opts, session, err = e.webauthn.BeginRegistration(wu)
	} else {
		if len(wu.Credentials) == 0 {
			return nil, fault.New(CodeFactorNotEnrolled, http.StatusBadRequest, "The user has no WebAuthn credential.")
		}
		opts, session, err = e.webauthn.BeginLogin(wu)
	}
	if err != nil {
		return nil, err
	}
	kind := "authentication"
	if register {
		kind = "registration"
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordWebAuthn, UserID: user.ID,
		Extra: map[string]string{"session": session, "kind": kind}}
	if _, err := e.addRecord(ctx, handle, clientID, rec); err != nil {
		return nil, err
	}
	return &WebAuthnOptions{VerificationID: rec.ID, Options: opts}, nil
}

// FinishWebAuthn verifies an attestation (registration) or assertion.
func (e *Engine) FinishWebAuthn(ctx context.Context, handle, clientID, recordID string, register bool, payload json.RawMessage) (string, error) {
	if e.webauthn == nil {
		return "", fault.New(CodeFactorNotEnabled, http.StatusBadRequest, "WebAuthn is not configured.")
	}
	in, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	rec := in.record(recordID)
	if rec == nil || rec.Type != RecordWebAuthn {
		return "", errRecordNotFound()
	}
	kind := "authentication"
	if register {
		kind = "registration"
	}
	if rec.Extra["session"] == "" || rec.Extra["kind"] != kind || rec.Verified {
		return "", fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "No WebAuthn %s challenge is pending in this record.", kind)
	}
	wu, rows, err := e.webAuthnUser(ctx, user)
	if err != nil {
		return "", err
	}
	failed := func(err error) error {
		return fault.New(CodeWebAuthnFailed, http.StatusBadRequest, "The WebAuthn response could not be verified.")
	}
	verified := *rec
	verified.Extra = map[string]string{"kind": kind}
	if register {
		cred, err := e.webauthn.FinishRegistration(wu, rec.Extra["session"], payload)
		if err != nil {
			return "", failed(err)
		}
		// A credential id is unique across users (a crafted attestation
		// could reuse another account's): refuse it here, not with a 500
		// from the unique index at bind time.
		var taken int64
		if err := e.db.WithContext(ctx).Model(&factorRow{}).
			Where("credential_id = ?", base64.RawURLEncoding.EncodeToString(cred.ID)).Count(&taken).Error; err != nil {
			return "", fmt.Errorf("experience: webauthn credential lookup: %w", err)
		}
		if taken > 0 {
			return "", failed(nil)
		}
		data, err := credentials.MarshalCredential(cred)
		if err != nil {
			return "", err
		}
		verified.Verified = true
		verified.Extra["credential"] = data
		_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
			r := in.record(recordID)
			if r == nil {
				return errRecordNotFound()
			}
			*r = verified
			return nil
		})
		return recordID, err
	}
	err = e.guardFactor(ctx, user, FactorWebAuthn, func() error {
		cred, err := e.webauthn.FinishLogin(wu, rec.Extra["session"], payload)
		if err != nil {
			return failed(err)
		}
		data, err := credentials.MarshalCredential(cred)
		if err != nil {
			return err
		}
		credID := base64.RawURLEncoding.EncodeToString(cred.ID)
		for _, r := range rows {
			if r.CredentialID != nil && *r.CredentialID == credID {
				// Compare-and-set on the stored record: a concurrent
				// assertion with the same counter cannot also pass.
				res := e.db.WithContext(ctx).Model(&factorRow{}).Where("id = ? AND data = ?", r.ID, r.Data).
					Updates(map[string]any{"data": data, "last_used_at": e.now()})
				if res.Error != nil {
					return res.Error
				}
				if res.RowsAffected != 1 {
					return failed(nil)
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	verified.Verified = true
	return recordID, e.markMFA(ctx, handle, clientID, &verified, FactorWebAuthn)
}

// factorOfRecord maps a bindable record type to its factor type.
func factorOfRecord(t string) string {
	switch t {
	case RecordTOTP:
		return FactorTOTP
	case RecordBackupCode:
		return FactorBackupCode
	case RecordWebAuthn:
		return FactorWebAuthn
	case RecordMFAEmailCode:
		return FactorEmailCode
	case RecordMFAPhoneCode:
		return FactorPhoneCode
	}
	return ""
}

// bindTypeMatches says whether the type named in POST /profile/mfa fits the
// record: the record's own type, its factor's /v1 name, or the seed's name
// of the code factors (EmailVerificationCode, PhoneVerificationCode).
func bindTypeMatches(named, recordType, factor string) bool {
	if named == "" || strings.EqualFold(named, recordType) || named == factor {
		return true
	}
	switch factor {
	case FactorEmailCode:
		return strings.EqualFold(named, RecordEmailCode)
	case FactorPhoneCode:
		return strings.EqualFold(named, RecordPhoneCode)
	}
	return false
}

// BindMFA enrolls the factor a verified record proves (POST /profile/mfa).
func (e *Engine) BindMFA(ctx context.Context, handle, clientID, factorType, recordID string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event == EventForgotPasswordFlow {
		return fault.New(CodeNotForForgotPassword, http.StatusBadRequest, "MFA cannot be bound in a ForgotPassword interaction.")
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return err
	}
	rec := in.record(recordID)
	if rec == nil {
		return errRecordNotFound()
	}
	factor := factorOfRecord(rec.Type)
	if factor == "" || !bindTypeMatches(factorType, rec.Type, factor) || !rec.Verified {
		return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The MFA verification record is invalid or not verified.")
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if !settings.MFA.factorEnabled(factor) {
		return fault.New(CodeFactorNotEnabled, http.StatusBadRequest, "The %s factor is not enabled.", factor)
	}
	existing, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if in.Event == EventSignInFlow && len(existing) > 0 && !mfaProven(in) {
		return fault.New(CodeRequireMFA, http.StatusForbidden, "Verify an existing factor before adding another.")
	}
	for _, f := range existing {
		if (factor == FactorEmailCode || factor == FactorPhoneCode) && f.Type == factor {
			return fault.New(CodeMFAFactorBound, http.StatusUnprocessableEntity, "The user already uses %s as a second factor.", factor)
		}
	}
	now := e.now()
	row := factorRow{ID: credentials.RandomID(20), UserID: user.ID, Type: factor, Data: "{}", CreatedAt: now}
	switch factor {
	case FactorTOTP:
		for _, f := range existing {
			if f.Type == FactorTOTP {
				return fault.New(CodeTOTPInUse, http.StatusUnprocessableEntity, "The user already has a TOTP authenticator.")
			}
		}
		if rec.Extra["secret"] == "" {
			return fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new TOTP secret.")
		}
		secret, err := e.openTOTP(user.ID, rec.Extra["secret"])
		if err != nil {
			return err
		}
		if row.Secret, err = e.sealer.Seal([]byte(secret), []byte("totp:"+user.ID)); err != nil {
			return err
		}
		if step := rec.Extra["step"]; step != "" {
			var n int64
			fmt.Sscan(step, &n)
			row.LastUsedStep = &n
		}
	case FactorBackupCode:
		if rec.Extra["digests"] == "" {
			return fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new backup codes.")
		}
		others := 0
		for _, f := range existing {
			if f.Type != FactorBackupCode {
				others++
			}
		}
		if others == 0 {
			return fault.New(CodeBackupCodeAlone, http.StatusUnprocessableEntity, "Backup codes cannot be the only MFA factor.")
		}
	case FactorEmailCode, FactorPhoneCode:
		// The code went to the user's address as it is now; an address
		// changed since then is not the one that was proven.
		if rec.UserID != user.ID || rec.Identifier == nil || !user.HasAddress(*rec.Identifier) {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The code record does not prove the user's current address.")
		}
	case FactorWebAuthn:
		if rec.Extra["credential"] == "" {
			return fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new WebAuthn credential.")
		}
		cred, err := credentials.UnmarshalCredential(rec.Extra["credential"])
		if err != nil {
			return err
		}
		id := base64.RawURLEncoding.EncodeToString(cred.ID)
		row.Data, row.CredentialID = rec.Extra["credential"], &id
	}
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if factor == FactorBackupCode {
			// A new set replaces the old one.
			if err := tx.Where("user_id = ? AND type = ?", user.ID, FactorBackupCode).Delete(&factorRow{}).Error; err != nil {
				return err
			}
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if factor == FactorBackupCode {
			for _, d := range strings.Split(rec.Extra["digests"], ",") {
				if err := tx.Exec("INSERT INTO backup_codes (user_id, factor_id, digest) VALUES (?, ?, ?)", user.ID, row.ID, d).Error; err != nil {
					return err
				}
			}
		}
		return e.Audit.record(tx, AuditEvent{Event: EventMFABound, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: clientID,
			Data: map[string]any{"factor": factor}})
	})
	if err != nil {
		// Concurrent binds: the database keeps one TOTP per user and each
		// WebAuthn credential id once across users.
		if store.IsUniqueViolation(err) {
			switch factor {
			case FactorTOTP:
				return fault.New(CodeTOTPInUse, http.StatusUnprocessableEntity, "The user already has a TOTP authenticator.")
			case FactorWebAuthn:
				return fault.New(CodeWebAuthnFailed, http.StatusBadRequest, "The WebAuthn credential is already registered.")
			case FactorBackupCode:
				return fault.New(CodeInteractionConflict, http.StatusConflict, "Another request replaced the backup codes at the same time; generate new ones.")
			}
		}
		return fmt.Errorf("experience: bind mfa: %w", err)
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if r := in.record(recordID); r != nil {
			r.Extra = nil // the secret now lives (sealed) with the factor only
		}
		// A new TOTP or WebAuthn credential was just proven (code,
		// attestation); a new set of backup codes proves nothing, so it
		// must not count as a method used (amr) nor as MFA verified.
		if factor != FactorBackupCode {
			if in.MFA == nil {
				in.MFA = map[string]bool{}
			}
			in.MFA[factor] = true
		}
		return nil
	})
	return err
}

// SkipMFA records that the user chose not to bind a factor now.
func (e *Engine) SkipMFA(ctx context.Context, handle, clientID string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event == EventForgotPasswordFlow {
		return fault.New(CodeNotForForgotPassword, http.StatusBadRequest, "MFA can only be skipped in SignIn or Register.")
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if settings.MFA.Policy == PolicyMandatory {
		return fault.New(CodePolicyNotUserControl, http.StatusUnprocessableEntity, "MFA is mandatory and cannot be skipped.")
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if len(factors) > 0 {
		return fault.New(CodeMFAFactorsExist, http.StatusForbidden, "The user has MFA factors; verify one instead.")
	}
	if _, err := e.Users.SetFlags(ctx, user.ID, map[string]any{"mfa_skipped": true}); err != nil {
		return err
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.MFASkipped = true
		return nil
	})
	return err
}

// experienceFactorNames are seed 004's names of the factor types, which the
// Experience API speaks (availableFactors, POST /profile/mfa); /v1 keeps the
// snake_case forms.
var experienceFactorNames = map[string]string{
	FactorTOTP: RecordTOTP, FactorBackupCode: RecordBackupCode, FactorWebAuthn: RecordWebAuthn,
	FactorEmailCode: RecordEmailCode, FactorPhoneCode: RecordPhoneCode,
}

func seedFactorNames(types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if n, ok := experienceFactorNames[t]; ok {
			out = append(out, n)
		}
	}
	return out
}

// enrollableFactors lists the enabled factor types a user without factors
// can actually bind now: a code factor needs the address and a connector,
// WebAuthn a configured relying party; backup codes can never be the first
// factor. Nothing is offered that cannot be completed.
func (e *Engine) enrollableFactors(user *User, settings Settings) []string {
	var out []string
	for _, f := range settings.MFA.Factors {
		switch f {
		case FactorBackupCode:
			continue
		case FactorWebAuthn:
			if e.webauthn == nil {
				continue
			}
		case FactorEmailCode, FactorPhoneCode:
			idType := IdentifierEmail
			if f == FactorPhoneCode {
				idType = IdentifierPhone
			}
			if _, err := mfaCodeIdentifier(user, idType); err != nil {
				continue
			}
			if _, err := e.sender(idType); err != nil {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// requireInteractionMFA applies the MFA rules at submit: a user with
// factors must have proven one (SignIn), and the policy may require or
// suggest enrolling one.
func (e *Engine) requireInteractionMFA(ctx context.Context, in *Interaction, user *User, settings Settings) error {
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if len(factors) > 0 {
		if in.Event == EventSignInFlow && settings.MFA.Enforce && !mfaProven(in) {
			return fault.New(CodeRequireMFA, http.StatusForbidden, "Multi-factor authentication is required.").
				With("availableFactors", seedFactorNames(factorTypes(factors)))
		}
		return nil
	}
	enabled := seedFactorNames(e.enrollableFactors(user, settings))
	switch settings.MFA.Policy {
	case PolicyMandatory:
		return fault.New(CodeMissingMFA, http.StatusUnprocessableEntity, "An MFA factor must be bound before continuing.").
			With("availableFactors", enabled)
	case PolicyPromptAtSignInAndSignUp, PolicyPromptOnlyAtSignIn:
		if settings.MFA.Policy == PolicyPromptOnlyAtSignIn && in.Event != EventSignInFlow {
			return nil
		}
		if !in.MFASkipped && !user.MFASkipped {
			return fault.New(CodeSuggestMFA, http.StatusUnprocessableEntity, "Bind an MFA factor, or skip it.").
				With("availableFactors", enabled).With("skippable", true)
		}
	}
	return nil
}

// requireMFAForChange refuses a change to the account (profile data, a new
// factor) in a SignIn whose user has MFA but has not proven it in this
// interaction: the first factor alone may not rewrite where the second one
// is delivered.
func (e *Engine) requireMFAForChange(ctx context.Context, in *Interaction, user *User) error {
	if in.Event != EventSignInFlow || mfaProven(in) {
		return nil
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if len(factors) > 0 {
		return fault.New(CodeRequireMFA, http.StatusForbidden, "Verify multi-factor authentication before changing the profile.").
			With("availableFactors", seedFactorNames(factorTypes(factors)))
	}
	return nil
}

// mfaProven reports whether the interaction proved a second factor: one
// whose method differs from the first factor's. A code sent to the inbox
// (or phone) that already signed the user in proves nothing more, so a
// user who signed in with a verification code must use another factor.
func mfaProven(in *Interaction) bool {
	first := map[string]bool{}
	for _, r := range in.Records {
		if !r.Verified {
			continue
		}
		switch r.Type {
		case RecordPassword, RecordNewPasswordIdentity:
			first[AMRPassword] = true
		case RecordEmailCode, RecordPhoneCode:
			first[AMROTP] = true
		}
	}
	for factor := range in.MFA {
		if m, ok := amrOfFactor[factor]; ok && !first[m] {
			return true
		}
	}
	return false
}

func factorTypes(factors []Factor) []string {
	types := []string{}
	seen := map[string]bool{}
	for _, f := range factors {
		if !seen[f.Type] {
			seen[f.Type] = true
			types = append(types, f.Type)
		}
	}
	return types
}

// MFAChallenge completes a pending (or steps up an active) backend session
// with a second factor.
type MFAChallenge struct {
	SessionID  string
	Factor     string // totp, backup_code, otp
	Code       string
	Meta       SessionMeta
	EnforceMFA bool
}

// CompleteMFA verifies a factor for a session and activates it.
func (e *Engine) CompleteMFA(ctx context.Context, req MFAChallenge) (*SignIn, error) {
	sess, err := e.sessionFor(ctx, req.SessionID, req.Meta, false)
	if err != nil {
		return nil, err
	}
	user, err := e.Users.Get(ctx, sess.UserID)
	if err != nil {
		if fault.Is(err, CodeUserNotFound) {
			return nil, errSessionNotFound()
		}
		return nil, err
	}
	if user.Suspended {
		return nil, errSuspended
	}
	var amr string
	switch req.Factor {
	case FactorTOTP:
		err, amr = e.verifyEnrolledTOTP(ctx, user, req.Code), AMRTOTP
	case FactorBackupCode:
		err, amr = e.useBackupCode(ctx, user, req.Code), AMRBackupCode
	case "otp":
		err, amr = e.verifySessionOTP(ctx, user, sess, req.Code), AMROTP
	default:
		err = fault.Invalid(fault.Detail{Field: "factor", Message: "unsupported factor"})
	}
	if err != nil {
		return nil, err
	}
	var out *Session
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if out, err = e.Sessions.authenticate(ctx, tx, sess, user.ID, []string{amr}, false, SessionMeta{ClientID: sess.ClientID, OrgID: sess.OrgID}); err != nil {
			return err
		}
		return e.markSignedIn(tx, user, out, out.AMR, req.Meta)
	})
	if err != nil {
		return nil, err
	}
	return &SignIn{User: user, Session: out}, nil
}

// SendSessionOTP sends a one-time code for a backend session to the user's
// email or phone ("email" or "sms").
func (e *Engine) SendSessionOTP(ctx context.Context, sessionID, channel string, meta SessionMeta) error {
	sess, err := e.sessionFor(ctx, sessionID, meta, false)
	if err != nil {
		return err
	}
	user, err := e.Users.Get(ctx, sess.UserID)
	if err != nil {
		return err
	}
	if user.Suspended {
		return errSuspended
	}
	id, err := mfaCodeIdentifier(user, channel)
	if err != nil {
		return err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if err := mfaChannelEnabled(settings, id.Type); err != nil {
		return err
	}
	// Seed 001's order: a channel without a connector is 501 whoever asks.
	if _, err := e.sender(id.Type); err != nil {
		return err
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if !codeFactorUsable(factors, user, id.Type, settings) {
		return errCodeFactorNotEnrolled(id.Type)
	}
	_, err = e.issueCode(ctx, messaging.PurposeMfaVerification, id, id.Value, "session:"+sess.ID, true, false, settings)
	return err
}

// verifySessionOTP checks the newest code sent for a session.
func (e *Engine) verifySessionOTP(ctx context.Context, user *User, sess *Session, code string) error {
	var row codeRow
	err := e.db.WithContext(ctx).Where("purpose = ? AND client_id = ? AND verified_at IS NULL", messaging.PurposeMfaVerification, "session:"+sess.ID).
		Order("created_at DESC").Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return errCodeNotFound()
	}
	if err != nil {
		return fmt.Errorf("experience: session otp: %w", err)
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if err := mfaChannelEnabled(settings, row.IdentifierType); err != nil {
		return err
	}
	// Enrolment may have changed since the code was sent (a factor
	// removed): what counts is now.
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if !codeFactorUsable(factors, user, row.IdentifierType, settings) {
		return errCodeFactorNotEnrolled(row.IdentifierType)
	}
	return e.guardFactor(ctx, user, "otp", func() error {
		return e.codes.Verify(ctx, row.ID, row.IdentifierType, row.Identifier, code)
	})
}

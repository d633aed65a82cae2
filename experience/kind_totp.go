package experience

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
)

// RecordTOTP is a TOTP verification: a code of a new secret (to enrol an
// authenticator) or of the user's enrolled one (MFA).
const RecordTOTP = "Totp"

func init() { registerKind(RecordTOTP, func() Verification { return &totpRecord{} }) }

type totpRecord struct {
	record
	UserID string `json:"user_id"`
	// Secret is a new secret, sealed to the user, until it is bound; empty
	// for a check of the enrolled authenticator.
	Secret string `json:"secret,omitempty"`
	// Step is the time step the verifying code used (replay protection
	// starts from it once bound).
	Step *int64 `json:"step,omitempty"`
}

func (r *totpRecord) Kind() string   { return RecordTOTP }
func (r *totpRecord) Proof() Proof   { return Proof{UserID: r.UserID, Method: AMRTOTP} }
func (r *totpRecord) factor() string { return FactorTOTP }
func (r *totpRecord) forget()        { r.Secret = "" }

func (r *totpRecord) enrolment(e *Engine, user *User, existing []Factor) (*enrolment, error) {
	for _, f := range existing {
		if f.Type == FactorTOTP {
			return nil, fault.New(CodeTOTPInUse, http.StatusUnprocessableEntity, "The user already has a TOTP authenticator.")
		}
	}
	if r.Secret == "" {
		return nil, fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new TOTP secret.")
	}
	secret, err := e.openTOTP(user.ID, r.Secret)
	if err != nil {
		return nil, err
	}
	row := e.newFactorRow(user, FactorTOTP)
	if row.Secret, err = e.sealer.Seal([]byte(secret), []byte("totp:"+user.ID)); err != nil {
		return nil, err
	}
	row.LastUsedStep = r.Step
	return &enrolment{row: row}, nil
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
	rec := &totpRecord{record: newRecord(), UserID: user.ID, Secret: sealed}
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
		rec, ok := recordAs[*totpRecord](in, recordID)
		if !ok || rec.Secret == "" {
			return "", errRecordNotFound()
		}
		secret, err := e.openTOTP(user.ID, rec.Secret)
		if err != nil {
			return "", err
		}
		step, ok := credentials.VerifyTOTP(secret, code, e.now())
		if !ok {
			return "", fault.New(CodeInvalidTOTP, http.StatusBadRequest, "The TOTP code is invalid.")
		}
		rec.markVerified()
		rec.Step = &step
		return recordID, e.replaceRecord(ctx, handle, clientID, rec)
	}
	if err := e.verifyEnrolledTOTP(ctx, user, code); err != nil {
		return "", err
	}
	rec := &totpRecord{record: newRecord(), UserID: user.ID}
	rec.markVerified()
	return rec.ID, e.markMFA(ctx, handle, clientID, rec, FactorTOTP)
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

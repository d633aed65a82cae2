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

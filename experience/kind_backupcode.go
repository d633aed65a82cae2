package experience

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
)

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

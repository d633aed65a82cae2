package experience

import (
	"context"
	"fmt"
	"net/http"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
)

// RecordBackupCode is a backup-code verification: a new set to bind, or
// one code of the user's set spent as MFA.
const RecordBackupCode = "BackupCode"

func init() { registerKind(RecordBackupCode, func() Verification { return &backupCodeRecord{} }) }

type backupCodeRecord struct {
	record
	UserID string `json:"user_id"`
	// Digests are a new set's code digests until it is bound; empty for a
	// spent code.
	Digests []string `json:"digests,omitempty"`
}

func (r *backupCodeRecord) Kind() string   { return RecordBackupCode }
func (r *backupCodeRecord) factor() string { return FactorBackupCode }
func (r *backupCodeRecord) forget()        { r.Digests = nil }

// Proof: a spent code is a sign-in method; a new set proves nothing.
func (r *backupCodeRecord) Proof() Proof {
	if len(r.Digests) > 0 {
		return Proof{UserID: r.UserID}
	}
	return Proof{UserID: r.UserID, Method: AMRBackupCode}
}

func (r *backupCodeRecord) enrolment(e *Engine, user *User, existing []Factor) (*enrolment, error) {
	if len(r.Digests) == 0 {
		return nil, fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new backup codes.")
	}
	others := 0
	for _, f := range existing {
		if f.Type != FactorBackupCode {
			others++
		}
	}
	if others == 0 {
		return nil, fault.New(CodeBackupCodeAlone, http.StatusUnprocessableEntity, "Backup codes cannot be the only MFA factor.")
	}
	return &enrolment{row: e.newFactorRow(user, FactorBackupCode), backupDigests: r.Digests}, nil
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
	rec := &backupCodeRecord{record: newRecord(), UserID: user.ID, Digests: digests}
	rec.markVerified()
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
	rec := &backupCodeRecord{record: newRecord(), UserID: user.ID}
	rec.markVerified()
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

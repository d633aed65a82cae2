package experience

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// resetTokens are short-lived, single-use permissions to change an expired
// or temporary password, handed out only after the correct password.
type resetTokens struct {
	db  *store.DB
	now func() time.Time
	ttl time.Duration
}

type resetTokenRow struct {
	Digest    string `gorm:"primaryKey"`
	UserID    string
	ClientID  string
	SessionID string
	Reason    string
	ExpiresAt time.Time
	UsedAt    *time.Time
}

func (resetTokenRow) TableName() string { return "reset_tokens" }

func errResetTokenInvalid() *fault.Error {
	return fault.New(CodeResetTokenInvalid, http.StatusBadRequest, "The reset token is invalid, expired or already used.")
}

func (r *resetTokens) issue(ctx context.Context, userID, clientID, reason string) (string, error) {
	raw := "lrt_" + credentials.RandomToken(32)
	row := resetTokenRow{Digest: credentials.Digest(raw), UserID: userID, ClientID: clientID, Reason: reason,
		ExpiresAt: r.now().Add(r.ttl)}
	if err := r.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("experience: issue reset token: %w", err)
	}
	// Housekeeping: expired tokens protect nothing.
	r.db.WithContext(ctx).Where("expires_at < ?", r.now().Add(-time.Hour)).Delete(&resetTokenRow{})
	return raw, nil
}

// peek returns the live token's row without using it.
func (r *resetTokens) peek(ctx context.Context, raw, clientID string) (*resetTokenRow, error) {
	var row resetTokenRow
	err := r.db.WithContext(ctx).Where("digest = ? AND client_id = ? AND used_at IS NULL AND expires_at > ?",
		credentials.Digest(raw), clientID, r.now()).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errResetTokenInvalid()
	}
	if err != nil {
		return nil, fmt.Errorf("experience: reset token: %w", err)
	}
	return &row, nil
}

// consume marks the token used; exactly one concurrent caller wins.
func (r *resetTokens) consume(tx *gorm.DB, digest string) error {
	res := tx.Model(&resetTokenRow{}).Where("digest = ? AND used_at IS NULL AND expires_at > ?", digest, r.now()).
		Update("used_at", r.now())
	if res.Error != nil {
		return fmt.Errorf("experience: use reset token: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return errResetTokenInvalid()
	}
	return nil
}

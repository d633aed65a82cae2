package experience

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/store"
)

// MFA factor types.
const (
	FactorTOTP       = "totp"
	FactorBackupCode = "backup_code"
	FactorWebAuthn   = "webauthn"
	FactorEmailCode  = "email_code"
	FactorPhoneCode  = "phone_code"
)

// Factor is an enrolled MFA factor (secrets are never exposed).
type Factor struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Type       string     `json:"type"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

type factorRow struct {
	ID         string `gorm:"primaryKey"`
	UserID     string
	Type       string
	Secret     []byte
	Data       string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	// LastUsedStep is the TOTP time step last accepted (replay protection).
	LastUsedStep *int64
	// CredentialID is a WebAuthn credential's id (unique across users).
	CredentialID *string
}

func (factorRow) TableName() string { return "mfa_factors" }

// Factors is the MFA factor repository.
type Factors struct {
	db  *store.DB
	now func() time.Time
}

// List returns a user's enrolled factors.
func (f *Factors) List(ctx context.Context, userID string) ([]Factor, error) {
	var rows []factorRow
	if err := f.db.WithContext(ctx).Select("id, user_id, type, created_at, last_used_at").
		Where("user_id = ?", userID).Order("created_at").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("experience: list factors: %w", err)
	}
	out := make([]Factor, 0, len(rows))
	for _, r := range rows {
		out = append(out, Factor{ID: r.ID, UserID: r.UserID, Type: r.Type, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt})
	}
	return out, nil
}

// Add enrolls a factor with an already sealed secret and opaque data.
func (f *Factors) Add(ctx context.Context, userID, factorType string, sealedSecret []byte, data string) (*Factor, error) {
	if data == "" {
		data = "{}"
	}
	row := factorRow{ID: credentials.RandomID(20), UserID: userID, Type: factorType, Secret: sealedSecret, Data: data, CreatedAt: f.now()}
	if err := f.db.WithContext(ctx).Create(&row).Error; err != nil {
		return nil, fmt.Errorf("experience: add factor: %w", err)
	}
	return &Factor{ID: row.ID, UserID: userID, Type: factorType, CreatedAt: row.CreatedAt}, nil
}

// Remove deletes one factor of a user.
func (f *Factors) Remove(ctx context.Context, userID, factorID string) (bool, error) {
	res := f.db.WithContext(ctx).Where("id = ? AND user_id = ?", factorID, userID).Delete(&factorRow{})
	if res.Error != nil {
		return false, fmt.Errorf("experience: remove factor: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}

// MaskEmail hides most of an address: "alice@example.com" → "a***@example.com".
func MaskEmail(email string) string {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return "***"
	}
	return email[:1] + "***" + email[at:]
}

// MaskPhone keeps the country prefix and the last four digits.
func MaskPhone(phone string) string {
	if len(phone) <= 6 {
		return "***"
	}
	return phone[:2] + strings.Repeat("*", len(phone)-6) + phone[len(phone)-4:]
}

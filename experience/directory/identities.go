package directory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// CodeIdentityInUse: the upstream identity already belongs to an account.
const CodeIdentityInUse = "user.identity_already_in_use"

// Identity links an account to a user at an upstream identity provider
// (a social or enterprise SSO connector): one account per (connector,
// subject), enforced by the primary key.
type Identity struct {
	ConnectorID string    `gorm:"primaryKey" json:"connector_id"`
	Subject     string    `gorm:"primaryKey" json:"subject"`
	UserID      string    `json:"user_id"`
	Email       string    `json:"email,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	LastUsedAt  time.Time `json:"last_used_at"`
}

func (Identity) TableName() string { return "user_identities" }

// Identities stores the links.
type Identities struct {
	db  *store.DB
	now func() time.Time
}

// NewIdentities returns the identity store over db.
func NewIdentities(db *store.DB, now func() time.Time) *Identities {
	return &Identities{db: db, now: now}
}

// Find returns the account linked to (connector, subject), or "".
func (s *Identities) Find(ctx context.Context, connectorID, subject string) (string, error) {
	var row Identity
	err := s.db.WithContext(ctx).Where("connector_id = ? AND subject = ?", connectorID, subject).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("directory: find identity: %w", err)
	}
	return row.UserID, nil
}

// LinkTx links (connector, subject) to a user inside tx; a link to another
// account is refused (a concurrent link loses on the primary key).
func (s *Identities) LinkTx(tx *gorm.DB, connectorID, subject, userID, email string) error {
	now := s.now()
	row := Identity{ConnectorID: connectorID, Subject: subject, UserID: userID, Email: email, CreatedAt: now, LastUsedAt: now}
	if err := tx.Create(&row).Error; err != nil {
		if store.IsUniqueViolation(err) {
			return fault.New(CodeIdentityInUse, http.StatusConflict, "This identity is already linked to an account.")
		}
		return fmt.Errorf("directory: link identity: %w", err)
	}
	return nil
}

// ForUser lists a user's identities.
func (s *Identities) ForUser(ctx context.Context, userID string) ([]Identity, error) {
	out := []Identity{}
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("directory: list identities: %w", err)
	}
	return out, nil
}

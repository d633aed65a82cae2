package experience

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Verification code error codes (Logto's).
const (
	CodeCodeMismatch   = "verification_code.code_mismatch"
	CodeCodeExpired    = "verification_code.expired"
	CodeCodeMaxTries   = "verification_code.exceed_max_try"
	CodeCodeNotFound   = "verification_code.not_found"
	CodeCodeUsed       = "verification_code.already_used"
	CodeMessageLimited = "request.message_rate_limited"
)

// CodePolicy governs one-time verification codes.
type CodePolicy struct {
	// ExpirySeconds is a code's lifetime (default 600).
	ExpirySeconds int `json:"expiry_seconds"`
	// MaxAttempts bounds the guesses against one code (default 10).
	MaxAttempts int `json:"max_attempts"`
	// SendLimit codes of one purpose may be sent to one recipient per
	// SendWindowSeconds (default 10 per 600 s); beyond it 429.
	SendLimit         int `json:"send_limit"`
	SendWindowSeconds int `json:"send_window_seconds"`
}

// DefaultCodePolicy: 6 digits, 10 minutes, 10 tries, 10 sends per 10 min.
func DefaultCodePolicy() CodePolicy {
	return CodePolicy{ExpirySeconds: 600, MaxAttempts: 10, SendLimit: 10, SendWindowSeconds: 600}
}

type codeRow struct {
	ID             string `gorm:"primaryKey"`
	Purpose        string
	IdentifierType string
	Identifier     string
	CodeDigest     string
	Attempts       int
	MaxAttempts    int
	ClientID       string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	VerifiedAt     *time.Time
}

func (codeRow) TableName() string { return "verification_codes" }

// Codes stores one-time codes sent to an email address or phone number.
// Guesses are counted atomically in the database and a code verifies once,
// so parallel requests and replicas cannot exceed the tries or reuse a code.
type Codes struct {
	db  *store.DB
	now func() time.Time
	// pepper keys the code digests, so a leaked table does not reveal
	// codes by a 10^6-entry lookup.
	pepper []byte
}

// newCode returns a uniformly random 6-digit code.
func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic("experience: crypto/rand failed: " + err.Error())
	}
	return fmt.Sprintf("%06d", n.Int64())
}

func (c *Codes) digest(id, code string) string {
	m := hmac.New(sha256.New, c.pepper)
	m.Write([]byte(id + ":" + code))
	return hex.EncodeToString(m.Sum(nil))
}

// Issued is a new code: its record id and the code to deliver.
type Issued struct {
	ID   string
	Code string
}

// Create stores a new code for a normalized identifier.
func (c *Codes) Create(ctx context.Context, purpose, idType, normalized, clientID string, p CodePolicy) (*Issued, error) {
	now := c.now()
	id := credentials.RandomID(24)
	code := newCode()
	row := codeRow{ID: id, Purpose: purpose, IdentifierType: idType, Identifier: normalized, CodeDigest: c.digest(id, code),
		MaxAttempts: p.MaxAttempts, ClientID: clientID, CreatedAt: now, ExpiresAt: now.Add(time.Duration(p.ExpirySeconds) * time.Second)}
	if err := c.db.WithContext(ctx).Create(&row).Error; err != nil {
		return nil, fmt.Errorf("experience: create code: %w", err)
	}
	// Housekeeping: codes long past expiry protect nothing.
	c.db.WithContext(ctx).Where("expires_at < ?", now.Add(-24*time.Hour)).Delete(&codeRow{})
	return &Issued{ID: id, Code: code}, nil
}

// Latest returns the newest live code record for an identifier and purpose
// (the management API verifies by identifier, not by record id).
func (c *Codes) Latest(ctx context.Context, purpose, idType, normalized string) (string, error) {
	var row codeRow
	err := c.db.WithContext(ctx).Where("purpose = ? AND identifier_type = ? AND identifier = ? AND verified_at IS NULL",
		purpose, idType, normalized).Order("created_at DESC").Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", errCodeNotFound()
	}
	if err != nil {
		return "", fmt.Errorf("experience: find code: %w", err)
	}
	return row.ID, nil
}

func errCodeNotFound() *fault.Error {
	return fault.New(CodeCodeNotFound, http.StatusBadRequest, "No verification code was sent to this address, or it was already used.")
}

// Verify checks code against record id, which must belong to the given
// identifier. Each call spends one attempt first (atomically); the correct
// code then marks the record verified exactly once.
func (c *Codes) Verify(ctx context.Context, id, idType, normalized, code string) error {
	now := c.now()
	db := c.db.WithContext(ctx)
	var row codeRow
	if err := db.Where("id = ?", id).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return errCodeNotFound()
		}
		return fmt.Errorf("experience: verify code: %w", err)
	}
	if row.IdentifierType != idType || row.Identifier != normalized {
		return errCodeNotFound()
	}
	switch {
	case row.VerifiedAt != nil:
		return fault.New(CodeCodeUsed, http.StatusBadRequest, "The verification code was already used.")
	case !now.Before(row.ExpiresAt):
		return fault.New(CodeCodeExpired, http.StatusBadRequest, "The verification code has expired.")
	}
	// Spend an attempt. The condition makes the (MaxAttempts+1)th guess
	// fail here whatever the interleaving.
	res := db.Model(&codeRow{}).Where("id = ? AND attempts < max_attempts AND verified_at IS NULL AND expires_at > ?", id, now).
		Update("attempts", gorm.Expr("attempts + 1"))
	if res.Error != nil {
		return fmt.Errorf("experience: verify code: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		var fresh codeRow
		if err := db.Where("id = ?", id).Take(&fresh).Error; err == nil && fresh.VerifiedAt != nil {
			return fault.New(CodeCodeUsed, http.StatusBadRequest, "The verification code was already used.")
		}
		return fault.New(CodeCodeMaxTries, http.StatusBadRequest, "Too many wrong attempts; request a new code.")
	}
	if !hmac.Equal([]byte(c.digest(id, code)), []byte(row.CodeDigest)) {
		return fault.New(CodeCodeMismatch, http.StatusBadRequest, "The verification code is incorrect.")
	}
	res = db.Model(&codeRow{}).Where("id = ? AND verified_at IS NULL", id).Update("verified_at", now)
	if res.Error != nil {
		return fmt.Errorf("experience: verify code: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return fault.New(CodeCodeUsed, http.StatusBadRequest, "The verification code was already used.")
	}
	return nil
}

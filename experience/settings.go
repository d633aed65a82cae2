package experience

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Settings is the stored "sign-in experience": the policies every sign-in
// follows. Later capabilities add fields; absent fields take defaults.
type Settings struct {
	PasswordPolicy credentials.PasswordPolicy `json:"password_policy"`
	Lockout        LockoutPolicy              `json:"lockout"`
	PasswordExpiry ExpiryPolicy               `json:"password_expiry"`
	MFA            MFASettings                `json:"mfa"`
}

// ExpiryPolicy governs password expiry and temporary passwords.
type ExpiryPolicy struct {
	// Enabled turns on expiry after ValidDays since the password was set.
	Enabled   bool `json:"enabled"`
	ValidDays int  `json:"valid_days"`
	// TemporaryValidHours is how long a temporary password (set by an
	// administrator) can be used to reach the change-password step.
	TemporaryValidHours int `json:"temporary_valid_hours"`
}

// MFASettings govern multi-factor authentication at sign-in.
type MFASettings struct {
	// Enforce: a user with an enrolled factor must complete MFA before
	// tokens are issued.
	Enforce bool `json:"enforce"`
}

// DefaultSettings are the settings of a new deployment.
func DefaultSettings() Settings {
	return Settings{
		PasswordPolicy: credentials.DefaultPasswordPolicy(),
		Lockout:        DefaultLockoutPolicy(),
		PasswordExpiry: ExpiryPolicy{Enabled: false, ValidDays: 90, TemporaryValidHours: 72},
		MFA:            MFASettings{Enforce: true},
	}
}

// Validate checks every field and names the first bad one.
func (s Settings) Validate() error {
	bad := func(field, msg string) error {
		return fault.New(CodeSettingsInvalid, http.StatusBadRequest, "%s: %s", field, msg).
			With("field", field)
	}
	if err := s.PasswordPolicy.Validate(); err != nil {
		return bad("password_policy", err.Error())
	}
	l := s.Lockout
	if l.MaxFailures < 1 || l.MaxFailures > 1000 {
		return bad("lockout.max_failures", "must be between 1 and 1000")
	}
	if l.WindowSeconds < 1 || l.WindowSeconds > 86400*30 {
		return bad("lockout.window_seconds", "must be between 1 and 2592000")
	}
	if l.LockoutSeconds < 1 || l.LockoutSeconds > 86400*30 {
		return bad("lockout.lockout_seconds", "must be between 1 and 2592000")
	}
	if s.PasswordExpiry.ValidDays < 1 || s.PasswordExpiry.ValidDays > 3650 {
		return bad("password_expiry.valid_days", "must be between 1 and 3650")
	}
	if s.PasswordExpiry.TemporaryValidHours < 1 || s.PasswordExpiry.TemporaryValidHours > 24*90 {
		return bad("password_expiry.temporary_valid_hours", "must be between 1 and 2160")
	}
	return nil
}

const settingsID = "sign_in_experience"

type settingsRow struct {
	ID        string `gorm:"primaryKey"`
	Data      string
	UpdatedAt time.Time
}

func (settingsRow) TableName() string { return "settings" }

// SettingsStore loads and changes the settings. Reads are cached for a
// short TTL (every sign-in needs them); a change is visible at once on the
// replica that made it and within the TTL on the others.
type SettingsStore struct {
	db  *store.DB
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	cached   *Settings
	loadedAt time.Time
}

// Get returns the current settings.
func (s *SettingsStore) Get(ctx context.Context) (Settings, error) {
	s.mu.Lock()
	if s.cached != nil && s.now().Sub(s.loadedAt) < s.ttl {
		out := *s.cached
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	var row settingsRow
	err := s.db.WithContext(ctx).Where("id = ?", settingsID).Take(&row).Error
	settings := DefaultSettings()
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
	case err != nil:
		return Settings{}, fmt.Errorf("experience: load settings: %w", err)
	default:
		if err := json.Unmarshal([]byte(row.Data), &settings); err != nil {
			return Settings{}, fmt.Errorf("experience: stored settings are corrupt: %w", err)
		}
	}
	s.mu.Lock()
	s.cached, s.loadedAt = &settings, s.now()
	s.mu.Unlock()
	return settings, nil
}

// Patch applies a JSON merge patch (RFC 7396) to the settings, validates
// the result and stores it. Unknown fields are refused.
func (s *SettingsStore) Patch(ctx context.Context, patch []byte) (Settings, error) {
	var patchObj map[string]any
	if err := json.Unmarshal(patch, &patchObj); err != nil || patchObj == nil {
		return Settings{}, fault.New(CodeSettingsInvalid, http.StatusBadRequest, "the patch must be a JSON object")
	}
	var out Settings
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		if s.db.Dialect == store.Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.latch_settings'))").Error; err != nil {
				return err
			}
		}
		current := DefaultSettings()
		var row settingsRow
		err := tx.Where("id = ?", settingsID).Take(&row).Error
		if err == nil {
			if err := json.Unmarshal([]byte(row.Data), &current); err != nil {
				return err
			}
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		raw, _ := json.Marshal(current)
		var base map[string]any
		_ = json.Unmarshal(raw, &base)
		merged, _ := json.Marshal(mergePatch(base, patchObj))
		dec := json.NewDecoder(bytes.NewReader(merged))
		dec.DisallowUnknownFields()
		next := DefaultSettings()
		if err := dec.Decode(&next); err != nil {
			return fault.New(CodeSettingsInvalid, http.StatusBadRequest, "%s", describeJSONError(err))
		}
		if err := next.Validate(); err != nil {
			return err
		}
		data, _ := json.Marshal(next)
		if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).
			Create(&settingsRow{ID: settingsID, Data: string(data), UpdatedAt: s.now()}).Error; err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		if _, ok := fault.As(err); ok {
			return Settings{}, err
		}
		return Settings{}, fmt.Errorf("experience: save settings: %w", err)
	}
	s.mu.Lock()
	s.cached, s.loadedAt = &out, s.now()
	s.mu.Unlock()
	return out, nil
}

// mergePatch applies an RFC 7396 merge patch.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, v := range patch {
		if v == nil {
			delete(target, k)
			continue
		}
		if pv, ok := v.(map[string]any); ok {
			tv, _ := target[k].(map[string]any)
			target[k] = mergePatch(tv, pv)
			continue
		}
		target[k] = v
	}
	return target
}

// describeJSONError turns a decoding error into a message naming the field.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: must be %s", te.Field, jsonKind(te.Type.Kind().String()))
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
	}
	return "invalid JSON: " + msg
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint8", "uint32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	default:
		return "an object"
	}
}

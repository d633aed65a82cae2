// Package directory is the user directory: users and their identifiers
// (username, e-mail, phone), how identifiers are normalised and compared,
// and the users table. Next it holds social and enterprise identities and
// organizations with their memberships. It knows nothing of sign-in: the
// Experience engine above it decides who may authenticate and how.
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Identifier types.
const (
	IdentifierUsername = "username"
	IdentifierEmail    = "email"
	IdentifierPhone    = "phone"
)

// Identifier names a user the way they sign in.
type Identifier struct {
	Type  string
	Value string
}

// User is a person who signs in.
type User struct {
	ID                string          `json:"id"`
	Username          *string         `json:"username"`
	PrimaryEmail      *string         `json:"primary_email"`
	PrimaryPhone      *string         `json:"primary_phone"`
	EmailVerified     bool            `json:"email_verified"`
	PhoneVerified     bool            `json:"phone_verified"`
	Name              string          `json:"name"`
	CustomData        json.RawMessage `json:"custom_data"`
	HasPassword       bool            `json:"has_password"`
	PasswordUpdatedAt *time.Time      `json:"password_updated_at"`
	PasswordExpired   bool            `json:"password_expired"`
	PasswordTemporary bool            `json:"password_temporary"`
	Suspended         bool            `json:"suspended"`
	MFASkipped        bool            `json:"mfa_skipped"`
	CreatedAt         time.Time       `json:"created_at"`
	UpdatedAt         time.Time       `json:"updated_at"`
	LastSignInAt      *time.Time      `json:"last_sign_in_at"`

	passwordHash string
}

// Row is the users table.
type Row struct {
	ID                string `gorm:"primaryKey"`
	Username          *string
	UsernameKey       *string
	UsernameSkeleton  *string
	PrimaryEmail      *string
	PrimaryPhone      *string
	EmailVerified     bool
	PhoneVerified     bool
	Name              string
	CustomData        string
	PasswordHash      *string
	PasswordUpdatedAt *time.Time
	PasswordExpired   bool
	PasswordTemporary bool
	Suspended         bool
	MFASkipped        bool `gorm:"column:mfa_skipped"`
	CreatedAt         time.Time
	UpdatedAt         time.Time
	LastSignInAt      *time.Time
}

func (Row) TableName() string { return "users" }

func (r *Row) User() *User {
	u := &User{ID: r.ID, Username: r.Username, PrimaryEmail: r.PrimaryEmail, PrimaryPhone: r.PrimaryPhone, EmailVerified: r.EmailVerified, PhoneVerified: r.PhoneVerified, Name: r.Name,
		CustomData: json.RawMessage(r.CustomData), PasswordUpdatedAt: r.PasswordUpdatedAt, PasswordExpired: r.PasswordExpired,
		PasswordTemporary: r.PasswordTemporary, Suspended: r.Suspended, MFASkipped: r.MFASkipped, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		LastSignInAt: r.LastSignInAt}
	if r.PasswordHash != nil && *r.PasswordHash != "" {
		u.HasPassword, u.passwordHash = true, *r.PasswordHash
	}
	if len(u.CustomData) == 0 {
		u.CustomData = json.RawMessage("{}")
	}
	return u
}

// Normalizer turns identifiers into their canonical stored form.
type Normalizer struct {
	// UsernameCaseSensitive keeps usernames as typed; otherwise "Alice" and
	// "alice" are the same account.
	UsernameCaseSensitive bool
}

// Normalize validates an identifier and returns its canonical value: the
// username key, a lower-cased email, or an E.164 phone number.
func (n Normalizer) Normalize(id Identifier) (string, error) {
	v := strings.TrimSpace(id.Value)
	switch id.Type {
	case IdentifierUsername:
		return n.username(v)
	case IdentifierEmail:
		return NormalizeEmail(v)
	case IdentifierPhone:
		return NormalizePhone(v)
	default:
		return "", fault.Invalid(fault.Detail{Field: "identifier.type", Message: "must be username, email or phone"})
	}
}

// NormalizeEmail validates an address and lower-cases it.
func NormalizeEmail(v string) (string, error) {
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || len(v) > 254 || !strings.Contains(v[strings.LastIndexByte(v, '@')+1:], ".") {
		return "", fault.Invalid(fault.Detail{Field: "email", Message: "must be a valid email address"})
	}
	return strings.ToLower(v), nil
}

// NormalizePhone parses an international number and formats it as E.164.
func NormalizePhone(v string) (string, error) {
	if strings.HasPrefix(v, "00") {
		v = "+" + v[2:]
	}
	if !strings.HasPrefix(v, "+") {
		v = "+" + v
	}
	num, err := phonenumbers.Parse(v, "")
	if err != nil || !phonenumbers.IsPossibleNumber(num) {
		return "", fault.Invalid(fault.Detail{Field: "phone", Message: "must be an international phone number, e.g. +14155550123"})
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// Users is the user repository.
type Users struct {
	db   *store.DB
	norm Normalizer
	now  func() time.Time
}

// NewUsers returns the user repository over db.
func NewUsers(db *store.DB, norm Normalizer, now func() time.Time) *Users {
	return &Users{db: db, norm: norm, now: now}
}

// PasswordHash is the user's encoded password hash ("" without one). It
// never leaves the engine: the JSON form of a user omits it.
func (u *User) PasswordHash() string { return u.passwordHash }

// SetPasswordHash records a hash the caller just stored for the user.
func (u *User) SetPasswordHash(h string) { u.passwordHash, u.HasPassword = h, h != "" }

// ErrUserNotFound is the answer for an unknown user id.
func ErrUserNotFound() *fault.Error {
	return fault.New(CodeUserNotFound, http.StatusNotFound, "The user does not exist.")
}

// Error codes of the directory.
const (
	CodeUserNotFound        = "user.not_found"
	CodeUsernameInUse       = "user.username_already_in_use"
	CodeEmailInUse          = "user.email_already_in_use"
	CodePhoneInUse          = "user.phone_already_in_use"
	CodeUserIdentifierEmpty = "user.missing_identifier"
)

// column returns the users column that stores an identifier type.
func column(idType string) string {
	switch idType {
	case IdentifierEmail:
		return "primary_email"
	case IdentifierPhone:
		return "primary_phone"
	default:
		return "username_key"
	}
}

// FindByIdentifier returns the user with a normalized identifier, or nil.
func (s *Users) FindByIdentifier(ctx context.Context, idType, normalized string) (*User, error) {
	var row Row
	err := s.db.WithContext(ctx).Where(column(idType)+" = ?", normalized).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("directory: find user: %w", err)
	}
	return row.User(), nil
}

// Get returns a user by id.
func (s *Users) Get(ctx context.Context, id string) (*User, error) {
	return s.GetTx(s.db.WithContext(ctx), id)
}

// getTx is Get through db (a transaction).
func (s *Users) GetTx(db *gorm.DB, id string) (*User, error) {
	var row Row
	err := db.Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrUserNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("directory: get user: %w", err)
	}
	return row.User(), nil
}

// Profile is the changeable part of a user.
type Profile struct {
	Username *string
	Email    *string
	Phone    *string
	Name     *string
	// EmailVerified and PhoneVerified record that the caller verified the
	// address; changing an address without them resets its flag.
	EmailVerified *bool
	PhoneVerified *bool
	CustomData    json.RawMessage
}

// apply validates and writes a profile onto a row. An empty string clears
// an identifier.
func (s *Users) Apply(row *Row, p Profile) error {
	if p.Username != nil {
		if *p.Username == "" {
			row.Username, row.UsernameKey, row.UsernameSkeleton = nil, nil, nil
		} else {
			key, err := s.norm.Normalize(Identifier{Type: IdentifierUsername, Value: *p.Username})
			if err != nil {
				return err
			}
			if err := checkUsernameScripts(key); err != nil {
				return err
			}
			u, err := usernameDisplay(*p.Username)
			if err != nil {
				return err
			}
			// The skeleton is unique in the table: a look-alike of another
			// account's username fails to insert like a duplicate.
			skeleton := usernameSkeleton(key)
			row.Username, row.UsernameKey, row.UsernameSkeleton = &u, &key, &skeleton
		}
	}
	if p.Email != nil {
		if *p.Email == "" {
			row.PrimaryEmail, row.EmailVerified = nil, false
		} else {
			e, err := NormalizeEmail(strings.TrimSpace(*p.Email))
			if err != nil {
				return err
			}
			if row.PrimaryEmail == nil || *row.PrimaryEmail != e {
				row.EmailVerified = false
			}
			row.PrimaryEmail = &e
		}
	}
	if p.EmailVerified != nil {
		row.EmailVerified = *p.EmailVerified && row.PrimaryEmail != nil
	}
	if p.Phone != nil {
		if *p.Phone == "" {
			row.PrimaryPhone, row.PhoneVerified = nil, false
		} else {
			ph, err := NormalizePhone(strings.TrimSpace(*p.Phone))
			if err != nil {
				return err
			}
			if row.PrimaryPhone == nil || *row.PrimaryPhone != ph {
				row.PhoneVerified = false
			}
			row.PrimaryPhone = &ph
		}
	}
	if p.PhoneVerified != nil {
		row.PhoneVerified = *p.PhoneVerified && row.PrimaryPhone != nil
	}
	if p.Name != nil {
		if utf8.RuneCountInString(*p.Name) > 256 {
			return fault.Invalid(fault.Detail{Field: "name", Message: "must be at most 256 characters"})
		}
		row.Name = *p.Name
	}
	if p.CustomData != nil {
		var obj map[string]any
		if err := json.Unmarshal(p.CustomData, &obj); err != nil || obj == nil {
			return fault.Invalid(fault.Detail{Field: "custom_data", Message: "must be a JSON object"})
		}
		if len(p.CustomData) > 16<<10 {
			return fault.Invalid(fault.Detail{Field: "custom_data", Message: "must be at most 16 KiB"})
		}
		row.CustomData = string(p.CustomData)
	}
	if row.UsernameKey == nil && row.PrimaryEmail == nil && row.PrimaryPhone == nil {
		return fault.New(CodeUserIdentifierEmpty, http.StatusBadRequest, "A user needs a username, an email or a phone number.")
	}
	return nil
}

// conflict turns a unique violation into the identifier-in-use error.
func conflict(err error, row *Row) error {
	if !store.IsUniqueViolation(err) {
		return err
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "email"):
		return fault.New(CodeEmailInUse, http.StatusUnprocessableEntity, "The email address is already in use.")
	case strings.Contains(msg, "phone"):
		return fault.New(CodePhoneInUse, http.StatusUnprocessableEntity, "The phone number is already in use.")
	case strings.Contains(msg, "skeleton"):
		return ErrUsernameTaken()
	default:
		return fault.New(CodeUsernameInUse, http.StatusUnprocessableEntity, "The username is already in use.")
	}
}

// create inserts a new user row inside tx.
func (s *Users) CreateTx(tx *gorm.DB, p Profile, passwordHash string, temporary bool) (*Row, error) {
	now := s.now()
	row := &Row{ID: credentials.RandomID(20), CustomData: "{}", CreatedAt: now, UpdatedAt: now}
	if err := s.Apply(row, p); err != nil {
		return nil, err
	}
	if passwordHash != "" {
		row.PasswordHash, row.PasswordUpdatedAt, row.PasswordTemporary = &passwordHash, &now, temporary
	}
	if err := tx.Create(row).Error; err != nil {
		return nil, conflict(err, row)
	}
	return row, nil
}

// update applies a profile change to a user.
func (s *Users) Update(ctx context.Context, id string, p Profile) (*User, error) {
	var out *User
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		out, err = s.UpdateTx(tx, id, p)
		return err
	})
	return out, err
}

// updateTx applies a profile change inside tx, locking the row.
func (s *Users) UpdateTx(tx *gorm.DB, id string, p Profile) (*User, error) {
	var row Row
	if err := s.db.ForUpdate(tx.Where("id = ?", id)).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrUserNotFound()
		}
		return nil, err
	}
	if err := s.Apply(&row, p); err != nil {
		return nil, err
	}
	row.UpdatedAt = s.now()
	if err := tx.Select("*").Save(&row).Error; err != nil {
		return nil, conflict(err, &row)
	}
	return row.User(), nil
}

// Fields names the profile fields a change touches (for the audit log:
// names only, never values).
func (p Profile) Fields() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(p.Username != nil, "username")
	add(p.Email != nil, "primary_email")
	add(p.Phone != nil, "primary_phone")
	add(p.Name != nil, "name")
	add(p.CustomData != nil, "custom_data")
	add(p.EmailVerified != nil, "email_verified")
	add(p.PhoneVerified != nil, "phone_verified")
	return out
}

// setFlags updates boolean account flags.
func (s *Users) SetFlags(ctx context.Context, id string, fields map[string]any) (*User, error) {
	fields["updated_at"] = s.now()
	res := s.db.WithContext(ctx).Model(&Row{}).Where("id = ?", id).Updates(fields)
	if res.Error != nil {
		return nil, fmt.Errorf("directory: update user: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, ErrUserNotFound()
	}
	return s.Get(ctx, id)
}

// Delete removes a user and, by cascade, their sessions and factors.
func (s *Users) Delete(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&Row{})
	if res.Error != nil {
		return fmt.Errorf("directory: delete user: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrUserNotFound()
	}
	return nil
}

// Identifiers returns the user's sign-in identifiers.
func (u *User) Identifiers() []Identifier {
	var out []Identifier
	if u.Username != nil {
		out = append(out, Identifier{IdentifierUsername, *u.Username})
	}
	if u.PrimaryEmail != nil {
		out = append(out, Identifier{IdentifierEmail, *u.PrimaryEmail})
	}
	if u.PrimaryPhone != nil {
		out = append(out, Identifier{IdentifierPhone, *u.PrimaryPhone})
	}
	return out
}

// hasAddress reports whether id is the user's current e-mail or phone.
func (u *User) HasAddress(id Identifier) bool {
	switch id.Type {
	case IdentifierEmail:
		return u.PrimaryEmail != nil && strings.EqualFold(*u.PrimaryEmail, id.Value)
	case IdentifierPhone:
		return u.PrimaryPhone != nil && *u.PrimaryPhone == id.Value
	}
	return false
}

// Info is what the password policy's user-info rule compares against.
func (u *User) Info() credentials.UserInfo {
	info := credentials.UserInfo{Name: u.Name}
	if u.Username != nil {
		info.Username = *u.Username
	}
	if u.PrimaryEmail != nil {
		info.Email = *u.PrimaryEmail
	}
	if u.PrimaryPhone != nil {
		info.Phone = *u.PrimaryPhone
	}
	return info
}

// MarshalJSON keeps Identifier's JSON shape stable for records and views.
func (i Identifier) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}{i.Type, i.Value})
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (i *Identifier) UnmarshalJSON(b []byte) error {
	var v struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	i.Type, i.Value = v.Type, v.Value
	return nil
}

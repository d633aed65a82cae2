package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Organization roles are one tenant-wide set of templates (Logto's model):
// every organization grants its members the same roles, each a set of
// permission strings that an API reads from the access token.

// Limits on a role.
const (
	maxRoleNameRunes   = 128
	maxPermissions     = 100
	maxPermissionBytes = 256
	maxRolesPerRequest = 100
)

// OrgRole is an organization role.
type OrgRole struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Permissions []string  `json:"permissions"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// roleRow is the organization_roles table; permissions are a JSON array.
type roleRow struct {
	ID          string `gorm:"primaryKey"`
	Name        string
	Description string
	Permissions string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (roleRow) TableName() string { return "organization_roles" }

func (r *roleRow) role() *OrgRole {
	out := &OrgRole{ID: r.ID, Name: r.Name, Description: r.Description, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	out.Permissions = decodePermissions(r.Permissions)
	return out
}

func decodePermissions(raw string) []string {
	out := []string{}
	_ = json.Unmarshal([]byte(raw), &out) // written by this package only
	if out == nil {
		out = []string{}
	}
	return out
}

// RoleInput is a role to create or (nil fields unchanged) a change of one.
type RoleInput struct {
	Name        *string
	Description *string
	Permissions *[]string
}

// Fields names what a change touches (for the audit log).
func (in RoleInput) Fields() []string {
	var out []string
	if in.Name != nil {
		out = append(out, "name")
	}
	if in.Description != nil {
		out = append(out, "description")
	}
	if in.Permissions != nil {
		out = append(out, "permissions")
	}
	return out
}

func (in RoleInput) apply(row *roleRow) error {
	if in.Name != nil {
		name, err := cleanName("name", *in.Name, maxRoleNameRunes)
		if err != nil {
			return err
		}
		row.Name = name
	}
	if in.Description != nil {
		if utf8.RuneCountInString(*in.Description) > maxDescriptionRunes {
			return fault.Invalid(fault.Detail{Field: "description", Message: "must be at most 1024 characters"})
		}
		row.Description = *in.Description
	}
	if in.Permissions != nil {
		perms, err := permissionList(*in.Permissions)
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(perms)
		row.Permissions = string(raw)
	}
	return nil
}

// permissionList checks permissions (printable, no spaces: they travel in
// tokens next to scopes) and removes duplicates, keeping the order given.
func permissionList(in []string) ([]string, error) {
	if len(in) > maxPermissions {
		return nil, fault.Invalid(fault.Detail{Field: "permissions", Message: fmt.Sprintf("must list at most %d permissions", maxPermissions)})
	}
	seen := map[string]bool{}
	out := []string{}
	for i, p := range in {
		if p == "" || len(p) > maxPermissionBytes || !utf8.ValidString(p) ||
			strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return nil, fault.Invalid(fault.Detail{Field: fmt.Sprintf("permissions[%d]", i),
				Message: fmt.Sprintf("must be 1 to %d characters without spaces", maxPermissionBytes)})
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// OrgRoles is the organization role repository.
type OrgRoles struct {
	db  *store.DB
	now func() time.Time
}

// NewOrgRoles returns the role repository over db.
func NewOrgRoles(db *store.DB, now func() time.Time) *OrgRoles {
	return &OrgRoles{db: db, now: now}
}

// ErrRoleNotFound is the answer for an unknown role id.
func ErrRoleNotFound() *fault.Error {
	return fault.New(CodeOrgRoleNotFound, http.StatusNotFound, "The organization role does not exist.")
}

func roleConflict(err error) error {
	if store.IsUniqueViolation(err) {
		return fault.New(CodeOrgRoleNameInUse, http.StatusConflict, "An organization role with this name already exists.")
	}
	return fmt.Errorf("directory: write organization role: %w", err)
}

// CreateTx creates a role inside tx.
func (s *OrgRoles) CreateTx(tx *gorm.DB, in RoleInput) (*OrgRole, error) {
	if in.Name == nil {
		return nil, fault.Invalid(fault.Detail{Field: "name", Message: "is required"})
	}
	now := s.now()
	row := &roleRow{ID: credentials.RandomID(20), Permissions: "[]", CreatedAt: now, UpdatedAt: now}
	if err := in.apply(row); err != nil {
		return nil, err
	}
	if err := tx.Create(row).Error; err != nil {
		return nil, roleConflict(err)
	}
	return row.role(), nil
}

// Get returns a role by id.
func (s *OrgRoles) Get(ctx context.Context, id string) (*OrgRole, error) {
	return s.getTx(s.db.WithContext(ctx), id, false)
}

func (s *OrgRoles) getTx(db *gorm.DB, id string, lock bool) (*OrgRole, error) {
	var row roleRow
	q := db.Where("id = ?", id)
	if lock {
		q = s.db.ForUpdate(q)
	}
	err := q.Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrRoleNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("directory: get organization role: %w", err)
	}
	return row.role(), nil
}

// UpdateTx changes a role inside tx. Memberships hold the role by id, so a
// renamed role stays held, and a member's next token carries the new name
// and permissions.
func (s *OrgRoles) UpdateTx(tx *gorm.DB, id string, in RoleInput) (*OrgRole, error) {
	var row roleRow
	if err := s.db.ForUpdate(tx.Where("id = ?", id)).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrRoleNotFound()
		}
		return nil, fmt.Errorf("directory: get organization role: %w", err)
	}
	if err := in.apply(&row); err != nil {
		return nil, err
	}
	row.UpdatedAt = s.now()
	if err := tx.Select("*").Save(&row).Error; err != nil {
		return nil, roleConflict(err)
	}
	return row.role(), nil
}

// DeleteTx deletes a role, in use or not: memberships and JIT settings
// lose it by cascade.
func (s *OrgRoles) DeleteTx(tx *gorm.DB, id string) (*OrgRole, error) {
	role, err := s.getTx(tx, id, true)
	if err != nil {
		return nil, err
	}
	if err := tx.Where("id = ?", id).Delete(&roleRow{}).Error; err != nil {
		return nil, fmt.Errorf("directory: delete organization role: %w", err)
	}
	return role, nil
}

// List returns roles oldest first (ties by id) and the cursor of the next
// page ("" on the last).
func (s *OrgRoles) List(ctx context.Context, after *store.Cursor, limit int) ([]*OrgRole, string, error) {
	limit = pageSize(limit)
	q := s.db.WithContext(ctx).Model(&roleRow{}).Order("created_at, id")
	if after != nil {
		q = q.Where("(created_at > ? OR (created_at = ? AND id > ?))", after.At, after.At, after.ID)
	}
	var rows []roleRow
	if err := q.Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, "", fmt.Errorf("directory: list organization roles: %w", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[len(rows)-1]
		next = store.Cursor{At: last.CreatedAt, ID: last.ID}.String()
	}
	out := make([]*OrgRole, 0, len(rows))
	for i := range rows {
		out = append(out, rows[i].role())
	}
	return out, next, nil
}

// idsTx resolves role names to ids, in the order given and without
// duplicates. An unknown name is invalid input naming it (field is the
// request field that listed it).
func (s *OrgRoles) idsTx(tx *gorm.DB, field string, names []string) ([]string, error) {
	if len(names) > maxRolesPerRequest {
		return nil, fault.Invalid(fault.Detail{Field: field, Message: fmt.Sprintf("must list at most %d roles", maxRolesPerRequest)})
	}
	if len(names) == 0 {
		return nil, nil
	}
	var rows []struct{ ID, Name string }
	if err := tx.Raw(`SELECT id, name FROM organization_roles WHERE name IN ?`, names).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("directory: find organization roles: %w", err)
	}
	byName := make(map[string]string, len(rows))
	for _, r := range rows {
		byName[r.Name] = r.ID
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(names))
	for i, n := range names {
		id, ok := byName[n]
		if !ok {
			return nil, fault.Invalid(fault.Detail{Field: fmt.Sprintf("%s[%d]", field, i),
				Message: fmt.Sprintf("there is no organization role named %q", n)})
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

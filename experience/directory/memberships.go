package directory

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// A membership is one user in one organization, holding a set of roles.
// Deleting a membership deletes its roles; deleting its organization or its
// user deletes it (all by foreign-key cascade, so no path can leave one
// behind).

// Member is a membership as the management API shows it.
type Member struct {
	OrgID        string    `json:"org_id"`
	UserID       string    `json:"user_id"`
	Username     *string   `json:"username"`
	PrimaryEmail *string   `json:"primary_email"`
	Name         string    `json:"name"`
	Roles        []string  `json:"roles"`
	CreatedAt    time.Time `json:"created_at"`
}

// UserOrg is one organization of a user, with the user's roles in it.
type UserOrg struct {
	OrgID string   `json:"org_id"`
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

// Access is what a member holds in an organization: role names and the
// union of their permissions, both sorted.
type Access struct {
	Roles       []string
	Permissions []string
}

// JITGrant is a membership just-in-time provisioning created.
type JITGrant struct {
	OrgID string
	Roles []string
}

// Memberships is the membership repository.
type Memberships struct {
	db    *store.DB
	now   func() time.Time
	roles *OrgRoles
}

// NewMemberships returns the membership repository over db.
func NewMemberships(db *store.DB, roles *OrgRoles, now func() time.Time) *Memberships {
	return &Memberships{db: db, now: now, roles: roles}
}

// ErrMemberNotFound answers a change to a membership that does not exist.
func ErrMemberNotFound() *fault.Error {
	return fault.New(CodeOrgMemberNotFound, http.StatusNotFound, "The user is not a member of the organization.")
}

// memberRow is the organization_members table.
type memberRow struct {
	OrganizationID string `gorm:"primaryKey"`
	UserID         string `gorm:"primaryKey"`
	CreatedAt      time.Time
}

func (memberRow) TableName() string { return "organization_members" }

// orgExists refuses an unknown organization.
func orgExists(db *gorm.DB, orgID string) error {
	var n int64
	if err := db.Raw(`SELECT COUNT(*) FROM organizations WHERE id = ?`, orgID).Scan(&n).Error; err != nil {
		return fmt.Errorf("directory: get organization: %w", err)
	}
	if n == 0 {
		return ErrOrgNotFound()
	}
	return nil
}

func userExists(db *gorm.DB, userID string) error {
	var n int64
	if err := db.Raw(`SELECT COUNT(*) FROM users WHERE id = ?`, userID).Scan(&n).Error; err != nil {
		return fmt.Errorf("directory: get user: %w", err)
	}
	if n == 0 {
		return ErrUserNotFound()
	}
	return nil
}

// AddTx makes a user a member with roles (names) inside tx. The primary key
// (organization, user) decides between concurrent adds of the same user:
// one inserts, the others answer 409.
func (s *Memberships) AddTx(tx *gorm.DB, orgID, userID string, roles []string) (*Member, error) {
	if err := orgExists(tx, orgID); err != nil {
		return nil, err
	}
	if err := userExists(tx, userID); err != nil {
		return nil, err
	}
	ids, err := s.roles.idsTx(tx, "roles", roles)
	if err != nil {
		return nil, err
	}
	if err := tx.Create(&memberRow{OrganizationID: orgID, UserID: userID, CreatedAt: s.now()}).Error; err != nil {
		if store.IsUniqueViolation(err) {
			return nil, fault.New(CodeOrgMemberExists, http.StatusConflict, "The user is already a member of the organization.")
		}
		return nil, fmt.Errorf("directory: add member: %w", err)
	}
	if err := insertMemberRoles(tx, orgID, userID, ids); err != nil {
		return nil, err
	}
	return s.getTx(tx, orgID, userID)
}

func insertMemberRoles(tx *gorm.DB, orgID, userID string, roleIDs []string) error {
	for _, id := range roleIDs {
		if err := tx.Exec(`INSERT INTO organization_member_roles (organization_id, user_id, role_id) VALUES (?, ?, ?)`,
			orgID, userID, id).Error; err != nil {
			return fmt.Errorf("directory: member roles: %w", err)
		}
	}
	return nil
}

// SetRolesTx replaces a member's roles inside tx.
func (s *Memberships) SetRolesTx(tx *gorm.DB, orgID, userID string, roles []string) (*Member, error) {
	if err := s.lockMember(tx, orgID, userID); err != nil {
		return nil, err
	}
	ids, err := s.roles.idsTx(tx, "roles", roles)
	if err != nil {
		return nil, err
	}
	if err := tx.Exec(`DELETE FROM organization_member_roles WHERE organization_id = ? AND user_id = ?`, orgID, userID).Error; err != nil {
		return nil, fmt.Errorf("directory: member roles: %w", err)
	}
	if err := insertMemberRoles(tx, orgID, userID, ids); err != nil {
		return nil, err
	}
	return s.getTx(tx, orgID, userID)
}

// lockMember finds a membership (locking it on PostgreSQL, so concurrent
// role changes of one member serialise), or says which part is missing.
func (s *Memberships) lockMember(tx *gorm.DB, orgID, userID string) error {
	var rows []memberRow
	if err := s.db.ForUpdate(tx.Where("organization_id = ? AND user_id = ?", orgID, userID)).Limit(1).Find(&rows).Error; err != nil {
		return fmt.Errorf("directory: get member: %w", err)
	}
	if len(rows) == 1 {
		return nil
	}
	if err := orgExists(tx, orgID); err != nil {
		return err
	}
	return ErrMemberNotFound()
}

// RemoveTx ends a membership (its roles go with it) inside tx.
func (s *Memberships) RemoveTx(tx *gorm.DB, orgID, userID string) error {
	res := tx.Where("organization_id = ? AND user_id = ?", orgID, userID).Delete(&memberRow{})
	if res.Error != nil {
		return fmt.Errorf("directory: remove member: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		if err := orgExists(tx, orgID); err != nil {
			return err
		}
		return ErrMemberNotFound()
	}
	return nil
}

// memberView is a membership joined with its user.
type memberView struct {
	OrganizationID string
	UserID         string
	Username       *string
	PrimaryEmail   *string
	Name           string
	CreatedAt      time.Time
}

const memberSelect = `SELECT m.organization_id, m.user_id, u.username, u.primary_email, u.name, m.created_at
FROM organization_members m JOIN users u ON u.id = m.user_id`

func (s *Memberships) getTx(db *gorm.DB, orgID, userID string) (*Member, error) {
	var rows []memberView
	if err := db.Raw(memberSelect+` WHERE m.organization_id = ? AND m.user_id = ?`, orgID, userID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("directory: get member: %w", err)
	}
	if len(rows) == 0 {
		return nil, ErrMemberNotFound()
	}
	members, err := withRoles(db, orgID, rows)
	if err != nil {
		return nil, err
	}
	return members[0], nil
}

// withRoles turns members of one organization into Members with their role
// names, in one query.
func withRoles(db *gorm.DB, orgID string, rows []memberView) ([]*Member, error) {
	out := make([]*Member, 0, len(rows))
	byUser := map[string]*Member{}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		m := &Member{OrgID: r.OrganizationID, UserID: r.UserID, Username: r.Username, PrimaryEmail: r.PrimaryEmail,
			Name: r.Name, Roles: []string{}, CreatedAt: r.CreatedAt}
		out = append(out, m)
		byUser[r.UserID] = m
		ids = append(ids, r.UserID)
	}
	if len(ids) == 0 {
		return out, nil
	}
	var roles []struct{ UserID, Name string }
	if err := db.Raw(`SELECT mr.user_id, r.name FROM organization_member_roles mr JOIN organization_roles r ON r.id = mr.role_id
		WHERE mr.organization_id = ? AND mr.user_id IN ? ORDER BY r.name`, orgID, ids).Scan(&roles).Error; err != nil {
		return nil, fmt.Errorf("directory: member roles: %w", err)
	}
	for _, r := range roles {
		byUser[r.UserID].Roles = append(byUser[r.UserID].Roles, r.Name)
	}
	return out, nil
}

// List returns an organization's members, each with roles, in the order
// they joined (ties by user id), and the cursor of the next page ("" on the
// last). The (organization, created_at, user) index serves each page.
func (s *Memberships) List(ctx context.Context, orgID string, after *store.Cursor, limit int) ([]*Member, string, error) {
	limit = pageSize(limit)
	db := s.db.WithContext(ctx)
	if err := orgExists(db, orgID); err != nil {
		return nil, "", err
	}
	where, args := ` WHERE m.organization_id = ?`, []any{orgID}
	if after != nil {
		where += ` AND (m.created_at > ? OR (m.created_at = ? AND m.user_id > ?))`
		args = append(args, after.At, after.At, after.ID)
	}
	var rows []memberView
	if err := db.Raw(memberSelect+where+` ORDER BY m.created_at, m.user_id LIMIT ?`, append(args, limit+1)...).Scan(&rows).Error; err != nil {
		return nil, "", fmt.Errorf("directory: list members: %w", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[len(rows)-1]
		next = store.Cursor{At: last.CreatedAt, ID: last.UserID}.String()
	}
	members, err := withRoles(db, orgID, rows)
	if err != nil {
		return nil, "", err
	}
	return members, next, nil
}

// ForUser returns the organizations of a user, by name, with the user's
// roles in each. It reads the user's memberships through the user_id
// index, so its cost is the user's memberships, not the tenant's.
func (s *Memberships) ForUser(ctx context.Context, userID string) ([]UserOrg, error) {
	db := s.db.WithContext(ctx)
	if err := userExists(db, userID); err != nil {
		return nil, err
	}
	var rows []struct {
		OrgID string
		Name  string
		Role  *string
	}
	if err := db.Raw(`SELECT o.id AS org_id, o.name, r.name AS role
FROM organization_members m
JOIN organizations o ON o.id = m.organization_id
LEFT JOIN organization_member_roles mr ON mr.organization_id = m.organization_id AND mr.user_id = m.user_id
LEFT JOIN organization_roles r ON r.id = mr.role_id
WHERE m.user_id = ?`, userID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("directory: user organizations: %w", err)
	}
	byOrg := map[string]*UserOrg{}
	out := []UserOrg{}
	for _, r := range rows {
		o := byOrg[r.OrgID]
		if o == nil {
			out = append(out, UserOrg{OrgID: r.OrgID, Name: r.Name, Roles: []string{}})
			o = &out[len(out)-1]
			byOrg[r.OrgID] = o
		}
		if r.Role != nil {
			o.Roles = append(o.Roles, *r.Role)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := range out {
		sort.Strings(out[i].Roles)
	}
	return out, nil
}

// Access returns what a user holds in an organization, or nil when they
// are not a member: one query by the membership's primary key.
func (s *Memberships) Access(ctx context.Context, orgID, userID string) (*Access, error) {
	return s.AccessTx(s.db.WithContext(ctx), orgID, userID)
}

// AccessTx is Access through db, a transaction that may have just added
// the membership (just-in-time, at registration).
func (s *Memberships) AccessTx(db *gorm.DB, orgID, userID string) (*Access, error) {
	var rows []struct {
		Role        *string
		Permissions *string
	}
	if err := db.Raw(`SELECT r.name AS role, r.permissions
FROM organization_members m
LEFT JOIN organization_member_roles mr ON mr.organization_id = m.organization_id AND mr.user_id = m.user_id
LEFT JOIN organization_roles r ON r.id = mr.role_id
WHERE m.organization_id = ? AND m.user_id = ?`, orgID, userID).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("directory: member access: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	access := &Access{Roles: []string{}, Permissions: []string{}}
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Role == nil {
			continue
		}
		access.Roles = append(access.Roles, *r.Role)
		if r.Permissions != nil {
			for _, p := range decodePermissions(*r.Permissions) {
				if !seen[p] {
					seen[p] = true
					access.Permissions = append(access.Permissions, p)
				}
			}
		}
	}
	sort.Strings(access.Roles)
	sort.Strings(access.Permissions)
	return access, nil
}

// InMFARequiredOrg reports whether the user is a member of an organization
// that requires MFA.
func (s *Memberships) InMFARequiredOrg(ctx context.Context, userID string) (bool, error) {
	var ids []string
	if err := s.db.WithContext(ctx).Raw(`SELECT o.id FROM organization_members m JOIN organizations o ON o.id = m.organization_id
		WHERE m.user_id = ? AND o.mfa_required = ? LIMIT 1`, userID, true).Scan(&ids).Error; err != nil {
		return false, fmt.Errorf("directory: user organizations: %w", err)
	}
	return len(ids) > 0, nil
}

// ProvisionJITTx makes a user a member of every organization that lists
// domain among its jit_domains, with that organization's JIT roles, inside
// tx. It is idempotent: an existing membership is left as it is (its roles
// included), so it may run again when an address is added later.
func (s *Memberships) ProvisionJITTx(tx *gorm.DB, userID, domain string) ([]JITGrant, error) {
	if domain == "" {
		return nil, nil
	}
	var orgIDs []string
	if err := tx.Raw(`SELECT d.organization_id FROM organization_domains d
		WHERE d.domain = ? AND d.purpose = ? AND NOT EXISTS (
			SELECT 1 FROM organization_members m WHERE m.organization_id = d.organization_id AND m.user_id = ?)
		ORDER BY d.organization_id`, domain, domainJIT, userID).Scan(&orgIDs).Error; err != nil {
		return nil, fmt.Errorf("directory: just-in-time membership: %w", err)
	}
	var out []JITGrant
	for _, orgID := range orgIDs {
		g, err := s.JoinTx(tx, orgID, userID)
		if err != nil {
			return nil, err
		}
		if g != nil {
			out = append(out, *g)
		}
	}
	return out, nil
}

// JoinTx makes a user a member of an organization with its JIT roles,
// inside tx, unless they are one already or the organization does not
// exist (an SSO connector may still name a deleted one): then it returns
// nil. It never fails on a conflict — ON CONFLICT, not a unique violation,
// which on PostgreSQL would abort the transaction creating the user.
func (s *Memberships) JoinTx(tx *gorm.DB, orgID, userID string) (*JITGrant, error) {
	res := tx.Exec(`INSERT INTO organization_members (organization_id, user_id, created_at)
		SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM organizations WHERE id = ?)
		ON CONFLICT (organization_id, user_id) DO NOTHING`, orgID, userID, s.now(), orgID)
	if res.Error != nil {
		return nil, fmt.Errorf("directory: just-in-time membership: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, nil
	}
	var roles []struct{ ID, Name string }
	if err := tx.Raw(`SELECT r.id, r.name FROM organization_jit_roles j JOIN organization_roles r ON r.id = j.role_id
		WHERE j.organization_id = ? ORDER BY r.name`, orgID).Scan(&roles).Error; err != nil {
		return nil, fmt.Errorf("directory: just-in-time membership: %w", err)
	}
	grant := &JITGrant{OrgID: orgID, Roles: []string{}}
	ids := make([]string, 0, len(roles))
	for _, r := range roles {
		ids = append(ids, r.ID)
		grant.Roles = append(grant.Roles, r.Name)
	}
	if err := insertMemberRoles(tx, orgID, userID, ids); err != nil {
		return nil, err
	}
	return grant, nil
}

package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Organizations (B2B tenants of the deployment) have members (users, see
// memberships.go) who hold organization roles (tenant-wide templates, see
// roles.go). An organization may list e-mail domains of two kinds: domains,
// which find the organization when a user signs in by e-mail without
// naming one, and jit_domains, whose verified addresses make a new user a
// member with the jit_roles (just-in-time membership).

// Error codes of organizations, roles and memberships.
const (
	CodeOrgNotFound       = "organization.not_found"
	CodeOrgNameInUse      = "organization.name_already_in_use"
	CodeOrgRoleNotFound   = "organization.role_not_found"
	CodeOrgRoleNameInUse  = "organization.role_name_already_in_use"
	CodeOrgMemberExists   = "organization.member_already_exists"
	CodeOrgMemberNotFound = "organization.member_not_found"
)

// ErrOrgNotFound is the answer for an unknown organization id.
func ErrOrgNotFound() *fault.Error {
	return fault.New(CodeOrgNotFound, http.StatusNotFound, "The organization does not exist.")
}

// Domain purposes (organization_domains.purpose).
const (
	domainDiscovery = "discovery"
	domainJIT       = "jit"
)

// Limits on what an organization holds, so one request cannot make every
// later sign-in or listing expensive.
const (
	maxOrgNameRunes     = 128
	maxDescriptionRunes = 1024
	maxDomains          = 100
	maxCustomData       = 16 << 10
)

// Organization is a B2B customer whose members sign in in its context.
type Organization struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	CustomData  json.RawMessage `json:"custom_data"`
	// Domains find the organization at an e-mail sign-in without org_id.
	Domains []string `json:"domains"`
	// JITDomains make a user created with a verified address in one of
	// them a member with the JITRoles (role names).
	JITDomains  []string  `json:"jit_domains"`
	JITRoles    []string  `json:"jit_roles"`
	MFARequired bool      `json:"mfa_required"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// orgRow is the organizations table.
type orgRow struct {
	ID          string `gorm:"primaryKey"`
	Name        string
	Description string
	CustomData  string
	MFARequired bool `gorm:"column:mfa_required"`
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (orgRow) TableName() string { return "organizations" }

func (r *orgRow) org() *Organization {
	o := &Organization{ID: r.ID, Name: r.Name, Description: r.Description, CustomData: json.RawMessage(r.CustomData),
		MFARequired: r.MFARequired, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Domains: []string{}, JITDomains: []string{}, JITRoles: []string{}}
	if len(o.CustomData) == 0 {
		o.CustomData = json.RawMessage("{}")
	}
	return o
}

// OrgInput is an organization to create, or (every field optional) the
// change of one: nil fields stay as they are, lists replace the old ones.
type OrgInput struct {
	Name        *string
	Description *string
	CustomData  json.RawMessage
	Domains     *[]string
	JITDomains  *[]string
	JITRoles    *[]string
	MFARequired *bool
}

// Fields names what a change touches (for the audit log).
func (in OrgInput) Fields() []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, name)
		}
	}
	add(in.Name != nil, "name")
	add(in.Description != nil, "description")
	add(in.CustomData != nil, "custom_data")
	add(in.Domains != nil, "domains")
	add(in.JITDomains != nil, "jit_domains")
	add(in.JITRoles != nil, "jit_roles")
	add(in.MFARequired != nil, "mfa_required")
	return out
}

// Organizations is the organization repository.
type Organizations struct {
	db    *store.DB
	now   func() time.Time
	roles *OrgRoles
}

// NewOrganizations returns the organization repository over db; roles
// resolves the names of jit_roles.
func NewOrganizations(db *store.DB, roles *OrgRoles, now func() time.Time) *Organizations {
	return &Organizations{db: db, now: now, roles: roles}
}

// apply validates in and writes its scalar fields onto row.
func (in OrgInput) apply(row *orgRow) error {
	if in.Name != nil {
		name, err := cleanName("name", *in.Name, maxOrgNameRunes)
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
	if in.CustomData != nil {
		var obj map[string]any
		if err := json.Unmarshal(in.CustomData, &obj); err != nil || obj == nil {
			return fault.Invalid(fault.Detail{Field: "custom_data", Message: "must be a JSON object"})
		}
		if len(in.CustomData) > maxCustomData {
			return fault.Invalid(fault.Detail{Field: "custom_data", Message: "must be at most 16 KiB"})
		}
		row.CustomData = string(in.CustomData)
	}
	if in.MFARequired != nil {
		row.MFARequired = *in.MFARequired
	}
	return nil
}

// cleanName trims a display name and checks its length and characters.
func cleanName(field, v string, max int) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" || utf8.RuneCountInString(v) > max {
		return "", fault.Invalid(fault.Detail{Field: field, Message: fmt.Sprintf("must be 1 to %d characters", max)})
	}
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) }) >= 0 {
		return "", fault.Invalid(fault.Detail{Field: field, Message: "must not contain control characters"})
	}
	return v, nil
}

// NormalizeDomain validates an e-mail domain and returns it lower-cased, the
// form NormalizeEmail gives the part of an address after the @.
func NormalizeDomain(v string) (string, bool) {
	d := strings.ToLower(strings.TrimSpace(v))
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") ||
		strings.Contains(d, "..") || strings.ContainsAny(d, "@ \t\r\n/\\") {
		return "", false
	}
	return d, true
}

// EmailDomain returns the domain of a normalized address ("" if none).
func EmailDomain(email string) string {
	i := strings.LastIndexByte(email, '@')
	if i < 0 {
		return ""
	}
	return email[i+1:]
}

// domainList validates and de-duplicates a list of domains (sorted).
func domainList(field string, in []string) ([]string, error) {
	if len(in) > maxDomains {
		return nil, fault.Invalid(fault.Detail{Field: field, Message: fmt.Sprintf("must list at most %d domains", maxDomains)})
	}
	seen := map[string]bool{}
	out := []string{}
	for i, v := range in {
		d, ok := NormalizeDomain(v)
		if !ok {
			return nil, fault.Invalid(fault.Detail{Field: fmt.Sprintf("%s[%d]", field, i), Message: "must be an e-mail domain such as example.com"})
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, nil
}

// orgConflict turns a unique violation of the name into its error.
func orgConflict(err error) error {
	if store.IsUniqueViolation(err) {
		return fault.New(CodeOrgNameInUse, http.StatusConflict, "An organization with this name already exists.")
	}
	return fmt.Errorf("directory: write organization: %w", err)
}

// CreateTx creates an organization inside tx.
func (s *Organizations) CreateTx(tx *gorm.DB, in OrgInput) (*Organization, error) {
	if in.Name == nil {
		return nil, fault.Invalid(fault.Detail{Field: "name", Message: "is required"})
	}
	now := s.now()
	row := &orgRow{ID: credentials.RandomID(20), CustomData: "{}", CreatedAt: now, UpdatedAt: now}
	if err := in.apply(row); err != nil {
		return nil, err
	}
	if err := s.checkLists(tx, in); err != nil {
		return nil, err
	}
	if err := tx.Create(row).Error; err != nil {
		return nil, orgConflict(err)
	}
	if err := s.writeLists(tx, row.ID, in); err != nil {
		return nil, err
	}
	return s.GetTx(tx, row.ID)
}

// checkLists validates the lists of in before anything is written.
func (s *Organizations) checkLists(tx *gorm.DB, in OrgInput) error {
	for field, list := range map[string]*[]string{"domains": in.Domains, "jit_domains": in.JITDomains} {
		if list != nil {
			if _, err := domainList(field, *list); err != nil {
				return err
			}
		}
	}
	if in.JITRoles != nil {
		if _, err := s.roles.idsTx(tx, "jit_roles", *in.JITRoles); err != nil {
			return err
		}
	}
	return nil
}

// writeLists replaces the lists in sets (checked by checkLists).
func (s *Organizations) writeLists(tx *gorm.DB, orgID string, in OrgInput) error {
	for purpose, list := range map[string]*[]string{domainDiscovery: in.Domains, domainJIT: in.JITDomains} {
		if list == nil {
			continue
		}
		domains, err := domainList(purpose, *list)
		if err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM organization_domains WHERE organization_id = ? AND purpose = ?`, orgID, purpose).Error; err != nil {
			return fmt.Errorf("directory: organization domains: %w", err)
		}
		for _, d := range domains {
			if err := tx.Exec(`INSERT INTO organization_domains (organization_id, purpose, domain) VALUES (?, ?, ?)`,
				orgID, purpose, d).Error; err != nil {
				return fmt.Errorf("directory: organization domains: %w", err)
			}
		}
	}
	if in.JITRoles != nil {
		ids, err := s.roles.idsTx(tx, "jit_roles", *in.JITRoles)
		if err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM organization_jit_roles WHERE organization_id = ?`, orgID).Error; err != nil {
			return fmt.Errorf("directory: organization jit roles: %w", err)
		}
		for _, id := range ids {
			if err := tx.Exec(`INSERT INTO organization_jit_roles (organization_id, role_id) VALUES (?, ?)`, orgID, id).Error; err != nil {
				return fmt.Errorf("directory: organization jit roles: %w", err)
			}
		}
	}
	return nil
}

// Get returns an organization with its domains and JIT roles.
func (s *Organizations) Get(ctx context.Context, id string) (*Organization, error) {
	return s.GetTx(s.db.WithContext(ctx), id)
}

// GetTx is Get through db (a transaction).
func (s *Organizations) GetTx(db *gorm.DB, id string) (*Organization, error) {
	var row orgRow
	err := db.Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrOrgNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("directory: get organization: %w", err)
	}
	orgs := []*Organization{row.org()}
	if err := s.fillLists(db, orgs); err != nil {
		return nil, err
	}
	return orgs[0], nil
}

// Head returns an organization without its lists (nil if there is none):
// what a sign-in needs, in one lookup by primary key.
func (s *Organizations) Head(ctx context.Context, id string) (*Organization, error) {
	if id == "" || len(id) > 64 {
		return nil, nil
	}
	var rows []orgRow
	if err := s.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("directory: get organization: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0].org(), nil
}

// fillLists loads the domains and JIT roles of orgs in two queries.
func (s *Organizations) fillLists(db *gorm.DB, orgs []*Organization) error {
	if len(orgs) == 0 {
		return nil
	}
	byID := map[string]*Organization{}
	ids := make([]string, 0, len(orgs))
	for _, o := range orgs {
		byID[o.ID] = o
		ids = append(ids, o.ID)
	}
	var domains []struct{ OrganizationID, Purpose, Domain string }
	if err := db.Raw(`SELECT organization_id, purpose, domain FROM organization_domains WHERE organization_id IN ? ORDER BY domain`,
		ids).Scan(&domains).Error; err != nil {
		return fmt.Errorf("directory: organization domains: %w", err)
	}
	for _, d := range domains {
		o := byID[d.OrganizationID]
		if d.Purpose == domainJIT {
			o.JITDomains = append(o.JITDomains, d.Domain)
		} else {
			o.Domains = append(o.Domains, d.Domain)
		}
	}
	var roles []struct{ OrganizationID, Name string }
	if err := db.Raw(`SELECT j.organization_id, r.name FROM organization_jit_roles j JOIN organization_roles r ON r.id = j.role_id
		WHERE j.organization_id IN ? ORDER BY r.name`, ids).Scan(&roles).Error; err != nil {
		return fmt.Errorf("directory: organization jit roles: %w", err)
	}
	for _, r := range roles {
		byID[r.OrganizationID].JITRoles = append(byID[r.OrganizationID].JITRoles, r.Name)
	}
	return nil
}

// UpdateTx applies a change to an organization inside tx.
func (s *Organizations) UpdateTx(tx *gorm.DB, id string, in OrgInput) (*Organization, error) {
	var row orgRow
	if err := s.db.ForUpdate(tx.Where("id = ?", id)).Take(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrOrgNotFound()
		}
		return nil, fmt.Errorf("directory: get organization: %w", err)
	}
	if err := in.apply(&row); err != nil {
		return nil, err
	}
	if err := s.checkLists(tx, in); err != nil {
		return nil, err
	}
	row.UpdatedAt = s.now()
	if err := tx.Select("*").Save(&row).Error; err != nil {
		return nil, orgConflict(err)
	}
	if err := s.writeLists(tx, id, in); err != nil {
		return nil, err
	}
	return s.GetTx(tx, id)
}

// DeleteTx deletes an organization; its domains, JIT roles and memberships
// (with their roles) go with it by cascade.
func (s *Organizations) DeleteTx(tx *gorm.DB, id string) (*Organization, error) {
	org, err := s.GetTx(tx, id)
	if err != nil {
		return nil, err
	}
	if err := tx.Where("id = ?", id).Delete(&orgRow{}).Error; err != nil {
		return nil, fmt.Errorf("directory: delete organization: %w", err)
	}
	return org, nil
}

// Listing limits: the pages of organizations, roles and members.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// pageSize is the page size a listing uses for limit (0: the default).
func pageSize(limit int) int {
	if limit <= 0 || limit > MaxPageSize {
		return DefaultPageSize
	}
	return limit
}

// OrgFilter narrows an organization listing.
type OrgFilter struct {
	// Query matches a substring of the name, ignoring case.
	Query string
	// After continues a listing after the last organization of the
	// previous page.
	After *store.Cursor
	Limit int
}

// List returns organizations oldest first (ties by id, so pages never skip
// or repeat one) and the cursor of the next page ("" on the last): the
// keyset pages every listing of the management API uses.
func (s *Organizations) List(ctx context.Context, f OrgFilter) ([]*Organization, string, error) {
	limit := pageSize(f.Limit)
	db := s.db.WithContext(ctx)
	q := db.Model(&orgRow{}).Order("created_at, id")
	if query := strings.TrimSpace(f.Query); query != "" {
		q = q.Where(`LOWER(name) LIKE ? ESCAPE '\'`, "%"+likeEscaper.Replace(strings.ToLower(query))+"%")
	}
	if f.After != nil {
		q = q.Where("(created_at > ? OR (created_at = ? AND id > ?))", f.After.At, f.After.At, f.After.ID)
	}
	var rows []orgRow
	// One row more than asked tells whether there is a next page.
	if err := q.Limit(limit + 1).Find(&rows).Error; err != nil {
		return nil, "", fmt.Errorf("directory: list organizations: %w", err)
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[len(rows)-1]
		next = store.Cursor{At: last.CreatedAt, ID: last.ID}.String()
	}
	out := make([]*Organization, 0, len(rows))
	for i := range rows {
		out = append(out, rows[i].org())
	}
	if err := s.fillLists(db, out); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// DiscoverByDomain returns the ids of at most two organizations that list
// domain for discovery: enough to tell "exactly one" from "several".
func (s *Organizations) DiscoverByDomain(ctx context.Context, domain string) ([]string, error) {
	var ids []string
	if domain == "" {
		return nil, nil
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT organization_id FROM organization_domains WHERE domain = ? AND purpose = ? LIMIT 2`,
		domain, domainDiscovery).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("directory: discover organization: %w", err)
	}
	return ids, nil
}

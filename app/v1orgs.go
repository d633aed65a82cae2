package app

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
)

// The organizations management API (/v1/organizations,
// /v1/organization-roles; scope management to write, users:read to read).

// orgRequest is the body of organization create and update: absent (or
// null) fields stay unchanged, lists replace the old ones.
type orgRequest struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	CustomData  json.RawMessage `json:"custom_data"`
	Domains     *[]string       `json:"domains"`
	JITDomains  *[]string       `json:"jit_domains"`
	JITRoles    *[]string       `json:"jit_roles"`
	MFARequired *bool           `json:"mfa_required"`
	create      bool
}

func (r *orgRequest) validate() []fault.Detail {
	var f fields
	if r.create && r.Name == nil {
		f.add("name", "is required")
	}
	if r.Name != nil {
		f.maxLen("name", *r.Name, 512)
	}
	if r.Description != nil {
		f.maxLen("description", *r.Description, 4096)
	}
	for name, list := range map[string]*[]string{"domains": r.Domains, "jit_domains": r.JITDomains, "jit_roles": r.JITRoles} {
		if list != nil && len(*list) > 100 {
			f.add(name, "must list at most 100 entries")
		}
	}
	return f
}

func (r *orgRequest) input() experience.OrgInput {
	in := experience.OrgInput{Name: r.Name, Description: r.Description, Domains: r.Domains, JITDomains: r.JITDomains,
		JITRoles: r.JITRoles, MFARequired: r.MFARequired}
	if len(r.CustomData) > 0 && string(r.CustomData) != "null" {
		in.CustomData = r.CustomData
	}
	return in
}

// managementMeta is who makes a management change, for the audit log.
func managementMeta(c echo.Context) experience.SessionMeta {
	return experience.SessionMeta{ClientID: clientToken(c).ClientID, IPAddress: c.RealIP()}
}

// createOrganization is POST /v1/organizations.
func (a *App) createOrganization(c echo.Context) error {
	req := orgRequest{create: true}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	org, err := a.engine.CreateOrganization(c.Request().Context(), req.input(), managementMeta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, org)
}

// listOrganizations is GET /v1/organizations?q=&cursor=&limit=: oldest
// first, a page at a time.
func (a *App) listOrganizations(c echo.Context) error {
	q := listQuery{c: c}
	f := experience.OrgFilter{Query: c.QueryParam("q"), After: q.cursor(), Limit: q.limit(50, 200)}
	if len(f.Query) > 512 {
		q.details.add("q", "must be at most 512 characters")
	}
	if err := q.err(); err != nil {
		return err
	}
	orgs, next, err := a.engine.Orgs.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return page(c, "organizations", orgs, next)
}

// getOrganization is GET /v1/organizations/:org_id.
func (a *App) getOrganization(c echo.Context) error {
	org, err := a.engine.Orgs.Get(c.Request().Context(), c.Param("org_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, org)
}

// updateOrganization is PATCH /v1/organizations/:org_id.
func (a *App) updateOrganization(c echo.Context) error {
	var req orgRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	org, err := a.engine.UpdateOrganization(c.Request().Context(), c.Param("org_id"), req.input(), managementMeta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, org)
}

// deleteOrganization is DELETE /v1/organizations/:org_id.
func (a *App) deleteOrganization(c echo.Context) error {
	if err := a.engine.DeleteOrganization(c.Request().Context(), c.Param("org_id"), managementMeta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// roleRequest is the body of organization role create and update.
type roleRequest struct {
	Name        *string   `json:"name"`
	Description *string   `json:"description"`
	Permissions *[]string `json:"permissions"`
	create      bool
}

func (r *roleRequest) validate() []fault.Detail {
	var f fields
	if r.create && r.Name == nil {
		f.add("name", "is required")
	}
	if r.Name != nil {
		f.maxLen("name", *r.Name, 512)
	}
	if r.Description != nil {
		f.maxLen("description", *r.Description, 4096)
	}
	if r.Permissions != nil && len(*r.Permissions) > 100 {
		f.add("permissions", "must list at most 100 permissions")
	}
	return f
}

func (r *roleRequest) input() experience.RoleInput {
	return experience.RoleInput{Name: r.Name, Description: r.Description, Permissions: r.Permissions}
}

// createOrgRole is POST /v1/organization-roles.
func (a *App) createOrgRole(c echo.Context) error {
	req := roleRequest{create: true}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	role, err := a.engine.CreateOrgRole(c.Request().Context(), req.input(), managementMeta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, role)
}

// listOrgRoles is GET /v1/organization-roles?cursor=&limit=.
func (a *App) listOrgRoles(c echo.Context) error {
	q := listQuery{c: c}
	after, limit := q.cursor(), q.limit(50, 200)
	if err := q.err(); err != nil {
		return err
	}
	roles, next, err := a.engine.OrgRoles.List(c.Request().Context(), after, limit)
	if err != nil {
		return err
	}
	return page(c, "roles", roles, next)
}

// getOrgRole is GET /v1/organization-roles/:role_id.
func (a *App) getOrgRole(c echo.Context) error {
	role, err := a.engine.OrgRoles.Get(c.Request().Context(), c.Param("role_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, role)
}

// updateOrgRole is PATCH /v1/organization-roles/:role_id.
func (a *App) updateOrgRole(c echo.Context) error {
	var req roleRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	role, err := a.engine.UpdateOrgRole(c.Request().Context(), c.Param("role_id"), req.input(), managementMeta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, role)
}

// deleteOrgRole is DELETE /v1/organization-roles/:role_id.
func (a *App) deleteOrgRole(c echo.Context) error {
	if err := a.engine.DeleteOrgRole(c.Request().Context(), c.Param("role_id"), managementMeta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type addMemberRequest struct {
	UserID string   `json:"user_id"`
	Roles  []string `json:"roles"`
}

func (r *addMemberRequest) validate() []fault.Detail {
	var f fields
	f.required("user_id", r.UserID)
	f.maxLen("user_id", r.UserID, 64)
	if len(r.Roles) > 100 {
		f.add("roles", "must list at most 100 roles")
	}
	return f
}

// addMember is POST /v1/organizations/:org_id/members.
func (a *App) addMember(c echo.Context) error {
	var req addMemberRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	m, err := a.engine.AddOrgMember(c.Request().Context(), c.Param("org_id"), req.UserID, req.Roles, managementMeta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, m)
}

// listMembers is GET /v1/organizations/:org_id/members?cursor=&limit=: in
// the order they joined, a page at a time.
func (a *App) listMembers(c echo.Context) error {
	q := listQuery{c: c}
	after, limit := q.cursor(), q.limit(50, 200)
	if err := q.err(); err != nil {
		return err
	}
	members, next, err := a.engine.Members.List(c.Request().Context(), c.Param("org_id"), after, limit)
	if err != nil {
		return err
	}
	return page(c, "members", members, next)
}

type memberRolesRequest struct {
	Roles *[]string `json:"roles"`
}

func (r *memberRolesRequest) validate() []fault.Detail {
	var f fields
	if r.Roles == nil {
		f.add("roles", "is required (an empty list removes every role)")
	} else if len(*r.Roles) > 100 {
		f.add("roles", "must list at most 100 roles")
	}
	return f
}

// setMemberRoles is PUT /v1/organizations/:org_id/members/:user_id/roles.
func (a *App) setMemberRoles(c echo.Context) error {
	var req memberRolesRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	m, err := a.engine.SetOrgMemberRoles(c.Request().Context(), c.Param("org_id"), c.Param("user_id"), *req.Roles, managementMeta(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

// removeMember is DELETE /v1/organizations/:org_id/members/:user_id.
func (a *App) removeMember(c echo.Context) error {
	if err := a.engine.RemoveOrgMember(c.Request().Context(), c.Param("org_id"), c.Param("user_id"), managementMeta(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// userOrganizations is GET /v1/users/:user_id/organizations: every
// organization of the user with their roles in it.
func (a *App) userOrganizations(c echo.Context) error {
	orgs, err := a.engine.Members.ForUser(c.Request().Context(), c.Param("user_id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, orgs)
}

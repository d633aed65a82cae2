package app_test

// Organizations (issue 12): the management API, member login with org_id
// and the organization claims in tokens, org-required MFA, e-mail domain
// discovery, just-in-time membership, refresh in an organization context
// and the organization token of the OIDC refresh grant, over HTTP on both
// databases.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/credentials"
)

// newOrg creates an organization (body gets a fresh name unless it has
// one) and returns it.
func (f *v1Fix) newOrg(t testing.TB, body map[string]any) *apptest.Response {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	if _, ok := body["name"]; !ok {
		body["name"] = v1Name("Org ")
	}
	res := f.call(t, http.MethodPost, "/v1/organizations", f.tok, body)
	if res.Status != http.StatusCreated || res.Str("id") == "" {
		t.Fatalf("create organization: %s", res)
	}
	return res
}

// newRole creates an organization role with a fresh name and returns the
// name.
func (f *v1Fix) newRole(t testing.TB, perms ...string) string {
	t.Helper()
	name := v1Name("role-")
	if perms == nil {
		perms = []string{}
	}
	res := f.call(t, http.MethodPost, "/v1/organization-roles", f.tok, map[string]any{"name": name, "permissions": perms})
	if res.Status != http.StatusCreated || res.Str("name") != name {
		t.Fatalf("create role: %s", res)
	}
	return name
}

// addMember makes userID a member of orgID with roles.
func (f *v1Fix) addMember(t testing.TB, orgID, userID string, roles ...string) {
	t.Helper()
	if roles == nil {
		roles = []string{}
	}
	res := f.call(t, http.MethodPost, "/v1/organizations/"+orgID+"/members", f.tok, map[string]any{"user_id": userID, "roles": roles})
	if res.Status != http.StatusCreated {
		t.Fatalf("add member: %s", res)
	}
}

// orgDomain returns a fresh e-mail domain.
func orgDomain() string { return strings.ToLower(credentials.RandomID(10)) + ".example" }

// accessClaims verifies an access token against the published JWKS (for
// the default audience, the issuer) and returns its claims.
func accessClaims(t *testing.T, env *apptest.Env, raw string) map[string]any {
	t.Helper()
	tok, _ := verifyOutside(t, env, raw, env.Config.Issuer)
	claims := tok.PrivateClaims()
	claims["sub"] = tok.Subject()
	return claims
}

// wantOrgClaims checks an access token's organization claims; orgID ""
// wants none.
func wantOrgClaims(t *testing.T, claims map[string]any, orgID string, roles, perms []string) {
	t.Helper()
	if orgID == "" {
		for _, k := range []string{"org_id", "roles", "permissions"} {
			if v, ok := claims[k]; ok {
				t.Fatalf("plain access token carries %s = %v", k, v)
			}
		}
		return
	}
	if claims["org_id"] != orgID {
		t.Fatalf("access token org_id %v, want %s", claims["org_id"], orgID)
	}
	got, gotPerms := strs(claims["roles"]), strs(claims["permissions"])
	sort.Strings(roles)
	sort.Strings(perms)
	if !slices.Equal(got, roles) || !slices.Equal(gotPerms, perms) {
		t.Fatalf("access token roles %v permissions %v, want %v %v", got, gotPerms, roles, perms)
	}
}

// userOrgs is GET /v1/users/{id}/organizations.
func (f *v1Fix) userOrgs(t testing.TB, userID string) []map[string]any {
	t.Helper()
	res := f.call(t, http.MethodGet, "/v1/users/"+userID+"/organizations", f.tok, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("user organizations: %s", res)
	}
	return decodeList(t, res.Raw)
}

// decodeList decodes a JSON array of objects.
func decodeList(t testing.TB, raw []byte) []map[string]any {
	t.Helper()
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		t.Fatalf("not a JSON array: %v %s", err, raw)
	}
	return list
}

// sessionOrg returns the org_id the user's session sid records.
func (f *v1Fix) sessionOrg(t testing.TB, userID, sid string) string {
	t.Helper()
	res := f.call(t, http.MethodGet, "/v1/auth/users/"+userID+"/sessions", f.tok, nil)
	list, _ := res.JSON["sessions"].([]any)
	for _, s := range list {
		m := s.(map[string]any)
		if m["session_id"] == sid {
			o, _ := m["org_id"].(string)
			return o
		}
	}
	t.Fatalf("session %s not listed: %s", sid, res)
	return ""
}

func TestOrgManagementAPI(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)

		t.Run("organizations", func(t *testing.T) {
			t.Parallel()
			role := f.newRole(t, "invoices:read")
			name := v1Name("Acme ")
			org := f.newOrg(t, map[string]any{"name": name, "description": "A customer", "custom_data": map[string]any{"tier": "gold"},
				"domains": []string{"Acme.Example", "acme.example", "sub.acme.example"}, "jit_domains": []string{"acme.example"},
				"jit_roles": []string{role}, "mfa_required": true})
			id := org.Str("id")
			if org.Str("name") != name || org.Str("description") != "A customer" || org.JSON["mfa_required"] != true ||
				!slices.Equal(strs(org.JSON["domains"]), []string{"acme.example", "sub.acme.example"}) ||
				!slices.Equal(strs(org.JSON["jit_domains"]), []string{"acme.example"}) || !slices.Equal(strs(org.JSON["jit_roles"]), []string{role}) {
				t.Fatalf("created organization: %s", org)
			}
			got := f.call(t, http.MethodGet, "/v1/organizations/"+id, f.tok, nil)
			if got.Status != http.StatusOK || got.Str("id") != id || got.JSON["custom_data"].(map[string]any)["tier"] != "gold" {
				t.Fatalf("get organization: %s", got)
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/organizations", f.tok, map[string]any{"name": name}), http.StatusConflict, "org_name_already_in_use")
			wantDetail(t, f.call(t, http.MethodPost, "/v1/organizations", f.tok, map[string]any{"description": "no name"}), "name")
			wantDetail(t, f.call(t, http.MethodPost, "/v1/organizations", f.tok, map[string]any{"name": v1Name("x"), "domains": []string{"not a domain"}}), "domains[0]")
			res := f.call(t, http.MethodPost, "/v1/organizations", f.tok, map[string]any{"name": v1Name("x"), "jit_roles": []string{role, "no-such-role"}})
			wantDetail(t, res, "jit_roles[1]")
			if !strings.Contains(string(res.Raw), "no-such-role") {
				t.Fatalf("unknown role not named: %s", res)
			}

			patched := f.call(t, http.MethodPatch, "/v1/organizations/"+id, f.tok, map[string]any{"description": "changed", "domains": []string{}, "mfa_required": false})
			if patched.Status != http.StatusOK || patched.Str("description") != "changed" || patched.Str("name") != name ||
				len(strs(patched.JSON["domains"])) != 0 || patched.JSON["mfa_required"] != false ||
				!slices.Equal(strs(patched.JSON["jit_roles"]), []string{role}) {
				t.Fatalf("patched organization: %s", patched)
			}
			wantError(t, f.call(t, http.MethodPatch, "/v1/organizations/nope", f.tok, map[string]any{"description": "x"}), http.StatusNotFound, "org_not_found")

			if f.call(t, http.MethodDelete, "/v1/organizations/"+id, f.tok, nil).Status != http.StatusNoContent {
				t.Fatal("delete organization")
			}
			wantError(t, f.call(t, http.MethodDelete, "/v1/organizations/"+id, f.tok, nil), http.StatusNotFound, "org_not_found")
			for _, ev := range []string{"organization.created", "organization.updated", "organization.deleted"} {
				found := false
				for _, e := range f.auditEvents(t, "", ev) {
					data, _ := e["data"].(map[string]any)
					found = found || (data["organization_id"] == id && e["client_id"] == f.client.ID)
				}
				if !found {
					t.Errorf("%s of %s not audited", ev, id)
				}
			}
		})

		t.Run("list, search and pages", func(t *testing.T) {
			t.Parallel()
			tag := strings.ToLower(credentials.RandomID(8))
			var names []string
			for i := 0; i < 5; i++ {
				n := fmt.Sprintf("Search %s %d", tag, i)
				f.newOrg(t, map[string]any{"name": n})
				names = append(names, n)
			}
			// A name with LIKE wildcards is matched literally.
			f.newOrg(t, map[string]any{"name": "Search " + tag + " 100%_off"})
			var seen []string
			cursor := ""
			for pages := 0; ; pages++ {
				q := url.Values{"q": {tag}, "limit": {"2"}}
				if cursor != "" {
					q.Set("cursor", cursor)
				}
				res := f.call(t, http.MethodGet, "/v1/organizations?"+q.Encode(), f.tok, nil)
				if res.Status != http.StatusOK {
					t.Fatalf("list: %s", res)
				}
				for _, o := range res.JSON["organizations"].([]any) {
					seen = append(seen, o.(map[string]any)["name"].(string))
				}
				next, _ := res.JSON["next_cursor"].(string)
				if next == "" {
					if _, ok := res.JSON["next_cursor"]; ok {
						t.Fatalf("next_cursor on the last page: %s", res)
					}
					break
				}
				cursor = next
				if pages > 5 {
					t.Fatal("pagination does not end")
				}
			}
			// Pages follow the order of creation; together they hold every
			// match once.
			want := append(append([]string{}, names...), "Search "+tag+" 100%_off")
			if !slices.Equal(sortedCopy(seen...), sortedCopy(want...)) {
				t.Fatalf("paged search found %v, want %v", seen, want)
			}
			res := f.call(t, http.MethodGet, "/v1/organizations?q="+url.QueryEscape(tag+" 100%_"), f.tok, nil)
			if list := res.JSON["organizations"].([]any); len(list) != 1 {
				t.Fatalf("wildcards in q are not literal: %s", res)
			}
			wantDetail(t, f.call(t, http.MethodGet, "/v1/organizations?limit=0", f.tok, nil), "limit")
			wantDetail(t, f.call(t, http.MethodGet, "/v1/organizations?limit=201", f.tok, nil), "limit")
			wantDetail(t, f.call(t, http.MethodGet, "/v1/organizations?cursor=%25%25", f.tok, nil), "cursor")
		})

		t.Run("roles", func(t *testing.T) {
			t.Parallel()
			name := v1Name("admin-")
			res := f.call(t, http.MethodPost, "/v1/organization-roles", f.tok, map[string]any{"name": name, "description": "Admins",
				"permissions": []string{"users:manage", "billing:read", "users:manage"}})
			if res.Status != http.StatusCreated || !slices.Equal(strs(res.JSON["permissions"]), []string{"users:manage", "billing:read"}) {
				t.Fatalf("create role: %s", res)
			}
			id := res.Str("id")
			wantError(t, f.call(t, http.MethodPost, "/v1/organization-roles", f.tok, map[string]any{"name": name}), http.StatusConflict, "org_role_name_already_in_use")
			wantDetail(t, f.call(t, http.MethodPost, "/v1/organization-roles", f.tok, map[string]any{"name": v1Name("r"), "permissions": []string{"has space"}}), "permissions[0]")
			got := f.call(t, http.MethodGet, "/v1/organization-roles/"+id, f.tok, nil)
			if got.Status != http.StatusOK || got.Str("name") != name || got.Str("description") != "Admins" {
				t.Fatalf("get role: %s", got)
			}
			renamed := v1Name("owner-")
			patched := f.call(t, http.MethodPatch, "/v1/organization-roles/"+id, f.tok, map[string]any{"name": renamed, "permissions": []string{"all"}})
			if patched.Status != http.StatusOK || patched.Str("name") != renamed || !slices.Equal(strs(patched.JSON["permissions"]), []string{"all"}) {
				t.Fatalf("patch role: %s", patched)
			}
			list := f.call(t, http.MethodGet, "/v1/organization-roles?limit=100", f.tok, nil)
			found := false
			for _, r := range list.JSON["roles"].([]any) {
				found = found || r.(map[string]any)["id"] == id
			}
			if list.Status != http.StatusOK || !found {
				t.Fatalf("role list: %s", list)
			}
			if f.call(t, http.MethodDelete, "/v1/organization-roles/"+id, f.tok, nil).Status != http.StatusNoContent {
				t.Fatal("delete role")
			}
			wantError(t, f.call(t, http.MethodGet, "/v1/organization-roles/"+id, f.tok, nil), http.StatusNotFound, "org_role_not_found")
			for _, ev := range []string{"organization_role.created", "organization_role.updated", "organization_role.deleted"} {
				if len(f.auditEvents(t, "", ev)) == 0 {
					t.Errorf("%s not audited", ev)
				}
			}
		})

		t.Run("members", func(t *testing.T) {
			t.Parallel()
			viewer, editor := f.newRole(t, "docs:read"), f.newRole(t, "docs:write")
			org := f.newOrg(t, nil).Str("id")
			var users []string
			for i := 0; i < 3; i++ {
				id, _, _ := f.newUser(t)
				users = append(users, id)
			}
			res := f.call(t, http.MethodPost, "/v1/organizations/"+org+"/members", f.tok, map[string]any{"user_id": users[0], "roles": []string{viewer}})
			if res.Status != http.StatusCreated || res.Str("user_id") != users[0] || res.Str("org_id") != org ||
				!slices.Equal(strs(res.JSON["roles"]), []string{viewer}) || res.Str("username") == "" {
				t.Fatalf("add member: %s", res)
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/organizations/"+org+"/members", f.tok, map[string]any{"user_id": users[0]}),
				http.StatusConflict, "org_member_already_exists")
			bad := f.call(t, http.MethodPost, "/v1/organizations/"+org+"/members", f.tok, map[string]any{"user_id": users[1], "roles": []string{"ghost-" + viewer}})
			wantDetail(t, bad, "roles[0]")
			if !strings.Contains(string(bad.Raw), "ghost-"+viewer) {
				t.Fatalf("unknown role not named: %s", bad)
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/organizations/"+org+"/members", f.tok, map[string]any{"user_id": "nobody"}),
				http.StatusNotFound, "user_not_found")
			wantError(t, f.call(t, http.MethodPost, "/v1/organizations/nope/members", f.tok, map[string]any{"user_id": users[1]}),
				http.StatusNotFound, "org_not_found")
			f.addMember(t, org, users[1])
			f.addMember(t, org, users[2], viewer, editor)

			// Pages of members, each with roles.
			var got []string
			roles := map[string][]string{}
			cursor := ""
			for {
				path := "/v1/organizations/" + org + "/members?limit=2"
				if cursor != "" {
					path += "&cursor=" + url.QueryEscape(cursor)
				}
				page := f.call(t, http.MethodGet, path, f.tok, nil)
				if page.Status != http.StatusOK {
					t.Fatalf("members: %s", page)
				}
				for _, m := range page.JSON["members"].([]any) {
					mm := m.(map[string]any)
					got = append(got, mm["user_id"].(string))
					roles[mm["user_id"].(string)] = strs(mm["roles"])
				}
				cursor, _ = page.JSON["next_cursor"].(string)
				if cursor == "" {
					break
				}
			}
			// In the order they joined.
			if !slices.Equal(got, users) || len(roles[users[1]]) != 0 || !slices.Equal(roles[users[2]], sortedCopy(viewer, editor)) {
				t.Fatalf("members %v roles %v", got, roles)
			}

			set := f.call(t, http.MethodPut, "/v1/organizations/"+org+"/members/"+users[1]+"/roles", f.tok, map[string]any{"roles": []string{editor}})
			if set.Status != http.StatusOK || !slices.Equal(strs(set.JSON["roles"]), []string{editor}) {
				t.Fatalf("set roles: %s", set)
			}
			wantDetail(t, f.call(t, http.MethodPut, "/v1/organizations/"+org+"/members/"+users[1]+"/roles", f.tok, map[string]any{}), "roles")
			if uo := f.userOrgs(t, users[1]); len(uo) != 1 || uo[0]["org_id"] != org || uo[0]["name"] == "" || !slices.Equal(strs(uo[0]["roles"]), []string{editor}) {
				t.Fatalf("user organizations: %v", uo)
			}
			if f.call(t, http.MethodDelete, "/v1/organizations/"+org+"/members/"+users[1], f.tok, nil).Status != http.StatusNoContent {
				t.Fatal("remove member")
			}
			wantError(t, f.call(t, http.MethodDelete, "/v1/organizations/"+org+"/members/"+users[1], f.tok, nil), http.StatusNotFound, "org_member_not_found")
			wantError(t, f.call(t, http.MethodPut, "/v1/organizations/"+org+"/members/"+users[1]+"/roles", f.tok, map[string]any{"roles": []string{}}),
				http.StatusNotFound, "org_member_not_found")
			if uo := f.userOrgs(t, users[1]); len(uo) != 0 {
				t.Fatalf("removed member still lists %v", uo)
			}
			wantError(t, f.call(t, http.MethodGet, "/v1/users/nobody/organizations", f.tok, nil), http.StatusNotFound, "user_not_found")

			// Every change is audited, with the member as the user.
			for _, ev := range []string{"organization.member_added", "organization.member_roles_updated", "organization.member_removed"} {
				if f.countAudit(t, users[1], ev, "success") != 1 {
					t.Errorf("%s of %s: %v", ev, users[1], f.auditEvents(t, users[1], ev))
				}
			}
		})

		t.Run("scopes", func(t *testing.T) {
			t.Parallel()
			org := f.newOrg(t, nil).Str("id")
			reader := f.ClientToken(f.CreateClient("users:read"))
			if res := f.call(t, http.MethodGet, "/v1/organizations/"+org, reader, nil); res.Status != http.StatusOK {
				t.Fatalf("users:read reads: %s", res)
			}
			for _, write := range []struct{ method, path string }{{http.MethodPost, "/v1/organizations"}, {http.MethodPatch, "/v1/organizations/" + org},
				{http.MethodDelete, "/v1/organizations/" + org}, {http.MethodPost, "/v1/organization-roles"}, {http.MethodPost, "/v1/organizations/" + org + "/members"}} {
				wantError(t, f.call(t, write.method, write.path, reader, map[string]any{"name": "x"}), http.StatusForbidden, "insufficient_scope")
			}
			writer := f.ClientToken(f.CreateClient("management"))
			wantError(t, f.call(t, http.MethodGet, "/v1/organizations/"+org, writer, nil), http.StatusForbidden, "insufficient_scope")
			if res := f.call(t, http.MethodPatch, "/v1/organizations/"+org, writer, map[string]any{"description": "by management"}); res.Status != http.StatusOK {
				t.Fatalf("management writes: %s", res)
			}
		})
	})
}

func sortedCopy(v ...string) []string {
	out := append([]string{}, v...)
	sort.Strings(out)
	return out
}

// Member login: claims verified with the JWKS (access token) and go-oidc
// (ID token), userinfo, the session's org; non-members and wrong passwords.
func TestOrgMemberLogin(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)

		t.Run("member", func(t *testing.T) {
			t.Parallel()
			admin, viewer := f.newRole(t, "users:manage", "billing:read"), f.newRole(t, "billing:read", "docs:read")
			org := f.newOrg(t, nil).Str("id")
			id, username, password := f.newUser(t)
			f.addMember(t, org, id, admin, viewer)

			res := f.authenticate(t, username, password, map[string]any{"org_id": org,
				"claims": map[string]any{"id_token": map[string]any{"roles": nil, "username": nil}}})
			if res.Status != http.StatusOK {
				t.Fatalf("member login: %s", res)
			}
			claims := accessClaims(t, f.Env, res.Str("access_token"))
			wantOrgClaims(t, claims, org, []string{admin, viewer}, []string{"billing:read", "docs:read", "users:manage"})
			if claims["sub"] != id {
				t.Fatalf("sub %v", claims["sub"])
			}
			idc := verifyIDToken(t, f.Env, f.client.ID, res.Str("id_token"))
			if idc.OrgID == nil || *idc.OrgID != org || idc.Roles == nil || !slices.Equal(sortedCopy(*idc.Roles...), sortedCopy(admin, viewer)) {
				t.Fatalf("ID token org_id %v roles %v", idc.OrgID, idc.Roles)
			}
			if f.sessionOrg(t, id, res.Str("session_id")) != org {
				t.Fatal("the session does not record the organization")
			}
			me := f.call(t, http.MethodGet, "/oidc/me", res.Str("access_token"), nil)
			if me.Status != http.StatusOK || me.Str("org_id") != org || !slices.Equal(sortedCopy(strs(me.JSON["roles"])...), sortedCopy(admin, viewer)) {
				t.Fatalf("/oidc/me: %s", me)
			}

			// Roles in the ID token only when asked for; org_id always.
			plainClaims := f.authenticate(t, username, password, map[string]any{"org_id": org})
			idc = verifyIDToken(t, f.Env, f.client.ID, plainClaims.Str("id_token"))
			if idc.OrgID == nil || *idc.OrgID != org || idc.Roles != nil {
				t.Fatalf("ID token without a roles request: org_id %v roles %v", idc.OrgID, idc.Roles)
			}
			// Without org_id the same user signs in plainly.
			plain := f.signIn(t, username, password)
			wantOrgClaims(t, accessClaims(t, f.Env, plain.Str("access_token")), "", nil, nil)
			if idc := verifyIDToken(t, f.Env, f.client.ID, plain.Str("id_token")); idc.OrgID != nil {
				t.Fatalf("plain ID token org_id %v", *idc.OrgID)
			}
			if me := f.call(t, http.MethodGet, "/oidc/me", plain.Str("access_token"), nil); me.Str("org_id") != "" || me.JSON["roles"] != nil {
				t.Fatalf("plain /oidc/me: %s", me)
			}
		})

		t.Run("member without roles", func(t *testing.T) {
			t.Parallel()
			org := f.newOrg(t, nil).Str("id")
			id, username, password := f.newUser(t)
			f.addMember(t, org, id)
			res := f.authenticate(t, username, password, map[string]any{"org_id": org, "claims": map[string]any{"id_token": map[string]any{"roles": nil}}})
			if res.Status != http.StatusOK {
				t.Fatalf("login: %s", res)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, res.Str("access_token")), org, nil, nil)
			if idc := verifyIDToken(t, f.Env, f.client.ID, res.Str("id_token")); idc.Roles == nil || len(*idc.Roles) != 0 {
				t.Fatalf("ID token roles %v, want []", idc.Roles)
			}
		})

		t.Run("non-member and wrong passwords", func(t *testing.T) {
			t.Parallel()
			mine, other := f.newOrg(t, nil).Str("id"), f.newOrg(t, nil).Str("id")
			id, username, password := f.newUser(t)
			f.addMember(t, mine, id)

			// A correct password of a non-member: 403, audited.
			wantError(t, f.authenticate(t, username, password, map[string]any{"org_id": other}), http.StatusForbidden, "org_membership_required")
			found := false
			for _, ev := range f.auditEvents(t, id, "sign_in") {
				data, _ := ev["data"].(map[string]any)
				found = found || (ev["outcome"] == "failure" && data["reason"] == "org_membership_required" && data["organization_id"] == other)
			}
			if !found {
				t.Fatal("the refused organization sign-in is not audited")
			}
			// A wrong password answers the same 401 whatever the org: the
			// member's, a non-member's, none, and for an unknown user.
			var bodies []string
			for _, tc := range []struct {
				user  string
				extra map[string]any
			}{{username, nil}, {username, map[string]any{"org_id": mine}}, {username, map[string]any{"org_id": other}},
				{v1Name("ghost"), map[string]any{"org_id": other}}} {
				res := f.authenticate(t, tc.user, "wrong password 1", tc.extra)
				wantError(t, res, http.StatusUnauthorized, "auth_invalid_credentials")
				bodies = append(bodies, string(res.Raw))
			}
			for i := 1; i < len(bodies); i++ {
				if bodies[i] != bodies[0] {
					t.Fatalf("wrong-password bodies differ:\n%s\n%s", bodies[0], bodies[i])
				}
			}
		})

		t.Run("password reset", func(t *testing.T) {
			t.Parallel()
			role := f.newRole(t, "r:1")
			mine, other := f.newOrg(t, nil).Str("id"), f.newOrg(t, nil).Str("id")
			username, password := v1Name("temp"), v1Password()
			id := f.createUser(t, map[string]any{"username": username, "credentials": map[string]any{"password": password, "force_replace": true}})
			f.addMember(t, mine, id, role)
			temp := f.authenticate(t, username, password, map[string]any{"org_id": mine})
			wantError(t, temp, http.StatusForbidden, "temporary_password")
			reset := func(org string) *apptest.Response {
				return f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok, map[string]any{"reset_token": temp.Str("reset_token"),
					"new_password": v1Password(), "org_id": org})
			}
			// A non-member learns it before the token is used up.
			wantError(t, reset(other), http.StatusForbidden, "org_membership_required")
			wantError(t, reset("no-such-org"), http.StatusBadRequest, "org_not_found")
			done := reset(mine)
			if done.Status != http.StatusOK {
				t.Fatalf("reset in the organization: %s", done)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, done.Str("access_token")), mine, []string{role}, []string{"r:1"})
		})

		t.Run("unknown organization before the password", func(t *testing.T) {
			t.Parallel()
			_, username, password := f.newUser(t)
			// Far more attempts than the lockout allows: none reaches the
			// password, so none counts.
			for i := 0; i < 7; i++ {
				wantError(t, f.authenticate(t, username, "wrong password 1", map[string]any{"org_id": "no-such-org"}), http.StatusBadRequest, "org_not_found")
			}
			wantError(t, f.authenticate(t, v1Name("ghost"), "x", map[string]any{"org_id": "no-such-org"}), http.StatusBadRequest, "org_not_found")
			f.signIn(t, username, password)
		})

		t.Run("domain discovery", func(t *testing.T) {
			t.Parallel()
			role := f.newRole(t, "p1")
			domain, shared := orgDomain(), orgDomain()
			org := f.newOrg(t, map[string]any{"domains": []string{domain}}).Str("id")
			sharedA := f.newOrg(t, map[string]any{"domains": []string{shared}}).Str("id")
			f.newOrg(t, map[string]any{"domains": []string{shared}})
			var username string
			emailUser := func(domain string) (string, string, string) {
				email, password := v1Name("u")+"@"+domain, v1Password()
				username = v1Name("disc")
				id := f.createUser(t, map[string]any{"username": username, "primary_email": email, "credentials": map[string]any{"password": password}})
				return id, email, password
			}
			member, memberEmail, memberPassword := emailUser(domain)
			memberName := username
			f.addMember(t, org, member, role)
			byEmail := func(email, password string, extra map[string]any) map[string]any {
				body := map[string]any{"username_type": "email"}
				for k, v := range extra {
					body[k] = v
				}
				res := f.authenticate(t, strings.ToUpper(email), password, body)
				if res.Status != http.StatusOK {
					t.Fatalf("e-mail login: %s", res)
				}
				return accessClaims(t, f.Env, res.Str("access_token"))
			}
			// Exactly one organization lists the domain and the user is its
			// member: that organization's context.
			wantOrgClaims(t, byEmail(memberEmail, memberPassword, nil), org, []string{role}, []string{"p1"})
			// Not a member: a plain login.
			_, stranger, strangerPassword := emailUser(domain)
			wantOrgClaims(t, byEmail(stranger, strangerPassword, nil), "", nil, nil)
			// Two organizations list the domain: a plain login, even for a
			// member of one of them.
			both, bothEmail, bothPassword := emailUser(shared)
			f.addMember(t, sharedA, both)
			wantOrgClaims(t, byEmail(bothEmail, bothPassword, nil), "", nil, nil)
			// Signing in by username finds no organization.
			res := f.signIn(t, memberName, memberPassword)
			wantOrgClaims(t, accessClaims(t, f.Env, res.Str("access_token")), "", nil, nil)
			// An explicit org_id wins over discovery.
			wantOrgClaims(t, byEmail(bothEmail, bothPassword, map[string]any{"org_id": sharedA}), sharedA, nil, nil)
		})
	})
}

// Refresh keeps the organization context and re-reads membership.
func TestOrgRefresh(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)

		t.Run("roles change, then the member is removed", func(t *testing.T) {
			t.Parallel()
			reader, writer := f.newRole(t, "docs:read"), f.newRole(t, "docs:write")
			org := f.newOrg(t, nil).Str("id")
			id, username, password := f.newUser(t)
			f.addMember(t, org, id, reader)
			res := f.authenticate(t, username, password, map[string]any{"org_id": org, "claims": map[string]any{"id_token": map[string]any{"roles": nil}}})
			if res.Status != http.StatusOK {
				t.Fatalf("login: %s", res)
			}
			sid := res.Str("session_id")

			f.call(t, http.MethodPut, "/v1/organizations/"+org+"/members/"+id+"/roles", f.tok, map[string]any{"roles": []string{writer}})
			refreshed := f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{"refresh_token": res.Str("refresh_token")})
			if refreshed.Status != http.StatusOK {
				t.Fatalf("refresh: %s", refreshed)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, refreshed.Str("access_token")), org, []string{writer}, []string{"docs:write"})
			if idc := verifyIDToken(t, f.Env, f.client.ID, refreshed.Str("id_token")); idc.Roles == nil || !slices.Equal(*idc.Roles, []string{writer}) ||
				idc.OrgID == nil || *idc.OrgID != org {
				t.Fatalf("refreshed ID token roles %v org %v", idc.Roles, idc.OrgID)
			}
			// The OIDC grant keeps the context too.
			oidc := f.form(t, "/oidc/token", f.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed.Str("refresh_token")}})
			if oidc.Status != http.StatusOK {
				t.Fatalf("oidc refresh: %s", oidc)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, oidc.Str("access_token")), org, []string{writer}, []string{"docs:write"})

			// Removed: the refresh is refused and the context ends.
			if f.call(t, http.MethodDelete, "/v1/organizations/"+org+"/members/"+id, f.tok, nil).Status != http.StatusNoContent {
				t.Fatal("remove member")
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{"refresh_token": oidc.Str("refresh_token")}),
				http.StatusBadRequest, "invalid_grant")
			if got := f.sessionOrg(t, id, sid); got != "" {
				t.Fatalf("the session's org context did not end: %q", got)
			}
			if f.countAudit(t, id, "session.org_context_ended", "success") != 1 {
				t.Fatal("the ended org context is not audited")
			}
			// The refresh token stays refused (its family is revoked), while
			// the session lives on in a plain context.
			again := f.form(t, "/oidc/token", f.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {oidc.Str("refresh_token")}})
			if again.Status != http.StatusBadRequest || again.Str("error") != "invalid_grant" {
				t.Fatalf("refused refresh token reused: %s", again)
			}
			plain := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid})
			if plain.Status != http.StatusOK {
				t.Fatalf("session authenticate after removal: %s", plain)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, plain.Str("access_token")), "", nil, nil)
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid, "org_id": org}),
				http.StatusForbidden, "org_membership_required")
		})

		t.Run("organization token on the OIDC refresh grant", func(t *testing.T) {
			t.Parallel()
			roleA, roleB := f.newRole(t, "a"), f.newRole(t, "b")
			orgA, orgB, orgC := f.newOrg(t, nil).Str("id"), f.newOrg(t, nil).Str("id"), f.newOrg(t, nil).Str("id")
			id, username, password := f.newUser(t)
			f.addMember(t, orgA, id, roleA)
			f.addMember(t, orgB, id, roleB)
			res := f.authenticate(t, username, password, map[string]any{"org_id": orgA})
			if res.Status != http.StatusOK {
				t.Fatalf("login: %s", res)
			}
			grant := func(rt, org string) *apptest.Response {
				v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
				if org != "" {
					v.Set("organization_id", org)
				}
				return f.form(t, "/oidc/token", f.client, v)
			}
			tokB := grant(res.Str("refresh_token"), orgB)
			if tokB.Status != http.StatusOK {
				t.Fatalf("organization token: %s", tokB)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, tokB.Str("access_token")), orgB, []string{roleB}, []string{"b"})
			if idc := verifyIDToken(t, f.Env, f.client.ID, tokB.Str("id_token")); idc.OrgID == nil || *idc.OrgID != orgB {
				t.Fatalf("organization ID token org_id %v", idc.OrgID)
			}
			// Not a member, or no such organization: 403 access_denied, and
			// the refresh token is not used up.
			for _, org := range []string{orgC, "no-such-org"} {
				denied := grant(tokB.Str("refresh_token"), org)
				if denied.Status != http.StatusForbidden || denied.Str("error") != "access_denied" {
					t.Fatalf("organization token of a non-member: %s", denied)
				}
			}
			// Without organization_id the refresh token keeps its own
			// context (the one it was issued in).
			back := grant(tokB.Str("refresh_token"), "")
			if back.Status != http.StatusOK {
				t.Fatalf("refresh after refusals: %s", back)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, back.Str("access_token")), orgA, []string{roleA}, []string{"a"})
			// A plain refresh token can ask for an organization token too.
			plain := f.signIn(t, username, password)
			tokA := grant(plain.Str("refresh_token"), orgA)
			if tokA.Status != http.StatusOK {
				t.Fatalf("organization token from a plain refresh token: %s", tokA)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, tokA.Str("access_token")), orgA, []string{roleA}, []string{"a"})
		})

		t.Run("session authenticate switches context", func(t *testing.T) {
			t.Parallel()
			role := f.newRole(t, "x")
			orgA, orgB, orgC := f.newOrg(t, nil).Str("id"), f.newOrg(t, nil).Str("id"), f.newOrg(t, nil).Str("id")
			id, username, password := f.newUser(t)
			f.addMember(t, orgA, id)
			f.addMember(t, orgB, id, role)
			res := f.authenticate(t, username, password, map[string]any{"org_id": orgA})
			sid := res.Str("session_id")
			sw := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid, "org_id": orgB})
			if sw.Status != http.StatusOK || sw.Str("session_id") != sid {
				t.Fatalf("switch: %s", sw)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, sw.Str("access_token")), orgB, []string{role}, []string{"x"})
			if f.sessionOrg(t, id, sid) != orgB {
				t.Fatal("the session does not record the new organization")
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid, "org_id": orgC}),
				http.StatusForbidden, "org_membership_required")
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid, "org_id": "nope"}),
				http.StatusBadRequest, "org_not_found")
		})
	})
}

// An organization with mfa_required: MFA even for a client that does not
// enforce it, on /v1 and (with the setting) the Experience API.
func TestOrgRequiredMFA(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := mfaStart(t, b)
		appClient, appTok := f.noMFAClient(t)
		app := func(route string, body map[string]any) *apptest.Response {
			return f.call(t, http.MethodPost, "/v1/auth/"+route, appTok, body)
		}

		t.Run("v1", func(t *testing.T) {
			t.Parallel()
			org := f.newOrg(t, map[string]any{"mfa_required": true}).Str("id")
			plainOrg := f.newOrg(t, nil).Str("id")
			u := f.user(t)
			f.addMember(t, org, u.ID)
			f.addMember(t, plainOrg, u.ID)
			// No factor: the organization's login needs one enrolled.
			wantError(t, app("password/authenticate", authBody(u.Username, u.Password, map[string]any{"org_id": org})),
				http.StatusForbidden, "mfa_enrollment_required")
			// This client does not enforce MFA: without the organization, or
			// in one that does not require it, the password is enough.
			if res := app("password/authenticate", authBody(u.Username, u.Password, map[string]any{"org_id": plainOrg})); res.Status != http.StatusOK {
				t.Fatalf("plain organization login: %s", res)
			}
			secret, codes := f.enrol(t, u, true)
			plain := app("password/authenticate", authBody(u.Username, u.Password, nil))
			if plain.Status != http.StatusOK {
				t.Fatalf("non-enforcing client, no org: %s", plain)
			}
			wantAMR(t, accessClaims(t, f.Env, plain.Str("access_token"))["amr"], "pwd")

			pending := app("password/authenticate", authBody(u.Username, u.Password, map[string]any{"org_id": org}))
			wantError(t, pending, http.StatusForbidden, "mfa_required")
			if !slices.Equal(mfaFactors(pending), []string{"backup_code", "totp"}) || pending.Str("session_id") == "" {
				t.Fatalf("mfa_required: %s", pending)
			}
			done := app("totp/authenticate", map[string]any{"session_id": pending.Str("session_id"), "code": totpNext(t, secret)})
			if done.Status != http.StatusOK {
				t.Fatalf("totp: %s", done)
			}
			claims := accessClaims(t, f.Env, done.Str("access_token"))
			wantAMR(t, claims["amr"], "mfa", "pwd", "totp")
			wantOrgClaims(t, claims, org, nil, nil)
			if idc := verifyIDToken(t, f.Env, appClient.ID, done.Str("id_token")); idc.OrgID == nil || *idc.OrgID != org {
				t.Fatalf("ID token after MFA: org_id %v", idc.OrgID)
			}

			// Switching a password-only session into the organization asks
			// for the step-up first; the step-up names the organization.
			sid := plain.Str("session_id")
			step := app("session/authenticate", map[string]any{"session_id": sid, "org_id": org})
			wantError(t, step, http.StatusForbidden, "mfa_required")
			if step.Str("session_id") != sid {
				t.Fatalf("step-up session: %s", step)
			}
			up := app("backup-code/authenticate", map[string]any{"session_id": sid, "org_id": org, "code": codes[0]})
			if up.Status != http.StatusOK {
				t.Fatalf("step-up: %s", up)
			}
			claims = accessClaims(t, f.Env, up.Str("access_token"))
			wantOrgClaims(t, claims, org, nil, nil)
			wantAMR(t, claims["amr"], "backup_code", "mfa", "pwd")
			if res := app("session/authenticate", map[string]any{"session_id": sid, "org_id": org}); res.Status != http.StatusOK {
				t.Fatalf("session authenticate after step-up: %s", res)
			}
		})

		t.Run("experience", func(t *testing.T) {
			// Changes the server's settings: not parallel with the others.
			org := f.newOrg(t, map[string]any{"mfa_required": true}).Str("id")
			member, stranger := f.user(t), f.user(t)
			f.addMember(t, org, member.ID)
			// The default (NoPrompt) leaves the tenant-wide policy alone.
			if sub := f.expSignIn(t, "username", member.Username, member.Password); sub != member.ID {
				t.Fatalf("signed in as %s", sub)
			}
			f.settings(t, `{"mfa": {"organization_required_mfa_policy": "Mandatory"}}`)
			defer f.settings(t, `{"mfa": {"organization_required_mfa_policy": "NoPrompt", "enforce": true}}`)
			x := f.signInTx(t, member)
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.missing_mfa")
			expWantAPI(t, x.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusUnprocessableEntity, "session.mfa.mfa_policy_not_user_controlled")
			if sub := f.expSignIn(t, "username", stranger.Username, stranger.Password); sub != stranger.ID {
				t.Fatalf("non-member signed in as %s", sub)
			}
			// Binding a factor in that interaction satisfies it.
			id, _ := x.newTOTP(t)
			expMust(t, x.bind(t, "Totp", id), http.StatusNoContent, "bind totp")
			x.submitTokens(t)
			// Even with MFA not enforced tenant-wide, the member must prove it.
			f.settings(t, `{"mfa": {"enforce": false}}`)
			y := f.signInTx(t, member)
			expWantAPI(t, y.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")
			f.enrol(t, stranger, false)
			if sub := f.expSignIn(t, "username", stranger.Username, stranger.Password); sub != stranger.ID {
				t.Fatalf("non-member with a factor, MFA not enforced: signed in as %s", sub)
			}
		})
	})
}

// Just-in-time membership: only from a verified e-mail.
func TestOrgJustInTime(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		role := f.newRole(t, "jit:p")
		domain := orgDomain()
		org := f.newOrg(t, map[string]any{"jit_domains": []string{domain}, "jit_roles": []string{role}}).Str("id")
		// A discovery domain alone provisions nothing.
		f.newOrg(t, map[string]any{"domains": []string{domain}})

		verified := f.createUser(t, map[string]any{"primary_email": "a." + v1Name("x") + "@" + strings.ToUpper(domain), "email_verified": true})
		if orgs := f.userOrgs(t, verified); len(orgs) != 1 || orgs[0]["org_id"] != org || !slices.Equal(strs(orgs[0]["roles"]), []string{role}) {
			t.Fatalf("verified e-mail: organizations %v", orgs)
		}
		if f.countAudit(t, verified, "organization.member_added", "success") != 1 {
			t.Fatal("just-in-time membership not audited")
		}
		unverified := f.createUser(t, map[string]any{"primary_email": "b." + v1Name("x") + "@" + domain})
		if orgs := f.userOrgs(t, unverified); len(orgs) != 0 {
			t.Fatalf("unverified e-mail became a member: %v", orgs)
		}
		other := f.createUser(t, map[string]any{"primary_email": "c." + v1Name("x") + "@sub." + domain, "email_verified": true})
		if orgs := f.userOrgs(t, other); len(orgs) != 0 {
			t.Fatalf("another domain became a member: %v", orgs)
		}

		// Experience Register: an address proven with a code counts...
		f.settings(t, `{"sign_up": {"identifiers": ["email"], "password": true, "verify": true}}`)
		email := "r." + v1Name("x") + "@" + domain
		x := f.begin(t, "Register", false)
		rec := x.provenCode(t, "email", email, "")
		expMust(t, x.post(t, "/profile", map[string]any{"type": "password", "value": v1Password()}), http.StatusNoContent, "password")
		expMust(t, x.identify(t, rec), http.StatusCreated, "identification")
		sub, _ := x.submitTokens(t)["sub"].(string)
		if orgs := f.userOrgs(t, sub); len(orgs) != 1 || orgs[0]["org_id"] != org {
			t.Fatalf("registered with a verified e-mail: organizations %v", orgs)
		}
		// ... and so does one proven after the account was created, at
		// submit.
		f.settings(t, `{"sign_up": {"identifiers": ["username"], "password": true, "verify": true}}`)
		y, _ := f.registerTx(t)
		email = "s." + v1Name("x") + "@" + domain
		code := y.provenCode(t, "email", email, "Register")
		expMust(t, y.post(t, "/profile", map[string]any{"type": "email", "verificationId": code}), http.StatusNoContent, "profile email")
		sub, _ = y.submitTokens(t)["sub"].(string)
		if orgs := f.userOrgs(t, sub); len(orgs) != 1 || orgs[0]["org_id"] != org || !slices.Equal(strs(orgs[0]["roles"]), []string{role}) {
			t.Fatalf("registered, then an e-mail proven: organizations %v", orgs)
		}
	})
}

// Deleting an organization, a user or a role takes their memberships and
// grants with them.
func TestOrgCascades(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		role, kept := f.newRole(t, "p"), f.newRole(t, "q")
		org := f.newOrg(t, map[string]any{"jit_domains": []string{orgDomain()}, "jit_roles": []string{role, kept}}).Str("id")
		other := f.newOrg(t, nil).Str("id")
		alice, _, _ := f.newUser(t)
		bob, _, _ := f.newUser(t)
		f.addMember(t, org, alice, role, kept)
		f.addMember(t, org, bob, role)
		f.addMember(t, other, bob)
		memberRows := func(where string, args ...any) int64 {
			return f.count(t, "SELECT COUNT(*) FROM organization_members WHERE "+where, args...)
		}
		roleRows := func(where string, args ...any) int64 {
			return f.count(t, "SELECT COUNT(*) FROM organization_member_roles WHERE "+where, args...)
		}

		// Role → removed from memberships and JIT roles (in use, still deleted).
		var roleID string
		for _, r := range f.call(t, http.MethodGet, "/v1/organization-roles?limit=100", f.tok, nil).JSON["roles"].([]any) {
			if r.(map[string]any)["name"] == role {
				roleID = r.(map[string]any)["id"].(string)
			}
		}
		if f.call(t, http.MethodDelete, "/v1/organization-roles/"+roleID, f.tok, nil).Status != http.StatusNoContent {
			t.Fatal("delete role in use")
		}
		if n := roleRows("role_id = ?", roleID); n != 0 {
			t.Fatalf("%d grants of the deleted role remain", n)
		}
		if orgs := f.userOrgs(t, alice); len(orgs) != 1 || !slices.Equal(strs(orgs[0]["roles"]), []string{kept}) {
			t.Fatalf("after the role's deletion: %v", orgs)
		}
		if got := f.call(t, http.MethodGet, "/v1/organizations/"+org, f.tok, nil); !slices.Equal(strs(got.JSON["jit_roles"]), []string{kept}) {
			t.Fatalf("jit_roles after the role's deletion: %s", got)
		}

		// User → their memberships and roles.
		if f.call(t, http.MethodDelete, "/v1/users/"+alice, f.tok, nil).Status != http.StatusNoContent {
			t.Fatal("delete user")
		}
		if memberRows("user_id = ?", alice)+roleRows("user_id = ?", alice) != 0 {
			t.Fatal("the deleted user's memberships remain")
		}

		// Organization → its memberships (and their roles), not others'.
		if f.call(t, http.MethodDelete, "/v1/organizations/"+org, f.tok, nil).Status != http.StatusNoContent {
			t.Fatal("delete organization")
		}
		if memberRows("organization_id = ?", org)+roleRows("organization_id = ?", org)+
			f.count(t, "SELECT COUNT(*) FROM organization_domains WHERE organization_id = ?", org) != 0 {
			t.Fatal("the deleted organization's memberships or domains remain")
		}
		wantError(t, f.call(t, http.MethodGet, "/v1/organizations/"+org, f.tok, nil), http.StatusNotFound, "org_not_found")
		if orgs := f.userOrgs(t, bob); len(orgs) != 1 || orgs[0]["org_id"] != other {
			t.Fatalf("bob's other membership: %v", orgs)
		}
		if f.countAudit(t, "", "organization.deleted", "success") != 1 {
			t.Fatal("organization.deleted not audited")
		}
	})
}

// Concurrent adds of one user to one organization: one 201, the rest 409.
func TestOrgConcurrentMemberAdd(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		org := f.newOrg(t, nil).Str("id")
		id, _, _ := f.newUser(t)
		const n = 8
		statuses := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				res, err := f.send(http.MethodPost, "/v1/organizations/"+org+"/members", f.tok, map[string]any{"user_id": id})
				if err != nil {
					errs[i] = err
					return
				}
				statuses[i] = res.Status
				if res.Status == http.StatusConflict && res.Str("error_code") != "org_member_already_exists" {
					errs[i] = fmt.Errorf("409 with %s", res)
				}
			}(i)
		}
		close(start)
		wg.Wait()
		created, conflicts := 0, 0
		for i, s := range statuses {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			switch s {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				conflicts++
			}
		}
		if created != 1 || conflicts != n-1 {
			t.Fatalf("statuses %v: want one 201 and %d 409", statuses, n-1)
		}
		if got := f.count(t, "SELECT COUNT(*) FROM organization_members WHERE organization_id = ?", org); got != 1 {
			t.Fatalf("%d memberships", got)
		}
		if got := f.countAudit(t, id, "organization.member_added", "success"); got != 1 {
			t.Fatalf("%d member_added events", got)
		}
	})
}

// The organization routes' real requests and responses match openapi.yaml.
func TestOpenAPIOrganizations(t *testing.T) {
	env := apptest.Start(t, apptest.SQLite)
	s := newSpecCheck(t, env)
	client := env.CreateClient("auth:execute", "users:read", "users:write", "management")
	tok := env.ClientToken(client)

	role := s.json(http.MethodPost, "/v1/organization-roles", tok, map[string]any{"name": "spec-admin", "description": "d",
		"permissions": []string{"a:b"}}, http.StatusCreated)
	s.json(http.MethodPost, "/v1/organization-roles", tok, map[string]any{"name": "spec-admin"}, http.StatusConflict)
	s.refusing().json(http.MethodPost, "/v1/organization-roles", tok, map[string]any{"description": "no name"}, http.StatusBadRequest)
	s.get("/v1/organization-roles", tok, http.StatusOK)
	s.get("/v1/organization-roles?limit=1", tok, http.StatusOK)
	s.get("/v1/organization-roles/"+role.Str("id"), tok, http.StatusOK)
	s.get("/v1/organization-roles/nope", tok, http.StatusNotFound)
	s.json(http.MethodPatch, "/v1/organization-roles/"+role.Str("id"), tok, map[string]any{"permissions": []string{"a:b", "c:d"}}, http.StatusOK)

	org := s.json(http.MethodPost, "/v1/organizations", tok, map[string]any{"name": "Spec Org", "description": "x",
		"custom_data": map[string]any{"k": 1}, "domains": []string{"spec.example"}, "jit_domains": []string{"jit.spec.example"},
		"jit_roles": []string{"spec-admin"}, "mfa_required": false}, http.StatusCreated)
	orgID := org.Str("id")
	s.json(http.MethodPost, "/v1/organizations", tok, map[string]any{"name": "Spec Org"}, http.StatusConflict)
	s.json(http.MethodPost, "/v1/organizations", tok, map[string]any{"name": "Other", "jit_roles": []string{"ghost"}}, http.StatusBadRequest)
	s.get("/v1/organizations", tok, http.StatusOK)
	s.get("/v1/organizations?q=spec&limit=5", tok, http.StatusOK)
	s.refusing().get("/v1/organizations?limit=0", tok, http.StatusBadRequest)
	s.get("/v1/organizations/"+orgID, tok, http.StatusOK)
	s.get("/v1/organizations/nope", tok, http.StatusNotFound)
	s.json(http.MethodPatch, "/v1/organizations/"+orgID, tok, map[string]any{"description": "y", "domains": nil}, http.StatusOK)

	username, password := v1Name("spec"), "correct horse battery staple 7"
	userID := s.json(http.MethodPost, "/v1/users", tok, map[string]any{"username": username,
		"credentials": map[string]any{"password": password}}, http.StatusCreated).Str("id")
	s.json(http.MethodPost, "/v1/organizations/"+orgID+"/members", tok, map[string]any{"user_id": userID, "roles": []string{"spec-admin"}}, http.StatusCreated)
	s.json(http.MethodPost, "/v1/organizations/"+orgID+"/members", tok, map[string]any{"user_id": userID}, http.StatusConflict)
	s.json(http.MethodPost, "/v1/organizations/"+orgID+"/members", tok, map[string]any{"user_id": "nobody"}, http.StatusNotFound)
	s.get("/v1/organizations/"+orgID+"/members", tok, http.StatusOK)
	s.get("/v1/organizations/"+orgID+"/members?limit=1", tok, http.StatusOK)
	s.json(http.MethodPut, "/v1/organizations/"+orgID+"/members/"+userID+"/roles", tok, map[string]any{"roles": []string{"spec-admin"}}, http.StatusOK)
	s.refusing().json(http.MethodPut, "/v1/organizations/"+orgID+"/members/"+userID+"/roles", tok, map[string]any{}, http.StatusBadRequest)
	s.get("/v1/users/"+userID+"/organizations", tok, http.StatusOK)
	s.get("/v1/users/nobody/organizations", tok, http.StatusNotFound)

	// Login in the organization's context, and its refusals.
	signIn := s.json(http.MethodPost, "/v1/auth/password/authenticate", tok, map[string]any{"username": username, "password": password,
		"org_id": orgID, "claims": map[string]any{"id_token": map[string]any{"roles": nil}}}, http.StatusOK)
	s.json(http.MethodPost, "/v1/auth/password/authenticate", tok, map[string]any{"username": username, "password": password,
		"org_id": "nope"}, http.StatusBadRequest)
	other := s.json(http.MethodPost, "/v1/organizations", tok, map[string]any{"name": "Spec Other"}, http.StatusCreated).Str("id")
	s.json(http.MethodPost, "/v1/auth/password/authenticate", tok, map[string]any{"username": username, "password": password,
		"org_id": other}, http.StatusForbidden)
	s.json(http.MethodPost, "/v1/auth/session/authenticate", tok, map[string]any{"session_id": signIn.Str("session_id"), "org_id": other}, http.StatusForbidden)
	s.json(http.MethodPost, "/v1/auth/session/authenticate", tok, map[string]any{"session_id": signIn.Str("session_id"), "org_id": orgID}, http.StatusOK)
	s.get("/oidc/me", signIn.Str("access_token"), http.StatusOK)
	s.form("/oidc/token", &client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {signIn.Str("refresh_token")},
		"organization_id": {other}}, http.StatusForbidden)
	refreshed := s.form("/oidc/token", &client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {signIn.Str("refresh_token")},
		"organization_id": {orgID}}, http.StatusOK)

	s.json(http.MethodDelete, "/v1/organizations/"+orgID+"/members/"+userID, tok, nil, http.StatusNoContent)
	s.json(http.MethodDelete, "/v1/organizations/"+orgID+"/members/"+userID, tok, nil, http.StatusNotFound)
	s.json(http.MethodPost, "/v1/auth/token/refresh", tok, map[string]any{"refresh_token": refreshed.Str("refresh_token")}, http.StatusBadRequest)
	s.json(http.MethodPut, "/v1/organizations/"+orgID+"/members/"+userID+"/roles", tok, map[string]any{"roles": []string{}}, http.StatusNotFound)
	s.json(http.MethodDelete, "/v1/organization-roles/"+role.Str("id"), tok, nil, http.StatusNoContent)
	s.json(http.MethodDelete, "/v1/organization-roles/"+role.Str("id"), tok, nil, http.StatusNotFound)
	s.json(http.MethodDelete, "/v1/organizations/"+orgID, tok, nil, http.StatusNoContent)
	s.json(http.MethodDelete, "/v1/organizations/"+orgID, tok, nil, http.StatusNotFound)
}

// An SSO connector's jit_organizations make the accounts it creates
// members (with the organizations' jit_roles; an id of no organization is
// skipped), and the backend SSO route signs in in an organization's context
// like the other /v1 sign-ins.
func TestOrgSSO(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		role := f.newRole(t, "sso:p")
		org := f.newOrg(t, map[string]any{"jit_roles": []string{role}}).Str("id")
		other := f.newOrg(t, nil).Str("id")
		domain := strings.ToLower(v1Name("orgsso")) + ".test"
		conn := f.connector(t, "sso", map[string]any{"name": "Org SSO", "provider": "oidc", "domains": []string{domain},
			"config": f.op.oidcConfig(), "jit_organizations": []string{"no-such-org", org}})

		email := strings.ToLower(v1Name("emp")) + "@" + domain
		x := f.beginAs(t, f.appTok, "SignIn", false)
		_, vid := x.upstream(t, f.op, "sso", conn, f.op.user(email, true))
		expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
		sub := x.submitTokens(t)["sub"].(string)
		if orgs := f.userOrgs(t, sub); len(orgs) != 1 || orgs[0]["org_id"] != org || !slices.Equal(strs(orgs[0]["roles"]), []string{role}) {
			t.Fatalf("SSO-created account: organizations %v", orgs)
		}
		if f.countAudit(t, sub, "organization.member_added", "success") != 1 {
			t.Fatal("the connector's just-in-time membership is not audited")
		}

		// Backend SSO with org_id: the member's context; another
		// organization's is refused; an unknown one before the provider.
		up := f.op.user(email, true)
		flow := func() (string, map[string]any) {
			res := f.call(t, http.MethodPost, "/v1/auth/sso/start", f.appTok, map[string]any{"connector_id": conn, "redirect_uri": upCallback})
			if res.Status != http.StatusOK {
				t.Fatalf("sso/start: %s", res)
			}
			cb := f.op.login(t, res.Str("authorization_uri"), up)
			return res.Str("flow_id"), map[string]any{"flow_id": res.Str("flow_id"), "code": cb.Get("code"), "state": cb.Get("state")}
		}
		_, body := flow()
		body["org_id"] = "no-such-org"
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, body), http.StatusBadRequest, "org_not_found")
		body["org_id"] = other
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, body), http.StatusForbidden, "org_membership_required")
		_, body = flow()
		body["org_id"] = org
		res := f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, body)
		if res.Status != http.StatusOK {
			t.Fatalf("sso/authenticate in the organization: %s", res)
		}
		wantOrgClaims(t, accessClaims(t, f.Env, res.Str("access_token")), org, []string{role}, []string{"sso:p"})
	})
}

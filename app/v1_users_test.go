package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// The Users API: profile normalization, uniqueness, CRUD, passwords,
// suspension, MFA factors, and the scopes that guard it.
func TestV1UsersAPI(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)

		t.Run("create, normalize, find, get, patch, delete", func(t *testing.T) {
			t.Parallel()
			name := v1Name("Bob")
			local := "Bob." + name
			phone := fmt.Sprintf("+44 20 7946 %04d", v1Seq.Add(1)%10000)
			res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": name, "email": local + "@Example.COM",
				"phone_number": phone, "name": "Bob Builder", "custom_data": map[string]any{"plan": "pro"}})
			if res.Status != http.StatusCreated {
				t.Fatalf("create: %s", res)
			}
			id := res.Str("id")
			wantEmail := strings.ToLower(local) + "@example.com"
			wantPhone := "+44207946" + phone[len(phone)-4:]
			if res.Str("username") != name || res.Str("primary_email") != wantEmail || res.Str("primary_phone") != wantPhone ||
				res.JSON["has_password"] != false || res.Str("name") != "Bob Builder" {
				t.Fatalf("created user: %s", res)
			}
			if cd, _ := res.JSON["custom_data"].(map[string]any); cd["plan"] != "pro" {
				t.Fatalf("custom_data: %s", res)
			}

			// Duplicates, however written, are conflicts.
			for _, body := range []map[string]any{
				{"username": strings.ToUpper(name)},
				{"username": v1Name("x"), "email": strings.ToUpper(wantEmail)},
				{"username": v1Name("x"), "phone_number": strings.ReplaceAll(phone, " ", "")},
			} {
				res := f.call(t, http.MethodPost, "/v1/users", f.tok, body)
				if res.Status != http.StatusConflict || !strings.HasSuffix(res.Str("error_code"), "_already_in_use") {
					t.Fatalf("duplicate %v: %s", body, res)
				}
			}

			got := f.call(t, http.MethodGet, "/v1/users/"+id, f.tok, nil)
			if got.Status != http.StatusOK || got.Str("id") != id || got.Str("primary_email") != wantEmail {
				t.Fatalf("get: %s", got)
			}
			for _, q := range []string{"email=" + url.QueryEscape(strings.ToUpper(wantEmail)), "username=" + strings.ToUpper(name),
				"phone_number=" + url.QueryEscape(phone)} {
				found := f.call(t, http.MethodGet, "/v1/users?"+q, f.tok, nil)
				users, _ := found.JSON["users"].([]any)
				if found.Status != http.StatusOK || len(users) != 1 || users[0].(map[string]any)["id"] != id {
					t.Fatalf("find %s: %s", q, found)
				}
			}
			none := f.call(t, http.MethodGet, "/v1/users?email=nobody%40example.com", f.tok, nil)
			if users, _ := none.JSON["users"].([]any); none.Status != http.StatusOK || len(users) != 0 {
				t.Fatalf("find nobody: %s", none)
			}
			// Identifiers are filters of the users listing (see
			// TestUsersListing): two that name different users match none.
			if both := f.call(t, http.MethodGet, "/v1/users?email="+url.QueryEscape(wantEmail)+"&username=x"+name, f.tok, nil); both.Status != http.StatusOK ||
				len(both.JSON["users"].([]any)) != 0 {
				t.Fatalf("two identifiers: %s", both)
			}

			patched := f.call(t, http.MethodPatch, "/v1/users/"+id, f.tok, map[string]any{"name": "Robert", "email": "Robert." + name + "@Example.org",
				"email_verified": true})
			if patched.Status != http.StatusOK || patched.Str("name") != "Robert" || patched.Str("primary_email") != "robert."+strings.ToLower(name)+"@example.org" ||
				patched.JSON["email_verified"] != true || patched.Str("primary_phone") != wantPhone {
				t.Fatalf("patch: %s", patched)
			}
			otherID := f.createUser(t, map[string]any{"email": "other-" + strings.ToLower(name) + "@example.org"})
			res = f.call(t, http.MethodPatch, "/v1/users/"+otherID, f.tok, map[string]any{"email": patched.Str("primary_email")})
			wantError(t, res, http.StatusConflict, "email_already_in_use")
			wantDetail(t, f.call(t, http.MethodPatch, "/v1/users/"+id, f.tok, map[string]any{"username": 5}), "username")
			wantDetail(t, f.call(t, http.MethodPatch, "/v1/users/"+id, f.tok, map[string]any{"email": "not-an-email"}), "email")
			wantError(t, f.call(t, http.MethodPatch, "/v1/users/no-such-user", f.tok, map[string]any{"name": "x"}), http.StatusNotFound, "user_not_found")

			// Delete ends the user's sessions and tokens.
			if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": "Pw9!Delete-me-soon", "force_replace": false}); res.Status != http.StatusOK {
				t.Fatalf("password: %s", res)
			}
			session := f.signIn(t, name, "Pw9!Delete-me-soon")
			if res := f.call(t, http.MethodDelete, "/v1/users/"+id, f.tok, nil); res.Status != http.StatusNoContent {
				t.Fatalf("delete: %s", res)
			}
			wantError(t, f.call(t, http.MethodGet, "/v1/users/"+id, f.tok, nil), http.StatusNotFound, "user_not_found")
			wantError(t, f.call(t, http.MethodDelete, "/v1/users/"+id, f.tok, nil), http.StatusNotFound, "user_not_found")
			f.wantSessionEnded(t, session.Str("session_id"), session.Str("refresh_token"))
			wantError(t, f.authenticate(t, name, "Pw9!Delete-me-soon", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		})

		t.Run("create rejects bad input and changes nothing", func(t *testing.T) {
			t.Parallel()
			name := v1Name("bad")
			cases := []struct {
				body  any
				code  string
				field string
			}{
				{map[string]any{"username": 5}, "system_invalid_input", "username"},
				{map[string]any{"username": name, "nickname": "x"}, "system_invalid_input", "nickname"},
				{map[string]any{"username": name, "email": "no-at-sign"}, "system_invalid_input", "email"},
				{map[string]any{"username": name, "phone_number": "12"}, "system_invalid_input", "phone"},
				{map[string]any{"username": "has space"}, "system_invalid_input", "username"},
				{map[string]any{"username": name, "credentials": map[string]any{"password": 5}}, "system_invalid_input", "credentials.password"},
				{map[string]any{"username": name, "credentials": map[string]any{}}, "system_invalid_input", "credentials.password"},
				{map[string]any{"username": name, "custom_data": []int{1}}, "system_invalid_input", "custom_data"},
				{"[]", "system_invalid_input", ""},
				{map[string]any{"username": name, "credentials": map[string]any{"password": "password"}}, "password_policy_violation", ""},
				{map[string]any{"username": name, "credentials": map[string]any{"password": "short"}}, "password_policy_violation", ""},
				{map[string]any{"username": name, "credentials": map[string]any{"password": name + "-Pw9!"}}, "password_policy_violation", ""},
				{map[string]any{"name": "No Identifier"}, "user_missing_identifier", ""},
			}
			for _, tc := range cases {
				res := f.call(t, http.MethodPost, "/v1/users", f.tok, tc.body)
				if tc.field != "" {
					wantDetail(t, res, tc.field)
				} else {
					wantError(t, res, http.StatusBadRequest, tc.code)
				}
			}
			found := f.call(t, http.MethodGet, "/v1/users?username="+name, f.tok, nil)
			if users, _ := found.JSON["users"].([]any); len(users) != 0 {
				t.Fatalf("a bad request created a user: %s", found)
			}
		})

		t.Run("passwords", func(t *testing.T) {
			t.Parallel()
			name := v1Name("pw")
			id := f.createUser(t, map[string]any{"username": name})
			wantError(t, f.authenticate(t, name, "Pw9!anything-at-all", nil), http.StatusUnauthorized, "auth_invalid_credentials")
			wantError(t, f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": true}),
				http.StatusConflict, "user_password_not_set")
			first := v1Password()
			res := f.call(t, http.MethodPost, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": first, "force_replace": false})
			if res.Status != http.StatusOK || res.JSON["has_password"] != true || res.JSON["password_temporary"] != false || res.Str("password_updated_at") == "" {
				t.Fatalf("register password: %s", res)
			}
			f.signIn(t, name, first)
			res = f.call(t, http.MethodPost, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": v1Password()})
			if res.Status != http.StatusConflict {
				t.Fatalf("second register: %s", res)
			}
			wantError(t, f.call(t, http.MethodPut, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": "password"}),
				http.StatusBadRequest, "password_policy_violation")
			wantDetail(t, f.call(t, http.MethodPut, "/v1/users/"+id+"/password", f.tok, map[string]any{}), "password")
			wantDetail(t, f.call(t, http.MethodPut, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": v1Password(), "force_replace": "yes"}), "force_replace")
			second := v1Password()
			res = f.call(t, http.MethodPut, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": second})
			if res.Status != http.StatusOK || res.JSON["password_temporary"] != false {
				t.Fatalf("replace: %s", res)
			}
			wantError(t, f.authenticate(t, name, first, nil), http.StatusUnauthorized, "auth_invalid_credentials")
			f.signIn(t, name, second)
			wantDetail(t, f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{}), "expired")
			res = f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": true})
			if res.Status != http.StatusOK || res.JSON["password_expired"] != true {
				t.Fatalf("expire: %s", res)
			}
			res = f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": false})
			if res.Status != http.StatusOK || res.JSON["password_expired"] != false {
				t.Fatalf("unexpire: %s", res)
			}
			f.signIn(t, name, second)
			wantError(t, f.call(t, http.MethodPut, "/v1/users/no-such-user/password", f.tok, map[string]any{"password": v1Password()}),
				http.StatusNotFound, "user_not_found")
			if n := f.countAudit(t, id, "password.set", "success"); n != 2 {
				t.Errorf("%d password.set audit events, want 2", n)
			}
		})

		t.Run("suspend ends sessions", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			s := f.signIn(t, username, password)
			if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/suspend", f.tok, nil); res.Status != http.StatusOK {
				t.Fatalf("suspend: %s", res)
			}
			f.wantSessionEnded(t, s.Str("session_id"), s.Str("refresh_token"))
			if res := f.call(t, http.MethodGet, "/oidc/me", s.Str("access_token"), nil); res.Status != http.StatusUnauthorized {
				t.Fatalf("/oidc/me of a suspended user: %s", res)
			}
			if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/unsuspend", f.tok, nil); res.Status != http.StatusOK {
				t.Fatalf("unsuspend: %s", res)
			}
			// The old session stays ended; a new sign-in works.
			wantError(t, f.sessionAuth(t, s.Str("session_id")), http.StatusBadRequest, "session_not_found")
			f.signIn(t, username, password)
			wantError(t, f.call(t, http.MethodPost, "/v1/users/no-such-user/suspend", f.tok, nil), http.StatusNotFound, "user_not_found")
			wantError(t, f.call(t, http.MethodPost, "/v1/users/no-such-user/unlock", f.tok, nil), http.StatusNotFound, "user_not_found")
		})

		t.Run("mfa factors", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			factor, err := f.Services.Engine.Factors.Add(context.Background(), id, "totp", []byte("sealed-secret"), "")
			if err != nil {
				t.Fatal(err)
			}
			list := f.call(t, http.MethodGet, "/v1/users/"+id+"/mfa-factors", f.tok, nil)
			factors, _ := list.JSON["factors"].([]any)
			if list.Status != http.StatusOK || len(factors) != 1 {
				t.Fatalf("factors: %s", list)
			}
			if m := factors[0].(map[string]any); m["id"] != factor.ID || m["type"] != "totp" || strings.Contains(string(list.Raw), "secret") {
				t.Fatalf("factor: %s", list)
			}
			wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "mfa_required")
			wantError(t, f.call(t, http.MethodDelete, "/v1/users/"+id+"/mfa-factors/no-such-factor", f.tok, nil), http.StatusNotFound, "user_mfa_factor_not_found")
			if res := f.call(t, http.MethodDelete, "/v1/users/"+id+"/mfa-factors/"+factor.ID, f.tok, nil); res.Status != http.StatusNoContent {
				t.Fatalf("delete factor: %s", res)
			}
			wantError(t, f.call(t, http.MethodDelete, "/v1/users/"+id+"/mfa-factors/"+factor.ID, f.tok, nil), http.StatusNotFound, "user_mfa_factor_not_found")
			f.signIn(t, username, password)
			wantError(t, f.call(t, http.MethodGet, "/v1/users/no-such-user/mfa-factors", f.tok, nil), http.StatusNotFound, "user_not_found")
		})

		t.Run("scopes", func(t *testing.T) {
			t.Parallel()
			id, _, _ := f.newUser(t)
			tokenWith := func(scopes ...string) string { return f.ClientToken(f.CreateClient(scopes...)) }
			read, write, exec, mgmt := tokenWith("users:read"), tokenWith("users:write"), tokenWith("auth:execute"), tokenWith("management")
			type req struct {
				method, path string
				body         any
			}
			reads := []req{{http.MethodGet, "/v1/users/" + id, nil}, {http.MethodGet, "/v1/users?username=x", nil},
				{http.MethodGet, "/v1/users/" + id + "/mfa-factors", nil}}
			writes := []req{{http.MethodPost, "/v1/users", map[string]any{"username": v1Name("scope")}},
				{http.MethodPatch, "/v1/users/" + id, map[string]any{"name": "x"}},
				{http.MethodPost, "/v1/users/" + id + "/password", map[string]any{"password": v1Password()}},
				{http.MethodPut, "/v1/users/" + id + "/password", map[string]any{"password": v1Password()}},
				{http.MethodPatch, "/v1/users/" + id + "/password/expiration", map[string]any{"expired": true}},
				{http.MethodPost, "/v1/users/" + id + "/suspend", nil}, {http.MethodPost, "/v1/users/" + id + "/unsuspend", nil},
				{http.MethodPost, "/v1/users/" + id + "/unlock", nil},
				{http.MethodDelete, "/v1/users/" + id + "/mfa-factors/x", nil}, {http.MethodDelete, "/v1/users/" + id, nil}}
			for _, r := range reads {
				for _, tok := range []string{write, exec, mgmt} {
					wantError(t, f.call(t, r.method, r.path, tok, r.body), http.StatusForbidden, "insufficient_scope")
				}
				if res := f.call(t, r.method, r.path, read, r.body); res.Status != http.StatusOK {
					t.Fatalf("%s %s with users:read: %s", r.method, r.path, res)
				}
			}
			for _, r := range writes {
				for _, tok := range []string{read, exec, mgmt} {
					wantError(t, f.call(t, r.method, r.path, tok, r.body), http.StatusForbidden, "insufficient_scope")
				}
			}
			if res := f.call(t, http.MethodPost, "/v1/users", write, map[string]any{"username": v1Name("scope")}); res.Status != http.StatusCreated {
				t.Fatalf("create with users:write: %s", res)
			}
			for _, tok := range []string{read, write, exec} {
				wantError(t, f.call(t, http.MethodGet, "/v1/audit-events", tok, nil), http.StatusForbidden, "insufficient_scope")
			}
			if res := f.call(t, http.MethodGet, "/v1/audit-events?limit=5", mgmt, nil); res.Status != http.StatusOK {
				t.Fatalf("audit with management: %s", res)
			}
			wantDetail(t, f.call(t, http.MethodGet, "/v1/audit-events?limit=0", mgmt, nil), "limit")
			for _, path := range []string{"/v1/users/" + id, "/v1/audit-events"} {
				res := f.call(t, http.MethodGet, path, "", nil)
				wantError(t, res, http.StatusUnauthorized, "invalid_client_token")
			}
		})
	})
}

// The password history: with history_size 3, none of the last three
// passwords may come back.
func TestV1PasswordHistory(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		f.patchSettings(t, `{"password_policy":{"history_size":3}}`)
		name := v1Name("hist")
		p := []string{v1Password(), v1Password(), v1Password(), v1Password(), v1Password()}
		id := f.createUser(t, map[string]any{"username": name, "credentials": map[string]any{"password": p[0]}})
		replace := func(pw string) *apptest.Response {
			return f.call(t, http.MethodPut, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": pw})
		}
		for _, pw := range p[1:3] {
			if res := replace(pw); res.Status != http.StatusOK {
				t.Fatalf("replace: %s", res)
			}
		}
		// Current p2, recent p1 and p0: all refused.
		for i, pw := range p[:3] {
			res := replace(pw)
			wantError(t, res, http.StatusBadRequest, "password_policy_violation")
			if !strings.Contains(string(res.Raw), "password_rejected.history") {
				t.Errorf("reusing p%d: %s", i, res)
			}
		}
		for _, pw := range p[3:5] {
			if res := replace(pw); res.Status != http.StatusOK {
				t.Fatalf("replace: %s", res)
			}
		}
		// Now p4, p3, p2 are the last three; p1 may come back.
		wantError(t, replace(p[2]), http.StatusBadRequest, "password_policy_violation")
		if res := replace(p[1]); res.Status != http.StatusOK {
			t.Fatalf("p1 after three other passwords: %s", res)
		}
		f.signIn(t, name, p[1])
		// The reset path checks the history too.
		res := f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": true})
		if res.Status != http.StatusOK {
			t.Fatal(res)
		}
		res = f.authenticate(t, name, p[1], nil)
		wantError(t, res, http.StatusForbidden, "password_expired")
		reset := f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok, map[string]any{"reset_token": res.Str("reset_token"), "new_password": p[4]})
		wantError(t, reset, http.StatusBadRequest, "password_policy_violation")
		reset = f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok, map[string]any{"reset_token": res.Str("reset_token"), "new_password": p[1]})
		wantError(t, reset, http.StatusBadRequest, "password_policy_violation")
	})
}

// POST /v1/auth/password/validate reports every violated rule.
func TestV1PasswordValidate(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		validate := func(body any) *apptest.Response {
			return f.call(t, http.MethodPost, "/v1/auth/password/validate", f.tok, body)
		}
		cases := []struct {
			body  map[string]any
			valid bool
			codes []string
		}{
			{map[string]any{"password": "password"}, false, []string{"password_rejected.pwned"}},
			{map[string]any{"password": "abc"}, false, []string{"password_rejected.too_short"}},
			{map[string]any{"password": "Pw9!" + strings.Repeat("x", 300)}, false, []string{"password_rejected.too_long"}},
			{map[string]any{"password": "ferdinand-Pw9!", "username": "Ferdinand"}, false, []string{"password_rejected.restricted.user_info"}},
			{map[string]any{"password": "Pw9!stroNg-and-unusual"}, true, nil},
			{map[string]any{"password": "Pw9!stroNg-and-unusual", "username": "alice"}, true, nil},
		}
		for _, tc := range cases {
			res := validate(tc.body)
			if res.Status != http.StatusOK || res.JSON["valid_password"] != tc.valid {
				t.Fatalf("validate %v: %s", tc.body, res)
			}
			errs, ok := res.JSON["errors"].([]any)
			if !ok || len(errs) != len(tc.codes) {
				t.Fatalf("validate %v: errors %s", tc.body, res)
			}
			for i, e := range errs {
				m := e.(map[string]any)
				if m["code"] != tc.codes[i] || m["message"] == "" {
					t.Fatalf("validate %v: error %v", tc.body, m)
				}
			}
		}
		wantDetail(t, validate(map[string]any{}), "password")
		wantDetail(t, validate(map[string]any{"password": 1}), "password")
		wantDetail(t, validate(map[string]any{"password": "x", "extra": 1}), "extra")
		if f.count(t, "SELECT COUNT(*) FROM users") != 0 {
			t.Fatal("validate created something")
		}
	})
}

// Neither the log nor the audit trail ever holds a password or a token.
func TestV1SecretsStayOutOfLogsAndAudit(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b, apptest.With("LATCH_REFRESH_REUSE_GRACE", "0s"))
		name, password, wrong, next := v1Name("secret"), v1Password(), v1Password(), v1Password()
		id := f.createUser(t, map[string]any{"username": name, "credentials": map[string]any{"password": password}})
		secrets := []string{password, wrong, next, f.client.Secret, f.tok}

		wantError(t, f.authenticate(t, name, wrong, nil), http.StatusUnauthorized, "auth_invalid_credentials")
		s := f.signIn(t, name, password)
		r := f.refresh(t, s.Str("refresh_token"))
		f.refresh(t, s.Str("refresh_token")) // reuse
		secrets = append(secrets, s.Str("access_token"), s.Str("id_token"), s.Str("refresh_token"),
			r.Str("access_token"), r.Str("id_token"), r.Str("refresh_token"))
		f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": true})
		e := f.authenticate(t, name, password, nil)
		secrets = append(secrets, e.Str("reset_token"))
		if res := f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok, map[string]any{"reset_token": e.Str("reset_token"), "new_password": next}); res.Status != http.StatusOK {
			t.Fatalf("reset: %s", res)
		} else {
			secrets = append(secrets, res.Str("access_token"), res.Str("refresh_token"))
		}
		for i := 0; i < 5; i++ {
			f.authenticate(t, name, wrong, nil)
		}
		f.call(t, http.MethodPost, "/v1/auth/password/validate", f.tok, map[string]any{"password": wrong})

		events := f.auditEvents(t, "", "")
		var audit strings.Builder
		kinds := map[string]bool{}
		for _, ev := range events {
			kinds[fmt.Sprint(ev["event"], "/", ev["outcome"])] = true
		}
		var rows []struct{ Data string }
		if err := f.Services.DB.WithContext(context.Background()).Raw("SELECT data FROM audit_events").Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			audit.WriteString(row.Data)
		}
		for _, k := range []string{"sign_in/success", "sign_in/failure", "lockout/success", "password.reset/success", "refresh_token.reuse/failure", "user.created/success"} {
			if !kinds[k] {
				t.Errorf("no %s audit event (have %v)", k, kinds)
			}
		}
		logs := f.Logs.String()
		if !strings.Contains(logs, "/v1/auth/password/authenticate") {
			t.Fatal("the request log is empty")
		}
		for _, secret := range secrets {
			if secret == "" {
				t.Fatal("a secret of the flow is empty")
			}
			if strings.Contains(logs, secret) {
				t.Errorf("log contains a secret %.12q…", secret)
			}
			if strings.Contains(audit.String(), secret) {
				t.Errorf("audit contains a secret %.12q…", secret)
			}
		}
	})
}

// The user object's spelling is the request spelling too; the old request
// names stay accepted, and two spellings of one field must agree.
func TestV1UserFieldSpellings(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := v1Start(t, b)
		email := v1Name("spell") + "@example.com"
		res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": v1Name("spell"),
			"primary_email": email, "email_verified": true, "primary_phone": "+14155550199", "phone_verified": true})
		if res.Status != http.StatusCreated || res.Str("primary_email") != email || res.Str("primary_phone") != "+14155550199" ||
			res.JSON["phone_verified"] != true || res.JSON["email_verified"] != true {
			t.Fatalf("create with the user object's spelling: %s", res)
		}
		id := res.Str("id")
		// What was read can be sent back.
		back := map[string]any{"primary_email": res.JSON["primary_email"], "primary_phone": res.JSON["primary_phone"],
			"email_verified": res.JSON["email_verified"], "phone_verified": res.JSON["phone_verified"]}
		if res := f.call(t, http.MethodPatch, "/v1/users/"+id, f.tok, back); res.Status != http.StatusOK {
			t.Fatalf("patch with the fields read: %s", res)
		}
		// The old spelling still works.
		other := v1Name("old") + "@example.com"
		res = f.call(t, http.MethodPatch, "/v1/users/"+id, f.tok, map[string]any{"email": other, "phone_number": "+14155550198", "phone_number_verified": true})
		if res.Status != http.StatusOK || res.Str("primary_email") != other || res.Str("primary_phone") != "+14155550198" || res.JSON["phone_verified"] != true {
			t.Fatalf("patch with the old spelling: %s", res)
		}
		wantDetail(t, f.call(t, http.MethodPatch, "/v1/users/"+id, f.tok, map[string]any{"email": "a@example.com", "primary_email": "b@example.com"}), "email")
	})
}

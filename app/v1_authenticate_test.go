package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/latch-dev/latch/app/apptest"
)

const v1API = "https://api.example.com"

// idTokenClaims are the ID-token claims the tests look at.
type idTokenClaims struct {
	Sub           string   `json:"sub"`
	Sid           string   `json:"sid"`
	AMR           []string `json:"amr"`
	AuthTime      int64    `json:"auth_time"`
	Username      *string  `json:"username"`
	Email         *string  `json:"email"`
	PhoneNumber   *string  `json:"phone_number"`
	EmailVerified *bool    `json:"email_verified"`
	// The organization context (issue 12); roles only when requested.
	OrgID *string   `json:"org_id"`
	Roles *[]string `json:"roles"`
}

// verifyIDToken verifies an ID token the way a relying party does: go-oidc,
// configured from the discovery document, with the client id as audience.
func verifyIDToken(t *testing.T, env *apptest.Env, clientID, raw string) idTokenClaims {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), env.HTTP)
	provider, err := oidc.NewProvider(ctx, env.URL)
	if err != nil {
		t.Fatalf("oidc discovery: %v", err)
	}
	tok, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	var c idTokenClaims
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tok.Audience, clientID) || tok.Subject != c.Sub {
		t.Fatalf("aud %v sub %q", tok.Audience, tok.Subject)
	}
	return c
}

// Every row of the DESIGN §2.2 outcome table, over HTTP.
func TestV1PasswordAuthenticate(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)

		t.Run("success", func(t *testing.T) {
			t.Parallel()
			username, password := v1Name("Alice"), v1Password()
			email := "Alice." + username + "@Example.COM"
			phone := fmt.Sprintf("+1 415 555 %04d", v1Seq.Add(1)%10000)
			id := f.createUser(t, map[string]any{"username": username, "email": email, "phone_number": phone,
				"name": "Alice Example", "credentials": map[string]any{"password": password}})
			before := time.Now().Add(-time.Minute).Unix()

			res := f.authenticate(t, username, password, map[string]any{
				"claims":            map[string]any{"id_token": map[string]any{"email": nil, "username": nil}},
				"client_attributes": map[string]any{"ip_address": "203.0.113.7", "user_agent": "test/1.0"},
			})
			if res.Status != http.StatusOK {
				t.Fatalf("authenticate: %s", res)
			}
			for _, k := range []string{"access_token", "id_token", "refresh_token", "session_id"} {
				if res.Str(k) == "" {
					t.Fatalf("%s missing: %s", k, res)
				}
			}
			if res.Str("token_type") != "Bearer" || res.JSON["expires_in"] != float64(3600) {
				t.Fatalf("token_type/expires_in: %s", res)
			}
			if res.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", res.Header.Get("Cache-Control"))
			}

			c := verifyIDToken(t, f.Env, f.client.ID, res.Str("id_token"))
			if c.Sub != id || c.Sid != res.Str("session_id") {
				t.Errorf("sub %q sid %q, want %q %q", c.Sub, c.Sid, id, res.Str("session_id"))
			}
			if !slices.Contains(c.AMR, "pwd") {
				t.Errorf("amr %v lacks pwd", c.AMR)
			}
			if c.AuthTime < before || c.AuthTime > time.Now().Add(time.Minute).Unix() {
				t.Errorf("auth_time %d is not now", c.AuthTime)
			}
			wantEmail := strings.ToLower(email)
			if c.Email == nil || *c.Email != wantEmail || c.Username == nil || *c.Username != username {
				t.Errorf("claims request not honoured: email %v username %v", c.Email, c.Username)
			}
			if c.PhoneNumber != nil {
				t.Errorf("phone_number %q was not requested", *c.PhoneNumber)
			}
			// A refreshed ID token carries the claims requested at sign-in.
			refreshed := f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{"refresh_token": res.Str("refresh_token")})
			if refreshed.Status != http.StatusOK {
				t.Fatalf("refresh: %s", refreshed)
			}
			rc := verifyIDToken(t, f.Env, f.client.ID, refreshed.Str("id_token"))
			if rc.Email == nil || *rc.Email != strings.ToLower(email) || rc.Username == nil || rc.PhoneNumber != nil {
				t.Errorf("refreshed ID token claims: email %v username %v phone %v", rc.Email, rc.Username, rc.PhoneNumber)
			}

			// Without a resource the access token is for the issuer.
			at, hdr := verifyOutside(t, f.Env, res.Str("access_token"), f.Config.Issuer)
			if hdr.Type() != "at+jwt" || at.Subject() != id {
				t.Errorf("access token typ %q sub %q", hdr.Type(), at.Subject())
			}
			pc := at.PrivateClaims()
			if pc["sid"] != res.Str("session_id") || pc["client_id"] != f.client.ID {
				t.Errorf("access token sid/client_id: %v", pc)
			}
			if amr, _ := pc["amr"].([]any); !slices.Contains(amr, any("pwd")) {
				t.Errorf("access token amr %v", pc["amr"])
			}
			if _, ok := pc["auth_time"]; !ok {
				t.Error("access token lacks auth_time")
			}

			// The same user by email (any case) and by phone (any format).
			res = f.authenticate(t, strings.ToUpper(email), password, map[string]any{"username_type": "email"})
			if res.Status != http.StatusOK {
				t.Fatalf("by email: %s", res)
			}
			res = f.authenticate(t, strings.ReplaceAll(phone, " ", ""), password, map[string]any{"username_type": "phone_number"})
			if res.Status != http.StatusOK {
				t.Fatalf("by phone: %s", res)
			}
			// A username is not an email.
			wantError(t, f.authenticate(t, username, password, map[string]any{"username_type": "email"}),
				http.StatusBadRequest, "system_invalid_input")

			if n := f.countAudit(t, id, "sign_in", "success"); n != 3 {
				t.Errorf("%d sign_in success audit events, want 3", n)
			}
		})

		t.Run("resource", func(t *testing.T) {
			t.Parallel()
			c := f.CreateClientWith([]string{v1API}, "auth:execute")
			tok := f.ClientToken(c)
			_, username, password := f.newUser(t)
			res := f.call(t, http.MethodPost, "/v1/auth/password/authenticate", tok,
				authBody(username, password, map[string]any{"resource": v1API}))
			if res.Status != http.StatusOK {
				t.Fatalf("authenticate: %s", res)
			}
			verifyOutside(t, f.Env, res.Str("access_token"), v1API)
			verifyIDToken(t, f.Env, c.ID, res.Str("id_token"))
			// The audience survives refresh and session re-authentication.
			refreshed := f.call(t, http.MethodPost, "/v1/auth/token/refresh", tok, map[string]any{"refresh_token": res.Str("refresh_token")})
			if refreshed.Status != http.StatusOK {
				t.Fatalf("refresh: %s", refreshed)
			}
			verifyOutside(t, f.Env, refreshed.Str("access_token"), v1API)
			again := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", tok, map[string]any{"session_id": res.Str("session_id"), "resource": v1API})
			if again.Status != http.StatusOK {
				t.Fatalf("session authenticate: %s", again)
			}
			verifyOutside(t, f.Env, again.Str("access_token"), v1API)
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", tok,
				map[string]any{"session_id": res.Str("session_id"), "resource": "https://other.example.com"}), http.StatusBadRequest, "invalid_target")

			// The fixture's client may not ask for that resource.
			res = f.authenticate(t, username, password, map[string]any{"resource": v1API})
			wantError(t, res, http.StatusBadRequest, "invalid_target")
			res = f.call(t, http.MethodPost, "/v1/auth/password/authenticate", tok,
				authBody(username, password, map[string]any{"resource": "https://other.example.com"}))
			wantError(t, res, http.StatusBadRequest, "invalid_target")
		})

		t.Run("bad body changes nothing", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			good := func(extra map[string]any) map[string]any { return authBody(username, password, extra) }
			cases := []struct {
				name  string
				body  any
				field string
			}{
				{"username not a string", map[string]any{"username": 12, "password": password}, "username"},
				{"password not a string", map[string]any{"username": username, "password": true}, "password"},
				{"username_type not a string", good(map[string]any{"username_type": 1}), "username_type"},
				{"claims not an object", good(map[string]any{"claims": 5}), "claims"},
				{"client_attributes not an object", good(map[string]any{"client_attributes": "x"}), "client_attributes"},
				{"missing username", map[string]any{"password": password}, "username"},
				{"missing password", map[string]any{"username": username}, "password"},
				{"empty object", map[string]any{}, "username"},
				{"unknown field", good(map[string]any{"remember_me": true}), "remember_me"},
				{"not JSON", "username=" + username, "body"},
				{"truncated JSON", `{"username":"` + username, "body"},
				{"JSON array", `[]`, ""},
				{"trailing data", fmt.Sprintf(`{"username":%q,"password":%q} {}`, username, password), "body"},
				{"unknown username_type", good(map[string]any{"username_type": "nickname"}), "username_type"},
				{"malformed ip_address", good(map[string]any{"client_attributes": map[string]any{"ip_address": "999.1.2.3"}}), "client_attributes.ip_address"},
				{"overlong username", map[string]any{"username": strings.Repeat("u", 321), "password": password}, "username"},
				{"overlong password", map[string]any{"username": username, "password": strings.Repeat("p", 1025)}, "password"},
				{"overlong org_id", good(map[string]any{"org_id": strings.Repeat("o", 65)}), "org_id"},
				{"resource not a URI", good(map[string]any{"resource": strings.Repeat("r", 600)}), "resource"},
			}
			for _, tc := range cases {
				res := f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.tok, tc.body)
				if tc.field == "" {
					wantError(t, res, http.StatusBadRequest, "system_invalid_input")
				} else {
					wantDetail(t, res, tc.field)
				}
			}
			// An org_id of no organization is refused before the password.
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.tok, good(map[string]any{"org_id": "org_1"})),
				http.StatusBadRequest, "org_not_found")

			// Wrong content type and an oversized body.
			req, _ := http.NewRequest(http.MethodPost, f.URL+"/v1/auth/password/authenticate",
				strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, username, password)))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set("Authorization", "Bearer "+f.tok)
			res, err := v1Do(f.HTTP, req)
			if err != nil {
				t.Fatal(err)
			}
			wantDetail(t, res, "body")
			huge := fmt.Sprintf(`{"username":%q,"password":%q,"claims":{"id_token":{"x":%q}}}`,
				username, password, strings.Repeat("a", 70<<10))
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.tok, huge),
				http.StatusRequestEntityTooLarge, "request_too_large")

			// Nothing happened: no session, no failure, no attempt counted.
			if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", id); n != 0 {
				t.Errorf("%d sessions after bad requests", n)
			}
			if n := f.count(t, "SELECT COUNT(*) FROM sentinel_counters WHERE key LIKE ?", "%"+strings.ToLower(username)); n != 0 {
				t.Errorf("%d sentinel rows after bad requests", n)
			}
			if n := f.countAudit(t, id, "sign_in", ""); n != 0 {
				t.Errorf("%d sign_in audit events after bad requests", n)
			}
			f.signIn(t, username, password)
		})

		t.Run("client token", func(t *testing.T) {
			t.Parallel()
			_, username, password := f.newUser(t)
			body := authBody(username, password, nil)
			kid, key := latchKey(t, f.Env)
			expired := clientClaims(f.Env, f.client.ID)
			expired["iat"] = time.Now().Add(-3 * time.Hour).Unix()
			expired["exp"] = time.Now().Add(-2 * time.Hour).Unix()
			foreign := f.CreateClientWith([]string{v1API}, "auth:execute")
			wrongAud := f.form(t, "/oidc/token", foreign, url.Values{"grant_type": {"client_credentials"}, "resource": {v1API}})
			if wrongAud.Status != http.StatusOK {
				t.Fatalf("token for %s: %s", v1API, wrongAud)
			}
			user := f.signIn(t, username, password)
			cases := []struct{ name, auth string }{
				{"missing", ""},
				{"not bearer", "Basic " + f.tok},
				{"garbage", "Bearer not-a-token"},
				{"expired", "Bearer " + forge(t, gjwt.SigningMethodES256, key, map[string]any{"kid": kid, "typ": "at+jwt"}, expired)},
				{"wrong audience", "Bearer " + wrongAud.Str("access_token")},
				{"user access token", "Bearer " + user.Str("access_token")},
				{"id token", "Bearer " + user.Str("id_token")},
			}
			for _, tc := range cases {
				req, _ := http.NewRequest(http.MethodPost, f.URL+"/v1/auth/password/authenticate", strings.NewReader(
					fmt.Sprintf(`{"username":%q,"password":%q}`, username, password)))
				req.Header.Set("Content-Type", "application/json")
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				res, err := v1Do(f.HTTP, req)
				if err != nil {
					t.Fatal(err)
				}
				wantError(t, res, http.StatusUnauthorized, "invalid_client_token")
				h := res.Header.Get("WWW-Authenticate")
				if tc.name == "missing" || tc.name == "not bearer" {
					// No Bearer token sent: RFC 6750 §3.1, no error code.
					if h != `Bearer realm="latch"` {
						t.Errorf("%s: WWW-Authenticate %q", tc.name, h)
					}
				} else if !strings.HasPrefix(h, "Bearer") || !strings.Contains(h, `error="invalid_token"`) {
					t.Errorf("%s: WWW-Authenticate %q", tc.name, h)
				}
			}
			noScope := f.CreateClient("users:read", "users:write")
			res := f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.ClientToken(noScope), body)
			wantError(t, res, http.StatusForbidden, "insufficient_scope")
			// A token narrowed to other scopes lacks auth:execute too.
			res = f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.ClientToken(f.client, "users:read"), body)
			wantError(t, res, http.StatusForbidden, "insufficient_scope")
		})

		t.Run("unknown user and wrong password look the same", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			email := strings.ToLower(username) + "@example.org"
			if res := f.call(t, http.MethodPatch, "/v1/users/"+id, f.tok, map[string]any{"email": email}); res.Status != http.StatusOK {
				t.Fatalf("patch: %s", res)
			}
			pairs := [][2]*apptest.Response{
				{f.authenticate(t, username, password+"x", nil), f.authenticate(t, v1Name("ghost"), password, nil)},
				{f.authenticate(t, email, "Wrong-Passw0rd", map[string]any{"username_type": "email"}),
					f.authenticate(t, "ghost-"+email, "Wrong-Passw0rd", map[string]any{"username_type": "email"})},
			}
			for _, p := range pairs {
				wantError(t, p[0], http.StatusUnauthorized, "auth_invalid_credentials")
				if p[0].Status != p[1].Status || !bytes.Equal(p[0].Raw, p[1].Raw) {
					t.Fatalf("wrong password %s\nunknown user %s", p[0], p[1])
				}
			}
			if n := f.countAudit(t, id, "sign_in", "failure"); n != 2 {
				t.Errorf("%d sign_in failure audit events, want 2", n)
			}
		})

		t.Run("locked", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			for i := 0; i < 5; i++ {
				wantError(t, f.authenticate(t, username, "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
			}
			for _, pw := range []string{password, "Wrong-Passw0rd"} {
				res := f.authenticate(t, username, pw, nil)
				wantError(t, res, http.StatusForbidden, "auth_locked")
				ra, _ := res.JSON["retry_after"].(float64)
				if ra < 1 || ra > 900 {
					t.Fatalf("retry_after %v: %s", res.JSON["retry_after"], res)
				}
				if h := retryAfter(t, res); h != time.Duration(ra)*time.Second {
					t.Errorf("Retry-After %v, retry_after %v", h, ra)
				}
			}
			if n := f.countAudit(t, id, "lockout", ""); n != 1 {
				t.Errorf("%d lockout audit events, want 1", n)
			}
			u := f.call(t, http.MethodGet, "/v1/users/"+id, f.tok, nil)
			if ls, _ := u.JSON["locked_seconds"].(float64); ls < 1 {
				t.Errorf("locked_seconds %v", u.JSON["locked_seconds"])
			}
			found := f.call(t, http.MethodGet, "/v1/users?username="+username, f.tok, nil)
			if users, _ := found.JSON["users"].([]any); len(users) != 1 {
				t.Errorf("find: %s", found)
			} else if ls, _ := users[0].(map[string]any)["locked_seconds"].(float64); ls < 1 {
				t.Errorf("find: locked_seconds %v", users[0].(map[string]any)["locked_seconds"])
			}
			if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/unlock", f.tok, nil); res.Status != http.StatusNoContent {
				t.Fatalf("unlock: %s", res)
			}
			f.signIn(t, username, password)
		})

		t.Run("suspended", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/suspend", f.tok, nil); res.Status != http.StatusOK || res.JSON["suspended"] != true {
				t.Fatalf("suspend: %s", res)
			}
			wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "user_not_active")
			if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/unsuspend", f.tok, nil); res.Status != http.StatusOK || res.JSON["suspended"] != false {
				t.Fatalf("unsuspend: %s", res)
			}
			f.signIn(t, username, password)
		})

		t.Run("password expired flag", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			res := f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": true})
			if res.Status != http.StatusOK || res.JSON["password_expired"] != true {
				t.Fatalf("expire: %s", res)
			}
			res = f.authenticate(t, username, password, nil)
			wantError(t, res, http.StatusForbidden, "password_expired")
			resetToken := res.Str("reset_token")
			if resetToken == "" {
				t.Fatalf("no reset_token: %s", res)
			}
			if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", id); n != 0 {
				t.Errorf("%d sessions for an expired password", n)
			}
			f.checkReset(t, id, username, password, resetToken)
		})

		t.Run("reset token is single use under concurrency", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": true})
			res := f.authenticate(t, username, password, nil)
			wantError(t, res, http.StatusForbidden, "password_expired")
			const n = 6
			results := make([]*apptest.Response, n)
			errs := make([]error, n)
			passwords := make([]string, n)
			done := make(chan int)
			for i := 0; i < n; i++ {
				passwords[i] = v1Password()
				go func() {
					results[i], errs[i] = f.send(http.MethodPost, "/v1/auth/password/reset", f.tok,
						map[string]any{"reset_token": res.Str("reset_token"), "new_password": passwords[i]})
					done <- i
				}()
			}
			winner := -1
			for range n {
				i := <-done
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				switch {
				case results[i].Status == http.StatusOK:
					if winner >= 0 {
						t.Fatal("two resets with one token succeeded")
					}
					winner = i
				case results[i].Str("error_code") != "invalid_reset_token":
					t.Errorf("reset: %s", results[i])
				}
			}
			if winner < 0 {
				t.Fatal("no reset succeeded")
			}
			f.signIn(t, username, passwords[winner])
		})

		t.Run("reset bad input", func(t *testing.T) {
			t.Parallel()
			reset := func(body any) *apptest.Response {
				return f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok, body)
			}
			wantDetail(t, reset(map[string]any{"new_password": v1Password()}), "reset_token")
			wantDetail(t, reset(map[string]any{"reset_token": 7, "new_password": v1Password()}), "reset_token")
			wantError(t, reset(map[string]any{"reset_token": "x", "new_password": v1Password(), "org_id": "o"}), http.StatusBadRequest, "org_not_found")
			wantDetail(t, reset(`{"reset_token":`), "body")
			wantError(t, reset(map[string]any{"reset_token": "lrt_unknown", "new_password": v1Password()}), http.StatusBadRequest, "invalid_reset_token")
		})

		t.Run("temporary password at creation", func(t *testing.T) {
			t.Parallel()
			username, password := v1Name("tmpc"), v1Password()
			res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": username,
				"credentials": map[string]any{"password": password, "force_replace": true}})
			if res.Status != http.StatusCreated || res.JSON["password_temporary"] != true {
				t.Fatalf("create: %s", res)
			}
			wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "temporary_password")
		})

		t.Run("temporary password", func(t *testing.T) {
			t.Parallel()
			username, password := v1Name("temp"), v1Password()
			id := f.createUser(t, map[string]any{"username": username})
			res := f.call(t, http.MethodPost, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": password})
			if res.Status != http.StatusOK || res.JSON["password_temporary"] != true {
				t.Fatalf("register password: %s", res)
			}
			res = f.authenticate(t, username, password, nil)
			wantError(t, res, http.StatusForbidden, "temporary_password")
			if res.Str("reset_token") == "" {
				t.Fatalf("no reset_token: %s", res)
			}
			f.checkReset(t, id, username, password, res.Str("reset_token"))
		})

		t.Run("mfa required", func(t *testing.T) {
			t.Parallel()
			username, password := v1Name("mfa"), v1Password()
			id := f.createUser(t, map[string]any{"username": username, "email": "mfa-" + username + "@example.com",
				"credentials": map[string]any{"password": password}})
			if _, err := f.Services.Engine.Factors.Add(context.Background(), id, "totp", nil, ""); err != nil {
				t.Fatal(err)
			}
			res := f.authenticate(t, username, password, nil)
			wantError(t, res, http.StatusForbidden, "mfa_required")
			sid := res.Str("session_id")
			factors, _ := res.JSON["mfa_factors"].([]any)
			if sid == "" || len(factors) != 1 || factors[0] != "totp" {
				t.Fatalf("session_id/mfa_factors: %s", res)
			}
			if res.Str("email") != "m***@example.com" {
				t.Errorf("masked email %q", res.Str("email"))
			}
			if res.Str("access_token") != "" || res.Str("refresh_token") != "" {
				t.Fatalf("tokens with mfa_required: %s", res)
			}
			// The pending session exists but gives no tokens.
			list := f.call(t, http.MethodGet, "/v1/auth/users/"+id+"/sessions", f.tok, nil)
			sessions, _ := list.JSON["sessions"].([]any)
			if len(sessions) != 1 || sessions[0].(map[string]any)["state"] != "pending" ||
				sessions[0].(map[string]any)["session_id"] != sid {
				t.Fatalf("sessions: %s", list)
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid}),
				http.StatusBadRequest, "session_not_found")
			// The password again, into the pending session: still MFA.
			wantError(t, f.authenticate(t, username, password, map[string]any{"session_id": sid}), http.StatusForbidden, "mfa_required")
		})

		t.Run("session_id", func(t *testing.T) {
			t.Parallel()
			_, username, password := f.newUser(t)
			wantError(t, f.authenticate(t, username, password, map[string]any{"session_id": "no-such-session"}),
				http.StatusBadRequest, "session_not_found")
			first := f.signIn(t, username, password)
			res := f.authenticate(t, username, password, map[string]any{"session_id": first.Str("session_id")})
			if res.Status != http.StatusOK || res.Str("session_id") != first.Str("session_id") {
				t.Fatalf("re-authenticate into the session: %s", res)
			}
			// Another user's session is not found either.
			_, other, otherPW := f.newUser(t)
			wantError(t, f.authenticate(t, other, otherPW, map[string]any{"session_id": first.Str("session_id")}),
				http.StatusBadRequest, "session_not_found")
			// An ended one neither.
			if res := f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": first.Str("session_id")}); res.Status != http.StatusNoContent {
				t.Fatalf("logout: %s", res)
			}
			wantError(t, f.authenticate(t, username, password, map[string]any{"session_id": first.Str("session_id")}),
				http.StatusBadRequest, "session_not_found")
		})

		t.Run("wrong password reveals nothing", func(t *testing.T) {
			t.Parallel()
			reference := f.authenticate(t, v1Name("nobody"), "Wrong-Passw0rd", nil)
			wantError(t, reference, http.StatusUnauthorized, "auth_invalid_credentials")
			states := map[string]func(id string){
				"expired": func(id string) {
					f.call(t, http.MethodPatch, "/v1/users/"+id+"/password/expiration", f.tok, map[string]any{"expired": true})
				},
				"suspended": func(id string) { f.call(t, http.MethodPost, "/v1/users/"+id+"/suspend", f.tok, nil) },
				"mfa": func(id string) {
					if _, err := f.Services.Engine.Factors.Add(context.Background(), id, "totp", nil, ""); err != nil {
						t.Fatal(err)
					}
				},
				"temporary": func(id string) {
					res := f.call(t, http.MethodPut, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": v1Password(), "force_replace": true})
					if res.Status != http.StatusOK || res.JSON["password_temporary"] != true {
						t.Fatalf("temporary: %s", res)
					}
				},
			}
			for name, apply := range states {
				id, username, _ := f.newUser(t)
				apply(id)
				res := f.authenticate(t, username, "Wrong-Passw0rd", nil)
				if res.Status != reference.Status || !bytes.Equal(res.Raw, reference.Raw) {
					t.Errorf("%s account, wrong password: %s, want %s", name, res, reference)
				}
			}
		})
	})
}

// checkReset exercises POST /v1/auth/password/reset with a reset token for a
// user whose current password is oldPassword.
func (f *v1Fix) checkReset(t *testing.T, id, username, oldPassword, resetToken string) {
	t.Helper()
	reset := func(pw string) *apptest.Response {
		return f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok, map[string]any{"reset_token": resetToken, "new_password": pw})
	}
	wantDetail(t, f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok, map[string]any{"reset_token": resetToken}), "new_password")
	res := reset("password")
	wantError(t, res, http.StatusBadRequest, "password_policy_violation")
	res = reset("short")
	wantError(t, res, http.StatusBadRequest, "password_policy_violation")
	// Another client cannot use the token.
	other := f.CreateClient("auth:execute")
	newPassword := v1Password()
	res = f.call(t, http.MethodPost, "/v1/auth/password/reset", f.ClientToken(other), map[string]any{"reset_token": resetToken, "new_password": newPassword})
	wantError(t, res, http.StatusBadRequest, "invalid_reset_token")

	res = reset(newPassword)
	if res.Status != http.StatusOK || res.Str("access_token") == "" || res.Str("refresh_token") == "" || res.Str("session_id") == "" {
		t.Fatalf("reset: %s", res)
	}
	claims := verifyIDToken(t, f.Env, f.client.ID, res.Str("id_token"))
	if claims.Sub != id {
		t.Fatalf("reset signed in %q, want %q", claims.Sub, id)
	}
	wantError(t, reset(v1Password()), http.StatusBadRequest, "invalid_reset_token")
	wantError(t, f.authenticate(t, username, oldPassword, nil), http.StatusUnauthorized, "auth_invalid_credentials")
	f.signIn(t, username, newPassword)
	if n := f.countAudit(t, id, "password.reset", "success"); n != 1 {
		t.Errorf("%d password.reset audit events, want 1", n)
	}
}

// The expiry policy (valid days since the password was set) also yields
// password_expired, and only to the right password.
func TestV1PasswordExpiryPolicy(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		id, username, password := f.newUser(t)
		_, fresh, freshPW := f.newUser(t)
		f.patchSettings(t, `{"password_expiry":{"enabled":true,"valid_days":1}}`)
		old := time.Now().UTC().Add(-49 * time.Hour)
		if err := f.Services.DB.WithContext(context.Background()).
			Exec("UPDATE users SET password_updated_at = ? WHERE id = ?", old, id).Error; err != nil {
			t.Fatal(err)
		}
		wantError(t, f.authenticate(t, username, "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		res := f.authenticate(t, username, password, nil)
		wantError(t, res, http.StatusForbidden, "password_expired")
		f.signIn(t, fresh, freshPW)
		f.checkReset(t, id, username, password, res.Str("reset_token"))
	})
}

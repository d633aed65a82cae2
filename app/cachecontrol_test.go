package app_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// Responses that carry a secret or personal data — every /v1 and /api
// response, the token, introspection and userinfo endpoints, errors
// included — say Cache-Control: no-store (and Pragma: no-cache); the public
// documents verifiers fetch stay cacheable.
func TestNoStoreOnSensitiveResponses(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		u := f.user(t)
		signIn := f.signIn(t, u.Username, u.Password)
		access := signIn.Str("access_token")
		tempName, tempPassword := v1Name("temp"), v1Password()
		tempID := f.createUser(t, map[string]any{"username": tempName, "credentials": map[string]any{"password": tempPassword, "force_replace": true}})
		x := f.signInTx(t, u)

		type check struct {
			name   string
			status int
			res    func() *apptest.Response
		}
		checks := []check{
			{"v1 tokens", http.StatusOK, func() *apptest.Response { return f.authenticate(t, u.Username, u.Password, nil) }},
			{"v1 invalid credentials", http.StatusUnauthorized, func() *apptest.Response { return f.authenticate(t, u.Username, "Wrong-Passw0rd", nil) }},
			{"v1 reset token", http.StatusForbidden, func() *apptest.Response { return f.authenticate(t, tempName, tempPassword, nil) }},
			{"v1 bad body", http.StatusBadRequest, func() *apptest.Response {
				return f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.tok, "{")
			}},
			{"v1 no token", http.StatusUnauthorized, func() *apptest.Response { return f.call(t, http.MethodGet, "/v1/auth/whoami", "", nil) }},
			{"v1 user", http.StatusOK, func() *apptest.Response { return f.call(t, http.MethodGet, "/v1/users/"+u.ID, f.tok, nil) }},
			{"v1 user search", http.StatusOK, func() *apptest.Response {
				return f.call(t, http.MethodGet, "/v1/users?email="+url.QueryEscape(u.Email), f.tok, nil)
			}},
			{"v1 user not found", http.StatusNotFound, func() *apptest.Response { return f.call(t, http.MethodGet, "/v1/users/nobody", f.tok, nil) }},
			{"v1 sessions", http.StatusOK, func() *apptest.Response {
				return f.call(t, http.MethodGet, "/v1/auth/users/"+u.ID+"/sessions", f.tok, nil)
			}},
			{"v1 audit events", http.StatusOK, func() *apptest.Response {
				return f.call(t, http.MethodGet, "/v1/audit-events?user_id="+tempID, f.tok, nil)
			}},
			{"v1 unknown route", http.StatusNotFound, func() *apptest.Response { return f.call(t, http.MethodGet, "/v1/nothing-here", f.tok, nil) }},
			{"api interaction", http.StatusNoContent, func() *apptest.Response {
				return f.call(t, http.MethodPut, "/api/experience", f.tok, map[string]any{"interactionEvent": "SignIn"})
			}},
			{"api totp secret", http.StatusOK, func() *apptest.Response { return x.post(t, "/verification/totp/secret", nil) }},
			{"api backup codes", http.StatusOK, func() *apptest.Response { return x.post(t, "/verification/backup-code/generate", nil) }},
			{"api no interaction", http.StatusNotFound, func() *apptest.Response {
				return f.call(t, http.MethodPost, "/api/experience/identification", f.tok, map[string]any{"verificationId": "x"})
			}},
			{"oidc token", http.StatusOK, func() *apptest.Response {
				return f.form(t, "/oidc/token", f.client, url.Values{"grant_type": {"client_credentials"}})
			}},
			{"oidc token error", http.StatusUnauthorized, func() *apptest.Response {
				return f.form(t, "/oidc/token", apptest.Client{ID: f.client.ID, Secret: "wrong"}, url.Values{"grant_type": {"client_credentials"}})
			}},
			{"oidc introspection", http.StatusOK, func() *apptest.Response {
				return f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {access}})
			}},
			{"oidc userinfo", http.StatusOK, func() *apptest.Response { return f.call(t, http.MethodGet, "/oidc/me", access, nil) }},
			{"oidc userinfo error", http.StatusUnauthorized, func() *apptest.Response { return f.call(t, http.MethodGet, "/oidc/me", "", nil) }},
		}
		for _, c := range checks {
			res := c.res()
			if res.Status != c.status {
				t.Errorf("%s: got %s, want %d", c.name, res, c.status)
				continue
			}
			if cc, p := res.Header.Get("Cache-Control"), res.Header.Get("Pragma"); cc != "no-store" || p != "no-cache" {
				t.Errorf("%s (%d): Cache-Control %q, Pragma %q; want no-store, no-cache", c.name, res.Status, cc, p)
			}
		}
		for _, path := range []string{"/.well-known/openid-configuration", "/oidc/jwks"} {
			res := f.call(t, http.MethodGet, path, "", nil)
			if res.Status != http.StatusOK || res.Header.Get("Cache-Control") == "no-store" {
				t.Errorf("%s: %d, Cache-Control %q: a public document should stay cacheable", path, res.Status, res.Header.Get("Cache-Control"))
			}
		}
	})
}

package app_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

func TestDiscoveryAndJWKS(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		d := discovery(t, env)
		iss := env.Config.Issuer
		for k, v := range map[string]string{
			"issuer":                 iss,
			"token_endpoint":         iss + "/oidc/token",
			"jwks_uri":               iss + "/oidc/jwks",
			"introspection_endpoint": iss + "/oidc/token/introspection",
			"revocation_endpoint":    iss + "/oidc/token/revocation",
			"userinfo_endpoint":      iss + "/oidc/me",
		} {
			if d[k] != v {
				t.Errorf("%s = %#v, want %q", k, d[k], v)
			}
		}
		has := func(key string, want ...string) {
			t.Helper()
			list, _ := d[key].([]any)
			got := map[string]bool{}
			for _, v := range list {
				s, _ := v.(string)
				got[s] = true
			}
			for _, w := range want {
				if !got[w] {
					t.Errorf("%s = %v, lacks %q", key, list, w)
				}
			}
		}
		has("grant_types_supported", "client_credentials")
		has("token_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post")
		has("introspection_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post")
		has("revocation_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post")
		has("id_token_signing_alg_values_supported", "ES256")
		has("scopes_supported", "openid", "auth:execute", "users:read", "users:write", "management")
		// No authorization endpoint yet: no response type (see
		// TestDiscoveryAdvertisesOnlyWhatWorks).
		has("subject_types_supported", "public")

		res := env.JSON(http.MethodGet, "/oidc/jwks", "", nil)
		if res.Status != http.StatusOK {
			t.Fatalf("jwks: %s", res)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/jwk-set+json") && !strings.HasPrefix(ct, "application/json") {
			t.Errorf("JWKS Content-Type %q", ct)
		}
		keys, _ := res.JSON["keys"].([]any)
		if len(keys) != 2 {
			t.Fatalf("JWKS has %d keys, want the active and the next: %s", len(keys), res.Raw)
		}
		for _, k := range keys {
			m := k.(map[string]any)
			if m["kty"] != "EC" || m["crv"] != "P-256" || m["alg"] != "ES256" || m["use"] != "sig" || m["kid"] == "" {
				t.Errorf("JWK %v", m)
			}
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := m[private]; ok {
					t.Fatalf("JWKS publishes private member %q", private)
				}
			}
		}
	})
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		if res := env.JSON(http.MethodGet, "/healthz", "", nil); res.Status != http.StatusOK || res.Str("status") != "ok" {
			t.Fatalf("healthz: %s", res)
		}
		if res := env.JSON(http.MethodGet, "/readyz", "", nil); res.Status != http.StatusOK || res.Str("database") != "ok" {
			t.Fatalf("readyz: %s", res)
		}
		c := env.CreateClient("auth:execute")
		env.ClientToken(c)
		env.Form("/oidc/token", nil, url.Values{"grant_type": {"client_credentials"}}) // a 401

		res := env.JSON(http.MethodGet, "/metrics", "", nil)
		if res.Status != http.StatusOK {
			t.Fatalf("metrics: %s", res)
		}
		body := string(res.Raw)
		for _, want := range []string{
			`latch_http_requests_total{method="POST",route="/oidc/token",status="200"} 1`,
			`latch_http_requests_total{method="POST",route="/oidc/token",status="401"} 1`,
			`latch_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
			`latch_http_request_duration_seconds_bucket{method="POST",route="/oidc/token"`,
			`go_goroutines`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}

		// Readiness follows the database.
		if err := env.Services.DB.Close(); err != nil {
			t.Fatal(err)
		}
		if res := env.JSON(http.MethodGet, "/readyz", "", nil); res.Status != http.StatusServiceUnavailable || res.Str("status") != "unavailable" {
			t.Fatalf("readyz with the database closed: %s", res)
		}
		if res := env.JSON(http.MethodGet, "/healthz", "", nil); res.Status != http.StatusOK {
			t.Fatalf("healthz with the database closed: %s", res)
		}
	})
}

// Whatever goes wrong at the HTTP level, the answer is JSON in the route
// family's dialect, with a request id.
func TestHTTPErrorsAreJSON(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		allScopes := env.ClientToken(env.CreateClient("auth:execute", "users:read", "users:write", "management"))
		big := bytes.Repeat([]byte("a"), int(env.Config.BodyLimitBytes())+1)
		bigForm := "grant_type=client_credentials&pad=" + string(big)
		chunked := func() *http.Request { // no Content-Length: the limit applies while reading
			r, _ := http.NewRequest(http.MethodPost, env.URL+"/oidc/token", io.MultiReader(strings.NewReader(bigForm)))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}
		cases := []struct {
			name   string
			req    func() *http.Request
			status int
			field  string // "error_code" (/v1 dialect) or "error" (/oidc dialect)
			code   string
		}{
			{"unknown route", func() *http.Request { r, _ := http.NewRequest(http.MethodGet, env.URL+"/no/such/route", nil); return r }, 404, "error_code", "not_found"},
			{"unknown /v1 route", func() *http.Request {
				r, _ := http.NewRequest(http.MethodGet, env.URL+"/v1/nope", nil)
				r.Header.Set("Authorization", "Bearer "+allScopes)
				return r
			}, 404, "error_code", "not_found"},
			{"unknown /oidc route", func() *http.Request { r, _ := http.NewRequest(http.MethodGet, env.URL+"/oidc/nope", nil); return r }, 404, "error", "invalid_request"},
			{"wrong method on /oidc/token", func() *http.Request { r, _ := http.NewRequest(http.MethodGet, env.URL+"/oidc/token", nil); return r }, 405, "error", "invalid_request"},
			{"wrong method on /.well-known/openid-configuration", func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, env.URL+"/.well-known/openid-configuration", nil)
				return r
			}, 405, "error", "invalid_request"},
			{"wrong method on /healthz", func() *http.Request { r, _ := http.NewRequest(http.MethodPost, env.URL+"/healthz", nil); return r }, 405, "error_code", "method_not_allowed"},
			// Under /v1, Echo's group middleware registers catch-all routes
			// that answer a wrong method with 404 instead of 405 (reported);
			// either way the answer is JSON in the /v1 dialect.
			{"wrong method on /v1/auth/whoami", func() *http.Request {
				r, _ := http.NewRequest(http.MethodDelete, env.URL+"/v1/auth/whoami", nil)
				r.Header.Set("Authorization", "Bearer "+allScopes)
				return r
			}, -405, "error_code", ""},
			{"body over the limit", func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, env.URL+"/oidc/token", strings.NewReader(bigForm))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return r
			}, 413, "error", "invalid_request"},
			{"streamed body over the limit", chunked, 413, "error", "invalid_request"},
			{"body over the limit on /v1", func() *http.Request {
				r, _ := http.NewRequest(http.MethodPost, env.URL+"/v1/auth/whoami", bytes.NewReader(big))
				r.Header.Set("Content-Type", "application/json")
				return r
			}, 413, "error_code", "request_too_large"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res := env.Do(tc.req())
				switch {
				case tc.status < 0: // 405, or 404 (see above)
					if res.Status != -tc.status && res.Status != http.StatusNotFound {
						t.Fatalf("status: got %s, want %d (or 404)", res, -tc.status)
					}
				case res.Status != tc.status:
					t.Fatalf("status: got %s, want %d", res, tc.status)
				}
				if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || res.JSON == nil {
					t.Fatalf("not JSON: %q %s", res.Header.Get("Content-Type"), res.Raw)
				}
				if tc.code == "" && res.Str(tc.field) == "" || tc.code != "" && res.Str(tc.field) != tc.code {
					t.Fatalf("%s = %q, want %q (%s)", tc.field, res.Str(tc.field), tc.code, res)
				}
				if res.Header.Get("X-Request-Id") == "" {
					t.Fatal("no X-Request-Id")
				}
				if bytes.Contains(bytes.ToLower(res.Raw), []byte("<html")) || bytes.Contains(res.Raw, []byte("goroutine")) {
					t.Fatalf("leaks HTML or a stack: %s", res.Raw)
				}
			})
		}
	})
}

func TestEveryResponseHasARequestID(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute")
		tok := env.ClientToken(c)
		seen := map[string]bool{}
		check := func(name string, res *apptest.Response) {
			t.Helper()
			id := res.Header.Get("X-Request-Id")
			if id == "" {
				t.Fatalf("%s: no X-Request-Id (%s)", name, res)
			}
			if seen[id] {
				t.Fatalf("%s: request id %q reused", name, id)
			}
			seen[id] = true
		}
		check("healthz", env.JSON(http.MethodGet, "/healthz", "", nil))
		check("readyz", env.JSON(http.MethodGet, "/readyz", "", nil))
		check("metrics", env.JSON(http.MethodGet, "/metrics", "", nil))
		check("discovery", env.JSON(http.MethodGet, "/.well-known/openid-configuration", "", nil))
		check("jwks", env.JSON(http.MethodGet, "/oidc/jwks", "", nil))
		check("token", env.Form("/oidc/token", &c, url.Values{"grant_type": {"client_credentials"}}))
		check("token error", env.Form("/oidc/token", nil, url.Values{"grant_type": {"client_credentials"}}))
		check("introspection", env.Form("/oidc/token/introspection", &c, url.Values{"token": {tok}}))
		check("whoami", env.JSON(http.MethodGet, "/v1/auth/whoami", tok, nil))
		check("whoami 401", env.JSON(http.MethodGet, "/v1/auth/whoami", "", nil))
		check("404", env.JSON(http.MethodGet, "/nope", "", nil))

		// A well-formed incoming id is kept (to correlate with a gateway), a
		// suspicious one is replaced.
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/healthz", nil)
		req.Header.Set("X-Request-Id", "gateway-req-12345")
		if got := env.Do(req).Header.Get("X-Request-Id"); got != "gateway-req-12345" {
			t.Errorf("incoming request id not kept: %q", got)
		}
		req.Header.Set("X-Request-Id", "bad id\" with=quotes")
		if got := env.Do(req).Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, "\" =") {
			t.Errorf("unsafe incoming request id echoed: %q", got)
		}
	})
}

// Secrets never reach the logs: not the client secret (in either client
// authentication method), not the access token, not the request body.
func TestLogsHoldNoSecrets(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute", "users:read")
		tok := env.ClientToken(c) // basic
		res := env.Form("/oidc/token", nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret}})
		if res.Status != http.StatusOK {
			t.Fatalf("post auth: %s", res)
		}
		tok2 := res.Str("access_token")
		env.Form("/oidc/token", nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret + "wrong"}})
		env.Form("/oidc/token/introspection", &c, url.Values{"token": {tok}})
		env.JSON(http.MethodGet, "/v1/auth/whoami", tok, nil)
		env.JSON(http.MethodGet, "/v1/auth/whoami", tok2+"x", nil)
		env.Form("/oidc/token/revocation", &c, url.Values{"token": {tok2}})

		logs := env.Logs.String()
		if !strings.Contains(logs, `"route":"/oidc/token"`) {
			t.Fatalf("the token requests were not logged at all:\n%s", logs)
		}
		sigOf := func(jwt string) string { return jwt[strings.LastIndexByte(jwt, '.')+1:] }
		for name, secret := range map[string]string{
			"client secret":                  c.Secret,
			"client secret (without prefix)": strings.TrimPrefix(c.Secret, "lcs_"),
			"access token":                   tok,
			"access token signature":         sigOf(tok),
			"second access token":            sigOf(tok2),
		} {
			if strings.Contains(logs, secret) {
				t.Errorf("the logs contain the %s", name)
			}
		}
	})
}

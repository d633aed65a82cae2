package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// No route answers bad input with a 5xx or a non-JSON body: every route the
// server registers gets malformed, wrongly typed, empty and oversized
// bodies, with a token holding every scope and a live interaction.
func TestGarbageNeverYields500(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute", "users:read", "users:write", "management")
		tok := env.ClientToken(c)
		start := env.JSON(http.MethodPut, "/api/experience", tok, map[string]any{"interactionEvent": "SignIn"})
		handle := start.Header.Get("Latch-Interaction")
		bodies := []string{"", "{", "[]", "null", "42", `"x"`, `{"a":`, `{"username":[],"password":{},"code":1,"identifier":"x","verificationId":7}`,
			`{"session_id":"` + strings.Repeat("z", 70) + `"}`, strings.Repeat("{", 5000)}
		routes := env.App.Routes()
		if len(routes) < 60 {
			t.Fatalf("only %d routes", len(routes))
		}
		sent := 0
		defer func() { t.Logf("%d requests over %d routes", sent, len(routes)) }()
		for _, r := range routes {
			path := strings.NewReplacer(":user_id", "nouser", ":factor_id", "nofactor", ":connectorId", "x").Replace(r.Path)
			for _, body := range bodies {
				for _, ct := range []string{"application/json", "application/x-www-form-urlencoded", "text/plain"} {
					req, err := http.NewRequest(r.Method, env.URL+path, strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Content-Type", ct)
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("Latch-Interaction", handle)
					res := env.Do(req)
					sent++
					if res.Status >= 500 && res.Status != http.StatusNotImplemented {
						t.Errorf("%s %s %s %q: %s", r.Method, path, ct, body, res)
					}
					// The browser-facing routes of issue 15 answer HTML pages
					// (an error before the redirect URI is trusted is shown,
					// never redirected) or redirects.
					if browserRoute(r.Path) {
						if ct := res.Header.Get("Content-Type"); res.Status/100 != 3 && !strings.HasPrefix(ct, "text/html") && !json.Valid(res.Raw) {
							t.Errorf("%s %s: answer %d %q is neither a page, a redirect nor JSON", r.Method, path, res.Status, ct)
						}
						continue
					}
					if r.Method != http.MethodHead && res.Status != http.StatusNoContent && !json.Valid(res.Raw) && !strings.HasPrefix(r.Path, "/openapi") && r.Path != "/metrics" {
						t.Errorf("%s %s: non-JSON answer %d %.80q", r.Method, path, res.Status, res.Raw)
					}
				}
			}
		}
	})
}

// browserRoute reports whether a route is one of the hosted pages or the
// browser endpoints of the authorization code flow.
func browserRoute(path string) bool {
	return strings.HasPrefix(path, "/ui/") || strings.HasPrefix(path, "/oidc/auth") || path == "/oidc/session/end"
}

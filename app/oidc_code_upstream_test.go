package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// Issue 15: Latch's own callback page ({issuer}/ui/callback) is a social
// and SSO return URL for the interactions of the hosted pages only — those
// an authorization request started. An integrator's interaction may not
// use it (no client registers it), and a hosted page's interaction may not
// use an unregistered one. The sign-in page offers the connectors.
func TestHostedUpstreamCallback(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		conn := f.connector(t, "social", map[string]any{"name": "Upstream", "provider": "oidc", "config": f.op.oidcConfig()})
		hosted := f.Config.Issuer + "/ui/callback"
		start := map[string]any{"state": "st-1", "redirectUri": hosted}

		x := f.beginAs(t, f.appTok, "SignIn", false)
		expWantAPI(t, x.post(t, "/verification/social/"+conn+"/authorization-uri", start), http.StatusBadRequest, "guard.invalid_input")

		r := f.newRP(t, token.NewClient{Type: token.ClientWeb})
		_, challenge := pkce()
		br := f.browser(t)
		p := br.get(r.config.AuthCodeURL("st", challenge))
		if p.URL.Path != "/ui/sign-in" || !strings.Contains(p.Body, `data-social="`+conn+`"`) || !strings.Contains(p.Body, `data-callback="`+hosted+`"`) {
			t.Fatalf("sign-in page without the social button: %s %.2000s", p.URL, p.Body)
		}
		st, out := br.api(http.MethodPost, "/verification/social/"+conn+"/authorization-uri", start)
		if uri, _ := out["authorizationUri"].(string); st != http.StatusOK || !strings.HasPrefix(uri, f.op.URL) || !strings.Contains(uri, "redirect_uri=") {
			t.Fatalf("hosted authorization-uri: %d %v", st, out)
		}
		st, out = br.api(http.MethodPost, "/verification/social/"+conn+"/authorization-uri",
			map[string]any{"state": "st-2", "redirectUri": "https://elsewhere.example/cb"})
		if st != http.StatusBadRequest || out["code"] != "guard.invalid_input" {
			t.Fatalf("unregistered redirectUri on a hosted page: %d %v", st, out)
		}
		// The callback page itself: a page with the strict policy.
		cb := br.get(hosted + "?code=x&state=y")
		if cb.Status != http.StatusOK || !strings.Contains(cb.Header.Get("Content-Security-Policy"), "script-src 'self'") ||
			!strings.Contains(cb.Body, `id="callback"`) {
			t.Fatalf("callback page: %d %v", cb.Status, cb.Header)
		}
	})
}

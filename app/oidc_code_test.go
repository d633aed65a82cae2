package app_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// Issue 15: golang.org/x/oauth2 + coreos/go-oidc as the relying party
// complete a sign-in with the authorization code flow and PKCE, for a
// confidential (web) and a public (spa) client; the ID token carries nonce,
// at_hash, azp, auth_time, amr and sid; a refresh token comes only with
// offline_access; the browser session skips the page unless prompt=login.
func TestAuthorizationCodeGoOIDC(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		u := f.user(t)

		t.Run("WebClient", func(t *testing.T) {
			r := f.newRP(t, token.NewClient{Type: token.ClientWeb})
			if r.secret == "" {
				t.Fatal("a web client has a secret")
			}
			br := f.browser(t)
			verifier, challenge := pkce()
			back := br.authorize(r.config.AuthCodeURL("st-1", challenge, oidc.Nonce("n-1")), u.Username, u.Password)
			tok, idt, claims := r.exchange(t, codeOf(t, back, "st-1"), verifier, "n-1")
			if idt.Subject != u.ID || claims["azp"] != r.client.ID || claims["sid"] == "" || claims["auth_time"] == nil {
				t.Fatalf("ID token claims %v", claims)
			}
			wantAMR(t, claims["amr"], "pwd")
			if claims["email"] != u.Email {
				t.Fatalf("scope email: email claim %v, want %s", claims["email"], u.Email)
			}
			if tok.RefreshToken != "" {
				t.Fatal("a refresh token without offline_access")
			}
			if back.Query().Get("iss") != f.URL {
				t.Fatalf("iss %q in the authorization response (RFC 9207)", back.Query().Get("iss"))
			}
			info, err := r.provider.UserInfo(r.ctx(), oauth2.StaticTokenSource(tok))
			if err != nil || info.Subject != u.ID {
				t.Fatalf("userinfo: %v %v", info, err)
			}

			// The browser session skips the page ...
			verifier, challenge = pkce()
			p := br.get(r.config.AuthCodeURL("st-2", challenge, oidc.Nonce("n-2")))
			if p.Location == nil {
				t.Fatalf("live browser session: want a redirect to the client, got %d at %s", p.Status, p.URL)
			}
			_, _, again := r.exchange(t, codeOf(t, p.Location, "st-2"), verifier, "n-2")
			if again["sid"] != claims["sid"] {
				t.Fatalf("silent sign-in: sid %v, want %v", again["sid"], claims["sid"])
			}
			// ... but not with prompt=login, nor when max_age is exceeded.
			for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
				_, challenge = pkce()
				p = br.get(r.config.AuthCodeURL("st-3", challenge, opt))
				if p.Location != nil || p.URL.Path != "/ui/sign-in" {
					t.Fatalf("prompt=login/max_age=0: want the sign-in page, got %d at %s (Location %v)", p.Status, p.URL, p.Location)
				}
			}
		})

		t.Run("PublicClientOfflineAccess", func(t *testing.T) {
			r := f.newRP(t, token.NewClient{Type: token.ClientSPA})
			if r.secret != "" {
				t.Fatal("a public client got a secret")
			}
			r.config.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			r.config.Scopes = append(r.config.Scopes, "offline_access")
			verifier, challenge := pkce()
			back := f.browser(t).authorize(r.config.AuthCodeURL("s", challenge, oidc.Nonce("n")), u.Email, u.Password)
			tok, _, _ := r.exchange(t, codeOf(t, back, "s"), verifier, "n")
			if tok.RefreshToken == "" {
				t.Fatal("offline_access: no refresh token")
			}
			// A public client refreshes with its client_id alone.
			st, out := f.tokenForm(t, r.client.ID, "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
			if st != http.StatusOK || out["access_token"] == nil {
				t.Fatalf("public refresh: %d %v", st, out)
			}
			// It can never use client_credentials, nor pass for a confidential client.
			st, out = f.tokenForm(t, r.client.ID, "", url.Values{"grant_type": {"client_credentials"}})
			if st == http.StatusOK {
				t.Fatalf("public client_credentials: %d %v", st, out)
			}
			web := f.newRP(t, token.NewClient{Type: token.ClientWeb})
			st, out = f.tokenForm(t, web.client.ID, "", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {rpRedirect}})
			if st != http.StatusUnauthorized || out["error"] != "invalid_client" {
				t.Fatalf("confidential client without secret: %d %v", st, out)
			}
		})

		t.Run("ConfidentialRefreshWithoutOfflineAccess", func(t *testing.T) {
			r := f.newRP(t, token.NewClient{Type: token.ClientWeb, RefreshWithoutOfflineAccess: true})
			verifier, challenge := pkce()
			back := f.browser(t).authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password)
			if tok, _, _ := r.exchange(t, codeOf(t, back, "s"), verifier, ""); tok.RefreshToken == "" {
				t.Fatal("a client configured for refresh tokens got none")
			}
			if _, _, err := f.Services.Tokens.Clients.Create(context.Background(), token.NewClient{Name: "spa", Type: token.ClientSPA,
				RedirectURIs: []string{rpRedirect}, RefreshWithoutOfflineAccess: true}); err == nil {
				t.Fatal("a public client was configured for refresh tokens without offline_access")
			}
		})

		t.Run("PromptNone", func(t *testing.T) {
			r := f.newRP(t, token.NewClient{Type: token.ClientWeb})
			_, challenge := pkce()
			p := f.browser(t).get(r.config.AuthCodeURL("quiet", challenge, oauth2.SetAuthURLParam("prompt", "none")))
			if p.Location == nil || p.Location.Query().Get("error") != "login_required" || p.Location.Query().Get("state") != "quiet" {
				t.Fatalf("prompt=none without a session: %d %v", p.Status, p.Location)
			}
		})

		t.Run("ThirdPartyConsent", func(t *testing.T) {
			third := false
			r := f.newRP(t, token.NewClient{Type: token.ClientWeb, FirstParty: &third})
			br := f.browser(t)
			verifier, challenge := pkce()
			p := br.get(r.config.AuthCodeURL("c", challenge))
			if p.URL.Path != "/ui/sign-in" {
				t.Fatalf("want the sign-in page, got %s", p.URL)
			}
			_, out := br.signInOnPage(u.Username, u.Password)
			consent := br.get(out["redirectTo"].(string))
			if consent.Status != http.StatusOK || !strings.Contains(consent.Body, "Allow access?") || !strings.Contains(consent.Body, "See your e-mail address") {
				t.Fatalf("consent page: %d %.400s", consent.Status, consent.Body)
			}
			request := url.Values{"request": {consent.URL.Query().Get("request")}, "decision": {"allow"}}
			// A cross-site form (CSRF) cannot consent.
			if res := br.postForm("/oidc/auth/consent", "https://evil.example", request); res.Location != nil || res.Status != http.StatusBadRequest {
				t.Fatalf("cross-site consent: %d %v", res.Status, res.Location)
			}
			res := br.postForm("/oidc/auth/consent", f.URL, request)
			if res.Location == nil {
				t.Fatalf("consent: %d %.300s", res.Status, res.Body)
			}
			r.exchange(t, codeOf(t, res.Location, "c"), verifier, "")
			// Consent is remembered per user and client.
			_, challenge = pkce()
			if p := br.get(r.config.AuthCodeURL("c2", challenge)); p.Location == nil || p.Location.Query().Get("code") == "" {
				t.Fatalf("remembered consent: %d at %s", p.Status, p.URL)
			}
		})
	})
}

// postForm submits an HTML form from origin.
func (b *browser) postForm(path, origin string, form url.Values) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.f.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	p := &page{Status: res.StatusCode, URL: res.Request.URL, Header: res.Header}
	buf := new(strings.Builder)
	_, _ = io.Copy(buf, res.Body)
	p.Body = buf.String()
	if loc := res.Header.Get("Location"); loc != "" && res.StatusCode/100 == 3 {
		p.Location, _ = url.Parse(loc)
	}
	return p
}

package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// Issue 15 security: code replay revokes what the first use issued; PKCE
// mismatch; redirect_uri mismatch is never redirected; state is echoed in
// errors; plain PKCE and PKCE-less public clients are refused; open
// redirects through post_logout_redirect_uri; clickjacking headers; logout
// ends the session.
func TestAuthorizationCodeSecurity(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		u := f.user(t)
		r := f.newRP(t, token.NewClient{Type: token.ClientWeb, PostLogoutRedirectURIs: []string{"https://rp.example/bye"}})
		r.config.Scopes = append(r.config.Scopes, "offline_access")

		t.Run("CodeReplay", func(t *testing.T) {
			verifier, challenge := pkce()
			back := f.browser(t).authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password)
			code := codeOf(t, back, "s")
			tok, _, _ := r.exchange(t, code, verifier, "")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {verifier}}
			st, out := f.tokenForm(t, r.client.ID, r.secret, form)
			if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("replayed code: %d %v", st, out)
			}
			// What the first use issued is revoked: the access token and the
			// refresh token.
			if _, err := r.provider.UserInfo(r.ctx(), oauth2.StaticTokenSource(tok)); err == nil {
				t.Fatal("the access token of a replayed code still works at userinfo")
			}
			st, out = f.tokenForm(t, r.client.ID, r.secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
			if st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("refresh token of a replayed code: %d %v", st, out)
			}
		})

		t.Run("PKCEMismatch", func(t *testing.T) {
			_, challenge := pkce()
			code := codeOf(t, f.browser(t).authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password), "s")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {oauth2.GenerateVerifier()}}
			if st, out := f.tokenForm(t, r.client.ID, r.secret, form); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("wrong verifier: %d %v", st, out)
			}
			// The code is spent: not even the right verifier redeems it now.
			form.Del("code_verifier")
			if st, out := f.tokenForm(t, r.client.ID, r.secret, form); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("no verifier: %d %v", st, out)
			}
		})

		t.Run("CodeBoundToClientAndRedirect", func(t *testing.T) {
			verifier, challenge := pkce()
			code := codeOf(t, f.browser(t).authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password), "s")
			other := f.newRP(t, token.NewClient{Type: token.ClientWeb})
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {verifier}}
			if st, out := f.tokenForm(t, other.client.ID, other.secret, form); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("another client's code: %d %v", st, out)
			}
			_, challenge = pkce()
			code = codeOf(t, f.browser(t).authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password), "s")
			form.Set("code", code)
			form.Set("redirect_uri", rpRedirect+"/other")
			if st, out := f.tokenForm(t, r.client.ID, r.secret, form); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("other redirect_uri at the token endpoint: %d %v", st, out)
			}
		})

		t.Run("UntrustedRedirectNeverRedirected", func(t *testing.T) {
			_, challenge := pkce()
			good := r.config.AuthCodeURL("s", challenge)
			for name, change := range map[string]func(q url.Values){
				"mismatch":       func(q url.Values) { q.Set("redirect_uri", "https://evil.example/callback") },
				"prefix":         func(q url.Values) { q.Set("redirect_uri", rpRedirect+"/../evil") },
				"missing":        func(q url.Values) { q.Del("redirect_uri") },
				"unknown client": func(q url.Values) { q.Set("client_id", "nope") },
				"repeated":       func(q url.Values) { q.Add("redirect_uri", rpRedirect) },
			} {
				au, _ := url.Parse(good)
				q := au.Query()
				change(q)
				au.RawQuery = q.Encode()
				p := f.browser(t).get(au.String())
				if p.Location != nil || p.Status != http.StatusBadRequest || !strings.Contains(p.Header.Get("Content-Type"), "text/html") {
					t.Fatalf("%s: want an error page, got %d Location %v", name, p.Status, p.Location)
				}
			}
		})

		t.Run("ErrorsGoBackWithState", func(t *testing.T) {
			spa := f.newRP(t, token.NewClient{Type: token.ClientSPA})
			_, challenge := pkce()
			for name, tc := range map[string]struct {
				rp    *rp
				opts  []oauth2.AuthCodeOption
				error string
			}{
				"public without PKCE": {spa, nil, "invalid_request"},
				"plain PKCE": {spa, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43)),
					oauth2.SetAuthURLParam("code_challenge_method", "plain")}, "invalid_request"},
				"no openid":     {r, []oauth2.AuthCodeOption{challenge, oauth2.SetAuthURLParam("scope", "email")}, "invalid_scope"},
				"response_type": {r, []oauth2.AuthCodeOption{challenge, oauth2.SetAuthURLParam("response_type", "token")}, "unsupported_response_type"},
				"bad max_age":   {r, []oauth2.AuthCodeOption{challenge, oauth2.SetAuthURLParam("max_age", "-1")}, "invalid_request"},
				"request":       {r, []oauth2.AuthCodeOption{challenge, oauth2.SetAuthURLParam("request", "x.y.z")}, "request_not_supported"},
			} {
				p := f.browser(t).get(tc.rp.config.AuthCodeURL("keep-me", tc.opts...))
				if p.Location == nil || p.Location.Query().Get("error") != tc.error || p.Location.Query().Get("state") != "keep-me" ||
					!strings.HasPrefix(p.Location.String(), rpRedirect+"?") {
					t.Fatalf("%s: want %s back at the client with state, got %d %v", name, tc.error, p.Status, p.Location)
				}
			}
		})

		t.Run("PagesRefuseFraming", func(t *testing.T) {
			_, challenge := pkce()
			p := f.browser(t).get(r.config.AuthCodeURL("s", challenge, oauth2.SetAuthURLParam("login_hint", "hint@example.com")))
			csp := p.Header.Get("Content-Security-Policy")
			if p.URL.Path != "/ui/sign-in" || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") ||
				strings.Contains(csp, "unsafe-inline") || p.Header.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("sign-in page headers: CSP %q, XFO %q", csp, p.Header.Get("X-Frame-Options"))
			}
			if !strings.Contains(p.Body, `value="hint@example.com"`) || !strings.Contains(p.Body, `<label for="password">`) {
				t.Fatalf("sign-in page: login_hint and labels: %.600s", p.Body)
			}
		})

		t.Run("Logout", func(t *testing.T) {
			br := f.browser(t)
			verifier, challenge := pkce()
			tok, _, _ := r.exchange(t, codeOf(t, br.authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password), "s"), verifier, "")
			hint, _ := tok.Extra("id_token").(string)
			end := func(q url.Values) *page { return br.get(f.URL + "/oidc/session/end?" + q.Encode()) }
			// Open-redirect attempts are shown an error, never followed.
			for _, evil := range []string{"https://evil.example/", "https://rp.example/bye/../../evil", "//evil.example", "https://rp.example/bye?x=1", "https://rp.example.evil.example/bye"} {
				p := end(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {evil}})
				if p.Location != nil || p.Status != http.StatusBadRequest {
					t.Fatalf("post_logout_redirect_uri %q: %d %v", evil, p.Status, p.Location)
				}
			}
			// Without a hint nothing names the client: no redirect either.
			if p := end(url.Values{"post_logout_redirect_uri": {"https://rp.example/bye"}}); p.Location != nil {
				t.Fatalf("registered URI without hint or client_id: redirected to %v", p.Location)
			}
			// A logout nobody confirmed (no hint: maybe a cross-site GET) asks first.
			if p := end(url.Values{}); p.Location != nil || !strings.Contains(p.Body, "Do you want to sign out?") {
				t.Fatalf("logout without hint: %d %.300s", p.Status, p.Body)
			}
			p := end(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://rp.example/bye"}, "state": {"bye-state"}})
			if p.Location == nil || p.Location.String() != "https://rp.example/bye?state=bye-state" {
				t.Fatalf("logout: %d %v", p.Status, p.Location)
			}
			if _, err := r.provider.UserInfo(r.ctx(), oauth2.StaticTokenSource(tok)); err == nil {
				t.Fatal("the session's access token still works after logout")
			}
			if st, out := f.tokenForm(t, r.client.ID, r.secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); st == http.StatusOK {
				t.Fatalf("refresh after logout: %d %v", st, out)
			}
			_, challenge = pkce()
			if p := br.get(r.config.AuthCodeURL("s", challenge)); p.Location != nil || p.URL.Path != "/ui/sign-in" {
				t.Fatalf("after logout the browser session must be gone: %d at %s", p.Status, p.URL)
			}
		})

		t.Run("BrowserSessionCookie", func(t *testing.T) {
			br := f.browser(t)
			_, challenge := pkce()
			if p := br.get(r.config.AuthCodeURL("s", challenge)); p.URL.Path != "/ui/sign-in" {
				t.Fatalf("want the sign-in page, got %s", p.URL)
			}
			st, rec := br.api(http.MethodPost, "/verification/password", map[string]any{
				"identifier": map[string]any{"type": "username", "value": u.Username}, "password": u.Password})
			if st != http.StatusOK {
				t.Fatalf("password: %d %v", st, rec)
			}
			br.api(http.MethodPost, "/identification", map[string]any{"verificationId": rec["verificationId"]})
			req, _ := http.NewRequest(http.MethodPost, f.URL+"/api/experience/submit", nil)
			req.Header.Set("Content-Type", "application/json")
			res, err := br.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out map[string]string
			_ = json.NewDecoder(res.Body).Decode(&out)
			res.Body.Close()
			var session *http.Cookie
			for _, c := range res.Cookies() {
				if c.Name == "latch_session" {
					session = c
				}
			}
			if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/oidc" ||
				!strings.HasPrefix(session.Value, "lbs_") || res.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("browser session cookie %+v (Cache-Control %q)", session, res.Header.Get("Cache-Control"))
			}
			// The redirectTo is bound to this browser: another one (without
			// its session cookie) cannot turn it into a code.
			if out["redirectTo"] == "" {
				t.Fatalf("submit answered %v", out)
			}
			if q := f.browser(t).get(out["redirectTo"]); q.Location != nil || q.Status != http.StatusBadRequest {
				t.Fatalf("redirectTo in another browser: %d %v", q.Status, q.Location)
			}
			if q := br.get(out["redirectTo"]); q.Location == nil || q.Location.Query().Get("code") == "" {
				t.Fatalf("redirectTo in the signing-in browser: %d %v", q.Status, q.Location)
			}
		})

		t.Run("Discovery", func(t *testing.T) {
			for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
				d := f.JSON(http.MethodGet, path, "", nil).JSON
				if d["authorization_endpoint"] != f.URL+"/oidc/auth" || d["end_session_endpoint"] != f.URL+"/oidc/session/end" ||
					!sameStrings(d["code_challenge_methods_supported"], "S256") || !sameStrings(d["response_types_supported"], "code") ||
					!sameStrings(d["response_modes_supported"], "query") || !sameStrings(d["prompt_values_supported"], "none", "login", "consent") {
					t.Fatalf("%s: %v", path, d)
				}
			}
		})
	})
}

func sameStrings(v any, want ...string) bool {
	list, _ := v.([]any)
	if len(list) != len(want) {
		return false
	}
	for i, w := range want {
		if list[i] != w {
			return false
		}
	}
	return true
}

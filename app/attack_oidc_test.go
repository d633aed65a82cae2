package app_test

// Attacks on the authorization code flow's hosted pages and organization
// context: the hosted interaction cut loose from its authorization request,
// Latch's own callback as an integrator's redirect URI, and the
// organization of a request swapped along the way.

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// interactionCookieOf is the hosted interaction's handle in a browser's jar.
func (b *browser) interactionCookie(t testing.TB) string {
	t.Helper()
	u, _ := url.Parse(b.f.URL + "/api/experience/submit")
	for _, c := range b.hc.Jar.Cookies(u) {
		if c.Name == "latch_interaction" {
			return c.Value
		}
	}
	t.Fatal("the browser holds no interaction cookie")
	return ""
}

// signInByHandle signs in with a password on the interaction behind
// handle, sent in the Latch-Interaction header (no cookie, no Bearer), and
// returns the submit's answer.
func signInByHandle(t testing.TB, f *expFix, handle, ident, password string) *apptest.Response {
	t.Helper()
	call := func(path string, body any) *apptest.Response {
		x := &expTx{f: f, hc: f.HTTP, handle: handle}
		return x.post(t, path, body)
	}
	rec := expMust(t, call("/verification/password", map[string]any{"identifier": expIdent("username", ident), "password": password}),
		http.StatusOK, "password")
	expMust(t, call("/identification", map[string]any{"verificationId": rec.Str("verificationId")}), http.StatusNoContent, "identify")
	return call("/submit", nil)
}

// TestAttackHostedInteraction: the interaction of the hosted pages is the
// authorizing client's own (no ClientAccessToken), and its submit answers
// with redirectTo back to the request, never with tokens. An attacker
// (the person at the browser) cuts it loose from its request — the request
// expired while the interaction lives on, or the request was restarted in
// another interaction while the first one's handle was kept — and submits
// it: no tokens, not outside the organization the request named, without
// consent or PKCE.
func TestAttackHostedInteraction(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		r := f.newRP(t, token.NewClient{Type: token.ClientWeb})
		org := f.newOrg(t, nil).Str("id")
		u := f.user(t) // not a member of org
		start := func(t *testing.T) (*browser, string, string) {
			_, challenge := pkce()
			br := f.browser(t)
			p := br.get(r.config.AuthCodeURL("st-x", challenge, oidc.Nonce("n-x"), oauth2.SetAuthURLParam("organization_id", org)))
			if p.URL.Path != "/ui/sign-in" {
				t.Fatalf("authorization request ended at %s", p.URL)
			}
			return br, p.URL.Query().Get("request"), br.interactionCookie(t)
		}
		noTokens := func(t *testing.T, res *apptest.Response) {
			t.Helper()
			if res.Str("access_token") != "" || res.Str("id_token") != "" || res.Str("refresh_token") != "" {
				t.Fatalf("a hosted interaction cut loose from its request answered with tokens: %s", res)
			}
			if res.Status == http.StatusOK {
				t.Fatalf("a hosted interaction cut loose from its request was submitted: %s", res)
			}
			if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", u.ID); n != 0 {
				t.Fatalf("%d sessions opened", n)
			}
		}

		t.Run("RequestExpired", func(t *testing.T) {
			_, request, handle := start(t)
			if res := f.Services.DB.Exec("UPDATE oidc_auth_requests SET expires_at = ? WHERE id = ?", time.Now().Add(-time.Minute).UTC(), request); res.Error != nil || res.RowsAffected != 1 {
				t.Fatalf("expire the request: %v", res.Error)
			}
			res := signInByHandle(t, f, handle, u.Username, u.Password)
			noTokens(t, res)
			expWantAPI(t, res, http.StatusNotFound, "session.not_found")
		})

		t.Run("RequestRestartedElsewhere", func(t *testing.T) {
			br, request, handle := start(t)
			// The restart without the old cookie: a new interaction is
			// linked to the request, the kept one to nothing.
			restartWithoutCookie(t, br, request, handle)
			res := signInByHandle(t, f, handle, u.Username, u.Password)
			noTokens(t, res)
			expWantAPI(t, res, http.StatusNotFound, "session.not_found")
		})

		t.Run("RequestAnswered", func(t *testing.T) {
			// A member signs in on another interaction of the same request
			// (restarted); the first, kept, is submitted after the code.
			m := f.user(t)
			f.addMember(t, org, m.ID)
			br, request, handle := start(t)
			restartWithoutCookie(t, br, request, handle)
			st, out := br.signInOnPage(m.Username, m.Password)
			to, _ := out["redirectTo"].(string)
			if st != http.StatusOK || to == "" {
				t.Fatalf("member submit: %d %v", st, out)
			}
			codeOf(t, br.get(to).Location, "st-x")
			res := signInByHandle(t, f, handle, u.Username, u.Password)
			noTokens(t, res)
		})
	})
}

// restartWithoutCookie restarts an authorization request in a browser
// that dropped its interaction cookie (the attacker kept the handle): the
// old interaction is not ended.
func restartWithoutCookie(t testing.TB, br *browser, request, handle string) {
	t.Helper()
	u, _ := url.Parse(br.f.URL + "/api/experience")
	br.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "latch_interaction", Value: "", Path: "/api/experience", MaxAge: -1}})
	if p := br.get(br.f.URL + "/oidc/auth/restart?request=" + url.QueryEscape(request)); p.URL.Path != "/ui/sign-in" {
		t.Fatalf("restart ended at %d %s", p.Status, p.URL)
	}
	if br.interactionCookie(t) == handle {
		t.Fatal("the restart kept the interaction")
	}
}

// TestAttackOrganizationContext: a person who is not (or no longer) a
// member of an organization tries to come away with its context: by
// redeeming another request's sign-in for the organization's request, by
// keeping tokens issued while a member, and by asking the refresh grant
// for the organization.
func TestAttackOrganizationContext(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		noMFA := false
		r := f.newRP(t, token.NewClient{Type: token.ClientWeb, EnforceMFA: &noMFA})
		r.config.Scopes = append(r.config.Scopes, token.ScopeOrganizations, token.ScopeOrganizationRoles, token.ScopeOfflineAccess)
		role := f.newRole(t, "docs:read")
		org := f.newOrg(t, map[string]any{"name": "Attacked " + v1Name("o")}).Str("id")
		authURL := func(state, orgID string) (string, string) {
			verifier, challenge := pkce()
			opts := []oauth2.AuthCodeOption{challenge, oidc.Nonce("n-" + state)}
			if orgID != "" {
				opts = append(opts, oauth2.SetAuthURLParam("organization_id", orgID))
			}
			return r.config.AuthCodeURL(state, opts...), verifier
		}
		refresh := func(t *testing.T, rt, orgID string) *apptest.Response {
			t.Helper()
			v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
			if orgID != "" {
				v.Set("organization_id", orgID)
			}
			return f.form(t, "/oidc/token", apptest.Client{ID: r.client.ID, Secret: r.secret}, v)
		}

		t.Run("RequestSwappedAfterSubmit", func(t *testing.T) {
			// A non-member opens the organization's request, then (same
			// browser) a plain request of the same client, signs in on the
			// plain one and points its redirectTo at the organization's.
			v := f.user(t)
			br := f.browser(t)
			orgURL, _ := authURL("st-org", org)
			p := br.get(orgURL)
			orgRequest := p.URL.Query().Get("request")
			plainURL, verifier := authURL("st-plain", "")
			if p = br.get(plainURL); p.URL.Path != "/ui/sign-in" {
				t.Fatalf("plain request ended at %s", p.URL)
			}
			plainRequest := p.URL.Query().Get("request")
			st, out := br.signInOnPage(v.Username, v.Password)
			to, _ := out["redirectTo"].(string)
			if st != http.StatusOK || !strings.HasPrefix(to, f.Config.Issuer+"/") {
				t.Fatalf("submit: %d %v (redirectTo must be Latch's own)", st, out)
			}
			swapped := strings.Replace(to, url.QueryEscape(plainRequest), url.QueryEscape(orgRequest), 1)
			if swapped == to {
				t.Fatalf("redirectTo %s does not name the request", to)
			}
			if got := br.get(swapped); got.Location != nil && got.Location.Query().Get("code") != "" {
				t.Fatalf("the organization's request was answered with a code for a non-member: %s", got.Location)
			}
			// Nor does the organization's request, started again, take the
			// live session.
			if got := br.get(orgURL); got.Location == nil || got.Location.Query().Get("error") != "access_denied" {
				t.Fatalf("the organization's request with a non-member's session: %d %s %v", got.Status, got.URL, got.Location)
			}
			// The plain request still completes, without the organization.
			tok, _, _ := r.exchange(t, codeOf(t, br.get(to).Location, "st-plain"), verifier, "n-st-plain")
			wantOrgClaims(t, accessClaims(t, f.Env, tok.AccessToken), "", nil, nil)
			if res := refresh(t, tok.RefreshToken, org); res.Status != http.StatusForbidden || res.Str("error") != "access_denied" {
				t.Fatalf("a non-member's refresh into the organization: %s", res)
			}
		})

		t.Run("RemovedAfterRedemption", func(t *testing.T) {
			u := f.user(t)
			f.addMember(t, org, u.ID, role)
			other := f.newOrg(t, nil).Str("id")
			f.addMember(t, other, u.ID)
			raw, verifier := authURL("st-rm", org)
			tok, _, _ := r.exchange(t, codeOf(t, f.browser(t).authorize(raw, u.Username, u.Password), "st-rm"), verifier, "n-st-rm")
			wantOrgClaims(t, accessClaims(t, f.Env, tok.AccessToken), org, []string{role}, []string{"docs:read"})
			if res := f.call(t, http.MethodDelete, "/v1/organizations/"+org+"/members/"+u.ID, f.tok, nil); res.Status != http.StatusNoContent {
				t.Fatalf("remove member: %s", res)
			}
			// The access token still verifies until it expires, but what
			// Latch says of it now shows no organization the user left.
			me := f.call(t, http.MethodGet, "/oidc/me", tok.AccessToken, nil)
			if me.Status != http.StatusOK || me.Str("org_id") != "" || me.JSON["roles"] != nil {
				t.Fatalf("/oidc/me after the removal: %s", me)
			}
			for _, k := range []string{"organizations", "organization_roles"} {
				for _, v := range strs(me.JSON[k]) {
					if strings.HasPrefix(v, org) {
						t.Fatalf("/oidc/me %s still names the organization left: %s", k, me)
					}
				}
			}
			// The refresh token of the organization's context is dead, the
			// whole family: no way back through another organization.
			if res := refresh(t, tok.RefreshToken, ""); res.Status != http.StatusBadRequest || res.Str("error") != "invalid_grant" {
				t.Fatalf("refresh after the removal: %s", res)
			}
			if res := refresh(t, tok.RefreshToken, other); res.Status != http.StatusBadRequest || res.Str("error") != "invalid_grant" {
				t.Fatalf("refresh into another organization after the family ended: %s", res)
			}
		})
	})
}

// TestAttackCodeReplayAcrossPurge: a used code replayed after the
// housekeeping purge ran. Within the retention (a day past expiry) the
// purge keeps the code's row, so the replay still revokes what the first
// use issued; past it the row is gone and the replay is merely refused.
// A live, unredeemed code survives even a purge without retention.
func TestAttackCodeReplayAcrossPurge(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		u := f.user(t)
		ctx := context.Background()
		// redeemed signs in on a fresh client and redeems the code once.
		redeemed := func(t *testing.T) (*rp, string, url.Values, *oauth2.Token) {
			t.Helper()
			r := f.newRP(t, token.NewClient{Type: token.ClientWeb})
			r.config.Scopes = append(r.config.Scopes, token.ScopeOfflineAccess)
			verifier, challenge := pkce()
			code := codeOf(t, f.browser(t).authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password), "s")
			tok, _, _ := r.exchange(t, code, verifier, "")
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {verifier}}
			return r, code, form, tok
		}
		age := func(t *testing.T, clientID string, expired time.Duration) {
			t.Helper()
			res := f.Services.DB.Exec("UPDATE oidc_codes SET expires_at = ? WHERE client_id = ?", time.Now().Add(-expired).UTC(), clientID)
			if res.Error != nil || res.RowsAffected != 1 {
				t.Fatalf("age the code: %v (%d rows)", res.Error, res.RowsAffected)
			}
		}
		purge := func(t *testing.T, retain time.Duration) {
			t.Helper()
			if _, err := f.Services.Tokens.PurgeAuthorizationFlow(ctx, retain, 0); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("WithinRetention", func(t *testing.T) {
			r, _, form, tok := redeemed(t)
			age(t, r.client.ID, time.Hour)
			purge(t, 24*time.Hour)
			if n := f.count(t, "SELECT COUNT(*) FROM oidc_codes WHERE client_id = ?", r.client.ID); n != 1 {
				t.Fatalf("the used code was purged within the retention")
			}
			if st, out := f.tokenForm(t, r.client.ID, r.secret, form); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("replay: %d %v", st, out)
			}
			if _, err := r.provider.UserInfo(r.ctx(), oauth2.StaticTokenSource(tok)); err == nil {
				t.Fatal("the replay within the retention did not revoke the first use's access token")
			}
			if st, out := f.tokenForm(t, r.client.ID, r.secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("refresh after the replay: %d %v", st, out)
			}
		})

		t.Run("PastRetention", func(t *testing.T) {
			r, _, form, _ := redeemed(t)
			age(t, r.client.ID, 25*time.Hour)
			purge(t, 24*time.Hour)
			if n := f.count(t, "SELECT COUNT(*) FROM oidc_codes WHERE client_id = ?", r.client.ID); n != 0 {
				t.Fatalf("the code past the retention was kept")
			}
			// Refused like any unknown code (nothing left to revoke by).
			if st, out := f.tokenForm(t, r.client.ID, r.secret, form); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
				t.Fatalf("replay past the retention: %d %v", st, out)
			}
		})

		t.Run("LiveCodeSurvives", func(t *testing.T) {
			r := f.newRP(t, token.NewClient{Type: token.ClientWeb})
			verifier, challenge := pkce()
			code := codeOf(t, f.browser(t).authorize(r.config.AuthCodeURL("s", challenge), u.Username, u.Password), "s")
			purge(t, 0)
			r.exchange(t, code, verifier, "")
		})
	})
}

// TestAttackHostedCallback: Latch's own callback page as the return URL of
// an integrator's flow. It serves the hosted pages' interactions only:
// neither lookalikes of it, nor a client that registered it as its own
// redirect URI, may send a provider's answer there — through the
// Experience API or the backend SSO route.
func TestAttackHostedCallback(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		hosted := f.Config.Issuer + "/ui/callback"
		social := f.connector(t, "social", map[string]any{"name": "Up", "provider": "oidc", "config": f.op.oidcConfig()})
		domain := strings.ToLower(v1Name("hcb")) + ".test"
		sso := f.connector(t, "sso", map[string]any{"name": "SSO", "provider": "oidc", "domains": []string{domain}, "config": f.op.oidcConfig()})
		lookalikes := []string{hosted + "/", hosted + "?next=x", hosted + "#x", strings.Replace(hosted, "/ui/", "/UI/", 1),
			strings.Replace(hosted, "http://", "HTTP://", 1), hosted + "%2F", f.Config.Issuer + "/ui/./callback"}

		t.Run("Lookalikes", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			for _, uri := range append(lookalikes, hosted) {
				expWantAPI(t, x.post(t, "/verification/social/"+social+"/authorization-uri", map[string]any{"state": "st", "redirectUri": uri}),
					http.StatusBadRequest, "guard.invalid_input")
				wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/start", f.appTok, map[string]any{"connector_id": sso, "redirect_uri": uri}),
					http.StatusBadRequest, "system_invalid_input")
			}
		})

		t.Run("RegisteredByAnIntegrator", func(t *testing.T) {
			// The client lists Latch's callback among its redirect URIs.
			app := f.CreateClientFrom(token.NewClient{Scopes: []string{"auth:execute"}, RedirectURIs: []string{hosted, upCallback}})
			tok := f.ClientToken(app)
			x := f.beginAs(t, tok, "SignIn", false)
			expWantAPI(t, x.post(t, "/verification/social/"+social+"/authorization-uri", map[string]any{"state": "st", "redirectUri": hosted}),
				http.StatusBadRequest, "guard.invalid_input")
			before := f.count(t, "SELECT COUNT(*) FROM interactions")
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/start", tok, map[string]any{"connector_id": sso, "redirect_uri": hosted}),
				http.StatusBadRequest, "system_invalid_input")
			if after := f.count(t, "SELECT COUNT(*) FROM interactions"); after != before {
				t.Fatalf("the refused sso/start left %d interactions", after-before)
			}
			// Its registered URI of its own still works.
			if res := f.call(t, http.MethodPost, "/v1/auth/sso/start", tok, map[string]any{"connector_id": sso, "redirect_uri": upCallback}); res.Status != http.StatusOK {
				t.Fatalf("sso/start to the client's own URI: %s", res)
			}
		})
	})
}

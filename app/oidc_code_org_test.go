package app_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// Issue 15 with issue 12: organization_id and the organization scopes on
// the authorization endpoint, with an x/oauth2 + go-oidc relying party. A
// member's tokens carry the organization context (org_id, roles,
// permissions) and the scopes' claims; an unknown organization and a
// non-member are sent back with an error and nothing is issued; an
// organization's mfa_required is enforced on the hosted pages for a client
// that does not enforce MFA itself.
func TestAuthorizationCodeOrganizations(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		noMFA := false
		r := f.newRP(t, token.NewClient{Type: token.ClientWeb, EnforceMFA: &noMFA})
		r.config.Scopes = append(r.config.Scopes, token.ScopeOrganizations, token.ScopeOrganizationRoles, token.ScopeOfflineAccess)
		role := f.newRole(t, "notes:read", "notes:write")
		org := f.newOrg(t, nil).Str("id")
		authURL := func(state, nonce, orgID string) (string, string) {
			verifier, challenge := pkce()
			opts := []oauth2.AuthCodeOption{challenge, oidc.Nonce(nonce)}
			if orgID != "" {
				opts = append(opts, oauth2.SetAuthURLParam("organization_id", orgID))
			}
			return r.config.AuthCodeURL(state, opts...), verifier
		}

		t.Run("Discovery", func(t *testing.T) {
			var meta struct {
				Scopes []string `json:"scopes_supported"`
				Claims []string `json:"claims_supported"`
			}
			if err := r.provider.Claims(&meta); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{token.ScopeOrganizations, token.ScopeOrganizationRoles} {
				if !slices.Contains(meta.Scopes, s) {
					t.Fatalf("scopes_supported %v lacks %s", meta.Scopes, s)
				}
			}
			for _, c := range []string{"org_id", "organizations", "organization_roles"} {
				if !slices.Contains(meta.Claims, c) {
					t.Fatalf("claims_supported %v lacks %s", meta.Claims, c)
				}
			}
		})

		t.Run("Member", func(t *testing.T) {
			u := f.user(t)
			f.addMember(t, org, u.ID, role)
			other := f.newOrg(t, nil).Str("id")
			f.addMember(t, other, u.ID)
			br := f.browser(t)
			raw, verifier := authURL("st-m", "n-m", org)
			tok, _, claims := r.exchange(t, codeOf(t, br.authorize(raw, u.Username, u.Password), "st-m"), verifier, "n-m")
			if claims["org_id"] != org {
				t.Fatalf("ID token org_id %v, want %s", claims["org_id"], org)
			}
			if got := strs(claims["organizations"]); !slices.Contains(got, org) || !slices.Contains(got, other) {
				t.Fatalf("organizations claim %v", got)
			}
			if got := strs(claims["organization_roles"]); !slices.Equal(got, []string{org + ":" + role}) {
				t.Fatalf("organization_roles claim %v", got)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, tok.AccessToken), org, []string{role}, []string{"notes:read", "notes:write"})
			var sessOrg string
			f.Services.DB.Raw("SELECT org_id FROM sessions WHERE id = ?", claims["sid"]).Scan(&sessOrg)
			if sessOrg != org {
				t.Fatalf("session org %q, want %s", sessOrg, org)
			}
			// Refreshed tokens keep the context and the scopes' claims.
			fresh, err := r.config.TokenSource(r.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			wantOrgClaims(t, accessClaims(t, f.Env, fresh.AccessToken), org, []string{role}, []string{"notes:read", "notes:write"})
			idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.client.ID}).Verify(r.ctx(), fresh.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			refreshed := map[string]any{}
			_ = idt.Claims(&refreshed)
			if !slices.Contains(strs(refreshed["organizations"]), org) {
				t.Fatalf("refreshed ID token organizations %v", refreshed["organizations"])
			}
			info, err := r.provider.UserInfo(r.ctx(), oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			var ui map[string]any
			_ = info.Claims(&ui)
			if ui["org_id"] != org || !slices.Equal(strs(ui["organization_roles"]), []string{org + ":" + role}) {
				t.Fatalf("userinfo %v", ui)
			}

			// The live browser session signs in silently, in the
			// organization again; without organization_id, plainly.
			raw, verifier = authURL("st-m2", "n-m2", org)
			p := br.get(raw)
			if p.Location == nil {
				t.Fatalf("silent sign-in: %d at %s", p.Status, p.URL)
			}
			tok2, _, _ := r.exchange(t, codeOf(t, p.Location, "st-m2"), verifier, "n-m2")
			wantOrgClaims(t, accessClaims(t, f.Env, tok2.AccessToken), org, []string{role}, []string{"notes:read", "notes:write"})
			raw, verifier = authURL("st-m3", "n-m3", "")
			p = br.get(raw)
			if p.Location == nil {
				t.Fatalf("silent plain sign-in: %d at %s", p.Status, p.URL)
			}
			tok3, _, _ := r.exchange(t, codeOf(t, p.Location, "st-m3"), verifier, "n-m3")
			wantOrgClaims(t, accessClaims(t, f.Env, tok3.AccessToken), "", nil, nil)

			// A member removed between the code and its redemption gets
			// no tokens.
			raw, verifier = authURL("st-m4", "n-m4", org)
			p = br.get(raw)
			code := codeOf(t, p.Location, "st-m4")
			if res := f.call(t, http.MethodDelete, "/v1/organizations/"+org+"/members/"+u.ID, f.tok, nil); res.Status != http.StatusNoContent {
				t.Fatalf("remove member: %s", res)
			}
			if _, err := r.config.Exchange(r.ctx(), code, oauth2.VerifierOption(verifier)); err == nil {
				t.Fatal("a removed member's code was redeemed")
			}
		})

		t.Run("UnknownOrganization", func(t *testing.T) {
			raw, _ := authURL("st-u", "n-u", "org_nope")
			p := f.browser(t).get(raw)
			if p.Location == nil || p.Location.Query().Get("error") != "invalid_request" || p.Location.Query().Get("state") != "st-u" {
				t.Fatalf("unknown organization: %d %s %v", p.Status, p.URL, p.Location)
			}
		})

		t.Run("NonMember", func(t *testing.T) {
			v := f.user(t)
			u := f.user(t)
			f.addMember(t, org, u.ID)
			br := f.browser(t)
			raw, verifier := authURL("st-n", "n-n", org)
			first := br.get(raw)
			if first.URL.Path != "/ui/sign-in" {
				t.Fatalf("authorization request ended at %s", first.URL)
			}
			st, out := br.signInOnPage(v.Username, v.Password)
			data, _ := out["data"].(map[string]any)
			to, _ := data["redirectTo"].(string)
			if st != http.StatusForbidden || out["code"] != "organization.membership_required" || to == "" {
				t.Fatalf("non-member submit: %d %v", st, out)
			}
			back, err := url.Parse(to)
			q := back.Query()
			if err != nil || back.Host != "127.0.0.1:9" || q.Get("error") != "access_denied" || q.Get("error_description") == "" || q.Get("state") != "st-n" {
				t.Fatalf("non-member sent back to %s", to)
			}
			if res := f.call(t, http.MethodGet, "/v1/auth/users/"+v.ID+"/sessions", f.tok, nil); len(res.JSON["sessions"].([]any)) != 0 {
				t.Fatalf("a non-member got a session: %s", res)
			}
			// Nothing was consumed: the same request, started afresh on the
			// page, signs a member in.
			if p := br.get(f.URL + "/oidc/auth/restart?request=" + first.URL.Query().Get("request")); p.URL.Path != "/ui/sign-in" {
				t.Fatalf("restart ended at %d %s", p.Status, p.URL)
			}
			st, out = br.signInOnPage(u.Username, u.Password)
			next, _ := out["redirectTo"].(string)
			if st != http.StatusOK || next == "" {
				t.Fatalf("member after a refused non-member: %d %v", st, out)
			}
			tok, _, _ := r.exchange(t, codeOf(t, br.get(next).Location, "st-n"), verifier, "n-n")
			wantOrgClaims(t, accessClaims(t, f.Env, tok.AccessToken), org, nil, nil)

			// A non-member's live browser session is refused at once.
			other := f.browser(t)
			raw, _ = authURL("st-n2", "n-n2", "")
			codeOf(t, other.authorize(raw, v.Username, v.Password), "st-n2")
			raw, _ = authURL("st-n3", "n-n3", org)
			p := other.get(raw)
			if p.Location == nil || p.Location.Query().Get("error") != "access_denied" || p.Location.Query().Get("state") != "st-n3" {
				t.Fatalf("non-member's live session: %d %s %v", p.Status, p.URL, p.Location)
			}
		})

		t.Run("OrganizationRequiresMFA", func(t *testing.T) {
			// MFA is not enforced tenant-wide: a plain sign-in needs the
			// password only ...
			f.settings(t, `{"mfa":{"enforce":false}}`)
			mfaOrg := f.newOrg(t, map[string]any{"mfa_required": true}).Str("id")
			w := f.user(t)
			f.addMember(t, mfaOrg, w.ID)
			secret, _ := f.enrol(t, w, false)
			raw, _ := authURL("st-p", "n-p", "")
			codeOf(t, f.browser(t).authorize(raw, w.Username, w.Password), "st-p")
			// ... but the organization's requires MFA.
			br := f.browser(t)
			raw, verifier := authURL("st-o", "n-o", mfaOrg)
			br.get(raw)
			st, out := br.signInOnPage(w.Username, w.Password)
			if st != http.StatusForbidden || out["code"] != "session.mfa.require_mfa_verification" {
				t.Fatalf("org MFA at submit: %d %v", st, out)
			}
			if st, out := br.api(http.MethodPost, "/verification/totp/verify", map[string]any{"code": totpNext(t, secret)}); st != http.StatusOK {
				t.Fatalf("totp: %d %v", st, out)
			}
			st, out = br.api(http.MethodPost, "/submit", nil)
			to, _ := out["redirectTo"].(string)
			if st != http.StatusOK || to == "" {
				t.Fatalf("submit after MFA: %d %v", st, out)
			}
			tok, _, claims := r.exchange(t, codeOf(t, br.get(to).Location, "st-o"), verifier, "n-o")
			wantAMR(t, claims["amr"], "mfa", "pwd", "totp")
			wantOrgClaims(t, accessClaims(t, f.Env, tok.AccessToken), mfaOrg, nil, nil)

			// A member without a factor must enrol one first.
			x := f.user(t)
			f.addMember(t, mfaOrg, x.ID)
			br = f.browser(t)
			raw, _ = authURL("st-x", "n-x", mfaOrg)
			br.get(raw)
			if st, out := br.signInOnPage(x.Username, x.Password); st != http.StatusUnprocessableEntity || out["code"] != "user.missing_mfa" {
				t.Fatalf("org MFA without a factor: %d %v", st, out)
			}
		})
	})
}

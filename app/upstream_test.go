package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// TestConnectorManagement: social and SSO connectors over /v1 (scope
// management): secrets sealed and never shown, domains validated and
// unique across SSO connectors, public webmail refused.
func TestConnectorManagement(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		cfg := f.op.oidcConfig()
		res := f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "Acme", "provider": "oidc",
			"domains": []string{"Acme-Mgmt.test"}, "config": cfg, "jit_organizations": []string{"org_1"}})
		if res.Status != http.StatusCreated {
			t.Fatalf("create: %s", res)
		}
		id := res.Str("id")
		if strings.Contains(string(res.Raw), opClientSecret) || res.JSON["has_client_secret"] != true {
			t.Fatalf("create shows the secret or not that it has one: %s", res)
		}
		if d := res.JSON["domains"].([]any); len(d) != 1 || d[0] != "acme-mgmt.test" {
			t.Fatalf("domains: %s", res)
		}
		if o := res.JSON["jit_organizations"].([]any); len(o) != 1 || o[0] != "org_1" {
			t.Fatalf("jit_organizations: %s", res)
		}
		var stored []byte
		if err := f.Services.DB.Raw("SELECT secret FROM connectors WHERE id = ?", id).Row().Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if len(stored) == 0 || strings.Contains(string(stored), opClientSecret) {
			t.Fatalf("the client secret is not sealed at rest")
		}
		var config string
		if err := f.Services.DB.Raw("SELECT config FROM connectors WHERE id = ?", id).Row().Scan(&config); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(config, opClientSecret) {
			t.Fatalf("the stored configuration holds the secret: %s", config)
		}
		for _, p := range []string{"/v1/sso-connectors/" + id, "/v1/sso-connectors"} {
			got := f.call(t, http.MethodGet, p, f.tok, nil)
			if got.Status != http.StatusOK || strings.Contains(string(got.Raw), opClientSecret) || !strings.Contains(string(got.Raw), id) {
				t.Fatalf("GET %s: %s", p, got)
			}
		}

		// Domains: another connector may not own it; webmail and
		// non-domains are refused.
		wantError(t, f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "Copy", "provider": "oidc",
			"domains": []string{"acme-mgmt.test"}, "config": cfg}), http.StatusConflict, "connector_domain_in_use")
		wantError(t, f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "Mail", "provider": "oidc",
			"domains": []string{"gmail.com"}, "config": cfg}), http.StatusUnprocessableEntity, "connector_domain_not_allowed")
		for _, d := range []string{"localhost", "bad_domain.test", "a..b", "-x.test"} {
			wantError(t, f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "Bad", "provider": "oidc",
				"domains": []string{d}, "config": cfg}), http.StatusBadRequest, "system_invalid_input")
		}
		wantError(t, f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "X", "provider": "oauth2",
			"config": f.op.oauth2Config()}), http.StatusBadRequest, "system_invalid_input")
		wantError(t, f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "X", "provider": "oidc",
			"config": map[string]any{"issuer": "not a url", "client_id": "x"}}), http.StatusBadRequest, "system_invalid_input")
		wantError(t, f.call(t, http.MethodPost, "/v1/social-connectors", f.tok, map[string]any{"name": "X", "provider": "oidc",
			"domains": []string{"x.test"}, "config": cfg}), http.StatusBadRequest, "system_invalid_input")
		wantError(t, f.call(t, http.MethodPost, "/v1/social-connectors", f.tok, map[string]any{"name": "X", "provider": "oidc",
			"trust_upstream_mfa": true, "config": cfg}), http.StatusBadRequest, "system_invalid_input")

		// PATCH: the name changes, the secret stays (a sign-in still
		// works), the domains move.
		res = f.call(t, http.MethodPatch, "/v1/sso-connectors/"+id, f.tok, map[string]any{"name": "Acme Corp",
			"domains": []string{"acme-mgmt2.test"}, "config": map[string]any{"scope": "openid email"}})
		if res.Status != http.StatusOK || res.Str("name") != "Acme Corp" || res.JSON["has_client_secret"] != true {
			t.Fatalf("patch: %s", res)
		}
		if c := res.JSON["config"].(map[string]any); c["scope"] != "openid email" || c["issuer"] != f.op.URL {
			t.Fatalf("patched config: %s", res)
		}
		other := f.connector(t, "sso", map[string]any{"name": "Other", "provider": "oidc", "domains": []string{"acme-mgmt.test"}, "config": cfg})
		x := f.beginAs(t, f.appTok, "SignIn", false)
		if verify, _ := x.upstream(t, f.op, "sso", id, f.op.user("pat"+v1Name("u")+"@acme-mgmt2.test", true)); verify.Status != http.StatusOK {
			t.Fatalf("sign-in after a patch that kept the secret: %s", verify)
		}

		// Scope management is required; another family's id is unknown.
		reader := f.ClientToken(f.CreateClient("users:read"))
		wantError(t, f.call(t, http.MethodGet, "/v1/sso-connectors", reader, nil), http.StatusForbidden, "insufficient_scope")
		wantError(t, f.call(t, http.MethodGet, "/v1/social-connectors/"+id, f.tok, nil), http.StatusNotFound, "entity_not_exists_with_id")

		if res := f.call(t, http.MethodDelete, "/v1/sso-connectors/"+other, f.tok, nil); res.Status != http.StatusNoContent {
			t.Fatalf("delete: %s", res)
		}
		wantError(t, f.call(t, http.MethodGet, "/v1/sso-connectors/"+other, f.tok, nil), http.StatusNotFound, "entity_not_exists_with_id")
		// Every change is audited, without the secret.
		for ev, want := range map[string]int{"connector.created": 2, "connector.updated": 1, "connector.deleted": 1} {
			evs := f.auditEvents(t, "", ev)
			if len(evs) != want {
				t.Fatalf("%d %s events, want %d", len(evs), ev, want)
			}
			for _, e := range evs {
				if raw, _ := json.Marshal(e); strings.Contains(string(raw), opClientSecret) {
					t.Fatalf("audit reveals the secret: %s", raw)
				}
			}
		}
		// Its domain is free again.
		f.connector(t, "sso", map[string]any{"name": "Again", "provider": "oidc", "domains": []string{"acme-mgmt.test"}, "config": cfg})
	})
}

// TestSocialOIDC: "Sign in with …" through an OpenID provider: register,
// sign in again, the related account and linking, unverified addresses,
// replayed state and code, a wrong audience, unregistered redirect URIs.
func TestSocialOIDC(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		conn := f.connector(t, "social", map[string]any{"name": "Upstream", "provider": "oidc", "config": f.op.oidcConfig()})

		up := f.op.user(expEmail("social"), true)
		var userID string
		t.Run("Register", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "Register", false)
			verify, vid := x.upstream(t, f.op, "social", conn, up)
			if verify.Status != http.StatusOK || verify.Str("verificationId") != vid {
				t.Fatalf("verify: %s", verify)
			}
			expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
			claims := x.submitTokens(t)
			userID = claims["sub"].(string)
			user := f.call(t, http.MethodGet, "/v1/users/"+userID, f.tok, nil)
			if user.Str("primary_email") != up.Email || user.JSON["email_verified"] != true || user.Str("name") != "Ada Upstream" {
				t.Fatalf("registered user: %s", user)
			}
			if !slices.Contains(anyStrings(claims["amr"]), "fed") {
				t.Fatalf("amr of a social sign-in: %v", claims)
			}
		})
		t.Run("SignInAgain", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "social", conn, up)
			expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
			if sub := x.submitTokens(t)["sub"]; sub != userID {
				t.Fatalf("signed in as %v, want %s", sub, userID)
			}
			if n := f.count(t, "SELECT COUNT(*) FROM user_identities WHERE user_id = ?", userID); n != 1 {
				t.Fatalf("%d identities", n)
			}
			// Two sign-ins, four connector steps: one discovery fetch (the
			// opened connector is reused while the connector is unchanged).
			if n := f.op.discovery.Load(); n != 1 {
				t.Fatalf("%d discovery fetches, want 1", n)
			}
		})
		t.Run("RelatedUserAndLink", func(t *testing.T) {
			u := f.user(t)
			f.call(t, http.MethodPatch, "/v1/users/"+u.ID, f.tok, map[string]any{"email_verified": true})
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "social", conn, f.op.user(u.Email, true))
			res := x.identify(t, vid)
			expWantAPI(t, res, http.StatusNotFound, "user.identity_not_exist")
			if data, _ := res.JSON["data"].(map[string]any); data["relatedUser"] != u.Email {
				t.Fatalf("identity_not_exist without relatedUser: %s", res)
			}
			expMust(t, x.post(t, "/identification", map[string]any{"verificationId": vid, "linkSocialIdentity": true}),
				http.StatusNoContent, "identify with link")
			if sub := x.submitTokens(t)["sub"]; sub != u.ID {
				t.Fatalf("linked sign-in as %v, want %s", sub, u.ID)
			}
		})
		t.Run("UnverifiedEmail", func(t *testing.T) {
			u := f.user(t)
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "social", conn, f.op.user(u.Email, false))
			res := x.identify(t, vid)
			expWantAPI(t, res, http.StatusNotFound, "user.identity_not_exist")
			if res.JSON["data"] != nil {
				t.Fatalf("an unverified upstream address revealed an account: %s", res)
			}
			expWantAPI(t, x.post(t, "/identification", map[string]any{"verificationId": vid, "linkSocialIdentity": true}),
				http.StatusNotFound, "user.identity_not_exist")
		})
		t.Run("Replay", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			res := expMust(t, x.post(t, "/verification/social/"+conn+"/authorization-uri",
				map[string]any{"state": "s1", "redirectUri": upCallback}), http.StatusOK, "authorization-uri")
			vid := res.Str("verificationId")
			cb := f.op.login(t, res.Str("authorizationUri"), up)
			body := func(state, code string) map[string]any {
				return map[string]any{"verificationId": vid, "connectorData": map[string]any{"code": code, "state": state}}
			}
			expMust(t, x.post(t, "/verification/social/"+conn+"/verify", body("s1", cb.Get("code"))), http.StatusOK, "verify")
			expWantAPI(t, x.post(t, "/verification/social/"+conn+"/verify", body("s1", cb.Get("code"))),
				http.StatusBadRequest, "session.verification_failed")

			// A wrong state burns the record; the right one then fails too.
			res = expMust(t, x.post(t, "/verification/social/"+conn+"/authorization-uri",
				map[string]any{"state": "s2", "redirectUri": upCallback}), http.StatusOK, "authorization-uri")
			vid = res.Str("verificationId")
			cb2 := f.op.login(t, res.Str("authorizationUri"), up)
			expWantAPI(t, x.post(t, "/verification/social/"+conn+"/verify", body("forged", cb2.Get("code"))),
				http.StatusBadRequest, "session.verification_failed")
			expWantAPI(t, x.post(t, "/verification/social/"+conn+"/verify", body("s2", cb2.Get("code"))),
				http.StatusBadRequest, "session.verification_failed")

			// A used code in a fresh record: the provider refuses it.
			res = expMust(t, x.post(t, "/verification/social/"+conn+"/authorization-uri",
				map[string]any{"state": "s3", "redirectUri": upCallback}), http.StatusOK, "authorization-uri")
			vid = res.Str("verificationId")
			expWantAPI(t, x.post(t, "/verification/social/"+conn+"/verify", body("s3", cb.Get("code"))),
				http.StatusUnauthorized, "connector.authorization_failed")
		})
		t.Run("WrongAudience", func(t *testing.T) {
			f.op.store.set(nil, []string{"someone-else"})
			defer f.op.store.set(nil, nil)
			x := f.beginAs(t, f.appTok, "SignIn", false)
			res, vid := x.upstream(t, f.op, "social", conn, up)
			expWantAPI(t, res, http.StatusBadRequest, "connector.invalid_response")
			if strings.Contains(res.Str("message"), "audience") && strings.Contains(res.Str("message"), "someone-else") {
				t.Fatalf("upstream detail leaked: %s", res)
			}
			expWantAPI(t, x.identify(t, vid), http.StatusBadRequest, "session.verification_failed")
		})
		t.Run("RedirectURI", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			for _, uri := range []string{"https://evil.example.com/callback", upCallback + "/", upCallback + "?x=1"} {
				expWantAPI(t, x.post(t, "/verification/social/"+conn+"/authorization-uri",
					map[string]any{"state": "s", "redirectUri": uri}), http.StatusBadRequest, "guard.invalid_input")
			}
			expWantAPI(t, x.post(t, "/verification/social/nope/authorization-uri",
				map[string]any{"state": "s", "redirectUri": upCallback}), http.StatusNotFound, "entity.not_exists_with_id")
			expWantAPI(t, x.post(t, "/verification/sso/"+conn+"/authorization-uri",
				map[string]any{"state": "s", "redirectUri": upCallback}), http.StatusNotFound, "entity.not_exists_with_id")
		})
		t.Run("DeletedMidFlow", func(t *testing.T) {
			other := f.connector(t, "social", map[string]any{"name": "Gone", "provider": "oidc", "config": f.op.oidcConfig()})
			x := f.beginAs(t, f.appTok, "SignIn", false)
			res := expMust(t, x.post(t, "/verification/social/"+other+"/authorization-uri",
				map[string]any{"state": "s", "redirectUri": upCallback}), http.StatusOK, "authorization-uri")
			cb := f.op.login(t, res.Str("authorizationUri"), up)
			expMust(t, f.call(t, http.MethodDelete, "/v1/social-connectors/"+other, f.tok, nil), http.StatusNoContent, "delete")
			expWantAPI(t, x.post(t, "/verification/social/"+other+"/verify", map[string]any{"verificationId": res.Str("verificationId"),
				"connectorData": map[string]any{"code": cb.Get("code"), "state": "s"}}), http.StatusNotFound, "entity.not_exists_with_id")
		})
	})
}

// TestSocialOAuth2: the same provider configured as plain OAuth 2.0
// (authorize, token, userinfo; no ID token).
func TestSocialOAuth2(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		conn := f.connector(t, "social", map[string]any{"name": "Plain", "provider": "oauth2", "config": f.op.oauth2Config()})
		up := f.op.user(expEmail("oauth"), true)
		x := f.beginAs(t, f.appTok, "Register", false)
		_, vid := x.upstream(t, f.op, "social", conn, up)
		expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
		userID := x.submitTokens(t)["sub"]
		x = f.beginAs(t, f.appTok, "SignIn", false)
		_, vid = x.upstream(t, f.op, "social", conn, up)
		expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
		if sub := x.submitTokens(t)["sub"]; sub != userID {
			t.Fatalf("signed in as %v, want %v", sub, userID)
		}
		var subject string
		if err := f.Services.DB.Raw("SELECT subject FROM user_identities WHERE user_id = ?", userID).Row().Scan(&subject); err != nil || subject != up.ID {
			t.Fatalf("identity subject %q (%v), want %q", subject, err, up.ID)
		}
	})
}

// TestEnterpriseSSO: an OIDC enterprise connector owning a domain: the
// lookup, password and code sign-in refused for its domain, a verified
// address linking to its account, a new account otherwise, MFA from the
// provider.
func TestEnterpriseSSO(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		domain := strings.ToLower(v1Name("corp")) + ".test"
		conn := f.connector(t, "sso", map[string]any{"name": "Corp", "provider": "oidc", "domains": []string{domain},
			"config": f.op.oidcConfig()})

		t.Run("Lookup", func(t *testing.T) {
			res := expMust(t, f.call(t, http.MethodGet, "/api/experience/sso-connectors?email="+url.QueryEscape("ann@"+strings.ToUpper(domain)), "", nil),
				http.StatusOK, "sso-connectors")
			if ids := anyStrings(res.JSON["connectorIds"]); len(ids) != 1 || ids[0] != conn {
				t.Fatalf("sso-connectors: %s", res)
			}
			res = expMust(t, f.call(t, http.MethodGet, "/api/experience/sso-connectors?email=ann%40elsewhere.test", "", nil), http.StatusOK, "lookup")
			if ids := anyStrings(res.JSON["connectorIds"]); len(ids) != 0 {
				t.Fatalf("sso-connectors of another domain: %s", res)
			}
		})
		t.Run("SSOEnabled", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			res := x.post(t, "/verification/password", map[string]any{"identifier": expIdent("email", "ann@"+domain), "password": "whatever-123"})
			expWantAPI(t, res, http.StatusUnprocessableEntity, "session.sso_enabled")
			refs, _ := res.JSON["data"].(map[string]any)["ssoConnectors"].([]any)
			if len(refs) != 1 || refs[0].(map[string]any)["id"] != conn || refs[0].(map[string]any)["name"] != "Corp" || len(refs[0].(map[string]any)) != 2 {
				t.Fatalf("sso_enabled data: %s", res)
			}
			expWantAPI(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", "bob@"+domain)}),
				http.StatusUnprocessableEntity, "session.sso_enabled")
			// An identified user cannot bind an address of the domain either.
			u := f.user(t)
			s := f.beginAs(t, f.appTok, "SignIn", false)
			expMust(t, s.identify(t, s.passwordRecord(t, "username", u.Username, u.Password)), http.StatusNoContent, "identify")
			expWantAPI(t, s.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", "new@"+domain)}),
				http.StatusUnprocessableEntity, "session.sso_enabled")
			r := f.beginAs(t, f.appTok, "Register", false)
			expWantAPI(t, r.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", "bob@"+domain)}),
				http.StatusUnprocessableEntity, "session.sso_enabled")
		})
		t.Run("LinksVerifiedEmail", func(t *testing.T) {
			email := strings.ToLower(v1Name("emp")) + "@" + domain
			id := f.createUser(t, map[string]any{"username": v1Name("emp"), "email": email, "email_verified": true})
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "sso", conn, f.op.user(email, true))
			expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
			if sub := x.submitTokens(t)["sub"]; sub != id {
				t.Fatalf("SSO signed in as %v, want %s", sub, id)
			}
		})
		t.Run("SuspendedAccount", func(t *testing.T) {
			email := strings.ToLower(v1Name("sus")) + "@" + domain
			id := f.createUser(t, map[string]any{"username": v1Name("sus"), "email": email, "email_verified": true})
			expMust(t, f.call(t, http.MethodPost, "/v1/users/"+id+"/suspend", f.tok, nil), http.StatusOK, "suspend")
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "sso", conn, f.op.user(email, true))
			expWantAPI(t, x.identify(t, vid), http.StatusUnauthorized, "user.suspended")
			if n := f.count(t, "SELECT COUNT(*) FROM user_identities WHERE user_id = ?", id); n != 0 {
				t.Fatalf("a suspended account was linked")
			}
		})
		t.Run("UnverifiedNeverTakesOver", func(t *testing.T) {
			email := strings.ToLower(v1Name("unv")) + "@" + domain
			f.createUser(t, map[string]any{"username": v1Name("unv"), "email": email, "email_verified": true})
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "sso", conn, f.op.user(email, false))
			expWantAPI(t, x.identify(t, vid), http.StatusUnprocessableEntity, "user.email_already_in_use")
			if n := f.count(t, "SELECT COUNT(*) FROM user_identities WHERE connector_id = ? AND email = ?", conn, email); n != 0 {
				t.Fatalf("an unverified upstream address was linked")
			}
			// A free unverified address: a new account, the address unverified.
			fresh := strings.ToLower(v1Name("unv")) + "@" + domain
			x = f.beginAs(t, f.appTok, "SignIn", false)
			_, vid = x.upstream(t, f.op, "sso", conn, f.op.user(fresh, false))
			expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
			sub := x.submitTokens(t)["sub"].(string)
			if u := f.call(t, http.MethodGet, "/v1/users/"+sub, f.tok, nil); u.Str("primary_email") != fresh || u.JSON["email_verified"] != false {
				t.Fatalf("created user: %s", u)
			}
		})
		t.Run("CreatesUser", func(t *testing.T) {
			email := strings.ToLower(v1Name("new")) + "@" + domain
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "sso", conn, f.op.user(email, true))
			expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
			sub := x.submitTokens(t)["sub"].(string)
			if u := f.call(t, http.MethodGet, "/v1/users/"+sub, f.tok, nil); u.Str("primary_email") != email {
				t.Fatalf("created user: %s", u)
			}
		})
		t.Run("MFAFromProvider", func(t *testing.T) {
			f.settings(t, `{"mfa": {"policy": "Mandatory"}}`)
			defer f.settings(t, `{"mfa": {"policy": "NoPrompt"}}`)
			up := f.op.user(strings.ToLower(v1Name("mfa"))+"@"+domain, true)
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.upstream(t, f.op, "sso", conn, up)
			expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.missing_mfa")

			signInWithMFA := func(t *testing.T) {
				t.Helper()
				x := f.beginAs(t, f.appTok, "SignIn", false)
				_, vid := x.upstream(t, f.op, "sso", conn, up)
				expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
				res := expMust(t, x.post(t, "/submit", nil), http.StatusOK, "submit")
				if amr := anyStrings(expJWT(t, res.Str("access_token"))["amr"]); !slices.Contains(amr, "mfa") {
					t.Fatalf("amr %v lacks mfa", amr)
				}
			}
			f.op.store.set([]string{"pwd", "mfa"}, nil)
			signInWithMFA(t)
			f.op.store.set(nil, nil)

			// No amr, but the connector vouches for the provider's MFA.
			expMust(t, f.call(t, http.MethodPatch, "/v1/sso-connectors/"+conn, f.tok, map[string]any{"trust_upstream_mfa": true}), http.StatusOK, "patch")
			defer f.call(t, http.MethodPatch, "/v1/sso-connectors/"+conn, f.tok, map[string]any{"trust_upstream_mfa": false})
			signInWithMFA(t)
		})
	})
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// TestBackendSSO: POST /v1/auth/sso/start and /authenticate, the same
// engine path from a backend, ending in seed 003's token response.
func TestBackendSSO(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		domain := strings.ToLower(v1Name("back")) + ".test"
		conn := f.connector(t, "sso", map[string]any{"name": "Back", "provider": "oidc", "domains": []string{domain}, "config": f.op.oidcConfig()})
		email := strings.ToLower(v1Name("emp")) + "@" + domain
		id := f.createUser(t, map[string]any{"username": v1Name("emp"), "email": email, "email_verified": true})
		up := f.op.user(email, true)

		start := func(body map[string]any) (string, string) {
			t.Helper()
			res := f.call(t, http.MethodPost, "/v1/auth/sso/start", f.appTok, body)
			if res.Status != http.StatusOK || res.Str("flow_id") == "" || !strings.HasPrefix(res.Str("authorization_uri"), f.op.URL) {
				t.Fatalf("sso/start: %s", res)
			}
			return res.Str("authorization_uri"), res.Str("flow_id")
		}
		uri, flow := start(map[string]any{"email": strings.ToUpper(email), "redirect_uri": upCallback})
		cb := f.op.login(t, uri, up)
		body := map[string]any{"flow_id": flow, "code": cb.Get("code"), "state": cb.Get("state")}
		res := f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, body)
		if res.Status != http.StatusOK || res.Str("session_id") == "" || res.Str("refresh_token") == "" {
			t.Fatalf("sso/authenticate: %s", res)
		}
		at := expJWT(t, res.Str("access_token"))
		if at["sub"] != id || !slices.Contains(anyStrings(at["amr"]), "fed") {
			t.Fatalf("access token: %v", at)
		}
		// The password route refuses the SSO domain, as the Experience API does.
		res = f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.appTok, map[string]any{"username": email,
			"username_type": "email", "password": "whatever-123"})
		wantError(t, res, http.StatusUnprocessableEntity, "session_sso_enabled")
		if refs, _ := res.JSON["ssoConnectors"].([]any); len(refs) != 1 {
			t.Fatalf("sso_enabled without the connectors: %s", res)
		}
		// The flow is over: a replay finds nothing.
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, body), http.StatusBadRequest, "session_not_found")

		// By connector id, with the caller's state; a wrong state fails.
		uri, flow = start(map[string]any{"connector_id": conn, "redirect_uri": upCallback, "state": "backend-state"})
		cb = f.op.login(t, uri, up)
		if cb.Get("state") != "backend-state" {
			t.Fatalf("state %q", cb.Get("state"))
		}
		// Another client cannot complete it.
		other := f.ClientToken(f.CreateClient("auth:execute"))
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", other, map[string]any{"flow_id": flow, "code": cb.Get("code"),
			"state": "backend-state"}), http.StatusBadRequest, "session_not_found")
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow, "code": cb.Get("code"),
			"state": "forged"}), http.StatusBadRequest, "session_verification_failed")

		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/start", f.appTok, map[string]any{"email": "x@nobody.test", "redirect_uri": upCallback}),
			http.StatusNotFound, "entity_not_exists_with_id")
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/start", f.appTok, map[string]any{"connector_id": conn, "redirect_uri": "https://evil.example.com/cb"}),
			http.StatusBadRequest, "system_invalid_input")
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/start", f.appTok, map[string]any{"connector_id": conn, "email": email, "redirect_uri": upCallback}),
			http.StatusBadRequest, "system_invalid_input")
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/start", f.ClientToken(f.CreateClient("users:read")),
			map[string]any{"connector_id": conn, "redirect_uri": upCallback}), http.StatusForbidden, "insufficient_scope")
	})
}

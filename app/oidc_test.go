package app_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

const otherAPI = "https://api.example.com/orders"

// An off-the-shelf OAuth2 client obtains a ClientAccessToken with both
// client authentication methods; the token verifies against the JWKS found
// through discovery and carries the claims of DESIGN §2.1.
func TestClientCredentialsWithOAuth2Library(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClientWith([]string{otherAPI}, "auth:execute", "users:read", "users:write")
		disc := discovery(t, env)
		tokenURL, _ := disc["token_endpoint"].(string)
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, env.HTTP)

		cases := []struct {
			name      string
			style     oauth2.AuthStyle
			scopes    []string
			resource  string
			wantScope string
			wantAud   string
		}{
			{"basic, all granted scopes", oauth2.AuthStyleInHeader, nil, "", "auth:execute users:read users:write", env.Config.APIResource},
			{"post, scope subset", oauth2.AuthStyleInParams, []string{"users:read", "auth:execute"}, "", "users:read auth:execute", env.Config.APIResource},
			{"basic, allowed resource", oauth2.AuthStyleInHeader, []string{"users:read"}, otherAPI, "users:read", otherAPI},
			{"post, own API as explicit resource", oauth2.AuthStyleInParams, nil, env.Config.APIResource, "auth:execute users:read users:write", env.Config.APIResource},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				cfg := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: tokenURL,
					Scopes: tc.scopes, AuthStyle: tc.style}
				if tc.resource != "" {
					cfg.EndpointParams = url.Values{"resource": {tc.resource}}
				}
				tok, err := cfg.Token(ctx)
				if err != nil {
					t.Fatalf("token: %v", err)
				}
				if ein, _ := tok.Extra("expires_in").(float64); tok.TokenType != "Bearer" || ein != 3600 {
					t.Fatalf("token_type %q expires_in %v, want Bearer 3600", tok.TokenType, tok.Extra("expires_in"))
				}
				if d := time.Until(tok.Expiry); d < 59*time.Minute || d > time.Hour {
					t.Fatalf("expiry in %v, want 1h", d)
				}
				if got, _ := tok.Extra("scope").(string); got != tc.wantScope {
					t.Fatalf("response scope %q, want %q", got, tc.wantScope)
				}

				jt, hdr := verifyOutside(t, env, tok.AccessToken, tc.wantAud)
				if hdr.Type() != "at+jwt" {
					t.Errorf("typ header %q, want at+jwt", hdr.Type())
				}
				if hdr.Algorithm().String() != "ES256" {
					t.Errorf("alg %q, want ES256", hdr.Algorithm())
				}
				if jt.Issuer() != env.Config.Issuer || jt.Issuer() != disc["issuer"] {
					t.Errorf("iss %q, want %q", jt.Issuer(), env.Config.Issuer)
				}
				if jt.Subject() != c.ID {
					t.Errorf("sub %q, want client id %q", jt.Subject(), c.ID)
				}
				if cid, _ := jt.PrivateClaims()["client_id"].(string); cid != c.ID {
					t.Errorf("client_id %q, want %q", cid, c.ID)
				}
				if aud := jt.Audience(); len(aud) != 1 || aud[0] != tc.wantAud {
					t.Errorf("aud %v, want [%s]", aud, tc.wantAud)
				}
				if sc, ok := jt.PrivateClaims()["scope"].(string); !ok || sc != tc.wantScope {
					t.Errorf("scope claim %#v, want the string %q", jt.PrivateClaims()["scope"], tc.wantScope)
				}
				if jt.JwtID() == "" {
					t.Error("no jti")
				}
				if d := time.Since(jt.IssuedAt()); d < -5*time.Second || d > time.Minute {
					t.Errorf("iat %v is not now", jt.IssuedAt())
				}
				if life := jt.Expiration().Sub(jt.IssuedAt()); life != time.Hour {
					t.Errorf("exp - iat = %v, want 1h", life)
				}
			})
		}

		// Each token has its own jti.
		cfg := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.Secret, TokenURL: tokenURL}
		t1, err1 := cfg.Token(ctx)
		t2, err2 := cfg.Token(ctx)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		j1, _ := verifyOutside(t, env, t1.AccessToken, env.Config.APIResource)
		j2, _ := verifyOutside(t, env, t2.AccessToken, env.Config.APIResource)
		if j1.JwtID() == j2.JwtID() {
			t.Fatal("two tokens share a jti")
		}
	})
}

// Every RFC 6749 §5.2 failure of the token endpoint, with its status, error
// code, JSON body and no-store caching.
func TestTokenEndpointErrors(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClientWith([]string{otherAPI}, "auth:execute", "users:read")
		noCC, noCCSecret, err := env.Services.Tokens.Clients.Create(context.Background(),
			token.NewClient{Name: "refresh only", Scopes: []string{"auth:execute"}, GrantTypes: []string{token.GrantRefreshToken}})
		if err != nil {
			t.Fatal(err)
		}

		form := func(kv ...string) string {
			v := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				v.Add(kv[i], kv[i+1])
			}
			return v.Encode()
		}
		cc := "client_credentials"
		type req struct {
			body        string
			contentType string
			user, pass  string // Basic credentials when user != ""
			header      string // raw Authorization header
		}
		cases := []struct {
			name      string
			req       req
			status    int
			errorCode string
		}{
			{"wrong secret (basic)", req{body: form("grant_type", cc), user: c.ID, pass: c.Secret + "x"}, 401, "invalid_client"},
			{"wrong secret (post)", req{body: form("grant_type", cc, "client_id", c.ID, "client_secret", "lcs_wrong")}, 401, "invalid_client"},
			{"unknown client", req{body: form("grant_type", cc), user: "nosuchclient", pass: c.Secret}, 401, "invalid_client"},
			{"missing client authentication", req{body: form("grant_type", cc)}, 401, "invalid_client"},
			{"client_id without secret", req{body: form("grant_type", cc, "client_id", c.ID)}, 401, "invalid_client"},
			{"unsupported authentication scheme", req{body: form("grant_type", cc), header: "Bearer abc"}, 401, "invalid_client"},
			{"basic and post at once", req{body: form("grant_type", cc, "client_id", c.ID, "client_secret", c.Secret), user: c.ID, pass: c.Secret}, 400, "invalid_request"},
			{"missing grant_type", req{body: form("scope", "auth:execute"), user: c.ID, pass: c.Secret}, 400, "invalid_request"},
			{"unknown grant_type", req{body: form("grant_type", "password", "username", "u", "password", "p"), user: c.ID, pass: c.Secret}, 400, "unsupported_grant_type"},
			{"scope not granted", req{body: form("grant_type", cc, "scope", "auth:execute management"), user: c.ID, pass: c.Secret}, 400, "invalid_scope"},
			{"malformed scope", req{body: form("grant_type", cc, "scope", `auth:execute "x"`), user: c.ID, pass: c.Secret}, 400, "invalid_scope"},
			{"resource not allowed", req{body: form("grant_type", cc, "resource", "https://evil.example.com/"), user: c.ID, pass: c.Secret}, 400, "invalid_target"},
			{"resource not absolute", req{body: form("grant_type", cc, "resource", "/relative/api"), user: c.ID, pass: c.Secret}, 400, "invalid_target"},
			{"resource with fragment", req{body: form("grant_type", cc, "resource", otherAPI+"#frag"), user: c.ID, pass: c.Secret}, 400, "invalid_target"},
			{"two resources", req{body: form("grant_type", cc, "resource", otherAPI, "resource", env.Config.APIResource), user: c.ID, pass: c.Secret}, 400, "invalid_target"},
			{"client without client_credentials grant", req{body: form("grant_type", cc), user: noCC.ID, pass: noCCSecret}, 400, "unauthorized_client"},
			{"JSON body", req{body: `{"grant_type":"client_credentials"}`, contentType: "application/json", user: c.ID, pass: c.Secret}, 400, "invalid_request"},
			{"no content type", req{body: form("grant_type", cc), contentType: "-", user: c.ID, pass: c.Secret}, 400, "invalid_request"},
			{"repeated grant_type", req{body: form("grant_type", cc, "grant_type", cc), user: c.ID, pass: c.Secret}, 400, "invalid_request"},
			{"repeated scope", req{body: form("grant_type", cc, "scope", "auth:execute", "scope", "users:read"), user: c.ID, pass: c.Secret}, 400, "invalid_request"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r, _ := http.NewRequest(http.MethodPost, env.URL+"/oidc/token", strings.NewReader(tc.req.body))
				switch tc.req.contentType {
				case "":
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				case "-":
				default:
					r.Header.Set("Content-Type", tc.req.contentType)
				}
				if tc.req.user != "" {
					r.SetBasicAuth(url.QueryEscape(tc.req.user), url.QueryEscape(tc.req.pass))
				}
				if tc.req.header != "" {
					r.Header.Set("Authorization", tc.req.header)
				}
				res := env.Do(r)
				if res.Status != tc.status || res.Str("error") != tc.errorCode {
					t.Fatalf("got %s, want %d %s", res, tc.status, tc.errorCode)
				}
				if res.Str("error_description") == "" {
					t.Errorf("no error_description: %s", res)
				}
				if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type %q, want JSON", ct)
				}
				if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", cc)
				}
				www := res.Header.Get("WWW-Authenticate")
				if tc.status == http.StatusUnauthorized && !strings.HasPrefix(www, "Basic") {
					t.Errorf("401 without a Basic WWW-Authenticate challenge (got %q)", www)
				}
				if strings.Contains(string(res.Raw), c.Secret) {
					t.Error("the error body echoes the client secret")
				}
			})
		}
	})
}

// The client is authenticated the same way whatever the form of the
// credentials: RFC 6749 §2.3.1 form-encodes them inside Basic.
func TestTokenEndpointBasicCredentialsAreFormDecoded(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute")
		// Client secrets are base64url: encoding them changes nothing, but a
		// raw (not encoded) pair must work too.
		r, _ := http.NewRequest(http.MethodPost, env.URL+"/oidc/token", strings.NewReader("grant_type=client_credentials"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		r.SetBasicAuth(c.ID, c.Secret)
		if res := env.Do(r); res.Status != http.StatusOK || res.Str("access_token") == "" {
			t.Fatalf("raw basic credentials: %s", res)
		}
		// client_id in the body alongside matching Basic credentials is fine.
		res := env.Form("/oidc/token", &c, url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}})
		if res.Status != http.StatusOK {
			t.Fatalf("basic + matching client_id: %s", res)
		}
		res = env.Form("/oidc/token", &c, url.Values{"grant_type": {"client_credentials"}, "client_id": {"someoneelse"}})
		if res.Status != http.StatusBadRequest || res.Str("error") != "invalid_request" {
			t.Fatalf("basic + other client_id: %s", res)
		}
	})
}

func introspect(env *apptest.Env, as apptest.Client, raw string) *apptest.Response {
	return env.Form("/oidc/token/introspection", &as, url.Values{"token": {raw}})
}

// Introspection (RFC 7662) reports live ClientAccessTokens with their claims
// and everything else as inactive; revocation (RFC 7009) makes a token
// inactive everywhere, and only its own client may revoke it.
func TestIntrospectionAndRevocation(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute", "users:read")
		other := env.CreateClient("auth:execute")
		raw := env.ClientToken(c, "users:read", "auth:execute")

		res := introspect(env, other, raw)
		if res.Status != http.StatusOK || res.JSON["active"] != true {
			t.Fatalf("introspect live token: %s", res)
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("introspection Cache-Control %q", res.Header.Get("Cache-Control"))
		}
		jt, _ := verifyOutside(t, env, raw, env.Config.APIResource)
		want := map[string]any{
			"client_id": c.ID, "sub": c.ID, "scope": "users:read auth:execute", "token_type": "Bearer",
			"iss": env.Config.Issuer, "jti": jt.JwtID(),
			"exp": float64(jt.Expiration().Unix()), "iat": float64(jt.IssuedAt().Unix()),
		}
		for k, v := range want {
			if res.JSON[k] != v {
				t.Errorf("introspection %s = %#v, want %#v", k, res.JSON[k], v)
			}
		}
		if aud, _ := res.JSON["aud"].([]any); len(aud) != 1 || aud[0] != env.Config.APIResource {
			t.Errorf("introspection aud = %#v", res.JSON["aud"])
		}

		// Introspection needs client authentication.
		if res := env.Form("/oidc/token/introspection", nil, url.Values{"token": {raw}}); res.Status != http.StatusUnauthorized || res.Str("error") != "invalid_client" {
			t.Fatalf("introspect without client auth: %s", res)
		}
		if res := env.Form("/oidc/token/introspection", &c, url.Values{}); res.Status != http.StatusBadRequest || res.Str("error") != "invalid_request" {
			t.Fatalf("introspect without token: %s", res)
		}

		kid, key := latchKey(t, env)
		expiredClaims := clientClaims(env, c.ID)
		expiredClaims["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		expiredClaims["exp"] = time.Now().Add(-time.Hour).Unix()
		expired := forge(t, gjwt.SigningMethodES256, key, map[string]any{"kid": kid, "typ": "at+jwt"}, expiredClaims)
		for name, tok := range map[string]string{
			"garbage":            "not-a-token",
			"jwt-shaped garbage": "a.b.c",
			"expired":            expired,
			"empty-ish":          "...",
		} {
			res := introspect(env, c, tok)
			if res.Status != http.StatusOK || res.JSON["active"] != false || len(res.JSON) != 1 {
				t.Errorf("introspect %s: %s, want exactly {\"active\":false}", name, res)
			}
		}

		// Another client cannot revoke c's token; it stays active.
		res = env.Form("/oidc/token/revocation", &other, url.Values{"token": {raw}})
		if res.Status != http.StatusBadRequest || res.Str("error") != "unauthorized_client" {
			t.Fatalf("revoke another client's token: %s", res)
		}
		if res := introspect(env, c, raw); res.JSON["active"] != true {
			t.Fatalf("token inactive after a refused revocation: %s", res)
		}
		if res := env.JSON(http.MethodGet, "/v1/auth/whoami", raw, nil); res.Status != http.StatusOK {
			t.Fatalf("whoami before revocation: %s", res)
		}
		// Revocation needs client authentication.
		if res := env.Form("/oidc/token/revocation", nil, url.Values{"token": {raw}}); res.Status != http.StatusUnauthorized || res.Str("error") != "invalid_client" {
			t.Fatalf("revoke without client auth: %s", res)
		}
		if res := env.Form("/oidc/token/revocation", &c, url.Values{"token": {raw}, "token_type_hint": {"id_token"}}); res.Status != http.StatusBadRequest || res.Str("error") != "unsupported_token_type" {
			t.Fatalf("revoke with a bad hint: %s", res)
		}

		// The owner revokes it: 200, then inactive and refused.
		for i := 0; i < 2; i++ { // revoking twice is fine (idempotent)
			res = env.Form("/oidc/token/revocation", &c, url.Values{"token": {raw}, "token_type_hint": {"access_token"}})
			if res.Status != http.StatusOK {
				t.Fatalf("revoke (%d): %s", i, res)
			}
		}
		if res := introspect(env, c, raw); res.Status != http.StatusOK || res.JSON["active"] != false {
			t.Fatalf("introspect revoked token: %s", res)
		}
		res = env.JSON(http.MethodGet, "/v1/auth/whoami", raw, nil)
		if res.Status != http.StatusUnauthorized || res.Str("error_code") != "invalid_client_token" {
			t.Fatalf("whoami with a revoked token: %s", res)
		}
		// Other tokens of the same client are unaffected.
		if res := env.JSON(http.MethodGet, "/v1/auth/whoami", env.ClientToken(c), nil); res.Status != http.StatusOK {
			t.Fatalf("whoami with a fresh token: %s", res)
		}
		// Unknown or invalid tokens: 200, nothing to do (RFC 7009 §2.2).
		for _, tok := range []string{"garbage", "a.b.c", expired} {
			if res := env.Form("/oidc/token/revocation", &c, url.Values{"token": {tok}}); res.Status != http.StatusOK {
				t.Errorf("revoke %q: %s", tok, res)
			}
		}
	})
}

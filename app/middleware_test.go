package app_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/latch-dev/latch/app/apptest"
)

// The auth middleware of Latch's own APIs refuses every token that is not a
// live ClientAccessToken Latch issued for its own API.
func TestAuthMiddlewareRejectsBadTokens(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClientWith([]string{otherAPI}, "auth:execute", "users:read")
		kid, key := latchKey(t, env)

		// The control: a forged-by-us token with Latch's real key and valid
		// claims is accepted, so each case below fails for its one defect.
		good := forge(t, gjwt.SigningMethodES256, key, map[string]any{"kid": kid, "typ": "at+jwt"}, clientClaims(env, c.ID))
		if res := env.JSON(http.MethodGet, "/v1/auth/whoami", good, nil); res.Status != http.StatusOK || res.Str("client_id") != c.ID {
			t.Fatalf("control token refused: %s", res)
		}

		pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
		foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		with := func(mut func(gjwt.MapClaims)) gjwt.MapClaims {
			cl := clientClaims(env, c.ID)
			mut(cl)
			return cl
		}
		signed := func(cl gjwt.MapClaims) string {
			return forge(t, gjwt.SigningMethodES256, key, map[string]any{"kid": kid, "typ": "at+jwt"}, cl)
		}
		otherAud := env.Form("/oidc/token", &c, url.Values{"grant_type": {"client_credentials"}, "resource": {otherAPI}})
		if otherAud.Status != http.StatusOK {
			t.Fatalf("token for %s: %s", otherAPI, otherAud)
		}
		noneToken := func() string {
			raw, err := gjwt.NewWithClaims(gjwt.SigningMethodNone, clientClaims(env, c.ID)).SignedString(gjwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return raw
		}()
		// A token with a valid signature, re-encoded with alg none and no signature.
		parts := strings.Split(good, ".")
		strippedNone := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+kid+`","typ":"at+jwt"}`)) + "." + parts[1] + "."

		cases := []struct {
			name   string
			header string // full Authorization header
		}{
			{"missing token", ""},
			{"empty bearer", "Bearer "},
			{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(c.ID+":"+c.Secret))},
			{"garbage", "Bearer not.a.jwt"},
			{"alg none", "Bearer " + noneToken},
			{"alg none with Latch kid", "Bearer " + strippedNone},
			{"HS256 signed with the public key (PEM)", "Bearer " + forge(t, gjwt.SigningMethodHS256, pubPEM, map[string]any{"kid": kid, "typ": "at+jwt"}, clientClaims(env, c.ID))},
			{"HS256 signed with the public key (DER)", "Bearer " + forge(t, gjwt.SigningMethodHS256, pubDER, map[string]any{"kid": kid, "typ": "at+jwt"}, clientClaims(env, c.ID))},
			{"foreign ES256 key with Latch's kid", "Bearer " + forge(t, gjwt.SigningMethodES256, foreign, map[string]any{"kid": kid, "typ": "at+jwt"}, clientClaims(env, c.ID))},
			{"foreign ES256 key with its own thumbprint kid", "Bearer " + forge(t, gjwt.SigningMethodES256, foreign, map[string]any{"kid": thumbprint(t, foreign), "typ": "at+jwt"}, clientClaims(env, c.ID))},
			{"foreign ES256 key without kid", "Bearer " + forge(t, gjwt.SigningMethodES256, foreign, map[string]any{"typ": "at+jwt"}, clientClaims(env, c.ID))},
			{"wrong aud (token for another resource)", "Bearer " + otherAud.Str("access_token")},
			{"wrong aud (forged)", "Bearer " + signed(with(func(m gjwt.MapClaims) { m["aud"] = "https://elsewhere.example.com" }))},
			{"no aud", "Bearer " + signed(with(func(m gjwt.MapClaims) { delete(m, "aud") }))},
			{"wrong iss", "Bearer " + signed(with(func(m gjwt.MapClaims) { m["iss"] = "https://evil.example.com" }))},
			{"no iss", "Bearer " + signed(with(func(m gjwt.MapClaims) { delete(m, "iss") }))},
			{"expired", "Bearer " + signed(with(func(m gjwt.MapClaims) {
				m["iat"] = time.Now().Add(-2 * time.Hour).Unix()
				m["exp"] = time.Now().Add(-2 * time.Minute).Unix()
			}))},
			{"no exp", "Bearer " + signed(with(func(m gjwt.MapClaims) { delete(m, "exp") }))},
			{"issued in the future", "Bearer " + signed(with(func(m gjwt.MapClaims) { m["iat"] = time.Now().Add(time.Hour).Unix() }))},
			{"not yet valid", "Bearer " + signed(with(func(m gjwt.MapClaims) { m["nbf"] = time.Now().Add(time.Hour).Unix() }))},
			{"no jti", "Bearer " + signed(with(func(m gjwt.MapClaims) { delete(m, "jti") }))},
			{"user-shaped token (sub is a user, sid set)", "Bearer " + signed(with(func(m gjwt.MapClaims) {
				m["sub"] = "user_123"
				m["sid"] = "sess_123"
				m["auth_time"] = time.Now().Unix()
				m["amr"] = []string{"pwd"}
			}))},
			{"user-shaped token (sub differs from client_id)", "Bearer " + signed(with(func(m gjwt.MapClaims) { m["sub"] = "user_123" }))},
			{"wrong typ (an ID token)", "Bearer " + forge(t, gjwt.SigningMethodES256, key, map[string]any{"kid": kid, "typ": "JWT"}, clientClaims(env, c.ID))},
			{"no typ", "Bearer " + forge(t, gjwt.SigningMethodES256, key, map[string]any{"kid": kid}, clientClaims(env, c.ID))},
			{"tampered payload", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+env.Config.Issuer+`","sub":"x","client_id":"x","aud":"`+env.Config.APIResource+`","exp":9999999999,"jti":"j"}`)) + "." + parts[2]},
		}
		// Requests that carry no Bearer token at all.
		noToken := map[string]bool{"missing token": true, "empty bearer": true, "basic scheme": true}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, env.URL+"/v1/auth/whoami", nil)
				if tc.header != "" {
					req.Header.Set("Authorization", tc.header)
				}
				res := env.Do(req)
				if res.Status != http.StatusUnauthorized || res.Str("error_code") != "invalid_client_token" || res.Str("message") == "" {
					t.Fatalf("got %s, want 401 invalid_client_token", res)
				}
				www := res.Header.Get("WWW-Authenticate")
				if noToken[tc.name] {
					// RFC 6750 §3.1: no credentials, no error code.
					if www != `Bearer realm="latch"` {
						t.Fatalf("WWW-Authenticate %q, want a bare Bearer challenge", www)
					}
				} else if !strings.HasPrefix(www, "Bearer ") || !strings.Contains(www, `error="invalid_token"`) {
					t.Fatalf("WWW-Authenticate %q, want a Bearer invalid_token challenge", www)
				}
				if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
					t.Fatalf("Content-Type %q", res.Header.Get("Content-Type"))
				}
			})
		}
	})
}

// thumbprint returns the RFC 7638 thumbprint of an EC P-256 public key, the
// same kind of kid Latch uses.
func thumbprint(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	pt, err := key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pt.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding.EncodeToString
	h := crypto.SHA256.New()
	h.Write([]byte(`{"crv":"P-256","kty":"EC","x":"` + enc(raw[1:33]) + `","y":"` + enc(raw[33:]) + `"}`))
	return enc(h.Sum(nil))
}

// The middleware keeps accepting a live token across requests and reports
// what it verified.
func TestWhoamiReportsScopesAndAudience(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute", "users:read")
		raw := env.ClientToken(c, "users:read")
		res := env.JSON(http.MethodGet, "/v1/auth/whoami", raw, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("whoami: %s", res)
		}
		scopes, _ := res.JSON["scopes"].([]any)
		if len(scopes) != 1 || scopes[0] != "users:read" {
			t.Errorf("scopes %#v", res.JSON["scopes"])
		}
		if aud, _ := res.JSON["audience"].([]any); len(aud) != 1 || aud[0] != env.Config.APIResource {
			t.Errorf("audience %#v", res.JSON["audience"])
		}
		// A lower-case scheme is accepted (RFC 7235: schemes are case-insensitive).
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, env.URL+"/v1/auth/whoami", nil)
		req.Header.Set("Authorization", "bearer "+raw)
		if res := env.Do(req); res.Status != http.StatusOK {
			t.Errorf("lower-case bearer: %s", res)
		}
	})
}

package app_test

import (
	"crypto/elliptic"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/latch-dev/latch/app/apptest"
)

// wantTokenRefused checks a 401 for a presented but invalid Bearer token in
// the /v1 dialect, with its RFC 6750 challenge.
func wantTokenRefused(t testing.TB, res *apptest.Response) {
	t.Helper()
	wantError(t, res, http.StatusUnauthorized, "invalid_client_token")
	if h := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer realm="latch", error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate %q", h)
	}
}

// wantInactive checks that introspection answers exactly {"active": false}.
func (f *v1Fix) wantInactive(t testing.TB, raw string) {
	t.Helper()
	res := f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {raw}})
	if res.Status != http.StatusOK || strings.TrimSpace(string(res.Raw)) != `{"active":false}` {
		t.Fatalf("introspection: %s, want exactly {\"active\":false}", res)
	}
}

// A token naming critical header extensions is refused (RFC 7515 §4.1.11:
// Latch understands none), even with a valid signature by Latch's key.
func TestTokensWithCriticalHeaderParametersAreRefused(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		kid, key := latchKey(t, f.Env)
		header := func(crit any) map[string]any {
			h := map[string]any{"kid": kid, "typ": "at+jwt"}
			if crit != nil {
				h["crit"] = crit
			}
			return h
		}
		control := forge(t, gjwt.SigningMethodES256, key, header(nil), clientClaims(f.Env, f.client.ID))
		if res := f.call(t, http.MethodGet, "/v1/auth/whoami", control, nil); res.Status != http.StatusOK {
			t.Fatalf("control token refused: %s", res)
		}
		for _, crit := range []any{[]string{"exp"}, []string{"foo"}, []string{}, "exp"} {
			raw := forge(t, gjwt.SigningMethodES256, key, header(crit), clientClaims(f.Env, f.client.ID))
			res := f.call(t, http.MethodGet, "/v1/auth/whoami", raw, nil)
			wantTokenRefused(t, res)
			if !strings.Contains(res.Str("message"), "crit") {
				t.Errorf("crit %v: message %q does not name crit", crit, res.Str("message"))
			}
			f.wantInactive(t, raw)
		}
	})
}

// malleate returns the twin of an ES256 token whose signature (r, s) is
// replaced by (r, n−s): a different string, equally valid for ECDSA.
func malleate(t *testing.T, raw string) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("ES256 signature: %d bytes, %v", len(sig), err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	twin := append(append([]byte{}, sig[:32]...), s.FillBytes(make([]byte, 32))...)
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(twin)
}

// Revocation goes by the token (its jti), not by the string presented: a
// malleated twin of a revoked token is refused at once, even when it sat in
// the verify cache; and a signature in non-canonical base64 is refused
// outright.
func TestRevocationCoversEveryEncodingOfAToken(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		whoami := func(raw string) int { return f.call(t, http.MethodGet, "/v1/auth/whoami", raw, nil).Status }
		revoke := func(raw string) {
			if res := f.form(t, "/oidc/token/revocation", f.client, url.Values{"token": {raw}}); res.Status != http.StatusOK {
				t.Fatalf("revoke: %s", res)
			}
		}
		for _, revokeTwin := range []bool{false, true} {
			raw := f.ClientToken(f.client)
			twin := malleate(t, raw)
			if twin == raw || whoami(raw) != http.StatusOK || whoami(twin) != http.StatusOK {
				t.Fatal("control: the token and its twin should both verify before revocation")
			}
			if revokeTwin {
				revoke(twin)
			} else {
				revoke(raw)
			}
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/auth/whoami", twin, nil))
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/auth/whoami", raw, nil))
			f.wantInactive(t, twin)
			f.wantInactive(t, raw)
		}

		// The last character of an ES256 signature carries 2 bits and 4 of
		// padding; setting one of those decodes, leniently, to the same bytes.
		raw := f.ClientToken(f.client)
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, raw[len(raw)-1])
		loose := raw[:len(raw)-1] + string(alphabet[last|1])
		a, _ := base64.RawURLEncoding.DecodeString(raw[strings.LastIndexByte(raw, '.')+1:])
		c, err := base64.RawURLEncoding.DecodeString(loose[strings.LastIndexByte(loose, '.')+1:])
		if err != nil || string(a) != string(c) || loose == raw {
			t.Fatalf("the non-canonical twin should decode to the same signature: %v", err)
		}
		wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/auth/whoami", loose, nil))
		if whoami(raw) != http.StatusOK {
			t.Fatal("the canonical token was refused")
		}
	})
}

// Without any Bearer token the challenge carries no error code (RFC 6750
// §3.1); with a bad one it says invalid_token.
func TestBearerChallengeWithoutCredentials(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		for _, path := range []string{"/v1/auth/whoami", "/oidc/me"} {
			res := env.JSON(http.MethodGet, path, "", nil)
			if res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != `Bearer realm="latch"` {
				t.Fatalf("%s without a token: %s, WWW-Authenticate %q", path, res, res.Header.Get("WWW-Authenticate"))
			}
			res = env.JSON(http.MethodGet, path, "not-a-token", nil)
			if h := res.Header.Get("WWW-Authenticate"); res.Status != http.StatusUnauthorized ||
				!strings.HasPrefix(h, `Bearer realm="latch", error="invalid_token"`) {
				t.Fatalf("%s with a bad token: %s, WWW-Authenticate %q", path, res, h)
			}
		}
	})
}

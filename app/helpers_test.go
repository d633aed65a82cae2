package app_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/credentials"
)

// discovery fetches the OpenID configuration document.
func discovery(t *testing.T, env *apptest.Env) map[string]any {
	t.Helper()
	res := env.JSON(http.MethodGet, "/.well-known/openid-configuration", "", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("discovery: %s", res)
	}
	return res.JSON
}

// fetchJWKS fetches the key set the way an outside verifier does: from the
// jwks_uri of the discovery document.
func fetchJWKS(t *testing.T, env *apptest.Env) jwk.Set {
	t.Helper()
	uri, _ := discovery(t, env)["jwks_uri"].(string)
	if !strings.HasPrefix(uri, env.URL) {
		t.Fatalf("jwks_uri %q is not served by %s", uri, env.URL)
	}
	set, err := jwk.Fetch(context.Background(), uri)
	if err != nil {
		t.Fatalf("fetch JWKS from %s: %v", uri, err)
	}
	return set
}

// kids lists the key ids of a key set.
func kids(set jwk.Set) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		out[k.KeyID()] = true
	}
	return out
}

// verifyOutside verifies raw with jwx against the published JWKS, checking
// iss and aud, and returns the token and its protected header.
func verifyOutside(t *testing.T, env *apptest.Env, raw, audience string) (jwt.Token, jws.Headers) {
	t.Helper()
	set := fetchJWKS(t, env)
	iss, _ := discovery(t, env)["issuer"].(string)
	tok, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithValidate(true),
		jwt.WithIssuer(iss), jwt.WithAudience(audience), jwt.WithAcceptableSkew(time.Minute))
	if err != nil {
		t.Fatalf("token does not verify against the JWKS: %v", err)
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return tok, msg.Signatures()[0].ProtectedHeaders()
}

// latchKey returns Latch's active signing key, read from the database and
// unsealed with the deployment's secret key, so tests can forge tokens that
// carry a valid signature but bad claims.
func latchKey(t *testing.T, env *apptest.Env) (kid string, key crypto.Signer) {
	t.Helper()
	var row struct {
		Kid        string
		PrivateKey []byte
	}
	err := env.Services.DB.WithContext(context.Background()).
		Raw("SELECT kid, private_key FROM signing_keys WHERE state = ?", "active").Scan(&row).Error
	if err != nil || row.Kid == "" {
		t.Fatalf("active signing key: %v", err)
	}
	sealer, err := credentials.NewSealer(env.Config.SecretKeyBytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := sealer.Open(row.PrivateKey, []byte("signing_key:"+row.Kid))
	if err != nil {
		t.Fatalf("unseal signing key: %v", err)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	return row.Kid, parsed.(crypto.Signer)
}

// forge signs claims with golang-jwt.
func forge(t *testing.T, method gjwt.SigningMethod, key any, header map[string]any, claims gjwt.MapClaims) string {
	t.Helper()
	tok := gjwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("forge %s: %v", method.Alg(), err)
	}
	return raw
}

// clientClaims are the claims of a valid ClientAccessToken for env's API.
func clientClaims(env *apptest.Env, clientID string) gjwt.MapClaims {
	now := time.Now()
	return gjwt.MapClaims{
		"iss": env.Config.Issuer, "sub": clientID, "client_id": clientID,
		"aud": env.Config.APIResource, "scope": "auth:execute",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": credentials.RandomToken(16),
	}
}

// decodeJSON decodes raw into a map, failing the test on error.
func decodeJSON(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, raw)
	}
	return m
}

package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Issue 15: client types and their redirect URIs. spa and native clients
// are public (no secret, never client_credentials); browser clients need an
// exact redirect URI that is https, loopback http, or (native) a private-use
// scheme; backend clients have none.
func TestClientTypes(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		spa, secret, err := s.Clients.Create(ctx, NewClient{Name: "spa", Type: ClientSPA, RedirectURIs: []string{"https://app.example/cb"}})
		if err != nil || secret != "" || !spa.Public() || !spa.HasGrant(GrantAuthorizationCode) || spa.HasGrant(GrantClientCredentials) || !spa.FirstParty {
			t.Fatalf("spa client %+v, secret %q, %v", spa, secret, err)
		}
		if _, err := s.Clients.Authenticate(ctx, spa.ID, ""); err == nil {
			t.Fatal("a public client authenticated with an empty secret")
		}
		got, err := s.Clients.Get(ctx, spa.ID)
		if err != nil || !got.HasRedirectURI("https://app.example/cb") || got.HasRedirectURI("https://app.example/cb/") || got.Type != ClientSPA {
			t.Fatalf("stored spa client %+v, %v", got, err)
		}
		for _, nc := range []NewClient{
			{Name: "x", Type: ClientWeb},
			{Name: "x", Type: ClientWeb, RedirectURIs: []string{"http://app.example/cb"}},
			{Name: "x", Type: ClientWeb, RedirectURIs: []string{"https://app.example/cb#frag"}},
			{Name: "x", Type: ClientWeb, RedirectURIs: []string{"/relative"}},
			{Name: "x", Type: ClientWeb, RedirectURIs: []string{"com.example.app:/cb"}},
			// A backend client's redirect URIs are social/SSO return URLs
			// (https, no fragment); it has no post-logout URIs.
			{Name: "x", Type: ClientBackend, RedirectURIs: []string{"https://app.example/cb#frag"}},
			{Name: "x", Type: ClientBackend, PostLogoutRedirectURIs: []string{"https://app.example/"}},
			{Name: "x", Type: "mobile", RedirectURIs: []string{"https://app.example/cb"}},
			{Name: "x", Type: ClientNative, RedirectURIs: []string{"com.example.app:/cb"}, GrantTypes: []string{GrantClientCredentials}},
		} {
			if _, _, err := s.Clients.Create(ctx, nc); !fault.Is(err, fault.CodeInvalidInput) {
				t.Errorf("%+v: %v, want invalid input", nc, err)
			}
		}
		for _, uri := range []string{"http://127.0.0.1:8000/cb", "http://localhost/cb", "com.example.app:/oauth"} {
			if _, _, err := s.Clients.Create(ctx, NewClient{Name: "n", Type: ClientNative, RedirectURIs: []string{uri}}); err != nil {
				t.Errorf("native redirect %q: %v", uri, err)
			}
		}
		third := false
		web, secret, err := s.Clients.Create(ctx, NewClient{Name: "w", Type: ClientWeb, RedirectURIs: []string{"https://w.example/cb"}, FirstParty: &third})
		if err != nil || secret == "" || web.Public() || web.FirstParty {
			t.Fatalf("web client %+v, %v", web, err)
		}
	})
}

// RFC 7636 S256: the challenge is BASE64URL(SHA256(verifier)); verifiers
// outside 43–128 unreserved characters never match.
func TestVerifyPKCE(t *testing.T) {
	v := strings.Repeat("abcdefghij", 5)
	sum := sha256.Sum256([]byte(v))
	ch := base64.RawURLEncoding.EncodeToString(sum[:])
	if !ValidCodeChallenge(ch) || !VerifyPKCE(ch, v) {
		t.Fatal("a matching verifier is refused")
	}
	for _, bad := range []string{"", v + "x", v[:42], strings.Repeat("a", 129), strings.Repeat("é", 43)} {
		if VerifyPKCE(ch, bad) {
			t.Errorf("verifier %q accepted", bad)
		}
	}
	if VerifyPKCE(v, v) || ValidCodeChallenge("short") {
		t.Fatal("plain accepted")
	}
}

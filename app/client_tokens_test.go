package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/app/apptest"
)

// eventually polls cond until it holds or d has passed.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openReplica opens a second set of services over env's database — what the
// CLI (`latch client delete`, `rotate-secret`) or another replica is: it
// shares no cache with the server.
func openReplica(t *testing.T, env *apptest.Env) *app.Services {
	t.Helper()
	svc, err := app.Open(context.Background(), env.Config, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// A deleted client's ClientAccessToken is refused by every route behind
// one, not only by the routes that mint user tokens; its users' access
// tokens die with it. The replica that deletes refuses at once, the others
// within LATCH_CLIENT_CACHE_TTL.
func TestDeletedClientsTokensAreRefused(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b, apptest.With("LATCH_CLIENT_CACHE_TTL", "200ms"))
		userID, username, password := f.newUser(t)

		t.Run("deleted by this server", func(t *testing.T) {
			victim := f.CreateClient(v1Scopes...)
			tok := f.ClientToken(victim)
			signIn := f.call(t, http.MethodPost, "/v1/auth/password/authenticate", tok, authBody(username, password, nil))
			if signIn.Status != http.StatusOK {
				t.Fatalf("sign in: %s", signIn)
			}
			// The control: everything works while the client exists (and
			// the token sits in the verify cache).
			if res := f.call(t, http.MethodGet, "/v1/users/"+userID, tok, nil); res.Status != http.StatusOK {
				t.Fatalf("get user: %s", res)
			}
			if res := f.call(t, http.MethodGet, "/v1/auth/whoami", tok, nil); res.Status != http.StatusOK {
				t.Fatalf("whoami: %s", res)
			}
			if res := f.call(t, http.MethodGet, "/oidc/me", signIn.Str("access_token"), nil); res.Status != http.StatusOK {
				t.Fatalf("userinfo: %s", res)
			}

			if err := f.Services.Tokens.Clients.Delete(context.Background(), victim.ID); err != nil {
				t.Fatal(err)
			}
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/users/"+userID, tok, nil))
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/auth/whoami", tok, nil))
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/audit-events", tok, nil))
			expWantAPI(t, f.call(t, http.MethodPut, "/api/experience", tok, map[string]any{"interactionEvent": "SignIn"}),
				http.StatusUnauthorized, "auth.invalid_client_token")
			f.wantInactive(t, tok)
			me := f.call(t, http.MethodGet, "/oidc/me", signIn.Str("access_token"), nil)
			if me.Status != http.StatusUnauthorized || !strings.Contains(me.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("userinfo with a deleted client's user token: %s", me)
			}
			f.wantInactive(t, signIn.Str("access_token"))
		})

		t.Run("deleted by another process", func(t *testing.T) {
			victim := f.CreateClient(v1Scopes...)
			tok := f.ClientToken(victim)
			if res := f.call(t, http.MethodGet, "/v1/users/"+userID, tok, nil); res.Status != http.StatusOK {
				t.Fatalf("get user: %s", res)
			}
			if err := openReplica(t, f.Env).Tokens.Clients.Delete(context.Background(), victim.ID); err != nil {
				t.Fatal(err)
			}
			eventually(t, 6*time.Second, "the deleted client's token is refused", func() bool {
				return f.call(t, http.MethodGet, "/v1/users/"+userID, tok, nil).Status == http.StatusUnauthorized
			})
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/users/"+userID, tok, nil))
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/auth/whoami", tok, nil))
		})
	})
}

// Rotating a client's secret leaves the tokens it already has valid, unless
// the rotation revokes them: then every token issued before it is refused,
// those of the rotation's own second included, and tokens minted with the
// new secret right after it work.
func TestRotateSecretRevokesTokensOnlyWhenAsked(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		ctx := context.Background()
		c := f.CreateClient("auth:execute", "users:read")
		before := f.ClientToken(c)

		// A plain rotation: the old secret is refused, old tokens are not.
		_, secret, err := f.Services.Tokens.Clients.RotateSecret(ctx, c.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if res := f.Form("/oidc/token", &c, url.Values{"grant_type": {"client_credentials"}}); res.Status != http.StatusUnauthorized {
			t.Fatalf("old secret after rotation: %s", res)
		}
		c.Secret = secret
		if res := f.call(t, http.MethodGet, "/v1/auth/whoami", before, nil); res.Status != http.StatusOK {
			t.Fatalf("token from before a plain rotation: %s", res)
		}
		second := f.ClientToken(c) // most likely of the same second as the next rotation

		client, secret, err := f.Services.Tokens.Clients.RotateSecret(ctx, c.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if client.TokensValidAfter == nil {
			t.Fatalf("rotated client %+v has no tokens_valid_after", client)
		}
		c.Secret = secret
		after := f.ClientToken(c) // minted at once with the new secret
		for _, old := range []string{before, second} {
			wantTokenRefused(t, f.call(t, http.MethodGet, "/v1/auth/whoami", old, nil))
			f.wantInactive(t, old)
		}
		if res := f.call(t, http.MethodGet, "/v1/auth/whoami", after, nil); res.Status != http.StatusOK {
			t.Fatalf("token minted right after a revoking rotation: %s", res)
		}

		// Another server (the CLI's rotation) refuses them within the client cache TTL.
		g := v1Start(t, b, apptest.With("LATCH_CLIENT_CACHE_TTL", "200ms"))
		c2 := g.CreateClient("auth:execute")
		tok := g.ClientToken(c2)
		if res := g.call(t, http.MethodGet, "/v1/auth/whoami", tok, nil); res.Status != http.StatusOK {
			t.Fatalf("whoami: %s", res)
		}
		if _, _, err := openReplica(t, g.Env).Tokens.Clients.RotateSecret(ctx, c2.ID, true); err != nil {
			t.Fatal(err)
		}
		eventually(t, 6*time.Second, "a token revoked by another process is refused", func() bool {
			return g.call(t, http.MethodGet, "/v1/auth/whoami", tok, nil).Status == http.StatusUnauthorized
		})
	})
}

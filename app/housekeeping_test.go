package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// Issue 15: the server's housekeeping loop purges the authorization code
// flow's expired rows (requests, codes, browser sessions) on its interval,
// keeps live ones, and stops when its context ends (shutdown).
func TestHousekeepingPurgesAuthorizationFlow(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		db := f.Services.DB
		old := time.Now().UTC().Add(-72 * time.Hour)
		for _, q := range []string{
			`INSERT INTO oidc_auth_requests (id, client_id, redirect_uri, scope, state, nonce, code_challenge, prompt, max_age, login_hint,
				interaction_digest, session_id, created_at, expires_at) VALUES (?, 'c', 'https://rp.example/cb', 'openid', '', '', '', '', -1, '', '', '', ?, ?)`,
			`INSERT INTO oidc_codes (digest, client_id, redirect_uri, scope, nonce, code_challenge, session_id, user_id, created_at, expires_at)
				VALUES (?, 'c', 'https://rp.example/cb', 'openid', '', '', 's', 'u', ?, ?)`,
			`INSERT INTO oidc_browser_sessions (digest, session_id, user_id, created_at, expires_at) VALUES (?, 's', 'u', ?, ?)`,
		} {
			for _, id := range []string{"dead-1", "dead-2", "dead-3"} {
				if err := db.Exec(q, id, old, old.Add(time.Hour)).Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		// A live authorization request, from a real GET /oidc/auth.
		r := f.newRP(t, token.NewClient{Type: token.ClientWeb})
		_, challenge := pkce()
		p := f.browser(t).get(r.config.AuthCodeURL("st", challenge))
		if p.URL.Path != "/ui/sign-in" {
			t.Fatalf("authorization request ended at %s", p.URL)
		}
		live := p.URL.Query().Get("request")

		count := func(table string) int64 {
			var n int64
			if err := db.Table(table).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.Services.RunHousekeeping(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for count("oidc_codes")+count("oidc_browser_sessions") > 0 || count("oidc_auth_requests") > 1 {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("expired rows not purged: %d requests, %d codes, %d browser sessions",
					count("oidc_auth_requests"), count("oidc_codes"), count("oidc_browser_sessions"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := f.Services.Tokens.AuthRequest(context.Background(), live); err != nil {
			t.Fatalf("the live authorization request was purged: %v", err)
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("housekeeping did not stop when its context ended")
		}
	})
}

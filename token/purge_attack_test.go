package token

import (
	"context"
	"testing"
	"time"

	"github.com/latch-dev/latch/store"
)

// TestAttackPurgeBoundary: the purge never takes a row that is still live,
// nor one that expired less than the retention ago, at the very boundary:
// rows expiring exactly at the cutoff and a microsecond after it stay, a
// row a millisecond before it goes — on whole-second and fractional
// clocks alike (SQLite compares stored times as text, PostgreSQL stores
// microseconds), with no retention and with a day's.
func TestAttackPurgeBoundary(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, c := range []struct {
			name   string
			at     time.Time
			retain time.Duration
		}{
			{"WholeSecond", time.Now().UTC().Truncate(time.Second), 0},
			{"Fractional", time.Now().UTC().Truncate(time.Second).Add(123456 * time.Microsecond), 0},
			{"FractionalDayRetained", time.Now().UTC().Truncate(time.Second).Add(999999 * time.Microsecond), 24 * time.Hour},
		} {
			t.Run(c.name, func(t *testing.T) {
				if err := db.Exec("DELETE FROM oidc_auth_requests").Error; err != nil {
					t.Fatal(err)
				}
				db.Exec("DELETE FROM oidc_codes")
				db.Exec("DELETE FROM oidc_browser_sessions")
				s := newTestService(t, db)
				cutoff := c.at.Add(-c.retain)
				var clock time.Time
				s.now = func() time.Time { return clock }
				// mk makes two requests (one answered with a code, one still
				// open), a code and a browser session, each expiring at
				// expires.
				type rows struct {
					request, cookie string
				}
				mk := func(expires time.Time) rows {
					clock = expires.Add(-AuthRequestTTL)
					ar, err := s.CreateAuthRequest(ctx, AuthRequest{ClientID: "c", RedirectURI: "https://rp.example/cb", Scope: "openid", MaxAge: -1})
					if err != nil {
						t.Fatal(err)
					}
					open, err := s.CreateAuthRequest(ctx, AuthRequest{ClientID: "c", RedirectURI: "https://rp.example/cb", Scope: "openid", MaxAge: -1})
					if err != nil {
						t.Fatal(err)
					}
					clock = expires.Add(-CodeTTL)
					if _, err := s.IssueCode(ctx, ar, "u"); err != nil {
						t.Fatal(err)
					}
					cookie, err := s.StartBrowserSession(ctx, "sess-"+expires.Format(time.RFC3339Nano), "u", expires)
					if err != nil {
						t.Fatal(err)
					}
					return rows{open.ID, cookie}
				}
				gone := mk(cutoff.Add(-time.Millisecond))
				atCutoff := mk(cutoff)
				after := mk(cutoff.Add(time.Microsecond))

				clock = c.at
				got, err := s.PurgeAuthorizationFlow(ctx, c.retain, 0)
				if err != nil {
					t.Fatal(err)
				}
				if want := (FlowPurge{AuthRequests: 2, Codes: 1, BrowserSessions: 1}); got != want {
					t.Fatalf("purged %+v, want %+v (only the rows past the cutoff)", got, want)
				}
				for _, r := range []rows{atCutoff, after} {
					var n int64
					db.Table("oidc_auth_requests").Where("id = ?", r.request).Count(&n)
					if n != 1 {
						t.Fatalf("the request expiring at or after the cutoff was purged")
					}
				}
				var n int64
				db.Table("oidc_auth_requests").Where("id = ?", gone.request).Count(&n)
				if n != 0 {
					t.Fatal("the request past the cutoff was kept")
				}
				if c.retain == 0 {
					// Still live a microsecond before its expiry: usable.
					clock = c.at
					if _, err := s.AuthRequest(ctx, after.request); err != nil {
						t.Fatalf("the live request after the purge: %v", err)
					}
					if sid, err := s.BrowserSession(ctx, after.cookie); err != nil || sid == "" {
						t.Fatalf("the live browser session after the purge: %q %v", sid, err)
					}
				}
			})
		}
	})
}

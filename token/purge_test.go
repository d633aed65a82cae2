package token

import (
	"context"
	"testing"
	"time"

	"github.com/latch-dev/latch/store"
)

// Issue 15: the authorization code flow's expired rows are purged in
// batches — requests, codes and browser sessions past expiry plus the
// retention — and live ones (and recently expired codes, kept for replay
// detection) stay.
func TestPurgeAuthorizationFlow(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		start := time.Now().UTC().Truncate(time.Second)
		at := start
		s.now = func() time.Time { return at }
		// Old: five of each, created two days ago; fresh: one of each now.
		mk := func() (string, string) {
			ar, err := s.CreateAuthRequest(ctx, AuthRequest{ClientID: "c", RedirectURI: "https://rp.example/cb", Scope: "openid", MaxAge: -1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.IssueCode(ctx, ar, "u"); err != nil {
				t.Fatal(err)
			}
			ar2, err := s.CreateAuthRequest(ctx, AuthRequest{ClientID: "c", RedirectURI: "https://rp.example/cb", Scope: "openid", MaxAge: -1})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.StartBrowserSession(ctx, "sess", "u", at.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return ar2.ID, raw
		}
		at = start.Add(-48 * time.Hour)
		for i := 0; i < 5; i++ {
			mk()
		}
		at = start.Add(-30 * time.Minute) // its code expired, but within the retention
		mk()
		at = start
		liveAR, liveCookie := mk()

		count := func(table string) int64 {
			var n int64
			if err := db.WithContext(ctx).Table(table).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		// Batches of 2: five old rows need three statements per table.
		got, err := s.PurgeAuthorizationFlow(ctx, time.Hour, 2)
		if err != nil {
			t.Fatal(err)
		}
		// Each mk makes two requests, one code and one browser session; a
		// request lives an hour, a code 60 s, the session an hour.
		want := FlowPurge{AuthRequests: 10, Codes: 5, BrowserSessions: 5}
		if got != want {
			t.Fatalf("purged %+v, want %+v", got, want)
		}
		if n := count("oidc_codes"); n != 2 {
			t.Fatalf("%d codes left, want 2 (the recent one, kept for replay detection, and the live one)", n)
		}
		if n := count("oidc_auth_requests"); n != 4 {
			t.Fatalf("%d authorization requests left, want 4", n)
		}
		if n := count("oidc_browser_sessions"); n != 2 {
			t.Fatalf("%d browser sessions left, want 2", n)
		}
		if _, err := s.AuthRequest(ctx, liveAR); err != nil {
			t.Fatalf("live request: %v", err)
		}
		if sid, err := s.BrowserSession(ctx, liveCookie); err != nil || sid != "sess" {
			t.Fatalf("live browser session: %q, %v", sid, err)
		}
		// Nothing left to purge: a second run deletes nothing.
		if again, err := s.PurgeAuthorizationFlow(ctx, time.Hour, 2); err != nil || again.Total() != 0 {
			t.Fatalf("second purge %+v, %v", again, err)
		}
	})
}

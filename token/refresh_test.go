package token

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// isInvalidGrant reports whether err renders as invalid_grant.
func isInvalidGrant(err error) bool { return fault.Is(err, CodeInvalidGrant) }

func TestRefreshRotation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		g := testGrant(client)
		g.Audience, g.OrgID, g.Scope = testResource, "org-7", "openid email"
		first := issue(t, s, g)
		if first.FamilyID == "" || len(first.RefreshToken) != 43 {
			t.Fatalf("refresh token %q, family %q", first.RefreshToken, first.FamilyID)
		}

		rg, err := s.UseRefreshToken(ctx, client, first.RefreshToken)
		if err != nil {
			t.Fatalf("UseRefreshToken: %v", err)
		}
		if rg.ClientID != client.ID || rg.UserID != g.UserID || rg.SessionID != g.SessionID ||
			rg.FamilyID != first.FamilyID || rg.Audience != testResource || rg.Scope != "openid email" || rg.OrgID != "org-7" ||
			rg.ExpiresAt.Sub(first.RefreshExpiresAt).Abs() > time.Millisecond {
			t.Fatalf("refresh grant = %+v", rg)
		}

		second := issue(t, s, continueGrant(g, rg))
		if second.FamilyID != first.FamilyID || second.RefreshToken == first.RefreshToken {
			t.Fatalf("rotation did not continue the family: %+v", second)
		}
		if _, err := s.VerifyAccessToken(ctx, second.AccessToken, testResource); err != nil {
			t.Fatalf("rotated access token: %v", err)
		}
		// A family holds at most one live token: continuing it again before
		// the new token is consumed is refused.
		if _, err := s.IssueUserTokens(ctx, continueGrant(g, rg)); !isInvalidGrant(err) {
			t.Fatalf("second child of one parent: %v", err)
		}
		// A family cannot be continued under another session.
		cross := continueGrant(g, rg)
		cross.SessionID = "sess-other"
		if _, err := s.IssueUserTokens(ctx, cross); !isInvalidGrant(err) {
			t.Fatalf("family continued under another session: %v", err)
		}

		rg2, err := s.UseRefreshToken(ctx, client, second.RefreshToken)
		if err != nil {
			t.Fatalf("second rotation: %v", err)
		}
		third := issue(t, s, continueGrant(g, rg2))
		if _, err := s.UseRefreshToken(ctx, client, third.RefreshToken); err != nil {
			t.Fatalf("third rotation: %v", err)
		}

		// Garbage and unknown tokens.
		for _, raw := range []string{"", "nope", first.RefreshToken + "x", string(make([]byte, 4096))} {
			if _, err := s.UseRefreshToken(ctx, client, raw); !isInvalidGrant(err) {
				t.Fatalf("token %.10q: %v", raw, err)
			}
		}
	})
}

func TestRefreshParallelUseHasOneWinner(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		for _, grace := range []time.Duration{0, time.Minute} {
			t.Run("grace="+grace.String(), func(t *testing.T) {
				ctx := context.Background()
				s := newTestService(t, db, func(o *Options) { o.RefreshReuseGrace = grace })
				client := newTestClient(t, s)
				g := testGrant(client)
				first := issue(t, s, g)

				const n = 20
				var (
					wg      sync.WaitGroup
					start   = make(chan struct{})
					mu      sync.Mutex
					wins    []*RefreshGrant
					reuses  int
					others  []error
					invalid int
				)
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						rg, err := s.UseRefreshToken(ctx, client, first.RefreshToken)
						mu.Lock()
						defer mu.Unlock()
						var reuse *RefreshReuse
						switch {
						case err == nil:
							wins = append(wins, rg)
						case errors.As(err, &reuse):
							reuses++
						case isInvalidGrant(err):
							invalid++
						default:
							others = append(others, err)
						}
					}()
				}
				close(start)
				wg.Wait()
				t.Logf("wins=%d reuses=%d invalid=%d", len(wins), reuses, invalid)
				if len(wins) != 1 || len(others) != 0 || reuses+invalid != n-1 {
					t.Fatalf("wins=%d reuses=%d invalid=%d others=%v", len(wins), reuses, invalid, others)
				}
				if grace > 0 {
					// Within the grace the losers are duplicates, not theft:
					// the winner's family goes on.
					if reuses != 0 {
						t.Fatalf("%d duplicates treated as reuse within the grace", reuses)
					}
					next := issue(t, s, continueGrant(g, wins[0]))
					if _, err := s.UseRefreshToken(ctx, client, next.RefreshToken); err != nil {
						t.Fatalf("winner's family broken by the losers: %v", err)
					}
				} else if reuses > 0 {
					// Strict: a loser that saw the token already rotated
					// revoked the family, so the winner cannot continue it.
					if _, err := s.IssueUserTokens(ctx, continueGrant(g, wins[0])); !isInvalidGrant(err) {
						t.Fatalf("family continued after reuse: %v", err)
					}
				}
			})
		}
	})
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		g := testGrant(client)
		first := issue(t, s, g)
		rg, err := s.UseRefreshToken(ctx, client, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		second := issue(t, s, continueGrant(g, rg))
		rg2, err := s.UseRefreshToken(ctx, client, second.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		third := issue(t, s, continueGrant(g, rg2))

		// An unrelated family of the same user and session survives.
		otherFamily := issue(t, s, g)

		// Replaying the first (rotated) token is reuse.
		_, err = s.UseRefreshToken(ctx, client, first.RefreshToken)
		var reuse *RefreshReuse
		if !errors.As(err, &reuse) {
			t.Fatalf("replay of a rotated token: %v", err)
		}
		if reuse.FamilyID != first.FamilyID || reuse.SessionID != g.SessionID || reuse.UserID != g.UserID ||
			reuse.ClientID != client.ID {
			t.Fatalf("RefreshReuse = %+v", reuse)
		}
		fe, ok := fault.As(err)
		if !ok || fe.Code != CodeInvalidGrant || fe.Status != 400 {
			t.Fatalf("reuse does not render as invalid_grant: %+v", fe)
		}

		// The newest token of the family is dead, and so is the family.
		if _, err := s.UseRefreshToken(ctx, client, third.RefreshToken); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("newest token after reuse: %v", err)
		}
		if in, _ := s.Introspect(ctx, third.RefreshToken, "refresh_token"); in.Active {
			t.Fatal("newest token still introspects active")
		}
		// Replaying again reports nothing new (the family is already revoked).
		if _, err := s.UseRefreshToken(ctx, client, first.RefreshToken); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("second replay: %v", err)
		}
		if _, err := s.UseRefreshToken(ctx, client, otherFamily.RefreshToken); err != nil {
			t.Fatalf("another family was revoked too: %v", err)
		}
	})
}

func TestRefreshRevocationBeatsRotation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)

		// The session is logged out between consumption and re-issue: the
		// family may not be continued.
		g := testGrant(client)
		first := issue(t, s, g)
		rg, err := s.UseRefreshToken(ctx, client, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSessionTokens(ctx, g.SessionID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.IssueUserTokens(ctx, continueGrant(g, rg)); !isInvalidGrant(err) {
			t.Fatalf("family continued after logout: %v", err)
		}

		// Concurrent: rotations racing user-wide revocation never leave a
		// live token behind.
		for i := 0; i < 10; i++ {
			g := testGrant(client)
			tok := issue(t, s, g)
			var wg sync.WaitGroup
			var next *UserTokens
			wg.Add(2)
			go func() {
				defer wg.Done()
				if rg, err := s.UseRefreshToken(ctx, client, tok.RefreshToken); err == nil {
					next, _ = s.IssueUserTokens(ctx, continueGrant(g, rg))
				}
			}()
			go func() {
				defer wg.Done()
				if err := s.RevokeUserTokens(ctx, g.UserID); err != nil {
					t.Error(err)
				}
			}()
			wg.Wait()
			if next != nil {
				if _, err := s.UseRefreshToken(ctx, client, next.RefreshToken); err == nil {
					t.Fatal("a token issued while the user's tokens were revoked survived the revocation")
				}
			}
		}
	})
}

func TestRefreshOtherClientAndGrantType(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		other := newTestClient(t, s)
		noRefresh := newTestClient(t, s, GrantClientCredentials)
		out := issue(t, s, testGrant(client))

		if _, err := s.UseRefreshToken(ctx, other, out.RefreshToken); !isInvalidGrant(err) {
			t.Fatalf("another client's token: %v", err)
		}
		if _, err := s.UseRefreshToken(ctx, noRefresh, out.RefreshToken); !fault.Is(err, CodeUnauthorizedClient) {
			t.Fatalf("client without the refresh_token grant: %v", err)
		}
		// Not consumed: the owner can still use it.
		if _, err := s.UseRefreshToken(ctx, client, out.RefreshToken); err != nil {
			t.Fatalf("owner after a foreign attempt: %v", err)
		}
		// And a foreign client presenting a used token triggers nothing.
		var reuse *RefreshReuse
		if _, err := s.UseRefreshToken(ctx, other, out.RefreshToken); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("foreign replay: %v", err)
		}
	})
}

func TestRefreshExpiryBoundedBySession(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)

		g := testGrant(client)
		sessionEnd := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
		g.SessionExpiresAt = sessionEnd
		out := issue(t, s, g)
		if !out.RefreshExpiresAt.Equal(sessionEnd) {
			t.Fatalf("refresh expires %v, session %v", out.RefreshExpiresAt, sessionEnd)
		}
		in, err := s.Introspect(ctx, out.RefreshToken, "")
		if err != nil || !in.Active || in.Exp != sessionEnd.Unix() {
			t.Fatalf("introspection = %+v, %v", in, err)
		}

		// The TTL wins when the session lasts longer.
		g2 := testGrant(client)
		short := newTestService(t, db, func(o *Options) { o.RefreshTokenTTL = 2 * time.Hour })
		before := time.Now().UTC()
		out2 := issue(t, short, g2)
		if d := out2.RefreshExpiresAt.Sub(before); d < 2*time.Hour-time.Second || d > 2*time.Hour+time.Second {
			t.Fatalf("refresh lifetime %v, want the TTL", d)
		}

		// Past the session's end the token is refused and stays unconsumed
		// (no reuse is recorded for it).
		realNow := s.now
		s.now = func() time.Time { return sessionEnd.Add(time.Second) }
		if _, err := s.UseRefreshToken(ctx, client, out.RefreshToken); !isInvalidGrant(err) {
			t.Fatalf("expired token: %v", err)
		}
		if in, _ := s.Introspect(ctx, out.RefreshToken, ""); in.Active {
			t.Fatal("expired token introspects active")
		}
		if n, err := s.PurgeRefreshTokens(ctx, 0); err != nil || n != 1 {
			t.Fatalf("purge = %d, %v", n, err)
		}
		s.now = realNow

		// A session that has already ended gets no refresh token.
		g3 := testGrant(client)
		g3.SessionExpiresAt = time.Now().UTC().Add(-time.Second)
		if _, err := s.IssueUserTokens(ctx, g3); !isInvalidGrant(err) {
			t.Fatalf("refresh token for an ended session: %v", err)
		}
	})
}

func TestRefreshIntrospectionAndRevocation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		other := newTestClient(t, s)
		g := testGrant(client)
		g.Scope = "openid profile email"
		first := issue(t, s, g)

		in, err := s.Introspect(ctx, first.RefreshToken, "refresh_token")
		if err != nil {
			t.Fatal(err)
		}
		if !in.Active || in.TokenType != "refresh_token" || in.ClientID != client.ID || in.Sub != g.UserID ||
			in.SessionID != g.SessionID || in.Scope != g.Scope || in.Exp != first.RefreshExpiresAt.Unix() || in.Iat == 0 {
			t.Fatalf("introspection = %+v", in)
		}
		// Hint ignored when wrong; unknown tokens are inactive, not errors.
		if in, _ := s.Introspect(ctx, first.RefreshToken, "access_token"); !in.Active {
			t.Fatal("wrong hint hid the refresh token")
		}
		if in, err := s.Introspect(ctx, "unknown", ""); err != nil || in.Active {
			t.Fatalf("unknown token = %+v, %v", in, err)
		}

		// Rotate once, then revoke the new token: the family is gone.
		rg, err := s.UseRefreshToken(ctx, client, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if in, _ := s.Introspect(ctx, first.RefreshToken, ""); in.Active {
			t.Fatal("a rotated token introspects active")
		}
		second := issue(t, s, continueGrant(g, rg))
		if err := s.Revoke(ctx, other, second.RefreshToken, "refresh_token"); !fault.Is(err, CodeUnauthorizedClient) {
			t.Fatalf("revocation by another client: %v", err)
		}
		if in, _ := s.Introspect(ctx, second.RefreshToken, ""); !in.Active {
			t.Fatal("another client's revocation took effect")
		}
		if err := s.Revoke(ctx, client, second.RefreshToken, ""); err != nil {
			t.Fatal(err)
		}
		if in, _ := s.Introspect(ctx, second.RefreshToken, ""); in.Active {
			t.Fatal("revoked token still active")
		}
		if _, err := s.UseRefreshToken(ctx, client, second.RefreshToken); !isInvalidGrant(err) {
			t.Fatalf("revoked token used: %v", err)
		}
		// Revoked, not rotated: presenting it again is no reuse event.
		var reuse *RefreshReuse
		if _, err := s.UseRefreshToken(ctx, client, first.RefreshToken); errors.As(err, &reuse) || !isInvalidGrant(err) {
			t.Fatalf("rotated token of a revoked family: %v", err)
		}
		if _, err := s.IssueUserTokens(ctx, continueGrant(g, rg)); !isInvalidGrant(err) {
			t.Fatalf("revoked family continued: %v", err)
		}
		// Revoking garbage or twice is fine (RFC 7009 §2.2).
		if err := s.Revoke(ctx, client, "garbage", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, client, second.RefreshToken, "refresh_token"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRevokeSessionAndUserTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		g := testGrant(client)
		a := issue(t, s, g)
		b := issue(t, s, g) // a second family in the same session
		otherSession := g
		otherSession.SessionID = "sess-2"
		c := issue(t, s, otherSession)
		otherUser := testGrant(client)
		d := issue(t, s, otherUser)

		if err := s.RevokeSessionTokens(ctx, g.SessionID); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{a.RefreshToken, b.RefreshToken} {
			if _, err := s.UseRefreshToken(ctx, client, tok); !isInvalidGrant(err) {
				t.Fatalf("token of a logged-out session: %v", err)
			}
		}
		if in, _ := s.Introspect(ctx, c.RefreshToken, ""); !in.Active {
			t.Fatal("another session's token was revoked")
		}
		if err := s.RevokeUserTokens(ctx, g.UserID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UseRefreshToken(ctx, client, c.RefreshToken); !isInvalidGrant(err) {
			t.Fatalf("token of a signed-out user: %v", err)
		}
		if _, err := s.UseRefreshToken(ctx, client, d.RefreshToken); err != nil {
			t.Fatalf("another user's token was revoked: %v", err)
		}
		// Idempotent, and fine for unknown ids.
		if err := s.RevokeSessionTokens(ctx, "nope"); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeUserTokens(ctx, g.UserID); err != nil {
			t.Fatal(err)
		}
	})
}

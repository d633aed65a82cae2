package token

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

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

		rg, err := s.InspectRefreshToken(ctx, client, first.RefreshToken)
		if err != nil {
			t.Fatalf("InspectRefreshToken: %v", err)
		}
		if rg.ClientID != client.ID || rg.UserID != g.UserID || rg.SessionID != g.SessionID ||
			rg.FamilyID != first.FamilyID || rg.Audience != testResource || rg.Scope != "openid email" || rg.OrgID != "org-7" ||
			rg.ExpiresAt.Sub(first.RefreshExpiresAt).Abs() > time.Millisecond ||
			rg.FamilyExpiresAt.Sub(g.SessionExpiresAt).Abs() > time.Millisecond {
			t.Fatalf("refresh grant = %+v", rg)
		}
		// Inspection consumes nothing.
		if in, _ := s.Introspect(ctx, nil, first.RefreshToken, ""); !in.Active {
			t.Fatal("inspection consumed the token")
		}
		if _, err := s.InspectRefreshToken(ctx, client, first.RefreshToken); err != nil {
			t.Fatalf("second inspection: %v", err)
		}

		second, exp, err := s.RotateRefreshToken(ctx, rg)
		if err != nil {
			t.Fatalf("RotateRefreshToken: %v", err)
		}
		if second == first.RefreshToken || len(second) != 43 || exp.Sub(time.Now().Add(14*24*time.Hour)).Abs() > time.Minute {
			t.Fatalf("successor %q expiring %v", second, exp)
		}
		if in, _ := s.Introspect(ctx, nil, first.RefreshToken, ""); in.Active {
			t.Fatal("a rotated token introspects active")
		}
		in, err := s.Introspect(ctx, nil, second, "")
		if err != nil || !in.Active || in.ClientID != client.ID || in.Sub != g.UserID || in.SessionID != g.SessionID ||
			in.Scope != "openid email" || in.Exp != exp.Unix() {
			t.Fatalf("successor introspects as %+v, %v", in, err)
		}
		rg2, err := s.InspectRefreshToken(ctx, client, second)
		if err != nil || rg2.FamilyID != first.FamilyID || rg2.Audience != testResource || rg2.OrgID != "org-7" {
			t.Fatalf("successor's grant = %+v, %v", rg2, err)
		}
		// A family holds at most one live token: rotating the consumed token
		// again (a duplicate that passed inspection too) is refused.
		var reuse *RefreshReuse
		if _, _, err := s.RotateRefreshToken(ctx, rg); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("second child of one parent: %v", err)
		}
		// Only grants from InspectRefreshToken can be rotated.
		for _, bad := range []*RefreshGrant{nil, {FamilyID: first.FamilyID, ClientID: client.ID}} {
			if _, _, err := s.RotateRefreshToken(ctx, bad); err == nil {
				t.Fatal("hand-made grant rotated")
			} else if _, ok := fault.As(err); ok {
				t.Fatalf("hand-made grant reported as a client fault: %v", err)
			}
		}

		third := mustRotate(t, s, client, second)
		mustRotate(t, s, client, third)

		// Garbage and unknown tokens.
		for _, raw := range []string{"", "nope", first.RefreshToken + "x", string(make([]byte, 4096))} {
			if _, err := s.InspectRefreshToken(ctx, client, raw); !isInvalidGrant(err) {
				t.Fatalf("token %.10q: %v", raw, err)
			}
		}
		if _, err := s.InspectRefreshToken(ctx, nil, first.RefreshToken); err == nil {
			t.Fatal("no client accepted")
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
					wins    []string
					reuses  int
					others  []error
					invalid int
				)
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						next, _, err := rotate(ctx, s, client, first.RefreshToken)
						mu.Lock()
						defer mu.Unlock()
						var reuse *RefreshReuse
						switch {
						case err == nil:
							wins = append(wins, next)
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
				if len(wins) != 1 || len(others) != 0 || reuses+invalid != n-1 || reuses > 1 {
					t.Fatalf("wins=%d reuses=%d invalid=%d others=%v", len(wins), reuses, invalid, others)
				}
				if grace > 0 {
					// Within the grace the losers are duplicates, not theft:
					// the winner's family goes on.
					if reuses != 0 {
						t.Fatalf("%d duplicates treated as reuse within the grace", reuses)
					}
					mustRotate(t, s, client, wins[0])
				} else if reuses > 0 {
					// Strict: a loser that saw the token already rotated
					// (which implies its successor was stored) revoked the
					// family, successor included.
					if _, _, err := rotate(ctx, s, client, wins[0]); !isInvalidGrant(err) {
						t.Fatalf("family continued after reuse: %v", err)
					}
				} else {
					mustRotate(t, s, client, wins[0])
				}
			})
		}

		// Rotations of one inspected grant race among themselves: the
		// conditional UPDATE lets exactly one through, and the losers revoke
		// nothing.
		t.Run("rotate race", func(t *testing.T) {
			ctx := context.Background()
			s := newTestService(t, db)
			client := newTestClient(t, s)
			first := issue(t, s, testGrant(client))
			rg, err := s.InspectRefreshToken(ctx, client, first.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			const n = 20
			var wg sync.WaitGroup
			start := make(chan struct{})
			results := make([]string, n)
			errs := make([]error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					results[i], _, errs[i] = s.RotateRefreshToken(ctx, rg)
				}()
			}
			close(start)
			wg.Wait()
			var winner string
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
					winner = results[i]
				case !isInvalidGrant(err):
					t.Fatalf("loser: %v", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d rotations of one token succeeded", wins)
			}
			mustRotate(t, s, client, winner)
		})
	})
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		g := testGrant(client)
		first := issue(t, s, g)
		second := mustRotate(t, s, client, first.RefreshToken)
		third := mustRotate(t, s, client, second)

		// An unrelated family of the same user and session survives.
		otherFamily := issue(t, s, g)

		// Replaying the first (rotated) token is reuse.
		_, err := s.InspectRefreshToken(ctx, client, first.RefreshToken)
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
		if fe.Error() != errInvalidRefresh().Error() {
			t.Fatalf("reuse answers %q, unlike any dead token", fe.Error())
		}

		// The newest token of the family is dead, and so is the family.
		if _, err := s.InspectRefreshToken(ctx, client, third); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("newest token after reuse: %v", err)
		}
		if in, _ := s.Introspect(ctx, nil, third, "refresh_token"); in.Active {
			t.Fatal("newest token still introspects active")
		}
		// Replaying again reports nothing new (the family is already revoked).
		if _, err := s.InspectRefreshToken(ctx, client, first.RefreshToken); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("second replay: %v", err)
		}
		if _, err := s.InspectRefreshToken(ctx, client, second); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("replay of another rotated token: %v", err)
		}
		mustRotate(t, s, client, otherFamily.RefreshToken)
	})
}

func TestRefreshRevocationBeatsRotation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)

		// The session is logged out between inspection and rotation (while
		// the app checks the session): the family may not be continued, no
		// successor is stored, and the token is dead but presenting it again
		// is no reuse event.
		g := testGrant(client)
		first := issue(t, s, g)
		rg, err := s.InspectRefreshToken(ctx, client, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSessionTokens(ctx, g.SessionID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RotateRefreshToken(ctx, rg); !isInvalidGrant(err) {
			t.Fatalf("family continued after logout: %v", err)
		}
		var reuse *RefreshReuse
		if _, err := s.InspectRefreshToken(ctx, client, first.RefreshToken); !isInvalidGrant(err) || errors.As(err, &reuse) {
			t.Fatalf("token of a logged-out session: %v", err)
		}

		// Concurrent: rotations racing each kind of revocation never leave a
		// live token behind.
		revocations := map[string]func(g UserGrant, tok *UserTokens) error{
			"user":    func(g UserGrant, _ *UserTokens) error { return s.RevokeUserTokens(ctx, g.UserID) },
			"session": func(g UserGrant, _ *UserTokens) error { return s.RevokeSessionTokens(ctx, g.SessionID) },
			"rfc7009": func(_ UserGrant, tok *UserTokens) error { return s.Revoke(ctx, client, tok.RefreshToken, "") },
		}
		for name, revoke := range revocations {
			t.Run(name, func(t *testing.T) {
				for i := 0; i < 10; i++ {
					g := testGrant(client)
					tok := issue(t, s, g)
					var wg sync.WaitGroup
					var next string
					wg.Add(2)
					go func() {
						defer wg.Done()
						next, _, _ = rotate(ctx, s, client, tok.RefreshToken)
					}()
					go func() {
						defer wg.Done()
						if err := revoke(g, tok); err != nil {
							t.Error(err)
						}
					}()
					wg.Wait()
					for _, raw := range []string{tok.RefreshToken, next} {
						if raw == "" {
							continue
						}
						if in, _ := s.Introspect(ctx, nil, raw, ""); in.Active {
							t.Fatal("a token survived a concurrent revocation")
						}
						if _, _, err := rotate(ctx, s, client, raw); err == nil {
							t.Fatal("a token issued while its family was revoked survived the revocation")
						}
					}
				}
			})
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

		if _, err := s.InspectRefreshToken(ctx, other, out.RefreshToken); !isInvalidGrant(err) {
			t.Fatalf("another client's token: %v", err)
		}
		if _, err := s.InspectRefreshToken(ctx, noRefresh, out.RefreshToken); !fault.Is(err, CodeUnauthorizedClient) {
			t.Fatalf("client without the refresh_token grant: %v", err)
		}
		// Not consumed: the owner can still use it.
		mustRotate(t, s, client, out.RefreshToken)
		// And a foreign client presenting a used token triggers nothing.
		var reuse *RefreshReuse
		if _, err := s.InspectRefreshToken(ctx, other, out.RefreshToken); !isInvalidGrant(err) || errors.As(err, &reuse) {
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
		in, err := s.Introspect(ctx, nil, out.RefreshToken, "")
		if err != nil || !in.Active || in.Exp != sessionEnd.Unix() {
			t.Fatalf("introspection = %+v, %v", in, err)
		}
		// Rotation never extends the family past the session's end.
		rg, err := s.InspectRefreshToken(ctx, client, out.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		rotated, exp, err := s.RotateRefreshToken(ctx, rg)
		if err != nil || !exp.Equal(sessionEnd) {
			t.Fatalf("successor expires %v (%v), session %v", exp, err, sessionEnd)
		}

		// The TTL wins when the session lasts longer, on issue and rotation.
		g2 := testGrant(client)
		short := newTestService(t, db, func(o *Options) { o.RefreshTokenTTL = 2 * time.Hour })
		before := time.Now().UTC()
		out2 := issue(t, short, g2)
		if d := out2.RefreshExpiresAt.Sub(before); d < 2*time.Hour-time.Second || d > 2*time.Hour+time.Second {
			t.Fatalf("refresh lifetime %v, want the TTL", d)
		}
		rg2, err := short.InspectRefreshToken(ctx, client, out2.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		short.now = func() time.Time { return before.Add(time.Hour) }
		_, exp2, err := short.RotateRefreshToken(ctx, rg2)
		if err != nil || exp2.Sub(before.Add(3*time.Hour)).Abs() > time.Second {
			t.Fatalf("rotated an hour later: expires %v (%v), want the TTL from then", exp2, err)
		}

		// Past the session's end the token is refused and stays unconsumed
		// (no reuse is recorded for it); a grant inspected just before the
		// end cannot be rotated after it.
		g3 := testGrant(client)
		g3.SessionExpiresAt = sessionEnd
		out3 := issue(t, s, g3)
		rg3, err := s.InspectRefreshToken(ctx, client, out3.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		realNow := s.now
		s.now = func() time.Time { return sessionEnd.Add(time.Second) }
		if _, _, err := s.RotateRefreshToken(ctx, rg3); !isInvalidGrant(err) {
			t.Fatalf("rotation past the family's bound: %v", err)
		}
		for _, raw := range []string{rotated, out3.RefreshToken} {
			if _, err := s.InspectRefreshToken(ctx, client, raw); !isInvalidGrant(err) {
				t.Fatalf("expired token: %v", err)
			}
			if in, _ := s.Introspect(ctx, nil, raw, ""); in.Active {
				t.Fatal("expired token introspects active")
			}
		}
		// Purge: the expired tokens of both families (g's two, g3's one) and
		// the families themselves; g2's family lives on.
		if n, err := s.PurgeRefreshTokens(ctx, 0); err != nil || n != 3 {
			t.Fatalf("purge = %d, %v", n, err)
		}
		var families int64
		if err := db.Model(&refreshFamilyRow{}).Where("id IN ?", []string{out.FamilyID, out3.FamilyID}).
			Count(&families).Error; err != nil || families != 0 {
			t.Fatalf("%d expired families left (%v)", families, err)
		}
		s.now = realNow
		if in, _ := s.Introspect(ctx, nil, out2.RefreshToken, ""); in.Active {
			t.Fatal("a rotated token introspects active")
		}

		// A session that has already ended gets no refresh token.
		g4 := testGrant(client)
		g4.SessionExpiresAt = time.Now().UTC().Add(-time.Second)
		if _, err := s.IssueUserTokens(ctx, g4); !isInvalidGrant(err) {
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

		in, err := s.Introspect(ctx, nil, first.RefreshToken, "refresh_token")
		if err != nil {
			t.Fatal(err)
		}
		// No token_type: RFC 7662 §2.2 means an access token type by it.
		if !in.Active || in.TokenType != "" || in.ClientID != client.ID || in.Sub != g.UserID ||
			in.SessionID != g.SessionID || in.Scope != g.Scope || in.Exp != first.RefreshExpiresAt.Unix() || in.Iat == 0 {
			t.Fatalf("introspection = %+v", in)
		}
		// Hint ignored when wrong; unknown tokens are inactive, not errors.
		if in, _ := s.Introspect(ctx, nil, first.RefreshToken, "access_token"); !in.Active {
			t.Fatal("wrong hint hid the refresh token")
		}
		if in, err := s.Introspect(ctx, nil, "unknown", ""); err != nil || in.Active {
			t.Fatalf("unknown token = %+v, %v", in, err)
		}

		// Rotate twice, then revoke the middle token: the family is gone.
		second := mustRotate(t, s, client, first.RefreshToken)
		if in, _ := s.Introspect(ctx, nil, first.RefreshToken, ""); in.Active {
			t.Fatal("a rotated token introspects active")
		}
		if err := s.Revoke(ctx, other, second, "refresh_token"); !fault.Is(err, CodeUnauthorizedClient) {
			t.Fatalf("revocation by another client: %v", err)
		}
		if in, _ := s.Introspect(ctx, nil, second, ""); !in.Active {
			t.Fatal("another client's revocation took effect")
		}
		rg, err := s.InspectRefreshToken(ctx, client, second)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, client, first.RefreshToken, ""); err != nil {
			t.Fatal(err)
		}
		if in, _ := s.Introspect(ctx, nil, second, ""); in.Active {
			t.Fatal("revoking a rotated token left its family active")
		}
		if _, err := s.InspectRefreshToken(ctx, client, second); !isInvalidGrant(err) {
			t.Fatalf("revoked token used: %v", err)
		}
		if _, _, err := s.RotateRefreshToken(ctx, rg); !isInvalidGrant(err) {
			t.Fatalf("revoked family continued: %v", err)
		}
		// Revoked, not rotated: presenting it again is no reuse event.
		var reuse *RefreshReuse
		if _, err := s.InspectRefreshToken(ctx, client, first.RefreshToken); errors.As(err, &reuse) || !isInvalidGrant(err) {
			t.Fatalf("rotated token of a revoked family: %v", err)
		}
		// Revoking garbage or twice is fine (RFC 7009 §2.2).
		if err := s.Revoke(ctx, client, "garbage", ""); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, client, second, "refresh_token"); err != nil {
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
		bNext := mustRotate(t, s, client, b.RefreshToken)
		otherSession := g
		otherSession.SessionID = "sess-2"
		c := issue(t, s, otherSession)
		otherUser := testGrant(client)
		d := issue(t, s, otherUser)

		if err := s.RevokeSessionTokens(ctx, g.SessionID); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{a.RefreshToken, bNext} {
			if _, err := s.InspectRefreshToken(ctx, client, tok); !isInvalidGrant(err) {
				t.Fatalf("token of a logged-out session: %v", err)
			}
		}
		if in, _ := s.Introspect(ctx, nil, c.RefreshToken, ""); !in.Active {
			t.Fatal("another session's token was revoked")
		}
		if err := s.RevokeUserTokens(ctx, g.UserID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InspectRefreshToken(ctx, client, c.RefreshToken); !isInvalidGrant(err) {
			t.Fatalf("token of a signed-out user: %v", err)
		}
		mustRotate(t, s, client, d.RefreshToken)
		// Idempotent, and fine for unknown ids.
		if err := s.RevokeSessionTokens(ctx, "nope"); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeUserTokens(ctx, g.UserID); err != nil {
			t.Fatal(err)
		}
	})
}

// stmtRecorder is a gorm logger that records every statement and the rows it
// affected or returned.
type stmtRecorder struct {
	mu    sync.Mutex
	stmts []recordedStmt
}

type recordedStmt struct {
	sql  string
	rows int64
}

func (r *stmtRecorder) LogMode(logger.LogLevel) logger.Interface { return r }
func (r *stmtRecorder) Info(context.Context, string, ...any)     {}
func (r *stmtRecorder) Warn(context.Context, string, ...any)     {}
func (r *stmtRecorder) Error(context.Context, string, ...any)    {}
func (r *stmtRecorder) Trace(_ context.Context, _ time.Time, fc func() (string, int64), _ error) {
	sql, rows := fc()
	r.mu.Lock()
	r.stmts = append(r.stmts, recordedStmt{sql, rows})
	r.mu.Unlock()
}

func (r *stmtRecorder) take() []recordedStmt {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.stmts
	r.stmts = nil
	return out
}

// A long-lived session rotates its refresh token thousands of times. The
// design keeps every rotation O(1) whatever the family's length: inspection
// is one query by the token's unique digest, rotation is three single-row
// steps by primary key (consume, touch the family, insert; one statement on
// PostgreSQL), and
// revocation updates the one family row — nothing reads or writes the
// family's other tokens. This checks that shape on a family of 2,000
// rotations (statements and rows per rotation are the same at the first and
// the last; no timing asserts) and that the chain stays correct: exactly one
// live token, and replaying any old one revokes the family in one row.
func TestRefreshLongFamily(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		base := newTestService(t, db)
		client := newTestClient(t, base)
		rec := &stmtRecorder{}
		s := *base
		s.db = &store.DB{DB: db.Session(&gorm.Session{Logger: rec}), Dialect: db.Dialect}

		g := testGrant(client)
		first := issue(t, &s, g)
		const rotations = 2000
		tokens := []string{first.RefreshToken}
		var firstShape []recordedStmt
		// Inspection, then the rotation: one statement on PostgreSQL, three
		// in a transaction on SQLite.
		wantStmts := 4
		if db.Dialect == store.Postgres {
			wantStmts = 2
		}
		for i := 0; i < rotations; i++ {
			rec.take()
			next := mustRotate(t, &s, client, tokens[len(tokens)-1])
			shape := rec.take()
			if len(shape) != wantStmts {
				t.Fatalf("rotation %d ran %d statements, want %d: %v", i+1, len(shape), wantStmts, shape)
			}
			for _, st := range shape {
				if st.rows != 1 {
					t.Fatalf("rotation %d: %q touched %d rows, want 1", i+1, st.sql, st.rows)
				}
				if strings.Contains(strings.ToUpper(st.sql), "COUNT(") || strings.Contains(strings.ToUpper(st.sql), "SUM(") {
					t.Fatalf("rotation %d aggregates: %q", i+1, st.sql)
				}
			}
			if i == 0 {
				firstShape = shape
			} else if i == rotations-1 {
				for j := range shape {
					if stmtKind(shape[j].sql) != stmtKind(firstShape[j].sql) {
						t.Fatalf("last rotation's statements differ from the first's: %v vs %v", shape, firstShape)
					}
				}
			}
			tokens = append(tokens, next)
		}

		var fam refreshFamilyRow
		if err := db.Where("id = ?", first.FamilyID).Take(&fam).Error; err != nil || fam.Rotations != rotations || fam.RotatedAt == nil {
			t.Fatalf("family = %+v, %v", fam, err)
		}
		var total, live int64
		db.Model(&refreshTokenRow{}).Where("family_id = ?", first.FamilyID).Count(&total)
		db.Model(&refreshTokenRow{}).Where("family_id = ? AND used_at IS NULL", first.FamilyID).Count(&live)
		if total != rotations+1 || live != 1 {
			t.Fatalf("family holds %d tokens, %d unused; want %d and 1", total, live, rotations+1)
		}
		for _, i := range []int{0, rotations / 2, rotations - 1} {
			if in, _ := s.Introspect(ctx, nil, tokens[i], ""); in.Active {
				t.Fatalf("rotated token %d introspects active", i)
			}
		}
		if in, _ := s.Introspect(ctx, nil, tokens[rotations], ""); !in.Active {
			t.Fatal("newest token inactive")
		}

		// Replaying a token from the middle of the chain is reuse: one
		// query and one single-row UPDATE revoke the whole family.
		rec.take()
		var reuse *RefreshReuse
		if _, err := s.InspectRefreshToken(ctx, client, tokens[rotations/2]); !errors.As(err, &reuse) {
			t.Fatalf("replay from the middle: %v", err)
		}
		if shape := rec.take(); len(shape) != 2 || shape[1].rows != 1 {
			t.Fatalf("reuse detection ran %v", shape)
		}
		if _, err := s.InspectRefreshToken(ctx, client, tokens[rotations]); !isInvalidGrant(err) {
			t.Fatalf("newest token after reuse: %v", err)
		}
	})
}

// stmtKind is a statement's verb and table, ignoring values.
func stmtKind(sql string) string {
	f := strings.Fields(sql)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

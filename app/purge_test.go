package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
)

// retention is the housekeeping's: dead rows stay a day.
const retention = 24 * time.Hour

// The housekeeping purges Latch sessions that expired or were revoked more
// than the retention ago, in batches, and keeps live ones and recently
// ended ones. A token of a purged session stays dead: introspection
// answers inactive, /oidc/me and the refresh grant refuse it; a live
// session's tokens are untouched.
func TestPurgeDeadSessions(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		ctx := context.Background()
		db := f.Services.DB
		now := time.Now().UTC()
		set := func(sid, column string, at time.Time) {
			t.Helper()
			if err := db.Exec("UPDATE sessions SET "+column+" = ? WHERE id = ?", at, sid).Error; err != nil {
				t.Fatal(err)
			}
		}
		sessionExists := func(sid string) bool {
			t.Helper()
			return f.count(t, "SELECT COUNT(*) FROM sessions WHERE id = ?", sid) == 1
		}
		userID, username, password := f.newUser(t)
		signIn := func() *apptest.Response { t.Helper(); return f.signIn(t, username, password) }
		live, expired, revoked := signIn(), signIn(), signIn()
		justExpired, justRevoked := signIn(), signIn()
		for _, s := range []*apptest.Response{revoked, justRevoked} {
			if res := f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": s.Str("session_id")}); res.Status != http.StatusNoContent {
				t.Fatalf("logout: %s", res)
			}
		}
		// The boundary: a minute either side of the retention.
		set(expired.Str("session_id"), "expires_at", now.Add(-retention-time.Minute))
		set(revoked.Str("session_id"), "revoked_at", now.Add(-retention-time.Minute))
		set(justExpired.Str("session_id"), "expires_at", now.Add(-retention+time.Minute))
		set(justRevoked.Str("session_id"), "revoked_at", now.Add(-retention+time.Minute))
		// Three more long-expired sessions: five to purge in batches of 2.
		old := now.Add(-72 * time.Hour)
		for _, id := range []string{"dead-1", "dead-2", "dead-3"} {
			if err := db.Exec(`INSERT INTO sessions (id, user_id, client_id, state, auth_time, created_at, updated_at, expires_at)
				VALUES (?, ?, ?, 'active', ?, ?, ?, ?)`, id, userID, f.client.ID, old, old, old, old.Add(time.Hour)).Error; err != nil {
				t.Fatal(err)
			}
		}

		got, err := f.Services.Engine.PurgeDead(ctx, retention, 2)
		if err != nil {
			t.Fatal(err)
		}
		if got.Sessions != 5 {
			t.Fatalf("purged %d sessions, want 5 (%+v)", got.Sessions, got)
		}
		for _, s := range []*apptest.Response{expired, revoked} {
			if sessionExists(s.Str("session_id")) {
				t.Fatalf("session %s not purged", s.Str("session_id"))
			}
		}
		for _, s := range []*apptest.Response{live, justExpired, justRevoked} {
			if !sessionExists(s.Str("session_id")) {
				t.Fatalf("session %s purged within the retention", s.Str("session_id"))
			}
		}
		if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE id LIKE 'dead-%'"); n != 0 {
			t.Fatalf("%d long-expired sessions left", n)
		}
		// The tokens of purged sessions are as dead as before.
		for _, s := range []*apptest.Response{expired, revoked} {
			f.wantInactive(t, s.Str("access_token"))
			f.wantInactive(t, s.Str("refresh_token"))
			if me := f.call(t, http.MethodGet, "/oidc/me", s.Str("access_token"), nil); me.Status != http.StatusUnauthorized {
				t.Fatalf("/oidc/me with a purged session's token: %s", me)
			}
			wantError(t, f.refresh(t, s.Str("refresh_token")), http.StatusBadRequest, "invalid_grant")
		}
		// The live session's tokens still work.
		if intro := f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {live.Str("access_token")}}); intro.JSON["active"] != true {
			t.Fatalf("introspection of the live session's token: %s", intro)
		}
		if res := f.refresh(t, live.Str("refresh_token")); res.Status != http.StatusOK {
			t.Fatalf("refresh of the live session: %s", res)
		}
		if res := f.sessionAuth(t, live.Str("session_id")); res.Status != http.StatusOK {
			t.Fatalf("live session authentication: %s", res)
		}
		// Nothing left to purge: a second round deletes nothing.
		if again, err := f.Services.Engine.PurgeDead(ctx, retention, 2); err != nil || again.Total() != 0 {
			t.Fatalf("second purge %+v, %v", again, err)
		}
	})
}

// sentinelRow is a lockout counter as the tests write it.
type sentinelRow struct {
	key                    string
	failures               int
	windowStart, updatedAt time.Time
	lockedUntil            *time.Time
	pending, pendingPrev   int
	pendingBucket          int64
}

func (f *v1Fix) insertCounter(t testing.TB, r sentinelRow) {
	t.Helper()
	if err := f.Services.DB.Exec(`INSERT INTO sentinel_counters (key, failures, window_start, locked_until, updated_at, pending, pending_prev, pending_bucket)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.key, r.failures, r.windowStart, r.lockedUntil, r.updatedAt, r.pending, r.pendingPrev, r.pendingBucket).Error; err != nil {
		t.Fatal(err)
	}
}

// The housekeeping purges lockout counters that protect nothing — a lock
// that ended, failures whose window (the longest the settings apply) ended,
// no failures — once untouched for the retention and without a reservation
// that still counts. A running lock, failures inside their window and
// reservations in flight stay, so a purge never unlocks an account early
// nor gives back guesses.
func TestPurgeDeadSentinelCounters(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		ctx := context.Background()
		// Failures count for three days: the purge must use that window,
		// not the default 15 minutes.
		window := 72 * time.Hour
		f.patchSettings(t, `{"lockout": {"window_seconds": 259200}}`)
		now := time.Now().UTC()
		at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
		stale := now.Add(-retention - time.Minute) // untouched for longer than the retention
		nowMillis := now.UnixMilli()
		gone := []sentinelRow{
			{key: "lock-ended", failures: 5, windowStart: now.Add(-5 * 24 * time.Hour), lockedUntil: at(-retention - time.Minute), updatedAt: stale},
			{key: "window-ended", failures: 3, windowStart: now.Add(-window - retention - time.Minute), updatedAt: stale},
			{key: "no-failures", failures: 0, windowStart: stale, updatedAt: stale},
			{key: "lapsed-reservation", failures: 0, windowStart: stale, updatedAt: stale, pending: 1, pendingPrev: 1, pendingBucket: stale.UnixMilli()},
		}
		kept := []sentinelRow{
			// A 30-day lock written long ago still runs.
			{key: "locked", failures: 5, windowStart: now.Add(-10 * 24 * time.Hour), lockedUntil: at(time.Hour), updatedAt: now.Add(-10 * 24 * time.Hour)},
			{key: "lock-ended-recently", failures: 5, windowStart: now.Add(-5 * 24 * time.Hour), lockedUntil: at(-retention + time.Minute), updatedAt: stale},
			// Failures two days old are inside the three-day window.
			{key: "in-window", failures: 4, windowStart: now.Add(-48 * time.Hour), updatedAt: stale},
			{key: "window-ended-recently", failures: 3, windowStart: now.Add(-window - retention + time.Minute), updatedAt: stale},
			// A reservation that still counts (a replica's clock ahead).
			{key: "reserved", failures: 0, windowStart: stale, updatedAt: stale, pending: 1, pendingBucket: nowMillis},
			{key: "touched-recently", failures: 0, windowStart: stale, updatedAt: now.Add(-time.Hour)},
		}
		for _, r := range append(append([]sentinelRow{}, gone...), kept...) {
			f.insertCounter(t, r)
		}
		// A real lock from wrong passwords, whose row then ages: the
		// account must stay locked after the purge.
		_, username, password := f.newUser(t)
		for i := 0; i < 5; i++ {
			wantError(t, f.authenticate(t, username, "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		}
		wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "auth_locked")
		if err := f.Services.DB.Exec(`UPDATE sentinel_counters SET window_start = ?, updated_at = ? WHERE key LIKE 'user:%'`,
			now.Add(-window-2*retention), stale).Error; err != nil {
			t.Fatal(err)
		}

		got, err := f.Services.Engine.PurgeDead(ctx, retention, 2) // four rows: two batches and an empty one
		if err != nil {
			t.Fatal(err)
		}
		if got.SentinelCounters != int64(len(gone)) {
			t.Fatalf("purged %d counters, want %d", got.SentinelCounters, len(gone))
		}
		for _, r := range gone {
			if f.count(t, "SELECT COUNT(*) FROM sentinel_counters WHERE key = ?", r.key) != 0 {
				t.Errorf("counter %s not purged", r.key)
			}
		}
		for _, r := range kept {
			if f.count(t, "SELECT COUNT(*) FROM sentinel_counters WHERE key = ?", r.key) != 1 {
				t.Errorf("counter %s purged", r.key)
			}
		}
		wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "auth_locked")
		if again, err := f.Services.Engine.PurgeDead(ctx, retention, 2); err != nil || again.Total() != 0 {
			t.Fatalf("second purge %+v, %v", again, err)
		}
	})
}

// One housekeeping round purges the engine's dead rows too and says how
// many in its log line.
func TestHousekeepingLogsEnginePurge(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		_, username, password := f.newUser(t)
		s := f.signIn(t, username, password)
		old := time.Now().UTC().Add(-3 * retention)
		if err := f.Services.DB.Exec(`UPDATE sessions SET expires_at = ? WHERE id = ?`, old, s.Str("session_id")).Error; err != nil {
			t.Fatal(err)
		}
		f.insertCounter(t, sentinelRow{key: "dead-1", windowStart: old, updatedAt: old})
		f.insertCounter(t, sentinelRow{key: "dead-2", failures: 2, windowStart: old, updatedAt: old})
		var buf bytes.Buffer
		f.Services.Housekeep(context.Background(), slog.New(slog.NewTextHandler(&buf, nil)))
		line := buf.String()
		for _, want := range []string{"sessions_purged=1", "sentinel_counters_purged=2"} {
			if !strings.Contains(line, want) {
				t.Fatalf("housekeeping log %q lacks %s", line, want)
			}
		}
		if strings.Contains(line, "housekeeping failed") {
			t.Fatalf("housekeeping failed: %s", line)
		}
	})
}

// A counter an attempt brings back to life while the purge deletes it
// stays: PostgreSQL checks the row again once the attempt commits. (SQLite
// runs one writer at a time: the purge cannot interleave with it there.)
func TestPurgeKeepsACounterRevivedMeanwhile(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		if b != apptest.Postgres {
			t.Skip("SQLite serializes writers")
		}
		f := v1Start(t, b)
		ctx := context.Background()
		old := time.Now().UTC().Add(-3 * retention)
		f.insertCounter(t, sentinelRow{key: "revived", windowStart: old, updatedAt: old})
		// An attempt reserves on the stale row and has not committed yet.
		tx := f.Services.DB.WithContext(ctx).Begin()
		defer tx.Rollback()
		now := time.Now().UTC()
		if err := tx.Exec(`UPDATE sentinel_counters SET pending = 1, pending_bucket = ?, updated_at = ? WHERE key = 'revived'`,
			now.UnixMilli(), now).Error; err != nil {
			t.Fatal(err)
		}
		type result struct {
			n   int64
			err error
		}
		done := make(chan result, 1)
		go func() {
			got, err := f.Services.Engine.PurgeDead(ctx, retention, 0)
			done <- result{got.SentinelCounters, err}
		}()
		// The purge chose the row and waits for the attempt's lock.
		deadline := time.Now().Add(10 * time.Second)
		for f.count(t, `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE 'DELETE FROM sentinel_counters%'`) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the purge never waited for the attempt's row lock")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := tx.Commit().Error; err != nil {
			t.Fatal(err)
		}
		res := <-done
		if res.err != nil || res.n != 0 {
			t.Fatalf("purge deleted %d counters (%v), want none", res.n, res.err)
		}
		if f.count(t, "SELECT COUNT(*) FROM sentinel_counters WHERE key = 'revived' AND pending = 1") != 1 {
			t.Fatal("the revived counter was purged with its reservation")
		}
	})
}

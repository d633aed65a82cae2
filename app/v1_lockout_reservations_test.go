package app_test

// Issue 10 §3: the sentinel's reservations. Attempts beyond the lockout
// budget wait for the ones in flight instead of being refused, abandoned
// attempts give their place back, and a reservation nobody settles (a
// crashed process) stops counting — while never more than the limit of
// failures is evaluated, on any number of replicas.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/experience"
)

// v1Replicas starts a server and a second one on its database (another
// replica behind a load balancer), both with the long hash queue of v1Start.
func v1Replicas(t *testing.T, b apptest.Backend, opts ...apptest.Option) []*v1Fix {
	t.Helper()
	one := v1Start(t, b, opts...)
	queue := []apptest.Option{apptest.With("LATCH_HASH_QUEUE", "200"), apptest.With("LATCH_HASH_QUEUE_WAIT", "30s")}
	two := v1Wrap(one.Replica(append(queue, opts...)...))
	return []*v1Fix{one, two}
}

// lockedSeconds is the Users API's view of a user's lock.
func (f *v1Fix) lockedSeconds(t *testing.T, id string) float64 {
	t.Helper()
	u := f.call(t, http.MethodGet, "/v1/users/"+id, f.tok, nil)
	if u.Status != http.StatusOK {
		t.Fatalf("get user: %s", u)
	}
	n, ok := u.JSON["locked_seconds"].(float64)
	if !ok {
		t.Fatalf("no locked_seconds: %s", u)
	}
	return n
}

// accountFailures is the failure count the sentinel keeps for a user's
// account pool (0 when it keeps none).
func (f *v1Fix) accountFailures(t *testing.T, id string) int64 {
	t.Helper()
	return f.count(t, "SELECT COALESCE(MAX(failures), 0) FROM sentinel_counters WHERE key = ?", "user:"+id+":account")
}

// accountReservations is the number of reservations the sentinel stores for
// a user's account pool, live or lapsed (0 when it keeps none).
func (f *v1Fix) accountReservations(t *testing.T, id string) int64 {
	t.Helper()
	return f.count(t, "SELECT COALESCE(MAX(pending + pending_prev), 0) FROM sentinel_counters WHERE key = ?", "user:"+id+":account")
}

// Twenty parallel sign-ins of one user with the right password, on one
// server and spread over two replicas: all succeed (none is told the account
// is locked), and nothing is counted against the user.
func TestV1LockoutBurstOfCorrectPasswords(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		servers := v1Replicas(t, b)
		for _, spread := range [][]*v1Fix{servers[:1], servers} {
			f := spread[0]
			id, username, password := f.newUser(t)
			if counts := burst(t, spread, 20, username, password); counts[answerOK] != 20 {
				t.Fatalf("%d servers: answers %v, want 20 %q", len(spread), counts, answerOK)
			}
			if n := f.countAudit(t, id, "lockout", ""); n != 0 {
				t.Errorf("%d lockouts after correct passwords only", n)
			}
			if n := f.countAudit(t, id, "sign_in", "success"); n != 20 {
				t.Errorf("%d sign_in successes, want 20", n)
			}
			if n := f.lockedSeconds(t, id); n != 0 {
				t.Errorf("locked_seconds %v after correct passwords only", n)
			}
			if n := f.accountReservations(t, id); n != 0 {
				t.Errorf("%d reservations left after the burst", n)
			}
		}
	})
}

// Twenty parallel wrong passwords, on one server and over two replicas:
// exactly 5 are evaluated (401) and audited, the rest wait for them and
// find the lock (403 auth_locked), which the Users API reports.
func TestV1LockoutBurstOfWrongPasswords(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		servers := v1Replicas(t, b)
		for _, spread := range [][]*v1Fix{servers[:1], servers} {
			f := spread[0]
			id, username, password := f.newUser(t)
			checkLockoutBurst(t, burst(t, spread, 20, username, "Wrong-Passw0rd"), 20)
			if n := f.countAudit(t, id, "sign_in", "failure"); n != 5 {
				t.Errorf("%d sign_in failures audited for the user, want 5", n)
			}
			if n := f.countAudit(t, id, "lockout", ""); n != 1 {
				t.Errorf("%d lockout audit events, want 1", n)
			}
			if n := f.accountFailures(t, id); n != 5 {
				t.Errorf("the sentinel counts %d failures, want 5", n)
			}
			for _, g := range spread {
				if n := g.lockedSeconds(t, id); n < 1 {
					t.Errorf("locked_seconds %v after 5 failures", n)
				}
				wantError(t, g.authenticate(t, username, password, nil), http.StatusForbidden, "auth_locked")
			}
		}
	})
}

// Wrong and right passwords for one user at once, over two replicas: a
// success forgets the failures before it, so more than 5 wrong passwords
// may be evaluated in all, but never more than 5 without a success between
// them, and the Users API agrees with what a sign-in then meets.
func TestV1LockoutBurstMixed(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		servers := v1Replicas(t, b)
		for round := 0; round < 3; round++ {
			f := servers[0]
			id, username, password := f.newUser(t)
			bodies := make([]map[string]any, 24)
			for i := range bodies {
				pw := "Wrong-Passw0rd"
				if i%3 == round%3 { // a third right, in a different place each round
					pw = password
				}
				bodies[i] = authBody(username, pw, nil)
			}
			counts := burstBodies(t, servers, bodies)
			ok, invalid, locked := counts[answerOK], counts[answerInvalid], counts[answerLocked]
			if ok+invalid+locked != len(bodies) || ok > 8 || invalid > 16 {
				t.Fatalf("answers %v", counts)
			}
			// Each stretch between two successes holds at most 5 failures.
			if invalid > 5*(ok+1) {
				t.Fatalf("answers %v: %d failures evaluated around %d successes", counts, invalid, ok)
			}
			if n := f.countAudit(t, id, "sign_in", "failure"); n != int(invalid) {
				t.Errorf("answers %v but %d sign_in failures audited", counts, n)
			}
			if n := f.accountFailures(t, id); n > 5 {
				t.Errorf("the sentinel counts %d failures", n)
			}
			if n := f.accountReservations(t, id); n != 0 {
				t.Errorf("%d reservations left after the burst", n)
			}
			res := f.authenticate(t, username, password, nil)
			if secs := f.lockedSeconds(t, id); secs > 0 {
				wantError(t, res, http.StatusForbidden, "auth_locked")
			} else if res.Status != http.StatusOK {
				t.Fatalf("not locked per the Users API, but: %s", res)
			}
		}
	})
}

// Five correct sign-ins abandoned by their client while their (slow) hash
// runs or waits give their reservations back: the user signs in at once
// afterwards, the Users API says not locked, and nothing stays reserved.
func TestV1LockoutAbandonedAttemptsGiveBack(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		// A hash of hundreds of milliseconds, two at a time: the five
		// attempts are reserved long before they could finish.
		f := v1Start(t, b, apptest.With("LATCH_ARGON2_MEMORY_KIB", "65536"), apptest.With("LATCH_ARGON2_ITERATIONS", "6"),
			apptest.With("LATCH_HASH_CONCURRENCY", "2"))
		f.HTTP.Timeout = time.Minute
		id, username, password := f.newUser(t)

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for i := 0; i < 5; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := f.NewJSONRequest(http.MethodPost, "/v1/auth/password/authenticate", f.tok, authBody(username, password, nil))
				if err != nil {
					errs <- err
					return
				}
				_, err = v1Do(f.HTTP, req.WithContext(ctx))
				errs <- err
			}()
		}
		// Abandon them once all five hold their reservation.
		waitFor(t, "five reservations", func() bool { return f.accountReservations(t, id) == 5 })
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("an abandoned request ended with %v, want a cancellation", err)
			}
		}
		f.signIn(t, username, password)
		if n := f.lockedSeconds(t, id); n != 0 {
			t.Errorf("locked_seconds %v after abandoned correct sign-ins", n)
		}
		// Given back, not left to lapse: the stored count itself is gone.
		waitFor(t, "the reservations given back", func() bool { return f.accountReservations(t, id) == 0 })
		if n := f.countAudit(t, id, "sign_in", "failure"); n != 0 {
			t.Errorf("%d sign_in failures for abandoned correct passwords", n)
		}
		if strings.Contains(f.Logs.String(), "sentinel release failed") {
			t.Errorf("a release failed:\n%s", f.Logs)
		}
	})
}

// Reservations a crashed process never settles stop counting after the
// reservation TTL: the Users API never calls the user locked, a sign-in
// with the right password waits for them to lapse and succeeds, and wrong
// passwords then count from zero.
func TestV1LockoutLapsedReservations(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		servers := v1Replicas(t, b, apptest.With("LATCH_LOCKOUT_RESERVATION_TTL", "1s"))
		f := servers[0]
		id, username, password := f.newUser(t)
		// The "crashed" replica: five reservations on the account, the
		// whole budget, never settled.
		crashed := servers[1].Services.Engine.Sentinel
		for i := 0; i < 5; i++ {
			v, err := crashed.Reserve(context.Background(), "user:"+id+":account", experience.DefaultLockoutPolicy())
			if err != nil || !v.Allowed {
				t.Fatalf("reserve %d: %+v %v", i, v, err)
			}
		}
		if n := f.lockedSeconds(t, id); n != 0 {
			t.Errorf("locked_seconds %v with reservations only", n)
		}
		f.signIn(t, username, password)
		for i := 0; i < 5; i++ {
			wantError(t, f.authenticate(t, username, "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		}
		wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "auth_locked")
	})
}

// A check that outlasts its reservation is never told: with a reservation
// TTL shorter than one hash, the outcome could have been evaluated beside
// others that took the lapsed place, so wrong and right passwords alike get
// 503 server_busy and nothing is counted or audited as a failure.
func TestV1LockoutOutlastedReservationNotTold(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		id, username, password := f.newUser(t)
		// A hash far longer than the 100ms TTL, on a second server of the
		// same database (the user was created with cheap parameters; its
		// hash is imported with heavy ones).
		slow := v1Wrap(f.Replica(apptest.With("LATCH_LOCKOUT_RESERVATION_TTL", "100ms"),
			apptest.With("LATCH_ARGON2_MEMORY_KIB", "65536"), apptest.With("LATCH_ARGON2_ITERATIONS", "6"),
			apptest.With("LATCH_HASH_QUEUE", "200"), apptest.With("LATCH_HASH_QUEUE_WAIT", "30s")))
		slow.HTTP.Timeout = time.Minute
		encoded, err := slow.Services.Hasher.Hash(context.Background(), password)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Services.DB.Exec("UPDATE users SET password_hash = ? WHERE id = ?", encoded, id).Error; err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 6; i++ {
			res := slow.authenticate(t, username, "Wrong-Passw0rd", nil)
			wantError(t, res, http.StatusServiceUnavailable, "server_busy")
			retryAfter(t, res)
		}
		wantError(t, slow.authenticate(t, username, password, nil), http.StatusServiceUnavailable, "server_busy")
		if n := slow.countAudit(t, id, "sign_in", "failure"); n != 0 {
			t.Errorf("%d sign_in failures audited for untold outcomes", n)
		}
		if n := f.accountFailures(t, id); n != 0 {
			t.Errorf("the sentinel counts %d failures for untold outcomes", n)
		}
		if n := f.lockedSeconds(t, id); n != 0 {
			t.Errorf("locked_seconds %v", n)
		}
	})
}

// A stored hash that cannot be parsed is data corruption, answered as the
// internal error it is — not as a busy server the client should retry —
// and no attempt on it counts as a failure.
func TestV1CorruptStoredHashIsAnInternalError(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		id, username, password := f.newUser(t)
		if err := f.Services.DB.Exec("UPDATE users SET password_hash = ? WHERE id = ?", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", id).Error; err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{password, "Wrong-Passw0rd"} {
			wantError(t, f.authenticate(t, username, pw, nil), http.StatusInternalServerError, "internal_server_error")
		}
		if n := f.accountFailures(t, id); n != 0 {
			t.Errorf("the sentinel counts %d failures for a corrupt hash", n)
		}
	})
}

// waitFor polls cond until it holds, failing after a generous bound (a
// liveness check, not a timing one).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

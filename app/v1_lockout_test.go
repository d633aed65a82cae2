package app_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
)

// burst sends the same authentication n times at once, spread round-robin
// over the given servers, and counts the answers by status and error code.
func burst(t *testing.T, servers []*v1Fix, n int, username, password string) map[string]int {
	t.Helper()
	usernames := make([]string, n)
	for i := range usernames {
		usernames[i] = username
	}
	return burstUsers(t, servers, usernames, password)
}

// burstUsers signs each of usernames in once, all at once.
func burstUsers(t *testing.T, servers []*v1Fix, usernames []string, password string) map[string]int {
	t.Helper()
	bodies := make([]map[string]any, len(usernames))
	for i, u := range usernames {
		bodies[i] = authBody(u, password, nil)
	}
	return burstBodies(t, servers, bodies)
}

// burstBodies sends each password authentication body once, all at once.
func burstBodies(t *testing.T, servers []*v1Fix, bodies []map[string]any) map[string]int {
	t.Helper()
	n := len(bodies)
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
	)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		f := servers[i%len(servers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := f.send(http.MethodPost, "/v1/auth/password/authenticate", f.tok, bodies[i])
			key := "transport error"
			if err == nil {
				key = http.StatusText(res.Status) + " " + res.Str("error_code")
				if res.Status == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
					key += " without Retry-After"
				}
			}
			mu.Lock()
			counts[key]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

const (
	answerInvalid = "Unauthorized auth_invalid_credentials"
	answerLocked  = "Forbidden auth_locked"
	answerOK      = "OK "
	answerBusy    = "Service Unavailable server_busy"
)

// checkLockoutBurst checks the outcome of n concurrent wrong passwords with
// the default limit of 5: exactly 5 were evaluated (the others waited for
// them rather than being refused while they ran), the rest found the lock.
func checkLockoutBurst(t *testing.T, counts map[string]int, n int) {
	t.Helper()
	if counts[answerInvalid] != 5 || counts[answerLocked] != n-5 {
		t.Fatalf("answers %v: want 5 %q and %d %q", counts, answerInvalid, n-5, answerLocked)
	}
}

// Concurrent wrong passwords cannot get past the limit, and the lock then
// holds even for the right password until an administrator unlocks.
func TestV1LockoutUnderConcurrency(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		// v1Start gives the hashing gate a queue long enough to refuse nothing.
		f := v1Start(t, b)
		id, username, password := f.newUser(t)
		checkLockoutBurst(t, burst(t, []*v1Fix{f}, 50, username, "Wrong-Passw0rd"), 50)
		res := f.authenticate(t, username, password, nil)
		wantError(t, res, http.StatusForbidden, "auth_locked")
		retryAfter(t, res)
		if n := f.countAudit(t, id, "lockout", ""); n < 1 {
			t.Error("no lockout audit event")
		}
		if n := f.countAudit(t, id, "sign_in", "failure"); n < 1 || n > 5 {
			t.Errorf("%d sign_in failure audit events for the user, want 1 to 5", n)
		}
		if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/unlock", f.tok, nil); res.Status != http.StatusNoContent {
			t.Fatalf("unlock: %s", res)
		}
		if n := f.countAudit(t, id, "user.unlocked", ""); n != 1 {
			t.Errorf("%d user.unlocked audit events, want 1", n)
		}
		f.signIn(t, username, password)
		// The counter starts from zero again.
		for i := 0; i < 4; i++ {
			wantError(t, f.authenticate(t, username, "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		}
		f.signIn(t, username, password)
	})
}

// Many concurrent sign-ins with the right password never lock the account,
// nor are they refused: the ones beyond the budget wait for those in flight,
// which succeed. Only failures lock.
func TestV1ConcurrentCorrectPasswordsDoNotLock(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		id, username, password := f.newUser(t)
		counts := burst(t, []*v1Fix{f}, 30, username, password)
		if counts[answerOK] != 30 {
			t.Fatalf("answers %v: want 30 %q", counts, answerOK)
		}
		if n := f.countAudit(t, id, "lockout", ""); n != 0 {
			t.Fatalf("%d lockouts after correct passwords only", n)
		}
		if u := f.call(t, http.MethodGet, "/v1/users/"+id, f.tok, nil); u.JSON["locked_seconds"] != float64(0) {
			t.Fatalf("locked after correct passwords only: %s", u)
		}
		f.signIn(t, username, password)
	})
}

// Two Latch processes on one PostgreSQL share the sentinel: the limit holds
// across replicas.
func TestV1LockoutAcrossReplicas(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		if b != apptest.Postgres {
			t.Skip("replicas share a PostgreSQL database")
		}
		dbURL := apptest.PostgresSchemaURL(t)
		common := []apptest.Option{
			apptest.With("LATCH_DATABASE_URL", dbURL),
			apptest.With("LATCH_ISSUER", "http://latch.replicas.test"),
			apptest.With("LATCH_HASH_QUEUE", "100"), apptest.With("LATCH_HASH_QUEUE_WAIT", "10s"),
		}
		one := v1Start(t, b, common...)
		two := v1Wrap(apptest.Start(t, b, append(common, apptest.With("LATCH_SECRET_KEY", one.Config.SecretKey))...))
		if one.Services.DB == two.Services.DB {
			t.Fatal("the replicas share a connection pool")
		}

		id, username, password := one.newUser(t)
		checkLockoutBurst(t, burst(t, []*v1Fix{one, two}, 50, username, "Wrong-Passw0rd"), 50)
		for _, f := range []*v1Fix{one, two} {
			wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "auth_locked")
		}
		if n := one.countAudit(t, id, "lockout", ""); n < 1 {
			t.Error("no lockout audit event")
		}
		if res := two.call(t, http.MethodPost, "/v1/users/"+id+"/unlock", two.tok, nil); res.Status != http.StatusNoContent {
			t.Fatalf("unlock: %s", res)
		}
		one.signIn(t, username, password)
		two.signIn(t, username, password)
	})
}

// The per-IP rate limit on /v1/auth/* answers 429 with Retry-After beyond
// the burst, cannot be dodged with X-Forwarded-For when the proxy is not
// trusted, and is off when the rate is 0.
func TestV1IPRateLimit(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Run("limited", func(t *testing.T) {
			f := v1Start(t, b, apptest.With("LATCH_IP_RATE_LIMIT", "1"), apptest.With("LATCH_IP_RATE_BURST", "3"))
			body := authBody(v1Name("nobody"), "Wrong-Passw0rd", nil)
			for i := 0; i < 3; i++ {
				wantError(t, f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.tok, body), http.StatusUnauthorized, "auth_invalid_credentials")
			}
			res := f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.tok, body)
			wantError(t, res, http.StatusTooManyRequests, "too_many_requests")
			retryAfter(t, res)
			req, _ := http.NewRequest(http.MethodGet, f.URL+"/v1/auth/whoami", nil)
			req.Header.Set("Authorization", "Bearer "+f.tok)
			req.Header.Set("X-Forwarded-For", "198.51.100.9")
			res, err := v1Do(f.HTTP, req)
			if err != nil {
				t.Fatal(err)
			}
			wantError(t, res, http.StatusTooManyRequests, "too_many_requests")
			// The Users API is not an authentication route.
			if res := f.call(t, http.MethodGet, "/v1/users?username=nobody", f.tok, nil); res.Status != http.StatusOK {
				t.Fatalf("users API under the auth rate limit: %s", res)
			}
		})
		t.Run("off", func(t *testing.T) {
			f := v1Start(t, b, apptest.With("LATCH_IP_RATE_LIMIT", "0"), apptest.With("LATCH_IP_RATE_BURST", "1"))
			for i := 0; i < 10; i++ {
				if res := f.call(t, http.MethodGet, "/v1/auth/whoami", f.tok, nil); res.Status != http.StatusOK {
					t.Fatalf("request %d: %s", i, res)
				}
			}
		})
	})
}

// With one hashing slot and a queue of one, a burst of sign-ins with real
// argon2id parameters gets quick 503 server_busy answers for the overflow:
// every request is answered, none hangs, memory stays bounded.
func TestV1HashingGateSaturation(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b,
			apptest.With("LATCH_HASH_CONCURRENCY", "1"), apptest.With("LATCH_HASH_QUEUE", "1"),
			apptest.With("LATCH_HASH_QUEUE_WAIT", "1ms"),
			apptest.With("LATCH_ARGON2_MEMORY_KIB", "65536"), apptest.With("LATCH_ARGON2_ITERATIONS", "3"))
		f.HTTP.Timeout = 30 * time.Second
		// Thirty users sharing one imported hash with the current (heavy)
		// parameters: one hash to set up, and the sentinel stays out of it.
		password := v1Password()
		encoded, err := f.Services.Hasher.Hash(context.Background(), password)
		if err != nil {
			t.Fatal(err)
		}
		usernames := make([]string, 30)
		for i := range usernames {
			usernames[i] = v1Name("busy")
			f.createUser(t, map[string]any{"username": usernames[i], "password_digest": encoded, "password_algorithm": "argon2id"})
		}

		runtime.GC()
		rssBefore := residentMiB()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var m runtime.MemStats
			for {
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		began := time.Now()
		counts := burstUsers(t, []*v1Fix{f}, usernames, password)
		elapsed := time.Since(began)
		close(stop)
		<-sampled

		if counts[answerOK]+counts[answerBusy] != 30 || counts[answerOK] < 1 || counts[answerBusy] < 1 {
			t.Fatalf("answers %v: want every one %q or %q, some of each", counts, answerOK, answerBusy)
		}
		// Each admitted request costs one 64 MiB hash, one at a time.
		if limit := time.Duration(counts[answerOK]+2) * 5 * time.Second; elapsed > limit {
			t.Errorf("burst took %v", elapsed)
		}
		grown := int64(peak.Load()) - int64(base.HeapAlloc)
		t.Logf("answers %v in %v; heap grew by at most %d MiB (base %d MiB); RSS %d → %d MiB", counts, elapsed, grown>>20, base.HeapAlloc>>20, rssBefore, residentMiB())
		if grown > 300<<20 {
			t.Errorf("heap grew by %d MiB during the burst", grown>>20)
		}
		// Loosely: one 64 MiB hash at a time, whatever the burst.
		if rss := residentMiB(); rss-rssBefore > 400 {
			t.Errorf("resident memory grew from %d to %d MiB during the burst", rssBefore, rss)
		}
		// The refused attempts did not count against the users.
		if n := f.countAudit(t, "", "sign_in", "failure"); n != 0 {
			t.Errorf("%d sign_in failures recorded for refused attempts", n)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM sentinel_counters WHERE failures > 0"); n != 0 {
			t.Errorf("%d sentinel counters after the burst", n)
		}
		// The server is still fine afterwards, and rehashed nothing.
		for _, u := range usernames[:2] {
			f.signIn(t, u, password)
		}
		if n := f.countAudit(t, "", "password.rehash", ""); n != 0 {
			t.Errorf("%d rehashes of hashes with the current parameters", n)
		}
	})
}

// residentMiB returns this process's resident set size (0 where unknown).
func residentMiB() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
			return kib >> 10
		}
	}
	return 0
}

// The sentinel counts per account, not per identifier type: a user's
// username, email and phone share one budget of 5 failures, and the lock
// holds whichever identifier is used next, even with the right password.
// The Users API reports that pool and unlocks it.
func TestV1LockoutPoolPerAccount(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		username, email, phone, password := v1Name("pool"), expEmail("pool"), expPhone(), v1Password()
		id := f.createUser(t, map[string]any{"username": username, "email": email, "phone_number": phone,
			"credentials": map[string]any{"password": password}})
		by := func(typ, value, pw string) *apptest.Response {
			return f.authenticate(t, value, pw, map[string]any{"username_type": typ})
		}
		ids := [][2]string{{"username", username}, {"email", email}, {"phone_number", phone}}
		for _, attempt := range [][2]string{ids[0], ids[0], ids[1], ids[1], ids[2]} {
			wantError(t, by(attempt[0], attempt[1], "Wrong-Passw0rd"), http.StatusUnauthorized, "auth_invalid_credentials")
		}
		for _, ident := range ids {
			res := by(ident[0], ident[1], password)
			wantError(t, res, http.StatusForbidden, "auth_locked")
			retryAfter(t, res)
		}
		if n := f.countAudit(t, id, "lockout", ""); n != 1 {
			t.Errorf("%d lockout audit events, want 1", n)
		}
		if u := f.call(t, http.MethodGet, "/v1/users/"+id, f.tok, nil); u.JSON["locked_seconds"] == nil || u.JSON["locked_seconds"].(float64) < 1 {
			t.Fatalf("locked_seconds after the shared budget ran out: %s", u)
		}
		if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/unlock", f.tok, nil); res.Status != http.StatusNoContent {
			t.Fatalf("unlock: %s", res)
		}
		if u := f.call(t, http.MethodGet, "/v1/users/"+id, f.tok, nil); u.JSON["locked_seconds"] != float64(0) {
			t.Fatalf("locked_seconds after unlock: %s", u)
		}
		for _, ident := range ids {
			if res := by(ident[0], ident[1], password); res.Status != http.StatusOK {
				t.Fatalf("sign in by %s after unlock: %s", ident[0], res)
			}
		}
		// Unknown identifiers keep pools of their own: failures against one
		// do not lock another, nor a real account.
		ghost := v1Name("ghost")
		for i := 0; i < 5; i++ {
			wantError(t, f.authenticate(t, ghost, "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		}
		wantError(t, f.authenticate(t, ghost, "Wrong-Passw0rd", nil), http.StatusForbidden, "auth_locked")
		wantError(t, f.authenticate(t, v1Name("ghost"), "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		f.signIn(t, username, password)
	})
}

// Attempts refused by a lock are counted, not written one row each: a
// flood against a locked account adds one audit row (per lockout window),
// whose count says how many attempts there were.
func TestV1LockedFloodAuditedInPlace(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		_, username, password := f.newUser(t)
		for i := 0; i < 5; i++ {
			wantError(t, f.authenticate(t, username, "Wrong-Passw0rd", nil), http.StatusUnauthorized, "auth_invalid_credentials")
		}
		before := f.count(t, "SELECT COUNT(*) FROM audit_events")
		counts := burst(t, []*v1Fix{f}, 25, username, password)
		for i := 0; i < 25; i++ {
			wantError(t, f.authenticate(t, username, "Wrong-Passw0rd", nil), http.StatusForbidden, "auth_locked")
		}
		if counts[answerLocked] != 25 {
			t.Fatalf("answers %v on a locked account", counts)
		}
		if added := f.count(t, "SELECT COUNT(*) FROM audit_events") - before; added > 1 {
			t.Fatalf("50 refused attempts added %d audit rows, want at most 1", added)
		}
		var refused []map[string]any
		for _, ev := range f.auditEvents(t, "", "sign_in") {
			if data, _ := ev["data"].(map[string]any); data["reason"] == "locked" {
				refused = append(refused, ev)
			}
		}
		if len(refused) != 1 || refused[0]["count"] != float64(50) || refused[0]["last_at"] == nil {
			t.Fatalf("refused attempts in the audit log: %v, want one event with count 50", refused)
		}
	})
}

package app_test

// Database faults (issue 10 §1, §2): a database that is cut off, frozen or
// locked answers 503 in each route family's dialect with Retry-After —
// never 500 — within the request deadline, logs once per burst, counts in
// a metric, and recovers without a restart. Faults are injected with a TCP
// proxy in the test process (store/faultproxy) between Latch and the shared
// PostgreSQL, or with a SQLite write lock held by the test.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/store/faultproxy"
)

// startBehindProxy starts a server on PostgreSQL whose database
// connections run through a fault proxy (the schema isolation and its
// search_path are kept).
func startBehindProxy(t *testing.T, opts ...apptest.Option) (*v1Fix, *faultproxy.Proxy) {
	t.Helper()
	proxied, p := apptest.PostgresBehindProxy(t)
	opts = append([]apptest.Option{apptest.With("LATCH_DATABASE_URL", proxied)}, opts...)
	return v1Start(t, apptest.Postgres, opts...), p
}

// noCaches makes every request reach the database, token checks included.
var noCaches = []apptest.Option{
	apptest.With("LATCH_CLIENT_CACHE_TTL", "0s"),
	apptest.With("LATCH_TOKEN_VERIFY_CACHE_TTL", "0s"),
}

func setMode(t *testing.T, p *faultproxy.Proxy, m faultproxy.Mode) {
	t.Helper()
	if err := p.Set(m); err != nil {
		t.Fatalf("proxy %s: %v", m, err)
	}
}

// metricValue reads one series (e.g. `name{label="v"}`) from /metrics; 0
// when absent.
func metricValue(t testing.TB, env *apptest.Env, series string) float64 {
	t.Helper()
	res := env.JSON(http.MethodGet, "/metrics", "", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("metrics: %s", res)
	}
	sc := bufio.NewScanner(bytes.NewReader(res.Raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, v)
			}
			return f
		}
	}
	return 0
}

// logLines returns the server's log lines with the given message.
func logLines(env *apptest.Env, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(env.LogText(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// wantUnavailable checks a 503 "database unavailable" answer in the
// dialect of its route, with Retry-After.
func wantUnavailable(t testing.TB, what string, res *apptest.Response) {
	t.Helper()
	field, code := "error_code", "server_unavailable"
	switch {
	case strings.HasPrefix(what, "/api/"):
		field, code = "code", "server.unavailable"
	case strings.HasPrefix(what, "/oidc/"):
		field, code = "error", "temporarily_unavailable"
	}
	if res.Status != http.StatusServiceUnavailable || res.Str(field) != code {
		t.Fatalf("%s: got %s, want 503 with %s %q", what, res, field, code)
	}
	if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("%s: Retry-After = %q", what, res.Header.Get("Retry-After"))
	}
	if strings.Contains(string(res.Raw), "127.0.0.1") || strings.Contains(string(res.Raw), "connect") {
		t.Fatalf("%s: the answer leaks the internal error: %s", what, res.Raw)
	}
}

// outageCalls are the calls the outage tests make: each route family, reads
// and writes, token checks and domain operations.
type outageCalls struct {
	f         *v1Fix
	s         *specCheck
	userID    string
	username  string
	password  string
	refresh   string // for /oidc/token
	refreshV1 string // for /v1/auth/token/refresh
	access    string
	handle    string
}

func newOutageCalls(t *testing.T, f *v1Fix) *outageCalls {
	t.Helper()
	c := &outageCalls{f: f, s: newSpecCheck(t, f.Env)}
	c.userID, c.username, c.password = f.newUser(t)
	signIn := f.signIn(t, c.username, c.password)
	c.refresh, c.access = signIn.Str("refresh_token"), signIn.Str("access_token")
	c.refreshV1 = f.signIn(t, c.username, c.password).Str("refresh_token")
	c.handle = c.initInteraction(t, http.StatusNoContent).Header.Get("Latch-Interaction")
	return c
}

func (c *outageCalls) initInteraction(t *testing.T, want int) *apptest.Response {
	t.Helper()
	return c.s.json(http.MethodPut, "/api/experience", c.f.tok, map[string]any{"interactionEvent": "SignIn"}, want)
}

// run makes every call, each validated against the OpenAPI document. With
// unavailable, each must answer 503 in its route's dialect with
// Retry-After, except that calls served from caches (client credentials,
// with caches on) may also succeed.
func (c *outageCalls) run(t *testing.T, unavailable bool) {
	t.Helper()
	form := func(values url.Values) url.Values {
		values.Set("client_id", c.f.client.ID)
		values.Set("client_secret", c.f.client.Secret)
		return values
	}
	calls := []struct {
		route     string
		ok        int
		cacheable bool
		do        func(want int) *apptest.Response
	}{
		{"/v1/auth/password/authenticate", http.StatusOK, false, func(want int) *apptest.Response {
			return c.s.json(http.MethodPost, "/v1/auth/password/authenticate", c.f.tok, authBody(c.username, c.password, nil), want)
		}},
		{"/v1/users/{id}", http.StatusOK, false, func(want int) *apptest.Response {
			return c.s.get("/v1/users/"+c.userID, c.f.tok, want)
		}},
		{"/v1/users", http.StatusCreated, false, func(want int) *apptest.Response {
			return c.s.json(http.MethodPost, "/v1/users", c.f.tok, map[string]any{"username": v1Name("outage")}, want)
		}},
		{"/v1/auth/token/refresh", http.StatusOK, false, func(want int) *apptest.Response {
			res := c.s.json(http.MethodPost, "/v1/auth/token/refresh", c.f.tok, map[string]any{"refresh_token": c.refreshV1}, want)
			if res.Status == http.StatusOK {
				c.refreshV1 = res.Str("refresh_token")
			}
			return res
		}},
		{"/api/experience", http.StatusNoContent, false, func(want int) *apptest.Response {
			return c.initInteraction(t, want)
		}},
		{"/api/experience/interaction", http.StatusOK, false, func(want int) *apptest.Response {
			return c.s.json(http.MethodGet, "/api/experience/interaction", "", nil, want, "Latch-Interaction", c.handle)
		}},
		{"/oidc/token client_credentials", http.StatusOK, true, func(want int) *apptest.Response {
			return c.s.form("/oidc/token", &c.f.client, url.Values{"grant_type": {"client_credentials"}}, want)
		}},
		{"/oidc/token refresh_token", http.StatusOK, false, func(want int) *apptest.Response {
			// After the outage the refresh token is still the current
			// one: the failed rotation changed nothing.
			res := c.s.form("/oidc/token", &c.f.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.refresh}}, want)
			if res.Status == http.StatusOK {
				c.refresh = res.Str("refresh_token")
			}
			return res
		}},
		{"/oidc/token/introspection", http.StatusOK, false, func(want int) *apptest.Response {
			res := c.s.form("/oidc/token/introspection", nil, form(url.Values{"token": {c.access}}), want)
			if res.Status == http.StatusOK && res.JSON["active"] != true {
				t.Fatalf("introspection of a live token: %s", res)
			}
			return res
		}},
	}
	for _, call := range calls {
		want := call.ok
		if unavailable && !call.cacheable {
			want = http.StatusServiceUnavailable
		}
		if unavailable && call.cacheable {
			// Either answer is right: from the cache, or 503.
			if res := c.f.Form("/oidc/token", &c.f.client, url.Values{"grant_type": {"client_credentials"}}); res.Status != http.StatusOK {
				wantUnavailable(t, call.route, res)
			}
			continue
		}
		res := call.do(want)
		if unavailable {
			wantUnavailable(t, call.route, res)
		}
	}
}

// With the database cut off (connections reset, new ones refused), every
// route family answers 503 in its dialect with Retry-After, readiness
// fails, one log line reports the burst, the metric counts each failure;
// once the database is back the same calls succeed without a restart.
// Without caches every call fails at its token check; with them (the
// default) the domain operations behind meet the outage themselves.
func TestDatabaseCutAnswers503AndRecovers(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []apptest.Option
	}{{"uncached", noCaches}, {"cached", nil}} {
		t.Run(mode.name, func(t *testing.T) {
			f, p := startBehindProxy(t, mode.opts...)
			calls := newOutageCalls(t, f)
			calls.run(t, false)

			setMode(t, p, faultproxy.Cut)
			before := metricValue(t, f.Env, `latch_db_unavailable_total{reason="connection"}`)
			calls.run(t, true)
			calls.run(t, true)
			if res := f.JSON(http.MethodGet, "/readyz", "", nil); res.Status != http.StatusServiceUnavailable || res.Str("status") != "unavailable" {
				t.Fatalf("readyz with the database cut off: %s", res)
			}
			if n := metricValue(t, f.Env, `latch_db_unavailable_total{reason="connection"}`) - before; n < 16 {
				t.Errorf("latch_db_unavailable_total{reason=connection} rose by %v for 16 failed calls", n)
			}
			if lines := logLines(f.Env, "database unavailable"); len(lines) != 1 {
				t.Errorf("%d 'database unavailable' lines for one burst, want 1", len(lines))
			} else if lines[0]["level"] != "ERROR" || lines[0]["request_id"] == "" || lines[0]["error"] == "" {
				t.Errorf("the burst's first line lacks level, request id or error: %v", lines[0])
			}
			if lines := logLines(f.Env, "request failed"); len(lines) != 0 {
				t.Errorf("%d 'request failed' lines during the outage: %v", len(lines), lines)
			}

			setMode(t, p, faultproxy.Forward)
			calls.run(t, false)
			if res := f.JSON(http.MethodGet, "/readyz", "", nil); res.Status != http.StatusOK {
				t.Fatalf("readyz after the database came back: %s", res)
			}
		})
	}
}

// With the database frozen (connections open, nothing answers), requests
// answer 503 within their deadline instead of hanging for the whole freeze
// — including those caught mid-transaction when it began — goroutines stay
// bounded, and once the database thaws requests succeed.
func TestDatabaseFreezeBoundedByRequestDeadline(t *testing.T) {
	const (
		workers = 16
		// The freeze lasts a fixed while; clients send during its first
		// part only, so each request has a few deadlines' time to answer
		// before the thaw.
		freezeFor = 5 * time.Second
		sendFor   = 2 * time.Second // LATCH_REQUEST_TIMEOUT is 1s
	)
	f, p := startBehindProxy(t, append([]apptest.Option{apptest.With("LATCH_REQUEST_TIMEOUT", "1s")}, noCaches...)...)
	type user struct{ id, name, password string }
	users := make([]user, workers) // one each: the sentinel is not under test
	for w := range users {
		users[w].id, users[w].name, users[w].password = f.newUser(t)
	}
	send := func(w, i int) (*apptest.Response, error) {
		if i%2 == 0 {
			return f.send(http.MethodGet, "/v1/users/"+users[w].id, f.tok, nil)
		}
		return f.send(http.MethodPost, "/v1/auth/password/authenticate", f.tok, authBody(users[w].name, users[w].password, nil))
	}
	runtime.GC()
	baseline := runtime.NumGoroutine()

	var (
		stop, frozen atomic.Bool
		peak         atomic.Int64
		mu           sync.Mutex
		statuses     = map[int]int{}
		failures     []string
		wg           sync.WaitGroup
	)
	sampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(runtime.NumGoroutine()); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-sampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	// Clients are busy (sign-ins in their transactions) when the freeze
	// begins.
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				sentFrozen := frozen.Load()
				res, err := send(w, i)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case sentFrozen && (res.Status != http.StatusServiceUnavailable || res.Str("error_code") != "server_unavailable" || res.Header.Get("Retry-After") == ""):
					failures = append(failures, res.String())
				case !sentFrozen && res.Status != http.StatusOK && res.Status != http.StatusServiceUnavailable:
					failures = append(failures, res.String())
				}
				if res != nil {
					statuses[res.Status]++
				}
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond)
	setMode(t, p, faultproxy.Freeze)
	frozen.Store(true)
	thaw := time.Now().Add(freezeFor)
	time.Sleep(sendFor)
	stop.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var hung bool
	select {
	case <-done:
	case <-time.After(time.Until(thaw)):
		hung = true
	}
	close(sampling)
	<-sampled
	setMode(t, p, faultproxy.Forward)
	<-done
	if hung {
		t.Fatalf("requests were still waiting when the database thawed, %s after the freeze began (statuses %v)", freezeFor, statuses)
	}
	if len(failures) > 0 {
		t.Fatalf("%d answers were not 503 server_unavailable with Retry-After, e.g. %s (statuses %v)",
			len(failures), failures[0], statuses)
	}
	t.Logf("statuses %v, goroutines %d → peak %d", statuses, baseline, peak.Load())
	// Per client: its request and its connection on both sides. Per pooled
	// connection discarded at a deadline (at most the pool's 16 per
	// deadline): pgx's asynchronous close, which sends a cancel request
	// bounded by pgx's own 15 s, and the proxy's two pipes for it.
	discarded := 16 * (int(sendFor/time.Second) + 2)
	if bound := int64(baseline + workers*6 + discarded*3); peak.Load() > bound {
		t.Errorf("goroutines climbed from %d to %d during the freeze (bound %d)", baseline, peak.Load(), bound)
	}
	if n := metricValue(t, f.Env, `latch_db_unavailable_total{reason="timeout"}`); n < workers {
		t.Errorf("latch_db_unavailable_total{reason=timeout} = %v for at least %d timed-out requests", n, workers)
	}

	// Thawed: requests succeed again at once, without a restart.
	for i := 0; i < 2; i++ {
		if res, err := send(0, i); err != nil || res.Status != http.StatusOK {
			t.Fatalf("call %d after the thaw: %v %v", i, res, err)
		}
	}
	// And what the freeze left behind (discarded connections, their cancel
	// requests) drains away.
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > baseline+workers*4 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines stay at %d after the thaw (baseline %d)", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A request whose transaction has just committed when the database freezes
// still answers within its deadline: nothing it does afterwards (such as
// releasing prepared statements) waits longer than the request may.
func TestFreezeRightAfterCommitAnswersWithinDeadline(t *testing.T) {
	f, p := startBehindProxy(t, apptest.With("LATCH_REQUEST_TIMEOUT", "1s"))
	_, username, password := f.newUser(t)
	f.signIn(t, username, password)

	p.FreezeAfter([]byte("COMMIT\x00")) // the tag of PostgreSQL's answer to COMMIT
	type result struct {
		res *apptest.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := f.send(http.MethodPost, "/v1/auth/password/authenticate", f.tok, authBody(username, password, nil))
		done <- result{res, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(4 * time.Second): // four deadlines
		mode := p.Mode()
		setMode(t, p, faultproxy.Forward)
		t.Fatalf("the sign-in was still waiting when the database thawed (proxy was %s)", mode)
	}
	if p.Mode() != faultproxy.Freeze {
		t.Fatalf("no COMMIT went through the proxy: %v %v", r.res, r.err)
	}
	setMode(t, p, faultproxy.Forward)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.Status != http.StatusOK {
		wantUnavailable(t, "/v1/auth/password/authenticate", r.res)
	}
	f.signIn(t, username, password)
}

// lockSQLite holds SQLite's write lock on the server's database file from
// a connection of the test's own (BEGIN IMMEDIATE) and returns the release.
func lockSQLite(t *testing.T, env *apptest.Env) func() {
	t.Helper()
	path := strings.TrimPrefix(env.Config.DatabaseURL, "sqlite://")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// SQLite: a write that cannot get the write lock within the busy timeout
// (the request deadline) answers 503 with Retry-After, not 500; reads go on
// meanwhile (WAL), and writes succeed once the lock is released.
func TestSQLiteBusyAnswers503(t *testing.T) {
	f := v1Start(t, apptest.SQLite, apptest.With("LATCH_REQUEST_TIMEOUT", "1s"))
	userID, _, _ := f.newUser(t)

	release := lockSQLite(t, f.Env)
	res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": v1Name("busy")})
	wantUnavailable(t, "/v1/users", res)
	if res := f.call(t, http.MethodGet, "/v1/users/"+userID, f.tok, nil); res.Status != http.StatusOK {
		t.Fatalf("a read while the write lock is held: %s", res)
	}
	if n := metricValue(t, f.Env, `latch_db_unavailable_total{reason="busy"}`); n != 1 {
		t.Errorf("latch_db_unavailable_total{reason=busy} = %v, want 1", n)
	}
	if lines := logLines(f.Env, "request failed"); len(lines) != 0 {
		t.Errorf("the busy database was logged as a failed request: %v", lines)
	}

	release()
	if res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": v1Name("busy")}); res.Status != http.StatusCreated {
		t.Fatalf("a write after the lock is released: %s", res)
	}
}

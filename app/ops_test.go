package app_test

// Issue 14 (operations): the metrics and log lines an operator relies on,
// read after real traffic.

import (
	"bufio"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// scrape returns /metrics as series (name{labels} as printed) to values.
func scrape(t *testing.T, env *apptest.Env, path string) map[string]float64 {
	t.Helper()
	res := env.Do(mustReq(t, http.MethodGet, env.URL+path))
	if res.Status != http.StatusOK {
		t.Fatalf("GET %s: %s", path, res)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(res.Raw)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func mustReq(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// seriesWith finds the one series of a metric whose labels include each of
// want (name="value" pairs), and its value.
func seriesWith(t *testing.T, m map[string]float64, name string, want ...string) float64 {
	t.Helper()
	var found []string
	for k := range m {
		if !strings.HasPrefix(k, name+"{") && k != name {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(k, w)
		}
		if ok {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s with %v: %d series %v", name, want, len(found), found)
	}
	return m[found[0]]
}

// traffic signs a user in, fails until the account locks, refreshes and
// replays the used refresh token.
func traffic(t *testing.T, f *v1Fix) (userID string) {
	t.Helper()
	userID, username, password := f.newUser(t)
	signedIn := f.signIn(t, username, password)
	for i := 0; i < 5; i++ {
		wantError(t, f.authenticate(t, username, "wrong-"+password, nil), http.StatusUnauthorized, "auth_invalid_credentials")
	}
	wantError(t, f.authenticate(t, username, password, nil), http.StatusForbidden, "auth_locked")
	refresh := map[string]any{"refresh_token": signedIn.Str("refresh_token")}
	if res := f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, refresh); res.Status != http.StatusOK {
		t.Fatalf("refresh: %s", res)
	}
	wantError(t, f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, refresh), http.StatusBadRequest, "invalid_grant")
	return userID
}

func TestOperationalMetricsAfterTraffic(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		traffic(t, f)
		m := scrape(t, f.Env, "/metrics")

		signIns := map[string]float64{"success": 1, "auth_invalid_credentials": 5, "auth_locked": 1}
		for outcome, want := range signIns {
			if got := seriesWith(t, m, "latch_sign_ins_total", `method="password"`, `outcome="`+outcome+`"`); got != want {
				t.Errorf("sign-ins %s = %v, want %v", outcome, got, want)
			}
		}
		// One client token (the fixture's), one sign-in, one refresh.
		for grant, want := range map[string]float64{"client_credentials": 1, "password": 1, "refresh_token": 1} {
			if got := seriesWith(t, m, "latch_tokens_issued_total", `grant="`+grant+`"`); got != want {
				t.Errorf("tokens issued by %s = %v, want %v", grant, got, want)
			}
		}
		if got := m["latch_lockouts_total"]; got != 1 {
			t.Errorf("lockouts = %v, want 1", got)
		}
		if got := m["latch_refresh_token_reuse_total"]; got != 1 {
			t.Errorf("refresh reuse = %v, want 1", got)
		}
		if got := seriesWith(t, m, "latch_build_info", `version="`); got != 1 {
			t.Errorf("build info = %v", got)
		}
		// The key was made at start: younger than the test, never negative.
		if age, ok := m["latch_signing_key_age_seconds"]; !ok || age < 0 || age > 600 {
			t.Errorf("key age = %v (present %v)", age, ok)
		}
		// Every latch_ metric the README documents exists.
		readme, err := os.ReadFile("../README.md")
		if err != nil {
			t.Fatal(err)
		}
		ops := string(readme)
		ops = ops[strings.Index(ops, "- **Operations.**"):]
		ops = ops[:strings.Index(ops, "\n## ")] // to the next section
		if n := strings.Count(ops, "`latch_"); n < 8 {
			t.Fatalf("the README's Operations bullet names %d latch_ metrics", n)
		}
		for _, name := range regexp.MustCompile("`(latch_[a-z_]+)").FindAllStringSubmatch(ops, -1) {
			if strings.HasPrefix(name[1], "latch_hash_worker_") {
				continue // served with a hash worker only: cmd/latch's TestE2EHashWorker checks them
			}
			found := false
			for series := range m {
				found = found || series == name[1] || strings.HasPrefix(series, name[1]+"{") || strings.HasPrefix(series, name[1]+"_")
			}
			if !found {
				t.Errorf("the README documents %s, which /metrics does not serve", name[1])
			}
		}
		// Database pool statistics, named by dialect.
		if open := seriesWith(t, m, "go_sql_open_connections", `db_name="`+string(b)+`"`); open < 1 {
			t.Errorf("open connections = %v", open)
		}
		if max := seriesWith(t, m, "go_sql_max_open_connections", `db_name="`); max < 1 {
			t.Errorf("max open connections = %v", max)
		}
	})
}

func TestRequestLogLines(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		userID := traffic(t, f)

		var failed, tokenLine map[string]any
		for _, rec := range logLines(f.Env, "request") {
			if _, ok := rec["duration_ms"].(float64); !ok {
				t.Fatalf("request line without a duration in ms: %v", rec)
			}
			if rec["route"] == "/v1/auth/password/authenticate" && rec["error_code"] == "auth_invalid_credentials" {
				failed = rec
			}
			if rec["route"] == "/oidc/token" {
				tokenLine = rec
			}
		}
		if failed == nil || failed["client_id"] != f.client.ID || failed["level"] != "INFO" {
			t.Fatalf("failed sign-in line: %v", failed)
		}
		// Debug level adds why it failed, and sizes.
		if failed["error_message"] == "" || failed["error_message"] == nil || failed["bytes_in"] == nil {
			t.Errorf("debug fields missing: %v", failed)
		}
		// The token endpoint's client is the one that authenticated there.
		if tokenLine == nil || tokenLine["client_id"] != f.client.ID || tokenLine["error_code"] != nil {
			t.Errorf("token endpoint line: %v", tokenLine)
		}

		locked := logLines(f.Env, "account locked after repeated failed sign-ins")
		if len(locked) != 1 || locked[0]["level"] != "WARN" || locked[0]["user_id"] != userID || locked[0]["client_id"] != f.client.ID {
			t.Errorf("lockout WARN: %v", locked)
		}
		reuse := logLines(f.Env, "refresh token reused: its family and session were revoked (possible token theft)")
		if len(reuse) != 1 || reuse[0]["level"] != "WARN" || reuse[0]["user_id"] != userID {
			t.Errorf("refresh reuse WARN: %v", reuse)
		}
		// Nothing secret reaches the log, the new lines included.
		if strings.Contains(f.Env.Logs.String(), f.client.Secret) || strings.Contains(f.Env.Logs.String(), f.tok) {
			t.Error("a secret reached the log")
		}
	})
}

// With LATCH_METRICS_ADDR the public listener does not serve /metrics.
func TestMetricsOffThePublicListener(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b, apptest.With("LATCH_METRICS_ADDR", "127.0.0.1:0"))
		if res := env.Do(mustReq(t, http.MethodGet, env.URL+"/metrics")); res.Status != http.StatusNotFound {
			t.Errorf("public /metrics with LATCH_METRICS_ADDR: %s", res)
		}
	})
}

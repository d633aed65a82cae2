package app_test

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// A burst of sixteen correct sign-ins — 8 × the CPUs of a small machine —
// on a server with the default hashing gate is served whole: the queue
// holds ordinary concurrency, so nobody is told the server is busy.
func TestV1DefaultGateServesABurstOfSixteen(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Wrap(apptest.Start(t, b, apptest.With("LATCH_HASH_CONCURRENCY", "2"))) // the gate's defaults otherwise
		password := v1Password()
		usernames := make([]string, 16)
		for i := range usernames {
			usernames[i] = v1Name("burst")
			f.createUser(t, map[string]any{"username": usernames[i], "credentials": map[string]any{"password": password}})
		}
		counts := burstUsers(t, []*v1Fix{f}, usernames, password)
		if counts[answerOK] != 16 {
			t.Fatalf("answers %v, want 16 × %q", counts, answerOK)
		}
		// The gate's metrics: everyone admitted, nobody refused.
		res := f.call(t, http.MethodGet, "/metrics", "", nil)
		metrics := string(res.Raw)
		if n := pageSample(t, metrics, `latch_hash_gate_admitted_total`); n < 32 { // 16 users created, 16 signed in
			t.Errorf("admitted_total %v, want at least 32", n)
		}
		for _, reason := range []string{"queue_full", "overload", "timeout"} {
			if n := pageSample(t, metrics, `latch_hash_gate_refusals_total{reason="`+reason+`"}`); n != 0 {
				t.Errorf("%s refusals: %v", reason, n)
			}
		}
		for _, m := range []string{`latch_hash_gate_running 0`, `latch_hash_gate_queued 0`, `latch_hash_gate_limit_units{limit="queue"} 16`,
			`latch_hash_gate_wait_seconds_bucket{le="+Inf"}`, `latch_hash_gate_overloaded 0`} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m)).MatchString(metrics) {
				t.Errorf("metrics lack %s", m)
			}
		}
	})
}

// pageSample returns the value of one sample in a Prometheus text page.
func pageSample(t *testing.T, page, sample string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sample %s in the metrics", sample)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

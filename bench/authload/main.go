// Command authload measures Latch's password authentication against the
// machine's raw argon2id rate, in one run, on a real `latch serve` process
// per database:
//
//	go run ./bench/authload -duration 5s                 # SQLite, then PostgreSQL
//	go run ./bench/authload -db sqlite -duration 10s
//
// For each database it prints: the raw argon2id rate (measured by `latch
// hash-rate` of the same build and configuration as the server, in slices
// interleaved with each closed-loop phase's, so that both run the same code
// and meet the same machine); the authenticate rate
// at 4, 8 and 16 closed-loop clients, its ratio to the raw rate (target ≥
// 0.90) and its non-200 answers (target 0); p50/p99 unloaded; at 4×
// open-loop overload the p99 of admitted requests against the unloaded p99
// (target ≤ 3×) and how the rest were refused (status, latency); the
// server's peak RSS; and session/authenticate and token/refresh rates.
//
// With -profile DIR it also saves a CPU profile of the server during each
// closed-loop phase (through LATCH_PPROF_ADDR) for `go tool pprof`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/latch-dev/latch/bench/internal/harness"
	"github.com/latch-dev/latch/bench/internal/load"
	"github.com/latch-dev/latch/credentials"
)

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases, comma-separated: sqlite, postgres")
	dsn := flag.String("pg", envOr("LATCH_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL base URL")
	d := flag.Duration("duration", 10*time.Second, "length of each phase")
	users := flag.Int("users", 50, "users to spread sign-ins over")
	clients := flag.String("clients", "4,8,16", "closed-loop client counts, comma-separated")
	sessions := flag.Bool("sessions", true, "also measure session/authenticate and token/refresh")
	profile := flag.String("profile", "", "save a server CPU profile of each closed-loop phase in this directory")
	serverEnv := flag.String("env", "", "extra environment of the server, e.g. GOGC=200,LATCH_HASH_QUEUE=32")
	serverLog := flag.String("server-log", "", "write the server's output (e.g. with -env GODEBUG=gctrace=1) to this file")
	flag.Parse()
	extra := map[string]string{}
	for _, kv := range strings.Split(*serverEnv, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			extra[k] = v
		}
	}
	var loops []int
	for _, s := range strings.Split(*clients, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "authload: bad -clients", *clients)
			os.Exit(2)
		}
		loops = append(loops, n)
	}
	var summaries []string
	for _, db := range strings.Split(*dbs, ",") {
		sum, err := run(strings.TrimSpace(db), *dsn, *d, *users, loops, *sessions, *profile, extra, *serverLog)
		if err != nil {
			fmt.Fprintln(os.Stderr, "authload:", err)
			os.Exit(1)
		}
		summaries = append(summaries, sum)
	}
	fmt.Println("summary")
	for _, s := range summaries {
		fmt.Println(s)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type bench struct {
	srv   *harness.Server
	hc    *http.Client
	token string
	users []string
	pprof string // the server's pprof address, when profiling
}

func run(db, dsn string, d time.Duration, nUsers int, loops []int, sessions bool, profileDir string, extra map[string]string, serverLog string) (string, error) {
	ctx := context.Background()
	params := credentials.DefaultArgon2Params()
	env := map[string]string{"LATCH_IP_RATE_LIMIT": "0"}
	for k, v := range extra {
		env[k] = v
	}
	pprofAddr := ""
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			return "", err
		}
		pprofAddr = freeAddr()
		env["LATCH_PPROF_ADDR"] = pprofAddr
	}
	srv, err := harness.Start(ctx, harness.Options{DB: db, PostgresDSN: dsn, Env: env})
	if err != nil {
		return "", err
	}
	if serverLog != "" {
		// Deferred before Close, so it runs after it: the whole output.
		defer func() {
			if err := os.WriteFile(serverLog+"."+db, srv.Log.Bytes(), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "server log:", err)
			}
		}()
	}
	defer srv.Close()
	b := &bench{srv: srv, hc: harness.HTTPClient(), pprof: pprofAddr}
	client, err := srv.CreateClient("auth:execute users:write")
	if err != nil {
		return "", err
	}
	if b.token, err = srv.ClientToken(b.hc, client); err != nil {
		return "", err
	}
	for i := 0; i < nUsers; i++ {
		name := fmt.Sprintf("bench-user-%d", i)
		st, body := b.post("/v1/users", map[string]any{"username": name, "credentials": map[string]any{"password": "bench password " + strconv.Itoa(i)}})
		if st != http.StatusCreated {
			return "", fmt.Errorf("create user: %d %s", st, body)
		}
		b.users = append(b.users, name)
	}
	cpus := runtime.NumCPU()
	fmt.Printf("latch authload — %s, %d CPUs, argon2id %s, phases of %s\n\n", db, cpus, params, d)

	unloaded := load.Closed(ctx, 1, d, b.authenticate)
	fmt.Printf("unloaded (1 client):           p50 %6.1f ms   p99 %6.1f ms   [%s]\n",
		ms(unloaded.Percentile(200, 50)), ms(unloaded.Percentile(200, 99)), unloaded.Statuses())

	// Each closed loop is interleaved with the raw yardstick (`latch
	// hash-rate`, the server's own build and configuration, as
	// many workers as CPUs, no server work): `rounds` slices of each in turn,
	// raw first and last. This machine's hash rate drifts by tens of percent
	// within seconds (shared CPUs), so a yardstick measured before or after
	// a phase meets another machine than the phase did; interleaved, both
	// meet the same one, and the ratio is of the totals.
	const rounds = 4
	slice := d / rounds
	first, err := measureRaw(srv, cpus, slice)
	if err != nil {
		return "", err
	}
	fmt.Printf("raw argon2id rate (%d workers, latch hash-rate):   %6.1f hashes/s   (%.1f ms of CPU per hash)\n", cpus, first.rate(), ms(first.cpuPerHash()))
	rawLow, rawHigh := first.rate(), first.rate()
	var shares, cpuShares []string
	for _, n := range loops {
		raws := first
		sat := load.NewResult()
		var used harness.CPU
		var self time.Duration
		var busyUnits, busySeconds float64
		stopProfile := b.profile(ctx, filepath.Join(profileDir, fmt.Sprintf("%s-%d.pprof", db, n)), 2*d)
		for r := 0; r < rounds; r++ {
			before, busyBefore, t0 := srv.CPUNow(), b.gateMetric("latch_hash_gate_busy_unit_seconds_total"), time.Now()
			selfBefore, _, _ := selfCPU()
			sat.Merge(load.Closed(ctx, n, slice, b.authenticate))
			selfAfter, _, _ := selfCPU()
			used, self = used.Add(srv.CPUNow().Sub(before)), self+selfAfter-selfBefore
			busyUnits += b.gateMetric("latch_hash_gate_busy_unit_seconds_total") - busyBefore
			busySeconds += time.Since(t0).Seconds()
			next, err := measureRaw(srv, cpus, slice)
			if err != nil {
				return "", err
			}
			rawLow, rawHigh = min(rawLow, next.rate()), max(rawHigh, next.rate())
			raws = raws.add(next)
			first = next // the next phase starts after this slice
		}
		stopProfile()
		busy := busyUnits / (b.gateMetric(`latch_hash_gate_limit_units{limit="concurrency"}`) * busySeconds)
		yard := raws.rate()
		ratio := sat.Rate(200) / yard
		non200 := sat.Count(0) - sat.Count(200) + sat.Errors
		fmt.Printf("%2d clients: %6.1f authentications/s = %.3f of raw %.1f (target ≥ 0.90); non-200: %d   p50 %5.0f ms  p99 %5.0f ms   [%s]\n",
			n, sat.Rate(200), ratio, yard, non200, ms(sat.Percentile(200, 50)), ms(sat.Percentile(200, 99)), sat.Statuses())
		if c := float64(sat.Count(200)); c > 0 {
			// What the ratio would be on a machine running nothing else:
			// the CPU of a raw hash over all the CPU one authentication
			// costs (server, its database backends, the load generator).
			hash := raws.cpuPerHash()
			total := used.Server + used.Database + self
			share := float64(hash) * c / float64(total)
			fmt.Printf("            CPU per authentication: server %.1f + PostgreSQL %.1f + load generator %.1f = %.1f ms; raw hash %.1f ms → CPU share %.3f; machine busy %.1f ms (others included)\n",
				ms(used.Server)/c, ms(used.Database)/c, ms(self)/c, ms(total)/c, ms(hash), share, ms(used.Machine)/c)
			if used.Children > 0 {
				fmt.Printf("            of the server's: hash worker %.1f ms (%.2f× the raw hash), the server itself %.1f ms\n",
					ms(used.Children)/c, float64(used.Children)/c/float64(hash), ms(used.Server-used.Children)/c)
			}
			fmt.Printf("            hash slots busy %.0f%%; server kernel time %.1f ms and %.0f page faults per authentication (raw hash: %.0f faults)\n",
				100*busy, ms(used.System)/c, float64(used.Faults)/c, raws.faultsPerHash())
			cpuShares = append(cpuShares, fmt.Sprintf("%d: %.2f", n, share))
		}
		fmt.Printf("            raw rate in the %d slices around: %.1f–%.1f hashes/s\n", rounds+1, raws.low, raws.high)
		shares = append(shares, fmt.Sprintf("%d: %.2f (%d non-200)", n, ratio, non200))
	}

	// Overload: four times what the machine can hash, open loop (arrivals
	// do not wait for answers), measured from each scheduled arrival.
	rate := 4 * rawHigh
	over := load.Open(ctx, rate, d, 4000, func(ctx context.Context) load.Outcome { return b.authenticate(ctx, 0) })
	overRatio := float64(over.Percentile(200, 99)) / float64(unloaded.Percentile(200, 99))
	fmt.Printf("4× overload (%.0f req/s, open loop): admitted %.1f/s   p50 %5.1f ms   p99 %6.1f ms = %.2f× unloaded p99 (target ≤ 3×)\n",
		rate, over.Rate(200), ms(over.Percentile(200, 50)), ms(over.Percentile(200, 99)), overRatio)
	fast := over.CountBelow(503, 10*time.Millisecond)
	fmt.Printf("             refused %.1f/s: 503 p50 %5.1f ms  p90 %5.1f ms  p99 %6.1f ms; %.0f%% within 10 ms   [%s]\n",
		over.Rate(503), ms(over.Percentile(503, 50)), ms(over.Percentile(503, 90)), ms(over.Percentile(503, 99)),
		100*float64(fast)/float64(max(1, over.Count(503))), over.Statuses())
	rss := srv.PeakRSS()
	fmt.Printf("server peak RSS:                                  %6.1f MiB (target < 300 MiB)\n", rss)
	gate := b.gateMetrics()
	if gate != "" {
		fmt.Printf("gate: %s\n", gate)
	}
	fmt.Println()

	summary := fmt.Sprintf("  %-8s auth/raw %s (raw %.0f–%.0f/s; CPU share %s)\n           4× overload admitted p99 / unloaded p99 = %.2f (%.0f / %.0f ms), 503 p50/p99 %.0f/%.0f ms; peak RSS %.0f MiB",
		db, strings.Join(shares, ", "), rawLow, rawHigh, strings.Join(cpuShares, ", "), overRatio, ms(over.Percentile(200, 99)), ms(unloaded.Percentile(200, 99)),
		ms(over.Percentile(503, 50)), ms(over.Percentile(503, 99)), rss)
	if sessions {
		if err := b.sessionPhases(ctx, d); err != nil {
			return "", err
		}
		fmt.Println()
	}
	return summary, nil
}

// rawRun is what a raw hashing loop (`latch hash-rate`, alone on the
// machine but for the idle server) did: hashes, time, CPU and minor page
// faults, over one or more slices.
type rawRun struct {
	hashes    float64
	elapsed   time.Duration
	cpu       time.Duration
	faults    int64
	low, high float64 // the slowest and fastest slice's rate
}

func (r rawRun) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return r.hashes / r.elapsed.Seconds()
}

func (r rawRun) cpuPerHash() time.Duration {
	if r.hashes < 1 {
		return 0
	}
	return time.Duration(float64(r.cpu) / r.hashes)
}

func (r rawRun) faultsPerHash() float64 {
	if r.hashes < 1 {
		return 0
	}
	return float64(r.faults) / r.hashes
}

func (r rawRun) add(o rawRun) rawRun {
	return rawRun{hashes: r.hashes + o.hashes, elapsed: r.elapsed + o.elapsed, cpu: r.cpu + o.cpu, faults: r.faults + o.faults,
		low: min(r.low, o.low), high: max(r.high, o.high)}
}

// measureRaw runs the raw argon2id loop of the server's build, `latch
// hash-rate` with the server's environment, with workers goroutines for
// about d (after its warm-up, which faults a fresh heap in).
func measureRaw(srv *harness.Server, workers int, d time.Duration) (rawRun, error) {
	out, err := srv.CLI("hash-rate", "--workers", strconv.Itoa(workers), "--duration", d.String(), "--warmup", "500ms", "--output", "json")
	if err != nil {
		return rawRun{}, err
	}
	var r struct {
		Hashes  float64 `json:"hashes"`
		Seconds float64 `json:"seconds"`
		CPU     float64 `json:"cpu_seconds"`
		Faults  int64   `json:"minor_faults"`
		Rate    float64 `json:"hashes_per_second"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return rawRun{}, fmt.Errorf("latch hash-rate: %w: %s", err, out)
	}
	return rawRun{hashes: r.Hashes, elapsed: time.Duration(r.Seconds * float64(time.Second)), cpu: time.Duration(r.CPU * float64(time.Second)),
		faults: r.Faults, low: r.Rate, high: r.Rate}, nil
}

// selfCPU returns this process's user+system CPU time and minor page
// faults, and the time now.
func selfCPU() (time.Duration, int64, time.Time) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0, time.Now()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Minflt, time.Now()
}

// freeAddr returns a free loopback address.
func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer ln.Close()
	return ln.Addr().String()
}

// profile starts fetching a CPU profile of the server for d into file; the
// returned func waits for it. A no-op without -profile.
func (b *bench) profile(ctx context.Context, file string, d time.Duration) (wait func()) {
	if b.pprof == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := int(d.Seconds())
		if secs < 1 {
			secs = 1
		}
		res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprof, secs))
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
		}
	}()
	return func() { <-done }
}

// gateMetric returns the value of one sample of the server's metrics (0
// if absent).
func (b *bench) gateMetric(sample string) float64 {
	res, err := b.hc.Get(b.srv.URL + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// gateMetrics summarises the server's hashing-gate counters.
func (b *bench) gateMetrics() string {
	res, err := b.hc.Get(b.srv.URL + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		for _, p := range []string{"latch_hash_gate_admitted_total", "latch_hash_gate_refusals_total", "latch_hash_gate_mean_hash_seconds"} {
			if strings.HasPrefix(line, p) {
				out = append(out, strings.TrimPrefix(line, "latch_hash_gate_"))
			}
		}
	}
	return strings.Join(out, "  ")
}

// sessionPhases measures session re-authentication and refresh rotation.
func (b *bench) sessionPhases(ctx context.Context, d time.Duration) error {
	workers := 8
	sessions := make([]string, workers)
	refresh := make([]string, workers)
	for w := 0; w < workers; w++ {
		st, body := b.post("/v1/auth/password/authenticate", map[string]any{"username": b.users[w%len(b.users)],
			"password": "bench password " + strconv.Itoa(w%len(b.users))})
		if st != http.StatusOK {
			return fmt.Errorf("sign in: %d %s", st, body)
		}
		var r struct {
			SessionID    string `json:"session_id"`
			RefreshToken string `json:"refresh_token"`
		}
		_ = json.Unmarshal(body, &r)
		sessions[w], refresh[w] = r.SessionID, r.RefreshToken
	}
	before := b.srv.CPUNow()
	sess := load.Closed(ctx, workers, d, func(ctx context.Context, w int) load.Outcome {
		return b.timed(ctx, "/v1/auth/session/authenticate", map[string]any{"session_id": sessions[w]}, nil)
	})
	fmt.Printf("session/authenticate (%d clients):           %8.1f/s   p50 %5.1f ms   p99 %5.1f ms   [%s]\n",
		workers, sess.Rate(200), ms(sess.Percentile(200, 50)), ms(sess.Percentile(200, 99)), sess.Statuses())
	b.cpuPerRequest(before, sess)
	before = b.srv.CPUNow()
	var mu sync.Mutex
	ref := load.Closed(ctx, workers, d, func(ctx context.Context, w int) load.Outcome {
		mu.Lock()
		rt := refresh[w]
		mu.Unlock()
		return b.timed(ctx, "/v1/auth/token/refresh", map[string]any{"refresh_token": rt}, func(body []byte) {
			var r struct {
				RefreshToken string `json:"refresh_token"`
			}
			if json.Unmarshal(body, &r) == nil && r.RefreshToken != "" {
				mu.Lock()
				refresh[w] = r.RefreshToken
				mu.Unlock()
			}
		})
	})
	fmt.Printf("token/refresh (%d rotating chains):          %8.1f/s   p50 %5.1f ms   p99 %5.1f ms   [%s]\n",
		workers, ref.Rate(200), ms(ref.Percentile(200, 50)), ms(ref.Percentile(200, 99)), ref.Statuses())
	b.cpuPerRequest(before, ref)
	return nil
}

// cpuPerRequest prints the CPU a phase cost per successful request.
func (b *bench) cpuPerRequest(before harness.CPU, r *load.Result) {
	used := b.srv.CPUNow().Sub(before)
	if n := float64(r.Count(200)); n > 0 {
		fmt.Printf("  CPU per request: server %.3f ms, whole machine %.3f ms\n", ms(used.Server)/n, ms(used.Machine)/n)
	}
}

// authenticate signs in one of the users (spread so no identifier is hot).
func (b *bench) authenticate(ctx context.Context, _ int) load.Outcome {
	i := int(time.Now().UnixNano() % int64(len(b.users)))
	return b.timed(ctx, "/v1/auth/password/authenticate", map[string]any{"username": b.users[i],
		"password": "bench password " + strconv.Itoa(i)}, nil)
}

func (b *bench) timed(ctx context.Context, path string, body any, onOK func([]byte)) load.Outcome {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.URL+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.token)
	start := time.Now()
	res, err := b.hc.Do(req)
	if err != nil {
		return load.Outcome{Err: err}
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusOK && onOK != nil {
		onOK(data)
	}
	return load.Outcome{Status: res.StatusCode, Latency: time.Since(start)}
}

func (b *bench) post(path string, body any) (int, []byte) {
	return b.srv.Call(b.hc, b.token, http.MethodPost, path, body)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

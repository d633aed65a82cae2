// Command outage measures how a real `latch serve` on PostgreSQL rides out
// a database outage. The server's database connections run through a fault
// proxy in this process (store/faultproxy), so the shared PostgreSQL itself
// is never stopped. While clients keep calling, the proxy first cuts the
// database off (connections reset, new ones refused), then restores it,
// then freezes it (connections open, nothing answers), then restores it
// again:
//
//	go run ./bench/outage                      # cut 5 s, freeze 30 s, 4 clients
//	go run ./bench/outage -clients 16 -freeze 5s
//
// It prints, per phase, the status codes seen (with their error codes), the
// slowest answer against the request deadline, the server's goroutines and
// resident memory, and the recovery time — from restoring the proxy to the
// first 200 — against the unloaded latency of the same call measured in the
// same run. Clients retry 5 ms after a failure (not after Retry-After), so
// the recovery time measures the server, not the clients' back-off.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latch-dev/latch/bench/internal/harness"
	"github.com/latch-dev/latch/store/faultproxy"
)

func main() {
	dsn := flag.String("pg", envOr("LATCH_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL base URL")
	clients := flag.Int("clients", 4, "concurrent clients (closed loop)")
	baseline := flag.Duration("baseline", 3*time.Second, "unloaded and loaded phases before the faults")
	cut := flag.Duration("cut", 5*time.Second, "how long the database is cut off")
	freeze := flag.Duration("freeze", 30*time.Second, "how long the database is frozen")
	settle := flag.Duration("settle", 3*time.Second, "observation after each restore")
	deadline := flag.Duration("request-timeout", 2*time.Second, "the server's LATCH_REQUEST_TIMEOUT")
	flag.BoolVar(&verbose, "v", false, "also print answers slower than the deadline and the server's error lines")
	flag.Parse()
	if err := run(*dsn, *clients, *baseline, *cut, *freeze, *settle, *deadline); err != nil {
		fmt.Fprintln(os.Stderr, "outage:", err)
		os.Exit(1)
	}
}

var verbose bool

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// The two calls the clients make, alternately.
const (
	callUsersGet = iota // a read: token check + one SELECT
	callAuth            // password/authenticate: hash + several writes
	nCalls
)

var callNames = [nCalls]string{"GET /v1/users/{id}", "POST /v1/auth/password/authenticate"}

// answer is one request's outcome.
type answer struct {
	call       int
	start, end time.Time
	status     int    // 0: transport error
	code       string // error_code of an error answer, or the transport error
}

type benchUser struct{ id, name, password string }

type bench struct {
	srv   *harness.Server
	hc    *http.Client
	token string
	// One user per client: concurrent sign-ins of one user would meet the
	// lockout sentinel, which is not what this bench measures.
	users []benchUser

	mu      sync.Mutex
	answers []answer
}

func run(dsn string, clients int, baseline, cut, freeze, settle, deadline time.Duration) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("-pg: %w", err)
	}
	proxy, err := faultproxy.Start(u.Host)
	if err != nil {
		return err
	}
	defer proxy.Close()
	proxied, err := proxy.URL(dsn)
	if err != nil {
		return err
	}
	ctx := context.Background()
	srv, err := harness.Start(ctx, harness.Options{DB: "postgres", PostgresDSN: proxied, Env: map[string]string{
		"LATCH_REQUEST_TIMEOUT": deadline.String(),
	}})
	if err != nil {
		return err
	}
	b := &bench{srv: srv, hc: harness.HTTPClient()}
	closed := false
	closeServer := func() {
		if !closed {
			closed = true
			_ = proxy.Set(faultproxy.Forward) // the harness drops its schema through the proxy
			srv.Close()
		}
	}
	defer closeServer()
	client, err := srv.CreateClient("auth:execute users:read users:write")
	if err != nil {
		return err
	}
	if b.token, err = srv.ClientToken(b.hc, client); err != nil {
		return err
	}
	for w := 0; w < clients; w++ {
		u := benchUser{name: fmt.Sprintf("outage-user-%d", w), password: fmt.Sprintf("outage bench password %d", w)}
		st, body := b.do(http.MethodPost, "/v1/users", map[string]any{"username": u.name, "credentials": map[string]any{"password": u.password}})
		if st != http.StatusCreated {
			return fmt.Errorf("create user: %d %s", st, body)
		}
		var created struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(body, &created)
		u.id = created.ID
		b.users = append(b.users, u)
	}

	fmt.Printf("latch outage — PostgreSQL through a fault proxy, %d clients, LATCH_REQUEST_TIMEOUT=%s\n", clients, deadline)
	fmt.Printf("(absolute times depend on the machine and what else runs on it; the ratios are the figures)\n\n")

	// Yardstick: each call's unloaded latency, one client, same run.
	var unloaded [nCalls]time.Duration
	for c := 0; c < nCalls; c++ {
		var lat []time.Duration
		for end := time.Now().Add(baseline / 2); time.Now().Before(end); {
			a := b.call(0, c)
			if a.status == http.StatusOK {
				lat = append(lat, a.end.Sub(a.start))
			}
		}
		unloaded[c] = percentile(lat, 50)
		fmt.Printf("unloaded %-36s p50 %7.2f ms  (%d calls)\n", callNames[c], ms(unloaded[c]), len(lat))
	}
	fmt.Println()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := b.call(w, i%nCalls)
				b.mu.Lock()
				b.answers = append(b.answers, a)
				b.mu.Unlock()
				if a.status != http.StatusOK {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}(w)
	}
	scrape := &scraper{b: b}
	go scrape.loop(stop)

	type phase struct {
		name       string
		mode       faultproxy.Mode
		start, end time.Time
		samples    samples
	}
	var phases []*phase
	enter := func(name string, mode faultproxy.Mode, d time.Duration) error {
		p := &phase{name: name, mode: mode, start: time.Now()}
		if err := proxy.Set(mode); err != nil {
			return err
		}
		scrape.mark()
		time.Sleep(d)
		p.end, p.samples = time.Now(), scrape.mark()
		phases = append(phases, p)
		return nil
	}
	for _, step := range []struct {
		name string
		mode faultproxy.Mode
		d    time.Duration
	}{
		{"loaded", faultproxy.Forward, baseline},
		{"cut", faultproxy.Cut, cut},
		{"restored", faultproxy.Forward, settle},
		{"freeze", faultproxy.Freeze, freeze},
		{"thawed", faultproxy.Forward, settle},
	} {
		if err := enter(step.name, step.mode, step.d); err != nil {
			close(stop)
			wg.Wait()
			return err
		}
	}
	close(stop)
	wg.Wait()

	b.mu.Lock()
	answers := b.answers
	b.mu.Unlock()
	fivehundreds := 0
	for _, p := range phases {
		var in []answer
		for _, a := range answers {
			if !a.end.Before(p.start) && a.end.Before(p.end) {
				in = append(in, a)
			}
		}
		var slowest time.Duration
		for _, a := range in {
			if d := a.end.Sub(a.start); d > slowest {
				slowest = d
			}
			if a.status >= 500 && a.status != http.StatusServiceUnavailable {
				fivehundreds++
			}
		}
		if verbose {
			for _, a := range in {
				if d := a.end.Sub(a.start); d > deadline {
					fmt.Printf("         slow: %s sent %+.0f ms into the phase took %.0f ms: %d %s\n",
						callNames[a.call], ms(a.start.Sub(p.start)), ms(d), a.status, a.code)
				}
			}
		}
		fmt.Printf("%-8s %-7s %5.1fs  %s\n", p.name, p.mode, p.end.Sub(p.start).Seconds(), statuses(in))
		fmt.Printf("         slowest answer %7.1f ms = %.2f× the request deadline;  goroutines %s;  RSS %s\n",
			ms(slowest), float64(slowest)/float64(deadline), p.samples.goroutines(), p.samples.rss())
		if p.mode == faultproxy.Forward && p.name != "loaded" {
			for c := 0; c < nCalls; c++ {
				first, last := recovery(answers, c, p.start, p.end)
				if first < 0 {
					fmt.Printf("         recovery %-36s no 200 within %s\n", callNames[c], p.end.Sub(p.start))
					continue
				}
				fmt.Printf("         recovery %-36s first 200 after %7.1f ms = %6.1f× its unloaded p50; last outage failure %7.1f ms after the restore\n",
					callNames[c], ms(first), float64(first)/float64(unloaded[c]), ms(last))
			}
		}
	}

	peak := srv.PeakRSS()
	// The log buffer is read once the server has exited (it writes to it
	// until then).
	closeServer()
	logs := countLogs(srv.Log.String())
	fmt.Printf("\nanswers 5xx other than 503: %d (target 0)\n", fivehundreds)
	fmt.Printf("server log: %d 'database unavailable' (one per burst), %d 'database still unavailable' summaries, "+
		"%d 'request failed' (%d of them server.busy from the hashing gate)\n",
		logs.starts, logs.summaries, logs.failed, logs.busy)
	fmt.Printf("server peak RSS (whole run): %.1f MiB\n", peak)
	return nil
}

// call makes client w's request of kind c and times it.
func (b *bench) call(w, c int) answer {
	u := b.users[w]
	a := answer{call: c, start: time.Now()}
	var st int
	var body []byte
	if c == callUsersGet {
		st, body = b.do(http.MethodGet, "/v1/users/"+u.id, nil)
	} else {
		st, body = b.do(http.MethodPost, "/v1/auth/password/authenticate", map[string]any{"username": u.name, "password": u.password})
	}
	a.end, a.status = time.Now(), st
	if st == 0 {
		a.code = "transport error"
	} else if st != http.StatusOK {
		var e struct {
			Code string `json:"error_code"`
		}
		_ = json.Unmarshal(body, &e)
		a.code = e.Code
	}
	return a
}

func (b *bench) do(method, path string, body any) (int, []byte) {
	return b.srv.Call(b.hc, b.token, method, path, body)
}

// recovery returns, for call c, how long after restore the first 200 ended
// and the last failure other than server_busy ended (0 if none), among
// answers ending before end.
func recovery(answers []answer, c int, restore, end time.Time) (first, last time.Duration) {
	first = -1
	for _, a := range answers {
		if a.call != c || a.end.Before(restore) || !a.end.Before(end) {
			continue
		}
		d := a.end.Sub(restore)
		switch {
		case a.status == http.StatusOK:
			if first < 0 || d < first {
				first = d
			}
		case a.code == "server_busy":
			// The hashing gate shedding load: not the outage.
		case d > last:
			last = d
		}
	}
	return first, last
}

// statuses summarises answers as "200×12  503 server_unavailable×40".
func statuses(in []answer) string {
	counts := map[string]int{}
	for _, a := range in {
		k := strconv.Itoa(a.status)
		if a.status == 0 {
			k = "error"
		}
		if a.code != "" {
			k += " " + a.code
		}
		counts[k]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, counts[k]))
	}
	if len(parts) == 0 {
		return "no answers"
	}
	return strings.Join(parts, "  ")
}

// scraper samples the server's goroutines and resident memory from
// /metrics (which needs no database) every 100 ms.
type scraper struct {
	b       *bench
	mu      sync.Mutex
	current samples
}

type samples struct{ g, rssMiB []float64 }

func (s samples) goroutines() string { return spread(s.g, "%.0f") }
func (s samples) rss() string        { return spread(s.rssMiB, "%.0f MiB") }

// spread prints first → peak of a series.
func spread(v []float64, format string) string {
	if len(v) == 0 {
		return "n/a"
	}
	peak := v[0]
	for _, x := range v {
		if x > peak {
			peak = x
		}
	}
	return fmt.Sprintf(format+" → peak "+format, v[0], peak)
}

// mark ends the current series and starts a new one.
func (s *scraper) mark() samples {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.current
	s.current = samples{}
	return out
}

func (s *scraper) loop(stop chan struct{}) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		res, err := hc.Get(s.b.srv.URL + "/metrics")
		if err != nil {
			continue
		}
		var g, rss float64
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				g, _ = strconv.ParseFloat(v, 64)
			}
			if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
				rss, _ = strconv.ParseFloat(v, 64)
			}
		}
		res.Body.Close()
		s.mu.Lock()
		s.current.g = append(s.current.g, g)
		s.current.rssMiB = append(s.current.rssMiB, rss/(1<<20))
		s.mu.Unlock()
	}
}

type logCounts struct{ starts, summaries, failed, busy int }

// countLogs counts the server's outage and error log lines (and, with -v,
// prints the error lines).
func countLogs(log string) logCounts {
	var n logCounts
	for _, line := range strings.Split(log, "\n") {
		var m struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if verbose && m.Level == "ERROR" {
			fmt.Println("         server:", line)
		}
		switch m.Msg {
		case "database unavailable":
			n.starts++
		case "database still unavailable":
			n.summaries++
		case "request failed":
			n.failed++
			if strings.HasPrefix(m.Error, "server.busy") {
				n.busy++
			}
		}
	}
	return n
}

func percentile(v []time.Duration, p float64) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Command scale checks that Latch's latency stays flat from a thousand to a
// million users (DESIGN §8).
//
// For each database it starts two real `latch serve` processes, each on its
// own database: the yardstick, loaded with the smallest size (10^3 users),
// and the subject, grown to each larger size in turn (10^5, then 10^6).
// Users are loaded in bulk, not through the API (COPY on PostgreSQL, batched
// INSERTs in one transaction on SQLite), each with a live session, a refresh
// token and, for one in ten, a sentinel counter; they share one real argon2id
// hash. At each size it prints the plans of the hot queries (EXPLAIN: does
// each use an index?), then measures sequential, unloaded
// password/authenticate, session/authenticate and token/refresh requests,
// each for a user drawn at random from all those loaded — alternating
// between the two servers, so that both see the same machine (this one's
// speed drifts with whatever else runs on it). It ends with a table and, per
// size, p50 and p99 ÷ the yardstick's from the same window: flat means ≈ 1.
//
//	go run ./bench/scale                        # SQLite and PostgreSQL, 10^3, 10^5, 10^6 users
//	go run ./bench/scale -db sqlite -max 100000 # stop at 10^5 users
//
// PostgreSQL runs in private schemas of -pg (dropped afterwards).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/latch-dev/latch/bench/internal/harness"
	"github.com/latch-dev/latch/store"
)

func main() {
	dbs := flag.String("db", "sqlite,postgres", "databases to run on, comma-separated: sqlite, postgres")
	dsn := flag.String("pg", envOr("LATCH_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL base URL")
	sizesFlag := flag.String("sizes", "1000,100000,1000000", "database sizes in users, ascending; the first is the yardstick")
	max := flag.Int("max", 0, "skip sizes above this many users (0: none)")
	auths := flag.Int("auth", 200, "password authentications measured per server and size (each costs one argon2id hash)")
	n := flag.Int("n", 2000, "session/authenticate and token/refresh requests measured per server and size")
	allPlans := flag.Bool("plans", false, "print every query plan at every size (default: verdicts, and the plans at the largest size)")
	flag.Parse()

	var sizes []int
	for _, f := range strings.Split(*sizesFlag, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 || v > maxUsers || (len(sizes) > 0 && v <= sizes[len(sizes)-1]) {
			fmt.Fprintf(os.Stderr, "scale: -sizes must be ascending numbers from 1 to %d\n", maxUsers)
			os.Exit(2)
		}
		if *max == 0 || v <= *max {
			sizes = append(sizes, v)
		}
	}
	if len(sizes) < 2 {
		fmt.Fprintln(os.Stderr, "scale: need at least two sizes (the first is the yardstick) under -max")
		os.Exit(2)
	}
	fmt.Printf("latch scale — %d CPUs, sizes %v, per server and size %d password authentications and %d session/refresh requests, sequential\n",
		runtime.NumCPU(), sizes, *auths, *n)
	// Interrupted, it still stops its servers and drops its schemas.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	var all []*result
	for _, db := range strings.Split(*dbs, ",") {
		r, err := run(ctx, strings.TrimSpace(db), *dsn, sizes, *auths, *n, *allPlans)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err) // run has stopped its servers
			os.Exit(1)
		}
		all = append(all, r)
	}
	report(all, sizes)
	fmt.Printf("\nwhole run: %s\n", time.Since(start).Round(time.Second))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// endpoints measured, in report order.
var endpoints = []string{"password/authenticate", "session/authenticate", "token/refresh"}

// window is one measurement: the subject at a size and the yardstick
// alongside it, per endpoint, sorted latencies of the 200 answers.
type window struct {
	size            int
	subject, yard   map[string][]time.Duration
	indexed         bool
	failed          int // answers that were not 200, both servers
	peakRSS, yardMB float64
	orgs            orgFigures // organizations (orgs.go)
}

// result is one database's windows, smallest size first.
type result struct {
	db          string
	yardIndexed bool
	windows     []*window
}

// server is one latch process with its database, client and loaded users.
type server struct {
	srv   *harness.Server
	db    *store.DB
	hc    *http.Client
	token string
	pop   *population
	size  int
	// chains holds the latest refresh token of every family refreshed so
	// far (a rotated token must never be presented again).
	chains map[int]string
	// refreshClientToken replaces token with a fresh one.
	refreshClientToken func() error
}

func run(ctx context.Context, dbName, dsn string, sizes []int, auths, n int, allPlans bool) (*result, error) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	fmt.Printf("\n== %s\n", dbName)
	yard, err := startServer(ctx, dbName, dsn)
	if err != nil {
		return nil, err
	}
	defer yard.close()
	subject, err := startServer(ctx, dbName, dsn)
	if err != nil {
		return nil, err
	}
	defer subject.close()

	res := &result{db: dbName}
	fmt.Printf("\n-- yardstick: %d users\n", sizes[0])
	if err := loadRows(ctx, yard.db, yard.srv.DatabaseURL, yard.pop, 0, sizes[0]); err != nil {
		return nil, err
	}
	yard.size = sizes[0]
	if res.yardIndexed, err = printPlans(ctx, yard, rng, allPlans); err != nil {
		return nil, err
	}
	for k, size := range sizes[1:] {
		fmt.Printf("\n-- %d users (and the yardstick's %d alongside)\n", size, sizes[0])
		if err := loadRows(ctx, subject.db, subject.srv.DatabaseURL, subject.pop, subject.size, size); err != nil {
			return nil, err
		}
		subject.size = size
		w := &window{size: size, subject: map[string][]time.Duration{}, yard: map[string][]time.Duration{}}
		if w.indexed, err = printPlans(ctx, subject, rng, allPlans || k == len(sizes)-2); err != nil {
			return nil, err
		}
		for _, s := range []*server{yard, subject} { // a fresh hour of client token per window
			if err := s.refreshClientToken(); err != nil {
				return nil, err
			}
		}
		for _, ep := range endpoints {
			count := n
			if ep == "password/authenticate" {
				count = auths
			}
			lats, failed, err := measure(ctx, rng, ep, count, yard, subject)
			if err != nil {
				return nil, err
			}
			w.yard[ep], w.subject[ep] = lats[0], lats[1]
			w.failed += failed
			fmt.Printf("  %-22s %9s users: p50 %7.2f ms  p99 %7.2f ms   yardstick: p50 %7.2f ms  p99 %7.2f ms   ratio p50 %.2f× p99 %.2f×\n",
				ep, thousands(size), ms(pct(lats[1], 50)), ms(pct(lats[1], 99)), ms(pct(lats[0], 50)), ms(pct(lats[0], 99)),
				ratio(lats[1], lats[0], 50), ratio(lats[1], lats[0], 99))
		}
		if err := measureOrgs(ctx, rng, w, auths, n, yard, subject); err != nil {
			return nil, err
		}
		if w.failed > 0 {
			fmt.Printf("  %d answers were not 200\n", w.failed)
		}
		w.peakRSS, w.yardMB = subject.srv.PeakRSS(), yard.srv.PeakRSS()
		fmt.Printf("  server peak RSS: %.0f MiB (yardstick %.0f MiB)\n", w.peakRSS, w.yardMB)
		res.windows = append(res.windows, w)
	}
	return res, nil
}

// startServer starts latch on a fresh database of dbName, with one client
// and one user signed in through the API, whose refresh family is the
// template of the loaded ones (its audience, scope and claims), so they are
// ones the server could have made.
func startServer(ctx context.Context, dbName, dsn string) (*server, error) {
	srv, err := harness.Start(ctx, harness.Options{DB: dbName, PostgresDSN: dsn, Env: map[string]string{
		"LATCH_IP_RATE_LIMIT": "0", // one benchmark client signs in as many users
	}})
	if err != nil {
		return nil, err
	}
	s := &server{srv: srv, hc: harness.HTTPClient(), chains: map[int]string{}}
	if s.db, err = store.Open(ctx, srv.DatabaseURL, store.Options{MaxOpenConns: 2}); err != nil {
		srv.Close()
		return nil, err
	}
	if err := s.setUp(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *server) setUp(ctx context.Context) error {
	client, err := s.srv.CreateClient("auth:execute users:read users:write")
	if err != nil {
		return err
	}
	if s.token, err = s.srv.ClientToken(s.hc, client); err != nil {
		return err
	}
	s.refreshClientToken = func() error {
		var err error
		s.token, err = s.srv.ClientToken(s.hc, client)
		return err
	}
	if st, body := s.post("/v1/users", map[string]any{"username": "scale-template", "credentials": map[string]any{"password": password}}); st != http.StatusCreated {
		return fmt.Errorf("create template user: %d %s", st, body)
	}
	st, body := s.post("/v1/auth/password/authenticate", map[string]any{"username": "scale-template", "password": password})
	if st != http.StatusOK {
		return fmt.Errorf("template sign-in: %d %s", st, body)
	}
	var signIn struct {
		SessionID string `json:"session_id"`
	}
	_ = json.Unmarshal(body, &signIn)
	var fam struct{ Audience, Scope, IDClaims string }
	if err := s.db.WithContext(ctx).Raw("SELECT audience, scope, id_claims FROM refresh_families WHERE session_id = ?", signIn.SessionID).
		Scan(&fam).Error; err != nil || fam.Audience == "" {
		return fmt.Errorf("template refresh family: %v", err)
	}
	s.pop, err = newPopulation(ctx, client.ID, fam.Audience, fam.Scope, fam.IDClaims)
	return err
}

func (s *server) close() {
	if s.db != nil {
		s.db.Close()
	}
	s.srv.Close()
}

// printPlans explains the hot queries on s and prints a verdict per query
// (and the plans when full, or when a query scans a table); it reports
// whether every query used an index.
func printPlans(ctx context.Context, s *server, rng *rand.Rand, full bool) (bool, error) {
	plans, err := explain(ctx, s.db, s.pop, rng.IntN(s.size))
	if err != nil {
		return false, err
	}
	all := true
	for _, pl := range plans {
		verdict := "index"
		switch {
		case !pl.indexed:
			verdict, all = "FULL SCAN: no index serves it", false
		case pl.note != "":
			verdict = "index (the planner scans this small table whole)"
		}
		fmt.Printf("  plan %-42s %s\n", pl.name+":", verdict)
		if full || !pl.indexed {
			if pl.note != "" {
				fmt.Printf("        (%s)\n", pl.note)
			}
			for _, l := range pl.lines {
				fmt.Printf("        %s\n", l)
			}
		}
	}
	return all, nil
}

// measure sends count sequential requests to an endpoint on each server,
// alternating between them (which goes first alternates too), after a few
// unmeasured ones. Each request is for a user (or that user's session or
// refresh token) drawn at random from those loaded on that server. It
// returns per server the sorted latencies of the 200 answers, and how many
// answers were not 200.
func measure(ctx context.Context, rng *rand.Rand, ep string, count int, servers ...*server) ([][]time.Duration, int, error) {
	const warmup = 10
	lats := make([][]time.Duration, len(servers))
	failed := 0
	for k := 0; k < warmup+count; k++ {
		for j := range servers {
			idx := (j + k) % len(servers)
			s := servers[idx]
			d, status, err := s.request(ctx, rng, ep, k)
			if err != nil {
				return nil, 0, err
			}
			if k < warmup {
				continue
			}
			if status != http.StatusOK {
				failed++
				continue
			}
			lats[idx] = append(lats[idx], d)
		}
	}
	for i, l := range lats {
		if len(l) == 0 {
			return nil, 0, fmt.Errorf("%s: no request succeeded on server %d", ep, i)
		}
		sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
	}
	return lats, failed, nil
}

// request sends the k-th request of a phase to s and times it.
func (s *server) request(ctx context.Context, rng *rand.Rand, ep string, k int) (time.Duration, int, error) {
	i := rng.IntN(s.size)
	switch ep {
	case "password/authenticate":
		// The three identifier types in turn: three unique indexes.
		types := []string{"username", "email", "phone_number"}
		ids := []string{username(i), email(i), phone(i)}
		return s.timed(ctx, "/v1/auth/password/authenticate",
			map[string]any{"username": ids[k%3], "username_type": types[k%3], "password": password}, nil)
	case "session/authenticate":
		return s.timed(ctx, "/v1/auth/session/authenticate", map[string]any{"session_id": s.pop.sessionID(i)}, nil)
	default: // token/refresh
		rt, ok := s.chains[i]
		if !ok {
			rt = s.pop.refreshToken(i)
		}
		return s.timed(ctx, "/v1/auth/token/refresh", map[string]any{"refresh_token": rt}, func(raw []byte) {
			var r struct {
				RefreshToken string `json:"refresh_token"`
			}
			if json.Unmarshal(raw, &r) == nil && r.RefreshToken != "" {
				s.chains[i] = r.RefreshToken
			}
		})
	}
}

func (s *server) timed(ctx context.Context, path string, body any, onOK func([]byte)) (time.Duration, int, error) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.srv.URL+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	start := time.Now()
	res, err := s.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	d := time.Since(start)
	if res.StatusCode == http.StatusOK && onOK != nil {
		onOK(data)
	}
	return d, res.StatusCode, nil
}

func (s *server) post(path string, body any) (int, []byte) {
	return s.srv.Call(s.hc, s.token, http.MethodPost, path, body)
}

// report prints the scale table: per database and size, p50 / p99 per
// endpoint, and p99 over the yardstick's p99 measured alongside it.
func report(all []*result, sizes []int) {
	fmt.Printf("\n== scale table: sequential, unloaded; p50 / p99 in ms (ratios: ÷ the same percentile at %s users in the same window; flat ≈ 1)\n\n",
		thousands(sizes[0]))
	fmt.Printf("| database | users |")
	for _, ep := range endpoints {
		fmt.Printf(" %s |", ep)
	}
	fmt.Printf(" hot queries |\n|---|---:|")
	for range endpoints {
		fmt.Printf("---|")
	}
	fmt.Println("---|")
	for _, r := range all {
		// The yardstick row pools its windows.
		pooled := map[string][]time.Duration{}
		for _, w := range r.windows {
			for _, ep := range endpoints {
				pooled[ep] = append(pooled[ep], w.yard[ep]...)
			}
		}
		fmt.Printf("| %s | %s |", r.db, thousands(sizes[0]))
		for _, ep := range endpoints {
			l := pooled[ep]
			sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
			fmt.Printf(" %.1f / %.1f |", ms(pct(l, 50)), ms(pct(l, 99)))
		}
		fmt.Printf(" %s |\n", verdict(r.yardIndexed, 0))
		for _, w := range r.windows {
			fmt.Printf("| %s | %s |", r.db, thousands(w.size))
			for _, ep := range endpoints {
				l := w.subject[ep]
				fmt.Printf(" %.1f / %.1f (%.2f× / %.2f×) |", ms(pct(l, 50)), ms(pct(l, 99)), ratio(l, w.yard[ep], 50), ratio(l, w.yard[ep], 99))
			}
			fmt.Printf(" %s |\n", verdict(w.indexed, w.failed))
		}
	}
	reportOrgs(all)
}

func verdict(indexed bool, failed int) string {
	v := "all use an index"
	if !indexed {
		v = "FULL SCAN (see plans)"
	}
	if failed > 0 {
		v += fmt.Sprintf("; %d answers not 200", failed)
	}
	return v
}

// ratio is the p-th percentile of a over that of b.
func ratio(a, b []time.Duration, p float64) float64 { return float64(pct(a, p)) / float64(pct(b, p)) }

// pct is the p-th percentile of sorted latencies.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// thousands writes n with separators: 1000000 → 1,000,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

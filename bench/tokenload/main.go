// Command tokenload measures POST /oidc/token (client credentials) on a real
// Latch server: it starts one in-process on a loopback port over a fresh
// SQLite file or a private PostgreSQL schema (or targets a running server
// with -url), creates a client, then hammers the token endpoint over
// keep-alive HTTP connections and prints tokens/s and latency percentiles.
//
//	go run ./bench/tokenload -db sqlite -duration 10s -concurrency 16
//	LATCH_TEST_POSTGRES_DSN=postgres://… go run ./bench/tokenload -db postgres
package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for the private schema

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/token"
)

func main() {
	var (
		db          = flag.String("db", "sqlite", "database for the in-process server: sqlite or postgres")
		dsn         = flag.String("dsn", os.Getenv("LATCH_TEST_POSTGRES_DSN"), "PostgreSQL URL for -db postgres (a private schema is created and dropped)")
		duration    = flag.Duration("duration", 10*time.Second, "measured load duration")
		warmup      = flag.Duration("warmup", 2*time.Second, "unmeasured warm-up before the measurement")
		concurrency = flag.Int("concurrency", 16, "concurrent clients, each with its own keep-alive connection")
		alg         = flag.String("alg", "ES256", "signing algorithm: ES256 or RS256")
		logLevel    = flag.String("log-level", "info", "server log level; logs are formatted as in production, then discarded")
		cpuprofile  = flag.String("cpuprofile", "", "write a CPU profile of the measured phase to this file")
		target      = flag.String("url", "", "benchmark a running server at this base URL instead (needs -client-id and -client-secret)")
		clientID    = flag.String("client-id", "", "client id for -url")
		secret      = flag.String("client-secret", "", "client secret for -url")
	)
	flag.Parse()
	if err := run(*db, *dsn, *duration, *warmup, *concurrency, *alg, *logLevel, *cpuprofile, *target, *clientID, *secret); err != nil {
		fmt.Fprintln(os.Stderr, "tokenload:", err)
		os.Exit(1)
	}
}

func run(db, dsn string, duration, warmup time.Duration, concurrency int, alg, logLevel, cpuprofile, target, clientID, secret string) error {
	if concurrency < 1 {
		return errors.New("-concurrency must be at least 1")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	backend := "external"
	if target == "" {
		srv, err := startServer(ctx, db, dsn, alg, logLevel)
		if err != nil {
			return err
		}
		defer srv.close()
		target, clientID, secret, backend = srv.url, srv.clientID, srv.secret, db
	} else if clientID == "" || secret == "" {
		return errors.New("-url needs -client-id and -client-secret")
	}
	target = strings.TrimRight(target, "/")

	tr := &http.Transport{
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := "grant_type=client_credentials"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID)+":"+url.QueryEscape(secret)))
	request := func() (int, []byte, error) {
		req, _ := http.NewRequest(http.MethodPost, target+"/oidc/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", basic)
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		raw, err := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, raw, err
	}

	// Sanity check: one token, well-formed.
	status, raw, err := request()
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("first token request: %d %s %v", status, raw, err)
	}
	var tok token.TokenResponse
	if err := json.Unmarshal(raw, &tok); err != nil || strings.Count(tok.AccessToken, ".") != 2 {
		return fmt.Errorf("first token response is not a token: %s", raw)
	}

	fmt.Printf("tokenload: POST %s/oidc/token, backend %s, %s, concurrency %d, GOMAXPROCS %d (%d CPUs), warm-up %s, measuring %s\n",
		target, backend, alg, concurrency, runtime.GOMAXPROCS(0), runtime.NumCPU(), warmup, duration)

	var (
		measuring atomic.Bool
		stop      atomic.Bool
		errCount  atomic.Int64
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	lat := make([][]time.Duration, concurrency)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			for !stop.Load() {
				t0 := time.Now()
				counted := measuring.Load()
				status, raw, err := request()
				d := time.Since(t0)
				if !counted || stop.Load() {
					continue
				}
				if err != nil || status != http.StatusOK {
					errCount.Add(1)
					if err == nil {
						err = fmt.Errorf("status %d: %s", status, raw)
					}
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				local = append(local, d)
			}
			lat[w] = local
		}(w)
	}
	time.Sleep(warmup)
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(duration)
	stop.Store(true)
	elapsed := time.Since(start)
	if cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return fmt.Errorf("no successful requests (%d errors, first: %v)", errCount.Load(), firstErr.Load())
	}
	pct := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	rate := float64(len(all)) / elapsed.Seconds()
	fmt.Printf("tokens: %d in %s, errors: %d\n", len(all), elapsed.Round(time.Millisecond), errCount.Load())
	fmt.Printf("tokens/s: %.0f\n", rate)
	fmt.Printf("latency: p50 %s  p90 %s  p99 %s  max %s\n",
		round(pct(0.50)), round(pct(0.90)), round(pct(0.99)), round(all[len(all)-1]))
	fmt.Printf("process: %.1f KiB allocated per token, %d GCs\n",
		float64(after.TotalAlloc-before.TotalAlloc)/1024/float64(len(all)), after.NumGC-before.NumGC)
	if e := firstErr.Load(); e != nil {
		fmt.Printf("first error: %v\n", e)
	}
	return nil
}

func round(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	default:
		return d.Round(10 * time.Microsecond)
	}
}

// server is an in-process Latch server with one client.
type server struct {
	url, clientID, secret string
	close                 func()
}

func startServer(ctx context.Context, db, dsn, alg, logLevel string) (*server, error) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	dir, err := os.MkdirTemp("", "latch-tokenload-")
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })

	var dbURL string
	switch db {
	case "sqlite":
		dbURL = "sqlite://" + filepath.Join(dir, "latch.db")
	case "postgres":
		if dsn == "" {
			cleanup()
			return nil, errors.New("-db postgres needs -dsn or LATCH_TEST_POSTGRES_DSN")
		}
		u, drop, err := privateSchema(dsn)
		if err != nil {
			cleanup()
			return nil, err
		}
		dbURL = u
		cleanups = append(cleanups, drop)
	default:
		cleanup()
		return nil, fmt.Errorf("-db must be sqlite or postgres, got %q", db)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cleanup()
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	vars := map[string]string{
		"LATCH_ADDR":         ln.Addr().String(),
		"LATCH_DATA_DIR":     dir,
		"LATCH_DATABASE_URL": dbURL,
		"LATCH_SECRET_KEY":   base64.StdEncoding.EncodeToString(key),
		"LATCH_SIGNING_ALG":  alg,
		"LATCH_LOG_LEVEL":    logLevel,
	}
	cfg, err := config.Load("", func(k string) string { return vars[k] })
	if err != nil {
		ln.Close()
		cleanup()
		return nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	// Production log formatting, into the void: its cost is part of the figure.
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level}))
	svc, err := app.Open(ctx, cfg, log, true)
	if err != nil {
		ln.Close()
		cleanup()
		return nil, err
	}
	cleanups = append(cleanups, func() { svc.Close() })
	c, secret, err := svc.Tokens.Clients.Create(ctx, token.NewClient{Name: "tokenload",
		Scopes: []string{token.ScopeAuthExecute, token.ScopeUsersRead, token.ScopeUsersWrite}})
	if err != nil {
		ln.Close()
		cleanup()
		return nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.NewServer(log).Serve(sctx, ln) }()
	cleanups = append(cleanups, func() { stop(); <-done })
	return &server{url: "http://" + ln.Addr().String(), clientID: c.ID, secret: secret, close: cleanup}, nil
}

// privateSchema creates a schema on the PostgreSQL at dsn and returns a URL
// using it, and a function that drops it.
func privateSchema(dsn string) (string, func(), error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	defer db.Close()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "latch_bench_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func() {
		if db, err := sql.Open("pgx", dsn); err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	}
	return u.String(), drop, nil
}

// Package apptest runs the real Latch server for tests: the real Echo app
// behind httptest, over a real database — a temporary SQLite file and, when
// LATCH_TEST_POSTGRES_DSN is set, a private schema on PostgreSQL that is
// dropped afterwards.
package apptest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema setup

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/store/faultproxy"
	"github.com/latch-dev/latch/token"
)

// PostgresEnv names the variable holding the PostgreSQL test DSN (URL form).
const PostgresEnv = "LATCH_TEST_POSTGRES_DSN"

// Backend is one database the suite runs against.
type Backend string

// Backends.
const (
	SQLite   Backend = "sqlite"
	Postgres Backend = "postgres"
)

// Each runs fn as a subtest per backend. PostgreSQL is skipped (visibly)
// only when LATCH_TEST_POSTGRES_DSN is unset; if it is set and unreachable
// the test fails.
func Each(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range []Backend{SQLite, Postgres} {
		t.Run(string(b), func(t *testing.T) {
			if b == Postgres && os.Getenv(PostgresEnv) == "" {
				t.Skip(PostgresEnv + " is not set; PostgreSQL variant skipped")
			}
			fn(t, b)
		})
	}
}

// DatabaseURL returns a fresh, empty database for b, removed after the test.
func DatabaseURL(t testing.TB, b Backend) string {
	t.Helper()
	if b == SQLite {
		return "sqlite://" + t.TempDir() + "/latch.db"
	}
	return PostgresSchemaURL(t)
}

var pgOnce sync.Map // base DSN -> error of the first reachability check

// PostgresSchemaURL creates a private schema on the test PostgreSQL and
// returns a URL whose search_path points at it.
func PostgresSchemaURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Fatalf("%s is not set", PostgresEnv)
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer db.Close()
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatalf("postgres at %s is unreachable: %v", PostgresEnv, err)
	}
	schema := "latch_t_" + credentials.RandomID(12)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("postgres: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s must be a postgres:// URL: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Env is a running Latch server over a real database.
type Env struct {
	T        testing.TB
	Backend  Backend
	Config   config.Config
	Services *app.Services
	App      *app.App
	Server   *httptest.Server
	URL      string
	HTTP     *http.Client
	// Logs is the server's JSON log. Read it with LogText while requests
	// may still be running.
	Logs *bytes.Buffer
	logs *lockedBuffer
}

// LogText returns the server's log so far; safe while the server writes.
func (e *Env) LogText() string {
	e.logs.mu.Lock()
	defer e.logs.mu.Unlock()
	return e.logs.buf.String()
}

// Option adjusts the config before the server starts.
type Option func(env map[string]string)

// With sets a LATCH_* variable.
func With(key, value string) Option { return func(env map[string]string) { env[key] = value } }

// Start runs a Latch server on backend b. The configuration goes through
// config.Load like production, with light argon2 parameters (tests about
// hashing override them).
func Start(t testing.TB, b Backend, opts ...Option) *Env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	vars := map[string]string{
		"LATCH_ADDR":              addr,
		"LATCH_DATA_DIR":          t.TempDir(),
		"LATCH_DATABASE_URL":      DatabaseURL(t, b),
		"LATCH_SECRET_KEY":        secretKey(t),
		"LATCH_ARGON2_MEMORY_KIB": "1024",
		"LATCH_ARGON2_ITERATIONS": "1",
		"LATCH_LOG_LEVEL":         "debug",
	}
	for _, o := range opts {
		o(vars)
	}
	cfg, err := config.Load("", func(k string) string { return vars[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := app.Open(context.Background(), cfg, log, true)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	a := svc.NewServer(log)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: a.Handler()}}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
	})
	return &Env{T: t, Backend: b, Config: cfg, Services: svc, App: a, Server: srv, URL: srv.URL,
		HTTP: srv.Client(), Logs: &logs.buf, logs: logs}
}

// Replica starts a second Latch server on e's database with e's secret key:
// its own connection pool, caches and HTTP listener, as another replica
// behind a load balancer would have.
func (e *Env) Replica(opts ...Option) *Env {
	e.T.Helper()
	base := []Option{With("LATCH_DATABASE_URL", e.Config.DatabaseURL),
		With("LATCH_SECRET_KEY", base64.StdEncoding.EncodeToString(e.Config.SecretKeyBytes))}
	return Start(e.T, e.Backend, append(base, opts...)...)
}

// lockedBuffer is a log sink safe for concurrent handlers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Client is a created OAuth2 client with its secret.
type Client struct {
	ID, Secret string
}

// CreateClient registers a client with the given scopes.
func (e *Env) CreateClient(scopes ...string) Client {
	e.T.Helper()
	return e.CreateClientWith(nil, scopes...)
}

// CreateClientWith registers a client allowed the given resources.
func (e *Env) CreateClientWith(resources []string, scopes ...string) Client {
	e.T.Helper()
	return e.CreateClientFrom(newClient(scopes, resources))
}

// CreateClientFrom registers the client nc describes.
func (e *Env) CreateClientFrom(nc token.NewClient) Client {
	e.T.Helper()
	if nc.Name == "" {
		nc.Name = "test client"
	}
	c, secret, err := e.Services.Tokens.Clients.Create(context.Background(), nc)
	if err != nil {
		e.T.Fatalf("create client: %v", err)
	}
	return Client{ID: c.ID, Secret: secret}
}

// ClientToken obtains a ClientAccessToken for c through the token endpoint.
func (e *Env) ClientToken(c Client, scope ...string) string {
	e.T.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scope) > 0 {
		form.Set("scope", strings.Join(scope, " "))
	}
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	res := e.Do(req)
	if res.Status != http.StatusOK {
		e.T.Fatalf("client token: %d %s", res.Status, res.Raw)
	}
	return res.JSON["access_token"].(string)
}

// Response is a decoded HTTP response.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	JSON   map[string]any
}

// Str returns a string field of the JSON body.
func (r *Response) Str(key string) string {
	s, _ := r.JSON[key].(string)
	return s
}

// Do sends req and decodes the body when it is a JSON object.
func (e *Env) Do(req *http.Request) *Response {
	e.T.Helper()
	res, err := e.HTTP.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := &Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.JSON)
	return out
}

// JSON sends a JSON request with an optional Bearer token.
func (e *Env) JSON(method, path, bearer string, body any) *Response {
	e.T.Helper()
	return e.Do(e.JSONRequest(method, path, bearer, body))
}

// JSONRequest builds a JSON request (body: nil, a string, bytes or a value
// to marshal) with an optional Bearer token, for callers that add headers.
func (e *Env) JSONRequest(method, path, bearer string, body any) *http.Request {
	e.T.Helper()
	req, err := e.NewJSONRequest(method, path, bearer, body)
	if err != nil {
		e.T.Fatal(err)
	}
	return req
}

// NewJSONRequest is JSONRequest returning its error instead of failing the
// test, for goroutines that must not touch a testing.T.
func (e *Env) NewJSONRequest(method, path, bearer string, body any) (*http.Request, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return req, nil
}

// Form posts a form with optional Basic client credentials.
func (e *Env) Form(path string, c *Client, form url.Values) *Response {
	e.T.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return e.Do(req)
}

// String describes the response for failure messages.
func (r *Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Raw) }

func newClient(scopes, resources []string) token.NewClient {
	return token.NewClient{Name: "test client", Scopes: scopes, Resources: resources}
}

func secretKey(t testing.TB) string {
	key, err := config.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}

// RowValues reads every row of rows as its column values (text columns as
// strings, whatever the driver returns them as) and closes rows: for tests
// that compare or inspect what a query returned, on either database.
func RowValues(t testing.TB, rows *sql.Rows) [][]any {
	t.Helper()
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if raw, ok := v.([]byte); ok {
				vals[i] = string(raw)
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// PostgresBehindProxy returns the URL of a private PostgreSQL schema (as
// PostgresSchemaURL) whose connections run through a fault proxy, and the
// proxy, closed at cleanup: for tests that cut or freeze the database
// without touching the shared server. It skips without PostgreSQL.
func PostgresBehindProxy(t testing.TB) (string, *faultproxy.Proxy) {
	t.Helper()
	if os.Getenv(PostgresEnv) == "" {
		t.Skip(PostgresEnv + " is not set; the proxied PostgreSQL test is skipped")
	}
	direct := PostgresSchemaURL(t)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close) // registered first, so it runs after the user's cleanups
	proxied, err := p.URL(direct)
	if err != nil {
		t.Fatal(err)
	}
	return proxied, p
}

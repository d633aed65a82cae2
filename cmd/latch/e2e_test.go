package main

// End-to-end tests of the real binary: it is built once, then started as
// `latch serve` processes and driven through the README's quickstart and the
// administration commands, like an operator would.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/config"
)

const readmePath = "../../README.md"

var (
	binDir   string
	binPath  string
	buildErr error
	once     sync.Once
)

func TestMain(m *testing.M) {
	var err error
	binDir, err = os.MkdirTemp("", "latch-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// latchBinary builds the binary once per test run.
func latchBinary(t *testing.T) string {
	t.Helper()
	once.Do(func() {
		binPath = filepath.Join(binDir, "latch")
		out, err := exec.Command("go", "build", "-o", binPath, "-ldflags", "-X github.com/latch-dev/latch/buildinfo.linked=e2e-test", ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// environ is the process environment for the binary: the test's own minus
// any LATCH_* setting, plus vars.
func environ(vars map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCH_") {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

type result struct {
	stdout, stderr string
	code           int
}

// latch runs one CLI command to completion.
func latch(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, latchBinary(t), args...)
	cmd.Env = environ(vars)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("latch %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// mustLatch runs a command that must succeed.
func mustLatch(t *testing.T, vars map[string]string, args ...string) string {
	t.Helper()
	r := latch(t, vars, args...)
	if r.code != 0 {
		t.Fatalf("latch %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// server is a running `latch serve` process.
type server struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// startServer starts `latch serve` with vars (LATCH_ADDR is chosen here)
// and waits until /healthz answers. It is safe off the test goroutine.
func startServer(bin string, vars map[string]string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	all := map[string]string{"LATCH_ADDR": addr}
	for k, v := range vars {
		all[k] = v
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = environ(all)
	s := &server{cmd: cmd, url: "http://" + addr, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("latch serve exited early: %v\n%s", s.err, s.stderr)
		default:
		}
		if res, err := http.Get(s.url + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("latch serve did not become healthy:\n%s", s.stderr)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// kill ends the process if it still runs.
func (s *server) kill() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// serve starts a server for the test and ends it afterwards.
func serve(t *testing.T, vars map[string]string) *server {
	t.Helper()
	s, err := startServer(latchBinary(t), vars)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	return s
}

// stop sends SIGTERM and returns the exit code.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("latch serve ignored SIGTERM:\n%s", s.stderr)
	}
	return s.cmd.ProcessState.ExitCode()
}

type httpResult struct {
	status int
	body   []byte
	json   map[string]any
}

func doHTTP(t *testing.T, req *http.Request) httpResult {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	out := httpResult{status: res.StatusCode, body: body}
	_ = json.Unmarshal(body, &out.json)
	return out
}

// clientToken requests a ClientAccessToken with client_secret_basic.
func clientToken(t *testing.T, base, id, secret string) httpResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oidc/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return doHTTP(t, req)
}

func whoami(t *testing.T, base, tok string) httpResult {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/auth/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return doHTTP(t, req)
}

// verify checks raw like an outside verifier: keys from jwksURL, iss, aud,
// typ. It returns the kid.
func verify(t *testing.T, jwksURL, raw, iss, aud string) string {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), jwksURL)
	if err != nil {
		t.Fatalf("fetch %s: %v", jwksURL, err)
	}
	if _, err := jwt.Parse([]byte(raw), jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithIssuer(iss), jwt.WithAudience(aud)); err != nil {
		t.Fatalf("token does not verify against %s: %v", jwksURL, err)
	}
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.Type() != "at+jwt" {
		t.Fatalf("typ %q", h.Type())
	}
	return h.KeyID()
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Signatures()[0].ProtectedHeaders().KeyID()
}

func jwksKids(t *testing.T, base string) []string {
	t.Helper()
	set, err := jwk.Fetch(context.Background(), base+"/oidc/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	return out
}

// eventually retries cond for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// oneLineError checks a failed command: non-zero exit, exactly one line on
// stderr, mentioning each of want.
func oneLineError(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit 0, want failure (stdout %q)", r.stdout)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Fatalf("stderr is not one line: %q", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Fatalf("stderr %q does not mention %q", line, w)
		}
	}
}

// --- the README quickstart -------------------------------------------------

// quickstartLines returns the shell lines of the README's quickstart section.
func quickstartLines(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "<!-- quickstart")
	end := strings.Index(text, "<!-- /quickstart -->")
	if start < 0 || end < start {
		t.Fatal("README.md has no <!-- quickstart --> … <!-- /quickstart --> section")
	}
	var lines []string
	inSh := false
	for _, l := range strings.Split(text[start:end], "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "```sh":
			inSh = true
		case strings.HasPrefix(l, "```"):
			inSh = false
		case inSh && l != "" && !strings.HasPrefix(l, "#"):
			lines = append(lines, l)
		}
	}
	return lines
}

// runQuickstart runs the README quickstart against a server, as a reader
// would paste it: every sh line, in order, in one bash, with the real curl
// and jq. Only the address (the server's port) and `go run ./cmd/latch` (the
// binary built for these tests) are substituted. It returns the shell
// variables the quickstart exported.
func runQuickstart(t *testing.T, s *server, vars map[string]string) map[string]string {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the README quickstart needs %s, which is not installed", tool)
			}
			t.Skipf("the README quickstart needs %s, which is not installed (CI=true makes this a failure)", tool)
		}
	}
	lines := quickstartLines(t)
	script := strings.Join(lines, "\n")
	for _, want := range []string{"client create", "/oidc/token", "/v1/auth/whoami", "/oidc/jwks", "/v1/users",
		"/v1/auth/password/authenticate", "/v1/auth/token/refresh", "/v1/auth/session/logout", "jq -r"} {
		if !strings.Contains(script, want) {
			t.Fatalf("the README quickstart no longer runs %q", want)
		}
	}
	const readmeBase = "http://127.0.0.1:8080"
	script = strings.ReplaceAll(script, "go run ./cmd/latch", "'"+latchBinary(t)+"'")
	script = strings.ReplaceAll(script, readmeBase, s.url)
	exported := []string{"CLIENT_ID", "CLIENT_SECRET", "TOKEN", "ACCESS_TOKEN", "REFRESH_TOKEN", "SESSION_ID"}
	script = "set -eu -o pipefail\n" + script + "\n"
	for _, v := range exported {
		script += fmt.Sprintf("printf 'quickstart:%s=%%s\\n' \"$%s\"\n", v, v)
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = environ(vars)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the README quickstart failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	shell := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if kv, ok := strings.CutPrefix(line, "quickstart:"); ok {
			name, val, _ := strings.Cut(kv, "=")
			shell[name] = val
		}
	}
	for _, v := range exported {
		if shell[v] == "" || shell[v] == "null" {
			t.Fatalf("the README quickstart does not set %s (%q)\n%s", v, shell[v], out)
		}
	}
	// What the steps print: whoami's JSON, the logout's 204, then the
	// refused refresh.
	if !strings.Contains(out, `"client_id":"`+shell["CLIENT_ID"]+`"`) {
		t.Errorf("whoami printed no client id:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)204$`).MatchString(out) || !strings.Contains(out, `"error_code":"invalid_grant"`) {
		t.Errorf("the logout step did not end the session:\n%s", out)
	}
	return shell
}

func TestREADMEStartsWithTheTwoCommands(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	first := strings.Index(text, "```sh")
	if first < 0 || first > 600 {
		t.Fatal("README.md does not open with its commands")
	}
	block := text[first:]
	block = block[:strings.Index(block[3:], "```")+3]
	for _, cmd := range []string{"go run ./cmd/latch serve", "go test ./..."} {
		if !strings.Contains(block, cmd) {
			t.Errorf("the README's first command block lacks %q", cmd)
		}
	}
	if !strings.Contains(text, "LATCH_TEST_POSTGRES_DSN") {
		t.Error("the README does not say how the PostgreSQL half of the suite runs")
	}
}

// durationText writes a duration the way the README does: 30s, 10m, 2160h.
func durationText(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return d.String()
	}
}

// The README's configuration table lists every LATCH_* setting with its YAML
// key and its real default.
func TestREADMEConfigurationTable(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "| `LATCH_") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows[strings.Trim(cells[0], "`")] = cells
	}
	def := config.Default()
	v := reflect.ValueOf(def)
	typ := v.Type()
	code := regexp.MustCompile("^`([^`]*)`")
	seen := map[string]bool{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		env := f.Tag.Get("env")
		if env == "" {
			continue
		}
		seen[env] = true
		cells, ok := rows[env]
		if !ok {
			t.Errorf("README configuration table lacks %s", env)
			continue
		}
		if len(cells) < 4 {
			t.Errorf("README row for %s has %d columns", env, len(cells))
			continue
		}
		if want := "`" + f.Tag.Get("yaml") + "`"; cells[1] != want {
			t.Errorf("README: %s YAML key %s, want %s", env, cells[1], want)
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.String && fv.String() == "" {
			continue // derived default, described in words
		}
		want := fmt.Sprint(fv.Interface())
		if d, ok := fv.Interface().(time.Duration); ok {
			want = durationText(d)
		}
		m := code.FindStringSubmatch(cells[2])
		if m == nil || m[1] != want {
			t.Errorf("README: %s default %s, want `%s`", env, cells[2], want)
		}
	}
	for env := range rows {
		if !seen[env] {
			t.Errorf("README documents %s, which config.Config does not have", env)
		}
	}
}

// --- (a) the binary on SQLite ----------------------------------------------

func TestE2ESQLite(t *testing.T) {
	dataDir := t.TempDir()
	vars := map[string]string{
		"LATCH_DATABASE_URL": "sqlite://" + filepath.Join(dataDir, "db", "latch.db"),
		"LATCH_DATA_DIR":     dataDir,
		// Short caches so changes made by the CLI (another process) reach
		// the server quickly; production defaults are 5s and 30s.
		"LATCH_CLIENT_CACHE_TTL": "100ms",
		"LATCH_KEY_CACHE_TTL":    "200ms",
	}
	s := serve(t, vars)
	if !strings.Contains(s.stderr.String(), "generated a development secret key") {
		t.Errorf("no warning about the generated development key:\n%s", s.stderr)
	}
	if st, err := os.Stat(filepath.Join(dataDir, "secret.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret.key: %v", err)
	}
	// Addresses are configured with LATCH_ADDR; the issuer follows.
	vars["LATCH_ADDR"] = strings.TrimPrefix(s.url, "http://")
	iss, aud := s.url, s.url+"/api"

	// The README quickstart, command by command.
	shell := runQuickstart(t, s, vars)
	clientID, secret, quickToken := shell["CLIENT_ID"], shell["CLIENT_SECRET"], shell["TOKEN"]
	oldKid := verify(t, s.url+"/oidc/jwks", quickToken, iss, aud)
	// The user's access token: aud is the issuer (no resource was named).
	verify(t, s.url+"/oidc/jwks", shell["ACCESS_TOKEN"], iss, iss)
	// The discovery document points at the same JWKS.
	disc := doHTTP(t, mustGet(s.url+"/.well-known/openid-configuration"))
	if disc.json["jwks_uri"] != s.url+"/oidc/jwks" || disc.json["issuer"] != iss {
		t.Fatalf("discovery: %s", disc.body)
	}
	if res := whoami(t, s.url, quickToken); res.status != 200 || res.json["client_id"] != clientID {
		t.Fatalf("whoami: %d %s", res.status, res.body)
	}
	var scopes []string
	for _, sc := range doHTTP(t, whoamiReq(s.url, quickToken)).json["scopes"].([]any) {
		scopes = append(scopes, sc.(string))
	}
	if strings.Join(scopes, " ") != "auth:execute users:read users:write" {
		t.Fatalf("scopes %v", scopes)
	}

	// client list, in JSON and text.
	var list []map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "client", "list", "--output", "json")), &list); err != nil {
		t.Fatalf("client list --output json: %v", err)
	}
	if len(list) != 1 || list[0]["client_id"] != clientID || list[0]["name"] != "demo" {
		t.Fatalf("client list: %v", list)
	}
	if _, leaked := list[0]["client_secret"]; leaked {
		t.Fatal("client list shows a secret")
	}
	if out := mustLatch(t, vars, "client", "list"); !strings.Contains(out, clientID) || !strings.Contains(out, "demo") {
		t.Fatalf("client list (text): %s", out)
	}

	// rotate-secret: the new secret works, the old one is refused.
	var rotated map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "client", "rotate-secret", clientID, "--output", "json")), &rotated); err != nil {
		t.Fatal(err)
	}
	newSecret, _ := rotated["client_secret"].(string)
	if rotated["client_id"] != clientID || newSecret == "" || newSecret == secret {
		t.Fatalf("rotate-secret: %v", rotated)
	}
	eventually(t, 3*time.Second, "the old secret is refused", func() bool {
		return clientToken(t, s.url, clientID, secret).status == http.StatusUnauthorized
	})
	fresh := clientToken(t, s.url, clientID, newSecret)
	if fresh.status != 200 {
		t.Fatalf("token with the new secret: %d %s", fresh.status, fresh.body)
	}
	// A plain rotation leaves the tokens already issued valid.
	if res := whoami(t, s.url, quickToken); res.status != 200 {
		t.Fatalf("token issued before a plain rotate-secret: %d %s", res.status, res.body)
	}

	// keys list / rotate.
	var keys []map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "keys", "list", "--output", "json")), &keys); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, k := range keys {
		states[k["state"].(string)] = k["kid"].(string)
		if _, leaked := k["private_key"]; leaked {
			t.Fatal("keys list shows a private key")
		}
	}
	if len(keys) != 2 || states["active"] != oldKid || states["next"] == "" {
		t.Fatalf("keys list: %v", keys)
	}
	var rot map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "keys", "rotate", "--output", "json")), &rot); err != nil {
		t.Fatal(err)
	}
	if rot["active_kid"] != states["next"] {
		t.Fatalf("keys rotate: active %v, want the former next key %s", rot["active_kid"], states["next"])
	}
	newKid := states["next"]
	eventually(t, 3*time.Second, "the server signs with the new key", func() bool {
		res := clientToken(t, s.url, clientID, newSecret)
		return res.status == 200 && kidOf(t, res.json["access_token"].(string)) == newKid
	})
	if kids := strings.Join(jwksKids(t, s.url), " "); !strings.Contains(kids, oldKid) || !strings.Contains(kids, newKid) {
		t.Fatalf("JWKS after rotation %s lacks %s or %s", kids, oldKid, newKid)
	}
	verify(t, s.url+"/oidc/jwks", quickToken, iss, aud) // signed before the rotation
	if res := whoami(t, s.url, quickToken); res.status != 200 {
		t.Fatalf("pre-rotation token refused: %d %s", res.status, res.body)
	}

	// rotate-secret --revoke-tokens: tokens issued before are refused on
	// every route; one minted right after with the new secret works.
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "client", "rotate-secret", clientID, "--revoke-tokens", "--output", "json")), &rotated); err != nil {
		t.Fatal(err)
	}
	newSecret, _ = rotated["client_secret"].(string)
	eventually(t, 3*time.Second, "tokens issued before rotate-secret --revoke-tokens are refused", func() bool {
		return whoami(t, s.url, quickToken).status == http.StatusUnauthorized &&
			whoami(t, s.url, fresh.json["access_token"].(string)).status == http.StatusUnauthorized
	})
	last := clientToken(t, s.url, clientID, newSecret)
	if last.status != 200 {
		t.Fatalf("token with the newest secret: %d %s", last.status, last.body)
	}
	lastToken := last.json["access_token"].(string)
	if res := whoami(t, s.url, lastToken); res.status != 200 {
		t.Fatalf("token minted after rotate-secret --revoke-tokens: %d %s", res.status, res.body)
	}

	// delete: the client is gone, its tokens requests are refused, and so
	// is every token it holds.
	var del map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "client", "delete", clientID, "--output", "json")), &del); err != nil || del["deleted"] != clientID {
		t.Fatalf("client delete: %v %v", del, err)
	}
	eventually(t, 3*time.Second, "the deleted client is refused", func() bool {
		return clientToken(t, s.url, clientID, newSecret).status == http.StatusUnauthorized
	})
	eventually(t, 3*time.Second, "the deleted client's token is refused", func() bool {
		return whoami(t, s.url, lastToken).status == http.StatusUnauthorized
	})
	oneLineError(t, latch(t, vars, "client", "delete", clientID), "not found")
	oneLineError(t, latch(t, vars, "client", "rotate-secret", "nosuchclient"), "not found")

	// version, migrate.
	if out := mustLatch(t, vars, "version"); strings.TrimSpace(out) != "latch e2e-test" {
		t.Fatalf("version: %q", out)
	}
	var ver map[string]string
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "version", "--output", "json")), &ver); err != nil || ver["version"] != "e2e-test" {
		t.Fatalf("version --output json: %v %v", ver, err)
	}
	var mig map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "migrate", "--output", "json")), &mig); err != nil || mig["pending"] != float64(0) {
		t.Fatalf("migrate: %v %v", mig, err)
	}

	// Bad configuration and bad usage: non-zero exit, one line on stderr.
	bad := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range vars {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	oneLineError(t, latch(t, bad("LATCH_SIGNING_ALG", "HS256"), "serve"), "LATCH_SIGNING_ALG")
	oneLineError(t, latch(t, bad("LATCH_CLIENT_TOKEN_TTL", "forever"), "serve"), "LATCH_CLIENT_TOKEN_TTL")
	oneLineError(t, latch(t, bad("LATCH_DATABASE_URL", "mysql://db/latch"), "client", "list"), "LATCH_DATABASE_URL")
	oneLineError(t, latch(t, map[string]string{"LATCH_ENV": "production", "LATCH_ISSUER": "https://auth.example.com",
		"LATCH_DATA_DIR": t.TempDir()}, "serve"), "LATCH_SECRET_KEY")
	oneLineError(t, latch(t, vars, "client", "create", "--scope", "auth:execute"), "name")
	oneLineError(t, latch(t, vars, "client", "create", "--name", "x", "--scope", `bad"scope`), "scope")
	// A typo in a scope would grant a scope no route asks for: refused.
	oneLineError(t, latch(t, vars, "client", "create", "--name", "x", "--scope", "auth:execute users:raed"), "users:raed", "not a known scope")
	oneLineError(t, latch(t, vars, "client", "list", "--output", "yaml"), "--output")
	oneLineError(t, latch(t, vars, "version", "--output", "yaml"), "--output")
	cfgFile := filepath.Join(t.TempDir(), "latch.yaml")
	os.WriteFile(cfgFile, []byte("signing_alg: RS512\n"), 0o600)
	// A bad file value is named by its YAML key (issue 14), in the words the variable's error uses.
	oneLineError(t, latch(t, vars, "--config", cfgFile, "keys", "list"), cfgFile+": signing_alg: must be ES256 or RS256")

	// The server's logs hold no secret and no token.
	logs := s.stderr.String()
	for name, secretValue := range map[string]string{"old secret": secret, "new secret": newSecret, "token": quickToken} {
		if strings.Contains(logs, secretValue) {
			t.Errorf("the server log contains the %s", name)
		}
	}
	if !strings.Contains(logs, `"route":"/oidc/token"`) {
		t.Errorf("the server did not log the token requests:\n%s", logs)
	}

	// SIGTERM: graceful exit 0.
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit code after SIGTERM: %d\n%s", code, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", s.stderr)
	}
}

func mustGet(u string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return req
}

func whoamiReq(base, tok string) *http.Request {
	req := mustGet(base + "/v1/auth/whoami")
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

// --- (b) two servers on one PostgreSQL -------------------------------------

func TestE2ETwoServersOnPostgres(t *testing.T) {
	if os.Getenv(apptest.PostgresEnv) == "" {
		t.Skip(apptest.PostgresEnv + " is not set; PostgreSQL variant skipped")
	}
	key, err := config.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	const issuer = "http://latch.test"
	vars := map[string]string{
		"LATCH_DATABASE_URL":     apptest.PostgresSchemaURL(t),
		"LATCH_SECRET_KEY":       base64.StdEncoding.EncodeToString(key),
		"LATCH_ISSUER":           issuer, // replicas share their public URL
		"LATCH_DATA_DIR":         t.TempDir(),
		"LATCH_KEY_CACHE_TTL":    "200ms",
		"LATCH_CLIENT_CACHE_TTL": "200ms",
	}
	// Both start at once on the fresh schema: migrations and key creation
	// must not collide.
	bin := latchBinary(t)
	var servers [2]*server
	var errs [2]error
	var wg sync.WaitGroup
	for i := range servers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			servers[i], errs[i] = startServer(bin, vars)
		}(i)
	}
	wg.Wait()
	for i := range servers {
		if servers[i] != nil {
			t.Cleanup(servers[i].kill)
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	a, b := servers[0], servers[1]
	aud := issuer + "/api"

	kidsA, kidsB := jwksKids(t, a.url), jwksKids(t, b.url)
	if len(kidsA) != 2 || !sameSet(kidsA, kidsB) {
		t.Fatalf("the two servers publish different JWKS: %v vs %v", kidsA, kidsB)
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "client", "create", "--name", "replicated", "--scope", "auth:execute", "--output", "json")), &created); err != nil {
		t.Fatal(err)
	}
	id, secret := created["client_id"].(string), created["client_secret"].(string)
	tokA := clientToken(t, a.url, id, secret)
	tokB := clientToken(t, b.url, id, secret)
	if tokA.status != 200 || tokB.status != 200 {
		t.Fatalf("tokens: %d %s / %d %s", tokA.status, tokA.body, tokB.status, tokB.body)
	}
	beforeA, beforeB := tokA.json["access_token"].(string), tokB.json["access_token"].(string)
	oldKid := verify(t, b.url+"/oidc/jwks", beforeA, issuer, aud)
	if verify(t, a.url+"/oidc/jwks", beforeB, issuer, aud) != oldKid {
		t.Fatal("the two servers sign with different keys")
	}
	// A token from one replica is accepted by the other.
	if res := whoami(t, b.url, beforeA); res.status != 200 {
		t.Fatalf("B refuses A's token: %d %s", res.status, res.body)
	}

	// A third process rotates the keys.
	var rot map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "keys", "rotate", "--output", "json")), &rot); err != nil {
		t.Fatal(err)
	}
	newKid, _ := rot["active_kid"].(string)
	if newKid == "" || newKid == oldKid || !contains(kidsA, newKid) {
		t.Fatalf("keys rotate: active %q (old %q, published before: %v)", newKid, oldKid, kidsA)
	}
	eventually(t, 5*time.Second, "both servers serve the same new JWKS", func() bool {
		ka, kb := jwksKids(t, a.url), jwksKids(t, b.url)
		return len(ka) == 3 && sameSet(ka, kb) && contains(ka, oldKid) && contains(ka, newKid)
	})
	for _, s := range servers {
		res := clientToken(t, s.url, id, secret)
		if res.status != 200 {
			t.Fatalf("token after rotation: %d %s", res.status, res.body)
		}
		raw := res.json["access_token"].(string)
		if kid := verify(t, s.url+"/oidc/jwks", raw, issuer, aud); kid != newKid {
			t.Fatalf("%s signs with %s after the rotation, want %s", s.url, kid, newKid)
		}
		for _, other := range servers {
			if res := whoami(t, other.url, raw); res.status != 200 {
				t.Fatalf("%s refuses a new token from %s: %d %s", other.url, s.url, res.status, res.body)
			}
		}
		// Tokens from before the rotation still verify and are accepted.
		for _, old := range []string{beforeA, beforeB} {
			verify(t, s.url+"/oidc/jwks", old, issuer, aud)
			if res := whoami(t, s.url, old); res.status != 200 {
				t.Fatalf("%s refuses a pre-rotation token: %d %s", s.url, res.status, res.body)
			}
		}
	}
	for _, s := range servers {
		if code := s.stop(t); code != 0 {
			t.Fatalf("exit code after SIGTERM: %d\n%s", code, s.stderr)
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !contains(b, x) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

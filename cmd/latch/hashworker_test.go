package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/internal/procfs"
)

// workerServer starts `latch serve` (with its hash worker) on a fresh
// SQLite file with extra settings, creates a client and a user with
// password, and returns the server and a POST with the client's token.
func workerServer(t *testing.T, extra map[string]string, username, password string) (*server, func(path string, body any) httpResult) {
	t.Helper()
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("needs Linux /proc")
	}
	key, err := config.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	vars := map[string]string{
		"LATCH_DATABASE_URL": "sqlite://" + filepath.Join(dataDir, "latch.db"), "LATCH_DATA_DIR": dataDir,
		"LATCH_SECRET_KEY": base64.StdEncoding.EncodeToString(key), "LATCH_ISSUER": "http://latch.worker.test",
		"LATCH_IP_RATE_LIMIT": "0",
	}
	for k, v := range extra {
		vars[k] = v
	}
	var created map[string]any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "client", "create", "--name", "worker",
		"--scope", "auth:execute users:read users:write", "--output", "json")), &created); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, vars)
	tok := clientToken(t, srv.url, created["client_id"].(string), created["client_secret"].(string)).json["access_token"].(string)
	post := func(path string, body any) httpResult {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, srv.url+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		return doHTTP(t, req)
	}
	if r := post("/v1/users", map[string]any{"username": username, "credentials": map[string]any{"password": password}}); r.status != http.StatusCreated {
		t.Fatalf("create user: %d %s", r.status, r.body)
	}
	return srv, post
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

// `latch serve` hashes in a worker process of its own: sign-ins work
// through it; a worker killed -9 costs the sign-ins of that moment a 503
// server_unavailable (with Retry-After) that counts no failed attempt, and
// the next worker serves them a second later; the worker ignores the
// SIGTERM meant for the server (it ends when the server does), and dies
// with a server killed -9.
func TestE2EHashWorker(t *testing.T) {
	const username, password = "worker-user", "Worker!Passw0rd-7"
	srv, post := workerServer(t, nil, username, password)
	signIn := func(pw string) httpResult {
		return post("/v1/auth/password/authenticate", map[string]any{"username": username, "password": pw})
	}
	if r := signIn(password); r.status != http.StatusOK {
		t.Fatalf("sign-in through the worker: %d %s", r.status, r.body)
	}
	workers := procfs.Children(srv.cmd.Process.Pid)
	if len(workers) != 1 {
		t.Fatalf("latch serve has children %v; want one hash worker", workers)
	}
	first := workers[0]
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", first)); !bytes.Contains(cmdline, []byte("hash-worker")) {
		t.Fatalf("child %d is %q, not the hash worker", first, cmdline)
	}
	if environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", first)); err != nil || bytes.Contains(environ, []byte("LATCH_SECRET_KEY")) ||
		bytes.Contains(environ, []byte("LATCH_DATABASE_URL")) {
		t.Fatalf("the worker's environment holds the server's secrets (or cannot be read: %v)", err)
	}

	// Killed: the attempts of the next moments are refused as
	// unavailable, more than the lockout allows, and none counts.
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the killed worker reaped", func() bool { return !alive(first) })
	for i := range 7 {
		r := signIn("wrong password")
		if r.status != http.StatusServiceUnavailable || r.json["error_code"] != "server_unavailable" {
			t.Fatalf("attempt %d with the worker down: %d %s; want 503 server_unavailable", i, r.status, r.body)
		}
	}
	// Readiness says so meanwhile: the replica leaves the rotation.
	if r := doHTTP(t, mustGet(srv.url+"/readyz")); r.status != http.StatusServiceUnavailable || r.json["hash_worker"] != "down" {
		t.Fatalf("/readyz with the worker down: %d %s", r.status, r.body)
	}
	time.Sleep(1200 * time.Millisecond) // the restart backoff
	if r := signIn(password); r.status != http.StatusOK {
		t.Fatalf("sign-in after the worker's restart: %d %s (the refused attempts must not lock)", r.status, r.body)
	}
	workers = procfs.Children(srv.cmd.Process.Pid)
	if len(workers) != 1 || workers[0] == first {
		t.Fatalf("children after the restart %v; want one new worker (the old one was %d)", workers, first)
	}
	second := workers[0]
	if r := doHTTP(t, mustGet(srv.url+"/readyz")); r.status != http.StatusOK || r.json["hash_worker"] != "ok" {
		t.Fatalf("/readyz after the restart: %d %s", r.status, r.body)
	}
	if m := doHTTP(t, mustGet(srv.url+"/metrics")); !bytes.Contains(m.body, []byte("latch_hash_worker_starts_total 2")) ||
		!bytes.Contains(m.body, []byte("latch_hash_worker_up 1")) {
		t.Fatalf("metrics after one restart lack latch_hash_worker_starts_total 2 / latch_hash_worker_up 1")
	}

	// 20 parallel sign-ins with the right password, the worker killed in
	// their midst: each is signed in or told to retry (never locked, never
	// a 500), and the account signs in afterwards.
	results := make(chan httpResult, 20)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); results <- signIn(password) }()
	}
	time.Sleep(30 * time.Millisecond)
	if ws := procfs.Children(srv.cmd.Process.Pid); len(ws) == 1 {
		_ = syscall.Kill(ws[0], syscall.SIGKILL)
	}
	wg.Wait()
	close(results)
	refused := 0
	for r := range results {
		if r.status == http.StatusServiceUnavailable {
			refused++
		}
		if r.status != http.StatusOK && !(r.status == http.StatusServiceUnavailable && r.json["error_code"] == "server_unavailable") {
			t.Fatalf("a sign-in of the burst: %d %s; want 200 or 503 server_unavailable", r.status, r.body)
		}
	}
	t.Logf("burst: %d of 20 answered 503 by the worker's death", refused)
	time.Sleep(1200 * time.Millisecond)
	if r := signIn(password); r.status != http.StatusOK {
		t.Fatalf("sign-in after the burst: %d %s", r.status, r.body)
	}
	workers = procfs.Children(srv.cmd.Process.Pid)
	if len(workers) != 1 {
		t.Fatalf("children after the burst %v", workers)
	}
	second = workers[0]

	// SIGTERM to the worker (as a process-group signal would send it) is
	// ignored: the server decides when it ends.
	if err := syscall.Kill(second, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if !alive(second) {
		t.Fatal("the worker died of SIGTERM")
	}
	if r := signIn(password); r.status != http.StatusOK {
		t.Fatalf("sign-in after SIGTERM to the worker: %d %s", r.status, r.body)
	}

	// The server killed -9: the worker goes with it.
	srv.kill()
	eventually(t, 5*time.Second, "the worker dead with its server", func() bool { return !alive(second) })
}

// The worker's environment carries the Go runtime's tuning and no secret.
func TestHashWorkerEnvironment(t *testing.T) {
	got := workerEnviron([]string{"GOGC=80", "GOMAXPROCS=3", "GODEBUG=gctrace=1", "LATCH_SECRET_KEY=c2VjcmV0",
		"LATCH_DATABASE_URL=postgres://u:pw@db/latch", "PATH=/bin", "HOME=/root"})
	want := []string{"GOGC=80", "GOMAXPROCS=3", "GODEBUG=gctrace=1", "LATCH_LOG_LEVEL=warn"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("worker environment %q; want %q", got, want)
	}
}

// latch hash-rate measures with the configured parameters, reports JSON an
// operator or the benchmark can read, touches no data directory, and
// refuses parameters the server would refuse.
func TestHashRate(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "latch-data")
	vars := map[string]string{"LATCH_DATA_DIR": dataDir, "LATCH_ARGON2_MEMORY_KIB": "1024", "LATCH_ARGON2_ITERATIONS": "1"}
	var got struct {
		Params  string  `json:"params"`
		Workers int     `json:"workers"`
		Hashes  float64 `json:"hashes"`
		Rate    float64 `json:"hashes_per_second"`
		CPU     float64 `json:"cpu_seconds"`
	}
	out := mustLatch(t, vars, "hash-rate", "--workers", "2", "--duration", "200ms", "--warmup", "50ms", "--output", "json")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Params != "m=1024,t=1,p=1" || got.Workers != 2 || got.Hashes < 1 || got.Rate <= 0 || got.CPU <= 0 {
		t.Fatalf("hash-rate reported %+v", got)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("hash-rate created %s (err %v)", dataDir, err)
	}
	vars["LATCH_ARGON2_MEMORY_KIB"] = "4"
	oneLineError(t, latch(t, vars, "hash-rate", "--duration", "10ms"), "LATCH_ARGON2_", "memory")
}

// A frozen worker (SIGSTOP) holds no request past LATCH_REQUEST_TIMEOUT:
// the sign-in answers 503 at its deadline — not when the worker is killed
// as stuck (30 s), which would replace it — and once the worker runs again
// the same worker signs users in.
func TestE2EFrozenHashWorker(t *testing.T) {
	srv, post := workerServer(t, map[string]string{"LATCH_REQUEST_TIMEOUT": "1s"}, "ice-user", "Glacier!Passw0rd-1")
	workers := procfs.Children(srv.cmd.Process.Pid)
	if len(workers) != 1 {
		t.Fatalf("children %v", workers)
	}
	if err := syscall.Kill(workers[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	r := post("/v1/auth/password/authenticate", map[string]any{"username": "ice-user", "password": "Glacier!Passw0rd-1"})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("sign-in with the worker frozen: %d %s; want 503", r.status, r.body)
	}
	if err := syscall.Kill(workers[0], syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if r := post("/v1/auth/password/authenticate", map[string]any{"username": "ice-user", "password": "Glacier!Passw0rd-1"}); r.status != http.StatusOK {
		t.Fatalf("sign-in after the worker thawed: %d %s", r.status, r.body)
	}
	// Answered at the deadline, the worker was never deemed stuck: it is
	// the one that was frozen, started once.
	if now := procfs.Children(srv.cmd.Process.Pid); len(now) != 1 || now[0] != workers[0] {
		t.Fatalf("children after the thaw %v; want the frozen worker %d, not a replacement", now, workers[0])
	}
	if m := doHTTP(t, mustGet(srv.url+"/metrics")); !bytes.Contains(m.body, []byte("latch_hash_worker_starts_total 1")) {
		t.Fatal("the frozen worker was replaced (latch_hash_worker_starts_total is not 1)")
	}
}

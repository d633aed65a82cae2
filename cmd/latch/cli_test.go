package main

// Issue 14: the CLI's edges, through the built binary.

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCLIUnknownSubcommandsFail(t *testing.T) {
	vars := map[string]string{"LATCH_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	for _, args := range [][]string{{"nope"}, {"client", "nope"}, {"keys", "nope"}, {"user", "nope"}, {"settings", "nope"}} {
		oneLineError(t, latch(t, vars, args...), "unknown command", `"`+args[len(args)-1]+`"`)
	}
	// A group alone shows its help and succeeds.
	if r := latch(t, vars, "client"); r.code != 0 || !strings.Contains(r.stdout, "create") {
		t.Errorf("latch client: exit %d, stdout %q", r.code, r.stdout)
	}
	if _, err := os.Stat(vars["LATCH_DATA_DIR"]); !os.IsNotExist(err) {
		t.Errorf("a failed command created %s", vars["LATCH_DATA_DIR"])
	}
}

func TestCLIVersionFlag(t *testing.T) {
	if out := mustLatch(t, nil, "--version"); out != "latch e2e-test\n" {
		t.Errorf("--version: %q", out)
	}
}

// Under --output json an error is a JSON object on stderr (stdout stays
// empty, for the pipe), exit 1.
func TestCLIErrorsAsJSON(t *testing.T) {
	vars := map[string]string{"LATCH_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	for _, c := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"client", "nope", "-o", "json"}, vars, "unknown command"},
		{[]string{"migrate", "--output=json"}, map[string]string{"LATCH_ENV": "staging"}, "LATCH_ENV"},
		{[]string{"client", "list", "--no-such-flag", "-o", "json"}, vars, "no-such-flag"},
		{[]string{"client", "create", "--name", "x", "--output", "json"}, map[string]string{"LATCH_DATABASE_URL": "mysql://x"}, "LATCH_DATABASE_URL"},
	} {
		r := latch(t, c.vars, c.args...)
		var body map[string]any
		if r.code != 1 || r.stdout != "" || json.Unmarshal([]byte(r.stderr), &body) != nil {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and a JSON error", c.args, r.code, r.stdout, r.stderr)
			continue
		}
		if msg, _ := body["error"].(string); !strings.Contains(msg, c.want) {
			t.Errorf("%v: error %q does not mention %q", c.args, msg, c.want)
		}
	}
}

func TestCLIWarnsAboutUnknownVariables(t *testing.T) {
	dir := t.TempDir()
	r := latch(t, map[string]string{"LATCH_DATA_DIR": dir, "LATCH_LOGLEVEL": "debug", "LATCH_ISSUR": "https://x"}, "migrate")
	if r.code != 0 {
		t.Fatalf("migrate: %d %s", r.code, r.stderr)
	}
	for _, name := range []string{"LATCH_LOGLEVEL", "LATCH_ISSUR"} {
		if !strings.Contains(r.stderr, `"name":"`+name+`"`) || !strings.Contains(r.stderr, `"level":"WARN"`) {
			t.Errorf("no warning about %s in %s", name, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "LATCH_DATA_DIR") {
		t.Errorf("a real setting was warned about: %s", r.stderr)
	}
}

// Read-only commands in a directory without data fail and leave nothing:
// no database, no secret key, no data directory.
func TestCLIReadOnlyCommandsCreateNothing(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "latch-data")
	vars := map[string]string{"LATCH_DATA_DIR": data}
	for _, args := range [][]string{{"client", "list"}, {"keys", "list"}, {"settings", "show"}} {
		oneLineError(t, latch(t, vars, args...), "latch migrate")
	}
	// A key given, still no database is created.
	keyed := map[string]string{"LATCH_DATA_DIR": data, "LATCH_SECRET_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	oneLineError(t, latch(t, keyed, "client", "list"), "no database", "latch migrate")
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("read-only commands created %s (%v)", data, err)
	}
	// Once migrated they work, and still generate no signing key.
	mustLatch(t, vars, "migrate")
	var keys []any
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "keys", "list", "-o", "json")), &keys); err != nil || len(keys) != 0 {
		t.Errorf("keys list after migrate: %v %v (want no key created)", keys, err)
	}
	mustLatch(t, vars, "client", "list")
	mustLatch(t, vars, "settings", "show")
}

func TestCLIMigratePrintsWhatItApplied(t *testing.T) {
	vars := map[string]string{"LATCH_DATA_DIR": t.TempDir()}
	out := mustLatch(t, vars, "migrate")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 10 || !strings.HasPrefix(lines[0], "applied ") || !strings.Contains(lines[len(lines)-1], "up to date") {
		t.Fatalf("first migrate:\n%s", out)
	}
	if out := mustLatch(t, vars, "migrate"); out != "database schema is up to date (0 migrations applied now)\n" {
		t.Errorf("second migrate: %q", out)
	}
	var mig struct{ Applied []string }
	if err := json.Unmarshal([]byte(mustLatch(t, vars, "migrate", "-o", "json")), &mig); err != nil || mig.Applied == nil || len(mig.Applied) != 0 {
		t.Errorf("migrate -o json: %+v %v", mig, err)
	}
}

// serve --addr wins over LATCH_ADDR and derives the issuer; healthcheck
// probes it, and fails once it is gone.
func TestCLIServeAddrAndHealthcheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	vars := map[string]string{"LATCH_DATA_DIR": t.TempDir(), "LATCH_ADDR": "127.0.0.1:1"}
	addr := "0.0.0.0:" + strconv.Itoa(port)
	cmd := exec.Command(latchBinary(t), "serve", "--addr", addr)
	cmd.Env = environ(vars)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	eventually(t, 20*time.Second, "server up", func() bool {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == 200
	})
	res := doHTTP(t, mustGet(base+"/.well-known/openid-configuration"))
	if res.json["issuer"] != "http://localhost:"+strconv.Itoa(port) {
		t.Errorf("issuer for --addr %s: %v", addr, res.json["issuer"])
	}
	if !strings.Contains(stderr.String(), `"issuer":"http://localhost:`+strconv.Itoa(port)+`"`) {
		t.Errorf("the start line does not show the issuer:\n%s", stderr)
	}
	// The health check reads LATCH_ADDR (a wildcard is probed on loopback).
	hc := map[string]string{"LATCH_ADDR": addr}
	if out := mustLatch(t, hc, "healthcheck"); !strings.HasPrefix(out, "ok ") {
		t.Errorf("healthcheck: %q", out)
	}
	mustLatch(t, map[string]string{"LATCH_ADDR": ":" + strconv.Itoa(port)}, "healthcheck", "--path", "/readyz")
	oneLineError(t, latch(t, hc, "healthcheck", "--path", "/nope"), "404")
	cmd.Process.Kill()
	<-done
	oneLineError(t, latch(t, hc, "healthcheck"), "healthcheck")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// LATCH_METRICS_ADDR moves /metrics to a listener of its own; SIGTERM ends
// with a line saying the shutdown completed.
func TestServeMetricsListenerAndShutdownLine(t *testing.T) {
	metricsAddr := freeAddr(t)
	s := serve(t, map[string]string{"LATCH_DATA_DIR": t.TempDir(), "LATCH_METRICS_ADDR": metricsAddr})
	if res := doHTTP(t, mustGet(s.url+"/metrics")); res.status != http.StatusNotFound {
		t.Errorf("public /metrics: %d", res.status)
	}
	var body string
	eventually(t, 10*time.Second, "metrics listener", func() bool {
		res, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		raw := new(strings.Builder)
		_, _ = io.Copy(raw, res.Body)
		body = raw.String()
		return res.StatusCode == http.StatusOK
	})
	if !strings.Contains(body, `latch_build_info{goversion="`) || !strings.Contains(body, `version="e2e-test"} 1`) {
		t.Errorf("build info missing from the metrics listener:\n%.2000s", body)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(s.stderr.String(), `"msg":"shutdown complete","drain_ms":`) {
		t.Errorf("no shutdown line:\n%s", s.stderr)
	}
	// Durations in logs are milliseconds, named so.
	if !strings.Contains(s.stderr.String(), `"msg":"shutting down","timeout_ms":15000`) {
		t.Errorf("the shutdown timeout is not logged in ms:\n%s", s.stderr)
	}
}

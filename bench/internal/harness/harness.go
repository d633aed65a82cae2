// Package harness runs a real `latch serve` process for the benchmark
// commands: it builds the binary, prepares a fresh SQLite file or PostgreSQL
// schema, starts the server on a loopback port, creates clients and users,
// and reads the server's resident memory.
package harness

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // schema setup on PostgreSQL

	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/internal/procfs"
)

// Server is a running latch process.
type Server struct {
	URL string
	// DatabaseURL is the server's database (its SQLite file or private
	// PostgreSQL schema), for benchmarks that load or inspect it directly.
	DatabaseURL string
	cmd         *exec.Cmd
	env         []string
	bin         string
	dir         string
	cleanup     []func()
	Log         *bytes.Buffer
}

// Options choose the database and extra LATCH_* settings.
type Options struct {
	DB          string // "sqlite" or "postgres"
	PostgresDSN string // base URL for "postgres"
	Env         map[string]string
}

// Start builds latch and runs `latch serve`.
func Start(ctx context.Context, o Options) (*Server, error) {
	dir, err := os.MkdirTemp("", "latch-bench-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: filepath.Join(dir, "latch"), Log: &bytes.Buffer{}}
	s.cleanup = append(s.cleanup, func() { os.RemoveAll(dir) })
	build := exec.CommandContext(ctx, "go", "build", "-o", s.bin, "./cmd/latch")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		s.Close()
		return nil, fmt.Errorf("build latch: %w", err)
	}
	dbURL := "sqlite://" + filepath.Join(dir, "latch.db")
	if o.DB == "postgres" {
		if dbURL, err = s.postgresSchema(o.PostgresDSN); err != nil {
			s.Close()
			return nil, err
		}
	}
	_ = dbURL
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	key, _ := config.GenerateSecretKey()
	vars := map[string]string{
		"LATCH_ADDR": addr, "LATCH_DATA_DIR": dir, "LATCH_DATABASE_URL": dbURL,
		"LATCH_SECRET_KEY": base64.StdEncoding.EncodeToString(key), "LATCH_LOG_LEVEL": "warn",
	}
	for k, v := range o.Env {
		vars[k] = v
	}
	s.env = os.Environ()
	for k, v := range vars {
		s.env = append(s.env, k+"="+v)
	}
	s.URL, s.DatabaseURL = "http://"+addr, dbURL
	s.cmd = exec.Command(s.bin, "serve")
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.Log, s.Log
	if err := s.cmd.Start(); err != nil {
		s.Close()
		return nil, err
	}
	for i := 0; i < 200; i++ {
		if res, err := http.Get(s.URL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Close()
	return nil, fmt.Errorf("latch did not become ready: %s", s.Log.String())
}

func (s *Server) postgresSchema(base string) (string, error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", err
	}
	defer db.Close()
	schema := "latch_bench_" + credentials.RandomID(10)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	s.cleanup = append(s.cleanup, func() {
		if db, err := sql.Open("pgx", base); err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	// The server's connections carry the schema's name, so that the CPU
	// of their backends can be told apart (PostgresCPU).
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// CLI runs a latch subcommand against the server's database and returns
// its standard output.
func (s *Server) CLI(args ...string) ([]byte, error) {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("latch %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Client is an OAuth2 client's credentials.
type Client struct{ ID, Secret string }

// CreateClient registers a client through the CLI.
func (s *Server) CreateClient(scopes string) (Client, error) {
	out, err := s.CLI("client", "create", "--name", "bench", "--scope", scopes, "--output", "json")
	if err != nil {
		return Client{}, err
	}
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &c); err != nil {
		return Client{}, err
	}
	return Client{ID: c.ID, Secret: c.Secret}, nil
}

// ClientToken gets a ClientAccessToken.
func (s *Server) ClientToken(hc *http.Client, c Client) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.ID, c.Secret)
	res, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("client token: status %d", res.StatusCode)
	}
	return body.AccessToken, nil
}

// PeakRSS returns the server's peak resident memory in MiB (VmHWM), its
// hash worker's included: the sum of their peaks, which bounds the peak of
// their sum.
func (s *Server) PeakRSS() float64 {
	var total float64
	for _, pid := range s.processes() {
		total += peakRSS(pid)
	}
	return total
}

// processes returns the server's process id and those of its children (the
// hash worker).
func (s *Server) processes() []int {
	pid := s.cmd.Process.Pid
	return append([]int{pid}, procfs.Children(pid)...)
}

func peakRSS(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// Close stops the server and removes its data.
func (s *Server) Close() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
		}
	}
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}

// Call sends method path with body (JSON, when not nil) and the bearer
// token, and returns the status and the answer's body (0 and the error's
// text when the request could not be made).
func (s *Server) Call(hc *http.Client, token, method, path string, body any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// HTTPClient is a keep-alive client sized for concurrent load.
func HTTPClient() *http.Client {
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// CPU is a snapshot of CPU time: the server process's and the machine's.
type CPU struct {
	Server   time.Duration // user+system time of the latch processes (server and hash worker)
	Children time.Duration // of which the server's children's (the hash worker)
	System   time.Duration // of which system (kernel) time: page faults, syscalls
	Faults   int64         // minor page faults of the latch processes
	Database time.Duration // PostgreSQL backends of the server's connections (PostgresCPU)
	Machine  time.Duration // busy time of all CPUs (everything but idle/iowait)
	backends map[int]time.Duration
	latch    map[int]procCounters // the server and its hash worker, by pid
}

// procCounters are one process's counters in a CPU snapshot.
type procCounters struct {
	cpu, sys time.Duration
	faults   int64
	child    bool // a child of the server (the hash worker)
}

// clockTick is USER_HZ, the unit of /proc CPU counters on Linux.
const clockTick = 100

// CPUNow reads the CPU counters (zero values where /proc is unavailable).
func (s *Server) CPUNow() CPU {
	c := CPU{backends: s.postgresBackends(), latch: map[int]procCounters{}}
	for _, cpu := range c.backends {
		c.Database += cpu
	}
	for i, pid := range s.processes() {
		p := procCounters{child: i > 0}
		p.cpu, p.sys, p.faults = procStat(pid)
		c.latch[pid] = p
		if p.child {
			c.Children += p.cpu
		}
		c.Server, c.System, c.Faults = c.Server+p.cpu, c.System+p.sys, c.Faults+p.faults
	}
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		line := strings.SplitN(string(raw), "\n", 2)[0]
		f := strings.Fields(line)
		var busy int64
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			busy += n
		}
		c.Machine = time.Duration(busy) * time.Second / clockTick
	}
	return c
}

// Sub returns the CPU spent between two snapshots. The database's is
// counted per backend process, so that a connection closed in between
// does not take its past CPU off the sum (its last moments are lost).
func (c CPU) Sub(o CPU) CPU {
	var db time.Duration
	for pid, cpu := range c.backends {
		db += cpu - o.backends[pid]
	}
	d := CPU{Database: db, Machine: c.Machine - o.Machine}
	for pid, p := range c.latch {
		was := o.latch[pid]
		d.Server, d.System, d.Faults = d.Server+p.cpu-was.cpu, d.System+p.sys-was.sys, d.Faults+p.faults-was.faults
		if p.child {
			d.Children += p.cpu - was.cpu
		}
	}
	return d
}

// Add sums two spans of CPU (from Sub): the CPU of several slices.
func (c CPU) Add(o CPU) CPU {
	return CPU{Server: c.Server + o.Server, Children: c.Children + o.Children, System: c.System + o.System, Faults: c.Faults + o.Faults,
		Database: c.Database + o.Database, Machine: c.Machine + o.Machine}
}

// PostgresCPU returns the CPU time used so far by the PostgreSQL backends
// serving this server's connections (found by their application_name, on a
// PostgreSQL running on this machine); zero on SQLite or when they cannot
// be read.
func (s *Server) PostgresCPU() time.Duration {
	var total time.Duration
	for _, cpu := range s.postgresBackends() {
		total += cpu
	}
	return total
}

// postgresBackends returns the CPU time of each PostgreSQL backend serving
// this server, by process id.
func (s *Server) postgresBackends() map[int]time.Duration {
	u, err := url.Parse(s.DatabaseURL)
	if err != nil || !strings.HasPrefix(s.DatabaseURL, "postgres") {
		return nil
	}
	app := u.Query().Get("application_name")
	q := u.Query()
	q.Del("application_name")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return nil
	}
	defer db.Close()
	rows, err := db.Query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", app)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			out[pid] = procCPU(pid)
		}
	}
	return out
}

// procCPU returns the user+system CPU time of a process (zero if unknown).
func procCPU(pid int) time.Duration {
	cpu, _, _ := procStat(pid)
	return cpu
}

// procStat returns the user+system and the system CPU time of a process
// and its minor page faults (zeros if unknown).
func procStat(pid int) (cpu, sys time.Duration, faults int64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0
	}
	// Fields after the command name (which is in parentheses).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	if len(f) <= 12 {
		return 0, 0, 0
	}
	faults, _ = strconv.ParseInt(f[7], 10, 64)
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTick, time.Duration(st) * time.Second / clockTick, faults
}

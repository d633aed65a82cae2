package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/latch-dev/latch/config"
)

func TestHeapLimit(t *testing.T) {
	const mib = 1 << 20
	cfg := config.Default() // 19 MiB hashes, imports up to 128 MiB (scrypt)
	tests := []struct {
		name        string
		concurrency int
		cpus        int
		want        int64
	}{
		// 2 × 19 MiB a round: 64 + 3 × 38 = 178 MiB, but the heaviest
		// import beside a round needs 32 + 38 + 128 = 198 MiB.
		{"two CPUs", 0, 2, 32*mib + 2*19*mib + 128*mib},
		// 8 × 19 MiB a round: 64 + 3 × 152 = 520 MiB.
		{"eight hashes", 8, 2, 64*mib + 3*8*19*mib},
	}
	for _, tt := range tests {
		c := cfg
		c.HashConcurrency = tt.concurrency
		if got := heapLimit(c, tt.cpus); got != tt.want {
			t.Errorf("%s: heapLimit = %d MiB, want %d MiB", tt.name, got/mib, tt.want/mib)
		}
	}
}

// The operator's GOGC or GOMEMLIMIT wins: nothing is changed.
func TestKeepHashMemoryHotRespectsTheOperator(t *testing.T) {
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		getenv := func(k string) string {
			if k == env {
				return "100"
			}
			return ""
		}
		before := debug.SetMemoryLimit(-1)
		if got := keepHashMemoryHot(config.Default(), getenv, log); got != nil || debug.SetMemoryLimit(-1) != before {
			t.Fatalf("with %s set the pacing was changed (ballast of %d bytes)", env, len(got))
		}
	}
}

// Without the operator's settings: a ballast the size of the hashing
// working set, GOGC 50 and a backstop limit above the largest heap goal —
// and the ballast costs no resident memory, as at the start of `latch
// serve`. It runs in a fresh copy of the test binary: in this one, the
// pages freed by earlier tests would be reused (and zeroed) for it.
func TestKeepHashMemoryHotPacesByABallast(t *testing.T) {
	if os.Getenv("LATCH_TEST_BALLAST_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKeepHashMemoryHotPacesByABallast$", "-test.count=1")
		cmd.Env = append(os.Environ(), "LATCH_TEST_BALLAST_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	cfg := config.Default()
	rssBefore := residentBytes(t)
	ballast := keepHashMemoryHot(cfg, func(string) string { return "" }, log)
	rssAfter := residentBytes(t)
	working := heapLimit(cfg, runtime.NumCPU())
	if int64(len(ballast)) != working {
		t.Fatalf("ballast of %d MiB, want the working set's %d MiB", len(ballast)>>20, working>>20)
	}
	if got := debug.SetGCPercent(100); got != ballastGCPercent {
		t.Errorf("GOGC %d, want %d", got, ballastGCPercent)
	}
	limit := debug.SetMemoryLimit(-1)
	if goal := (100 + ballastGCPercent) * (working + working) / 100; limit <= goal {
		t.Errorf("backstop limit %d MiB is not above the largest heap goal %d MiB", limit>>20, goal>>20)
	}
	if grown := rssAfter - rssBefore; rssBefore > 0 && grown > working/4 {
		t.Errorf("the ballast made %d MiB resident (of %d MiB)", grown>>20, working>>20)
	}
	runtime.KeepAlive(ballast)
}

// residentBytes reads this process's resident set size (0 where /proc is
// missing).
func residentBytes(t *testing.T) int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		t.Fatalf("statm: %q", raw)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func TestLeaveRoomForRequests(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	if n := leaveRoomForRequests(func(k string) string {
		if k == "GOMAXPROCS" {
			return "1"
		}
		return ""
	}); n != 0 || runtime.GOMAXPROCS(0) != before {
		t.Fatalf("GOMAXPROCS changed to %d although the operator set it", runtime.GOMAXPROCS(0))
	}
	if n := leaveRoomForRequests(func(string) string { return "" }); n != before+1 || runtime.GOMAXPROCS(0) != before+1 {
		t.Fatalf("GOMAXPROCS %d, want %d", runtime.GOMAXPROCS(0), before+1)
	}
}

package main

import (
	"bytes"
	"log/slog"
	"runtime"
	"runtime/debug"
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
		if got := keepHashMemoryHot(heapLimit(config.Default(), runtime.NumCPU()), getenv, log); got != nil || debug.SetMemoryLimit(-1) != before {
			t.Fatalf("with %s set the pacing was changed (ballast of %d bytes)", env, len(got))
		}
	}
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

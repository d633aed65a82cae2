package main

import (
	"bytes"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"unsafe"

	"github.com/latch-dev/latch/config"
)

// Without the operator's settings: a ballast the size of the hashing
// working set, GOGC 50 and a backstop limit above the largest heap goal —
// and the ballast costs no resident memory, even where the runtime reused
// (and zeroed) pages freed by earlier tests for it.
func TestKeepHashMemoryHotPacesByABallast(t *testing.T) {
	limitBefore := debug.SetMemoryLimit(-1)
	percentBefore := debug.SetGCPercent(100)
	defer func() {
		debug.SetMemoryLimit(limitBefore)
		debug.SetGCPercent(percentBefore)
	}()
	// Freed heap the ballast may be placed on: dirty pages.
	for range 4 {
		junk := make([]byte, 64<<20)
		for i := range junk {
			junk[i] = 1
		}
	}
	runtime.GC()
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	cfg := config.Default()
	ballast := keepHashMemoryHot(heapLimit(cfg, runtime.NumCPU()), func(string) string { return "" }, log)
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
	if resident, ok := residentPages(t, ballast); ok && resident > len(ballast)/os.Getpagesize()/16 {
		t.Errorf("%d MiB of the %d MiB ballast are resident", resident*os.Getpagesize()>>20, working>>20)
	}
	runtime.KeepAlive(ballast)
}

// residentPages counts the pages of b in memory (mincore(2); ok false
// where it is not available).
func residentPages(t *testing.T, b []byte) (int, bool) {
	page := os.Getpagesize()
	n := len(b) / page * page
	vec := make([]byte, n/page)
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Logf("mincore: %v", errno)
		return 0, false
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, true
}

package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/latch-dev/latch/config"
)

// keepHashMemoryHot drives the garbage collector by a memory limit sized
// from the hashing budget instead of by GOGC, unless the operator set
// GOGC or GOMEMLIMIT. It returns the limit set (0: none).
//
// Every argon2id hash allocates its whole block array (19 MiB by default)
// and drops it. With GOGC the heap goal follows whatever was live at the
// last collection — zero, one or two of those arrays, depending on how
// many hashes happened to be running — and the runtime keeps returning
// the arrays' pages to the OS, then zeroing them back in on the next hash:
// measured in bench/authload, about a thousand page faults and several
// milliseconds of kernel time per sign-in, against a few hundred for a
// bare hashing loop, whose heap always holds the same arrays. Under a
// fixed limit the heap keeps one stable set of spans that hashes recycle
// while they stay resident, and collects a few times less often.
func keepHashMemoryHot(cfg config.Config, getenv func(string) string, log *slog.Logger) int64 {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit := heapLimit(cfg, runtime.NumCPU())
	debug.SetMemoryLimit(limit)
	debug.SetGCPercent(-1)
	log.Info("garbage collection driven by a memory limit (set GOGC or GOMEMLIMIT to choose otherwise)", slog.Int64("limit_mib", limit>>20))
	return limit
}

// heapLimit is the memory limit for the hashing budget of cfg (cpus: the
// number of CPUs, which a zero LATCH_HASH_CONCURRENCY means): room for the
// rest of the process (64 MiB), the arrays of the hashes running and two
// more rounds of garbage arrays between collections — and at least room
// for the heaviest imported hash the budget admits running alone, next to
// a round of standard ones, so that a collection never has to run while a
// live heap already exceeds the limit.
func heapLimit(cfg config.Config, cpus int) int64 {
	const base = 64 << 20
	concurrency := cfg.HashConcurrency
	if concurrency <= 0 {
		concurrency = cpus
	}
	round := int64(concurrency) * int64(cfg.Argon2MemoryKiB) << 10
	heaviest := int64(max(cfg.HashImportMaxArgon2MemoryKiB, cfg.HashImportMaxScryptMemoryKiB)) << 10
	return max(base+3*round, base/2+round+heaviest)
}

// leaveRoomForRequests gives the scheduler one more P than it would have
// (the CPUs, or the container's CPU limit), unless the operator set
// GOMAXPROCS. It returns the new GOMAXPROCS (0: unchanged).
//
// The hashing gate runs as many hashes at once as there are CPUs, and each
// hash is a goroutine that computes for tens of milliseconds without
// blocking. With one P per CPU the hashes hold every P: a request that
// becomes runnable — its body arrived, its database answered, or it is to
// be refused — waits for the runtime to preempt a hash (every 10ms or
// more), at every step. Measured under 4× overload on two CPUs, the
// admitted p99 halved and refusals within 10ms went from 2% to 31% with
// one more P: the kernel then interleaves the request's short steps with
// the hashes at its own, finer granularity. The CPU hashing gets is the
// same; the gate, not GOMAXPROCS, bounds the hashes.
func leaveRoomForRequests(getenv func(string) string) int {
	if getenv("GOMAXPROCS") != "" {
		return 0
	}
	n := runtime.GOMAXPROCS(0) + 1
	runtime.GOMAXPROCS(n)
	return n
}

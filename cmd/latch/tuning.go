package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"

	"github.com/latch-dev/latch/config"
)

// keepHashMemoryHot paces the garbage collector of the process that hashes
// (the hash worker, or the server with LATCH_HASH_WORKER=inline) for
// hashing, unless the operator set GOGC or GOMEMLIMIT; working is the
// memory the hashes in flight may hold (heapLimit). It returns the ballast to keep alive for
// the life of the server (nil: nothing changed).
//
// Every argon2id hash allocates its whole block array (19 MiB by default)
// and drops it. Paced by GOGC alone, the heap goal follows whatever was
// live at the last collection — zero, one or two of those arrays — and the
// runtime keeps handing the arrays' pages back to the OS and faulting them
// back in on the next hash. Paced by a memory limit alone (GOGC off), the
// heap fills up to the limit before each collection while the scavenger
// holds retained memory at 95% of it, so it returns the top 5% every
// cycle: measured in bench/authload, 460–670 page faults and 3–6 ms of
// kernel time per sign-in against under 300 faults for a bare hashing loop.
//
// So the goal is made stable with a ballast: one allocation the size of
// the hashing working set (heapLimit) that is never written and whose
// pages are handed back to the kernel, so it costs address space but no
// resident memory. With
// GOGC=50 a collection runs after about half the ballast of allocation —
// several rounds of hashes — and the retained heap never reaches the
// scavenger's goal (110% of the heap goal), so the arrays' pages stay
// resident and are recycled from one hash to the next: page faults per
// sign-in fall to the bare loop's, kernel time by half or more. A memory
// limit well above the goal stays as a backstop.
func keepHashMemoryHot(working int64, getenv func(string) string, log *slog.Logger) []byte {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" || working <= 0 {
		return nil
	}
	ballast := make([]byte, working)
	releasePages(ballast)
	debug.SetGCPercent(ballastGCPercent)
	debug.SetMemoryLimit(backstopLimit(working))
	log.Info("garbage collection paced by a ballast for hashing (set GOGC or GOMEMLIMIT to choose otherwise)",
		slog.Int64("ballast_mib", working>>20), slog.Int("gogc", ballastGCPercent), slog.Int64("limit_mib", backstopLimit(working)>>20))
	return ballast
}

// ballastGCPercent: with the ballast as most of the live heap, a
// collection after half of it again in allocations.
const ballastGCPercent = 50

// backstopLimit is the memory limit beside a ballast of working bytes:
// above the largest heap goal the hashing budget allows ((1 + GOGC/100) ×
// (ballast + live), live at most the working set), so that it only acts
// if something else runs away. The ballast counts toward it but is not
// resident.
func backstopLimit(working int64) int64 {
	return (100+ballastGCPercent)*2*working/100 + 64<<20
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

package credentials

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latch-dev/latch/fault"
)

// DefaultGateMaxWait is the queue wait used when NewGate is given maxWait <= 0.
const DefaultGateMaxWait = time.Second

// BusyRetryAfter is the Retry-After carried by the server.busy error: one
// second is long enough for a saturated gate to drain a few hashes and short
// enough that a retrying client is not kept waiting needlessly.
const BusyRetryAfter = time.Second

// Gate is the hashing admission gate (DESIGN §5). Password hashing is the one
// operation whose cost an anonymous caller chooses how often to pay, and each
// argon2id hash holds tens of MiB of memory; without a gate a burst of
// sign-ins would start an unbounded number of hashes at once, exhaust memory
// and make every request slow. The gate lets at most `concurrency` functions
// run at once, lets at most `queue` callers wait for a slot, and makes each of
// them wait at most `maxWait`. Everybody else is refused at once with a
// server.busy error (503 + Retry-After), which keeps the latency of the
// admitted requests bounded and the memory flat under any load: the gate
// never starts goroutines and never stores work, so its footprint is the
// caller goroutines it lets wait, and those are bounded by `queue`.
//
// Slots are handed to waiters in arrival order (a buffered channel hands a
// freed slot straight to its longest-blocked sender), so a newcomer cannot
// overtake a caller that is already waiting.
type Gate struct {
	sem         chan struct{}
	concurrency int
	queue       int
	maxWait     time.Duration

	waiting atomic.Int64
	// avgNanos is an exponentially weighted moving average of how long fn
	// runs, used to refuse at admission a caller that could not possibly be
	// served within maxWait instead of letting it wait maxWait and then fail.
	avgNanos atomic.Int64

	mu sync.Mutex // serializes updates of avgNanos
}

// NewGate returns a gate that runs at most concurrency functions at once
// (0 or less: runtime.NumCPU()), lets at most queue callers wait (0: twice
// the concurrency; negative: nobody waits) and makes each wait at most
// maxWait (0 or less: DefaultGateMaxWait).
func NewGate(concurrency, queue int, maxWait time.Duration) *Gate {
	if concurrency <= 0 {
		concurrency = runtime.NumCPU()
	}
	switch {
	case queue == 0:
		// Twice the concurrency: the last admitted caller waits about two
		// runs, so admitted latency stays within ~3× an unloaded run even
		// when far more callers arrive than the gate can serve.
		queue = 2 * concurrency
	case queue < 0:
		queue = 0
	}
	if maxWait <= 0 {
		maxWait = DefaultGateMaxWait
	}
	return &Gate{
		sem:         make(chan struct{}, concurrency),
		concurrency: concurrency,
		queue:       queue,
		maxWait:     maxWait,
	}
}

// Limits returns the effective concurrency, queue length and maximum wait.
func (g *Gate) Limits() (concurrency, queue int, maxWait time.Duration) {
	return g.concurrency, g.queue, g.maxWait
}

// BusyError returns the error a refused caller gets: server.busy, 503, with a
// Retry-After. A new value each time, so callers may decorate it freely.
func BusyError() *fault.Error {
	return fault.New(fault.CodeServerBusy, http.StatusServiceUnavailable,
		"The server is busy. Please retry shortly.").Retry(BusyRetryAfter)
}

// Do runs fn once a slot is free and returns nil after fn returns. It returns
// a server.busy *fault.Error, without running fn, when the queue is full, when
// the expected wait already exceeds maxWait, or when no slot frees up within
// maxWait; and ctx.Err() when ctx ends first. fn itself is not interrupted by
// ctx: a hash, once started, finishes.
func (g *Gate) Do(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case g.sem <- struct{}{}:
		// Fast path: a slot is free and nobody can be waiting for it (a
		// waiter would have been handed the slot on release).
	default:
		if err := g.wait(ctx); err != nil {
			return err
		}
	}
	defer func() { <-g.sem }()
	start := time.Now()
	fn()
	g.observe(time.Since(start))
	return nil
}

// wait queues the caller for a slot, within the queue and time bounds.
func (g *Gate) wait(ctx context.Context) error {
	for {
		n := g.waiting.Load()
		if n >= int64(g.queue) {
			return BusyError()
		}
		// A caller with n callers ahead of it waits at least about
		// n/concurrency full runs; if that is already beyond maxWait it
		// would only wait to be refused, so refuse it now.
		if avg := g.avgNanos.Load(); avg > 0 && n > 0 {
			expected := time.Duration(avg * n / int64(g.concurrency))
			if expected > g.maxWait {
				return BusyError()
			}
		}
		if g.waiting.CompareAndSwap(n, n+1) {
			break
		}
	}
	defer g.waiting.Add(-1)

	timer := time.NewTimer(g.maxWait)
	defer timer.Stop()
	select {
	case g.sem <- struct{}{}:
		return nil
	case <-timer.C:
		return BusyError()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe folds one run time into the moving average (weight 1/8).
func (g *Gate) observe(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.avgNanos.Load()
	if old == 0 {
		g.avgNanos.Store(int64(d))
		return
	}
	g.avgNanos.Store(old + (int64(d)-old)/8)
}

// Stats returns how many functions are running and how many callers wait.
func (g *Gate) Stats() (running, waiting int) {
	return len(g.sem), int(g.waiting.Load())
}

package credentials

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

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
// and make every request slow.
//
// The gate is a budget of `concurrency` units, one unit being what one hash
// with the current parameters holds (its memory and its lanes). Each caller
// acquires the units its work needs (Do: one; DoWeighted: more for an
// imported hash with more memory or lanes than the current parameters), so
// one expensive hash cannot push the memory past the target: it takes the
// room of several standard ones. A caller needing more than the whole budget
// is capped at the whole budget and runs alone. At most `queue` further units
// may wait, each caller at most `maxWait`. Everybody else is refused at once
// with a server.busy error (503 + Retry-After), which keeps the latency of the
// admitted requests bounded and the memory flat under any load: the gate
// never starts goroutines and never stores work, so its footprint is the
// caller goroutines it lets wait, and those are bounded by `queue`.
//
// Units are handed out in arrival order (golang.org/x/sync/semaphore is
// FIFO): a newcomer cannot overtake a caller that is already waiting, so a
// heavy hash waiting for the room it needs is not starved by a stream of
// light ones.
type Gate struct {
	sem         *semaphore.Weighted
	concurrency int // the budget, in units
	queue       int // units that may wait beyond the budget
	maxWait     time.Duration
	// adaptive bounds each wait by the recent run time instead of maxWait
	// (which then only caps it): see NewAdaptiveGate.
	adaptive bool

	// inGate counts the units of callers admitted and not yet done:
	// running plus waiting. The caller that finishes decrements it itself,
	// so when it comes straight back its own departure is already counted
	// — a single counter, unlike a "waiting" count that the woken waiter
	// would only decrement once the scheduler runs it, which refused
	// callers while the gate was not full.
	inGate atomic.Int64
	// callers and running count callers (not units) for Stats.
	callers, running atomic.Int64
	// avgNanos is an exponentially weighted moving average of how long fn
	// runs, used to refuse at admission a caller that could not possibly be
	// served within maxWait instead of letting it wait maxWait and then fail.
	avgNanos atomic.Int64

	mu sync.Mutex // serializes updates of avgNanos
}

// NewGate returns a gate with a budget of concurrency units — as many
// standard hashes run at once (0 or less: runtime.NumCPU()) — that lets at
// most queue units wait (0: twice the concurrency; negative: nobody waits)
// and makes each wait at most maxWait (0 or less: DefaultGateMaxWait).
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
		sem:         semaphore.NewWeighted(int64(concurrency)),
		concurrency: concurrency,
		queue:       queue,
		maxWait:     maxWait,
	}
}

// NewAdaptiveGate is NewGate whose waits are bounded by how long runs take
// now: a caller may wait about 1.5 average runs (never more than
// DefaultGateMaxWait). The latency of an admitted caller then stays near
// 2.5 runs however slow the machine gets under load, and callers who would
// wait longer are refused at once instead of queueing to be slow.
func NewAdaptiveGate(concurrency, queue int) *Gate {
	g := NewGate(concurrency, queue, DefaultGateMaxWait)
	g.adaptive = true
	return g
}

// wait returns the wait bound in force.
func (g *Gate) waitBound() time.Duration {
	if !g.adaptive {
		return g.maxWait
	}
	avg := time.Duration(g.avgNanos.Load())
	if avg <= 0 {
		return g.maxWait // nothing observed yet
	}
	bound := avg * 3 / 2
	if bound < 5*time.Millisecond {
		bound = 5 * time.Millisecond
	}
	if bound > g.maxWait {
		bound = g.maxWait
	}
	return bound
}

// Limits returns the effective budget (concurrency, in units), queue length
// (in units) and maximum wait.
func (g *Gate) Limits() (concurrency, queue int, maxWait time.Duration) {
	return g.concurrency, g.queue, g.maxWait
}

// BusyError returns the error a refused caller gets: server.busy, 503, with a
// Retry-After. A new value each time, so callers may decorate it freely.
func BusyError() *fault.Error {
	return fault.New(fault.CodeServerBusy, http.StatusServiceUnavailable,
		"The server is busy. Please retry shortly.").Retry(BusyRetryAfter)
}

// Do runs fn, weighing one unit (a hash with the current parameters), once
// the room is free: DoWeighted(ctx, 1, fn).
func (g *Gate) Do(ctx context.Context, fn func()) error { return g.DoWeighted(ctx, 1, fn) }

// DoWeighted runs fn once `units` of the budget are free and returns nil
// after fn returns; units below 1 count as 1 and units above the budget as
// the whole budget (fn then runs alone). It returns a server.busy
// *fault.Error, without running fn, when the queue is full, when the expected
// wait already exceeds maxWait, or when the room does not free up within
// maxWait; and ctx.Err() when ctx ends first. fn itself is not interrupted by
// ctx: a hash, once started, finishes.
func (g *Gate) DoWeighted(ctx context.Context, units int64, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := g.clamp(units)
	if err := g.admit(w); err != nil {
		return err
	}
	g.callers.Add(1)
	defer func() {
		g.inGate.Add(-w)
		g.callers.Add(-1)
	}()
	// Fast path: the room is free and nobody waits before us.
	if !g.sem.TryAcquire(w) {
		if err := g.wait(ctx, w); err != nil {
			return err
		}
	}
	g.running.Add(1)
	defer func() {
		g.running.Add(-1)
		g.sem.Release(w)
	}()
	start := time.Now()
	fn()
	g.observe(time.Since(start))
	return nil
}

// clamp bounds a weight to [1, budget].
func (g *Gate) clamp(units int64) int64 {
	return min(max(units, 1), int64(g.concurrency))
}

// admit counts w units in, within concurrency + queue, refusing at once a
// caller that could not be served within maxWait.
func (g *Gate) admit(w int64) error {
	limit := int64(g.concurrency + g.queue)
	for {
		n := g.inGate.Load()
		if n+w > limit {
			return BusyError()
		}
		// A caller with `ahead` units already waiting before it (and its
		// own units beyond the first) waits at least about
		// ahead/concurrency full runs; if that is already beyond maxWait
		// it would only wait to be refused, so refuse it now.
		if ahead := n + w - 1 - int64(g.concurrency); ahead > 0 {
			if avg := g.avgNanos.Load(); avg > 0 && time.Duration(avg*ahead/int64(g.concurrency)) > g.waitBound() {
				return BusyError()
			}
		}
		if g.inGate.CompareAndSwap(n, n+w) {
			return nil
		}
	}
}

// wait blocks until w units are free, at most the wait bound.
func (g *Gate) wait(ctx context.Context, w int64) error {
	wctx, cancel := context.WithTimeout(ctx, g.waitBound())
	defer cancel()
	if err := g.sem.Acquire(wctx, w); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		return BusyError()
	}
	return nil
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

// Full reports whether a one-unit caller arriving now would be refused for
// want of room. It is a hint, not a reservation: it lets callers skip expensive
// preparation (database writes) for a request the gate would refuse anyway,
// so a flood of refusals stays cheap and does not slow the admitted work.
func (g *Gate) Full() bool {
	return g.inGate.Load() >= int64(g.concurrency+g.queue)
}

// Stats returns how many callers are running and how many wait (callers,
// whatever their weight).
func (g *Gate) Stats() (running, waiting int) {
	running = int(g.running.Load())
	waiting = int(g.callers.Load()) - running
	if waiting < 0 {
		waiting = 0
	}
	return running, waiting
}

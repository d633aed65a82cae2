package credentials

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/latch-dev/latch/fault"
)

// DefaultGateMaxWait is the shortest wait bound an adaptive gate (maxWait 0)
// applies in normal operation; the bound grows with the hash time when a
// full queue takes longer than half of it to drain.
const DefaultGateMaxWait = time.Second

// DefaultGateQueueFactor sizes the default queue: that many units per unit
// of budget. A closed loop of up to (factor+1) × concurrency callers — with
// the default budget, 9 × the number of CPUs — never finds the queue full,
// so it is never refused: its own population bounds how many wait.
const DefaultGateQueueFactor = 8

// BusyRetryAfter is the Retry-After carried by the server.busy error: one
// second is long enough for a saturated gate to drain a few hashes and short
// enough that a retrying client is not kept waiting needlessly.
const BusyRetryAfter = time.Second

// minOverloadHold is the shortest time the gate stays in overload mode
// after the queue last overflowed, so that the mode does not flicker
// between two arrivals when hashes are very short.
const minOverloadHold = 100 * time.Millisecond

// OverloadProbeAfter is the longest the gate stays in overload mode in one
// go: then it tries its normal queue again, and goes back into overload at
// once if that overflows too. Clients that retry a refusal at once (ignoring
// Retry-After) look exactly like an overload; the probe lets a closed loop
// that the normal queue holds out of overload mode within this time.
const OverloadProbeAfter = 10 * time.Second

// Refusal reasons, as counted in GateSnapshot.Refused.
const (
	// RefusedFull: the queue had no room (or, waits being bounded, the
	// expected wait was already beyond the bound): refused at once.
	RefusedFull = "queue_full"
	// RefusedOverload: under overload, a waiter that had waited one and a
	// half hashes: it would only have been served late, if ever (drop the
	// stalest).
	RefusedOverload = "overload"
	// RefusedTimeout: the wait bound passed outside overload (a stalled
	// machine: hashes much slower than measured).
	RefusedTimeout = "timeout"
)

// GateWaitBuckets are the upper bounds, in seconds, of the wait-time
// histogram a gate keeps (GateSnapshot.WaitCounts).
var GateWaitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

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
// is capped at the whole budget and runs alone. The gate never starts
// goroutines and never stores work: its footprint is the caller goroutines
// it lets wait, at most `queue` units of them.
//
// The queue has two regimes, told apart by whether it is full:
//
//   - Normal: callers wait in arrival order (FIFO), each at most the wait
//     bound, which is generous (twice the time a full queue takes to drain
//     at the measured hash time, at least DefaultGateMaxWait, unless
//     configured). A standing queue is fine while it drains: a closed loop
//     of callers — each one back as soon as it is answered — never holds
//     more waiters than it has members, so up to concurrency + queue of
//     them are all served, none refused, however long they queue.
//   - Overload: a caller found the queue full (and was refused at once).
//     Arrivals outpace the hashes, and serving in arrival order would make
//     every admitted caller wait for the whole queue. The queue shrinks to
//     one round of the budget (concurrency units) and the newest waiter is
//     served first (adaptive LIFO): it has waited least, so admitted
//     latency stays near one hash. Nobody is served after waiting one and
//     a half hashes under overload: such a waiter (overtaken by newer ones,
//     or left over from the burst) is refused rather than served late
//     (drop the stalest). The excess is refused at once, before the caller does any
//     other work (see Shed). The mode lasts while the short queue keeps
//     overflowing — until it has not for a drain time of the normal queue
//     — and at most OverloadProbeAfter in one go.
//
// Hash times are measured: an exponentially weighted average of how long a
// hash takes here, now, and the drain time is the normal queue's length in
// rounds of the budget times that. A stale waiter under overload is
// refused when the gate next changes state (an arrival or a finished hash,
// at most one hash later); a waiter beyond the normal wait bound also wakes
// by itself.
//
// Weights hold in both orders: the caller whose turn it is (the oldest, or
// the newest under overload) is not overtaken by a lighter one that would
// fit, so a heavy hash is not starved by a stream of light ones.
type Gate struct {
	concurrency int64 // the budget, in units
	queue       int64 // units that may wait beyond the budget
	maxWait     time.Duration
	// Hooks for tests: the clock, and the timer that bounds a wait.
	now   func() time.Time
	timer func(time.Duration) (<-chan time.Time, func() bool)

	mu      sync.Mutex
	used    int64 // units held by running callers
	queued  int64 // units held by waiters
	running int   // running callers
	waiters waitList
	// The overload mode: since when, and when the queue last overflowed
	// (zero: never).
	overSince, lastFull time.Time
	avg                 time.Duration // moving average of a run (0: none seen)
	stats               gateCounters
}

// NewGate returns a gate with a budget of concurrency units — as many
// standard hashes run at once (0 or less: runtime.NumCPU()) — that lets at
// most queue units wait (0: DefaultGateQueueFactor × concurrency; negative:
// nobody waits) and bounds each wait by maxWait (0 or less: adaptive, see
// Gate).
func NewGate(concurrency, queue int, maxWait time.Duration) *Gate {
	if concurrency <= 0 {
		concurrency = runtime.NumCPU()
	}
	switch {
	case queue == 0:
		queue = DefaultGateQueueFactor * concurrency
	case queue < 0:
		queue = 0
	}
	if maxWait < 0 {
		maxWait = 0
	}
	return &Gate{
		concurrency: int64(concurrency),
		queue:       int64(queue),
		maxWait:     maxWait,
		now:         time.Now,
		timer:       realTimer,
		stats:       gateCounters{refused: map[string]uint64{}, waitCounts: make([]uint64, len(GateWaitBuckets))},
	}
}

// Limits returns the budget (concurrency, in units), the queue length (in
// units) and the configured wait bound (0: adaptive).
func (g *Gate) Limits() (concurrency, queue int, maxWait time.Duration) {
	return int(g.concurrency), int(g.queue), g.maxWait
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
// *fault.Error, without running fn, when the gate refuses the caller (see
// Gate), and ctx.Err() when ctx ends first. fn itself is not interrupted by
// ctx: a hash, once started, finishes.
func (g *Gate) DoWeighted(ctx context.Context, units int64, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := g.clamp(units)
	g.mu.Lock()
	now := g.now()
	g.purge(now)
	if g.waiters.empty() && g.used+w <= g.concurrency {
		g.start(w, 0)
		g.mu.Unlock()
		return g.run(w, fn)
	}
	if !g.roomFor(w, now) {
		g.mu.Unlock()
		return BusyError()
	}
	wt := &waiter{units: w, since: now, done: make(chan error, 1)}
	g.waiters.pushBack(wt)
	g.queued += w
	g.dispatch(now) // under overload the newcomer is first in line
	bound := g.normalBound()
	g.mu.Unlock()

	expired, stop := g.timer(bound)
	defer stop()
	var err error
	select {
	case err = <-wt.done:
	case <-ctx.Done():
		err = g.leave(wt, ctx.Err(), "")
	case <-expired:
		err = g.leave(wt, BusyError(), RefusedTimeout)
	}
	if err != nil {
		return err
	}
	return g.run(w, fn)
}

func realTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// clamp bounds a weight to [1, budget].
func (g *Gate) clamp(units int64) int64 {
	return min(max(units, 1), g.concurrency)
}

// roomFor reports whether a caller of w units may join the queue now,
// counting the refusal (and marking the overload) when it may not. Called
// with g.mu held, after purge.
func (g *Gate) roomFor(w int64, now time.Time) bool {
	if g.queued+w > g.queueLimit(now) {
		g.overflow(now)
		return false
	}
	// In arrival order, a caller with `ahead` units before it (and its own
	// beyond the first) waits at least about ahead/concurrency runs; when
	// that is already beyond the wait bound it would only wait to be
	// refused, so refuse it now. (Under overload the newcomer goes first.)
	if !g.overloaded(now) && g.avg > 0 {
		ahead := g.queued + w - 1 + g.used - g.concurrency
		if ahead > 0 && g.avg*time.Duration(ahead)/time.Duration(g.concurrency) > g.normalBound() {
			g.stats.refused[RefusedFull]++
			return false
		}
	}
	return true
}

// overflow counts a caller refused for want of room and enters (or
// prolongs) the overload mode. g.mu held.
func (g *Gate) overflow(now time.Time) {
	if !g.overloaded(now) {
		g.overSince = now
	}
	g.lastFull = now
	g.stats.refused[RefusedFull]++
}

// queueLimit is the room for waiters now: the whole queue, or under
// overload one round of the budget. g.mu held.
func (g *Gate) queueLimit(now time.Time) int64 {
	if g.overloaded(now) {
		return min(g.queue, g.concurrency)
	}
	return g.queue
}

// start takes w units for a caller that waited `waited`. g.mu held.
func (g *Gate) start(w int64, waited time.Duration) {
	g.used += w
	g.running++
	g.stats.admitted++
	g.stats.observeWait(waited)
}

// run runs fn holding w units, then gives them back and hands them on.
func (g *Gate) run(w int64, fn func()) error {
	start := g.now()
	defer func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		now := g.now()
		g.used -= w
		g.running--
		g.observeRun(now.Sub(start))
		g.stats.busy += now.Sub(start).Seconds() * float64(w)
		g.dispatch(now)
	}()
	fn()
	return nil
}

// leave takes a waiter out of the queue on its own account (its context
// ended, or its wait bound passed) and returns err, counted under reason
// (none: not a refusal); if the gate decided about it first, the decision
// stands, except that a caller whose context ended gives its units back
// rather than running for nobody.
func (g *Gate) leave(wt *waiter, err error, reason string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if wt.queued() {
		g.waiters.remove(wt)
		g.queued -= wt.units
		if reason != "" {
			g.stats.refused[reason]++
		} else {
			g.stats.cancelled++
		}
		g.dispatch(g.now()) // it may have been the one others waited behind
		return err
	}
	decided := <-wt.done
	if decided == nil && reason == "" {
		g.used -= wt.units
		g.running--
		g.stats.cancelled++
		g.dispatch(g.now())
		return err
	}
	return decided
}

// overloaded reports whether the gate is in overload mode: the queue
// overflowed within the last drain time (at least minOverloadHold), and
// the mode began less than OverloadProbeAfter ago. g.mu held.
func (g *Gate) overloaded(now time.Time) bool {
	return !g.lastFull.IsZero() && now.Sub(g.lastFull) < max(g.drainTime(), minOverloadHold) &&
		now.Sub(g.overSince) < OverloadProbeAfter
}

// drainTime is how long a full queue takes to drain at the measured hash
// time: the number of full rounds of the budget it holds, plus the round
// running, times one hash. Before any hash was measured it is the normal
// wait bound. g.mu held.
func (g *Gate) drainTime() time.Duration {
	if g.avg <= 0 {
		return g.normalBound()
	}
	rounds := (g.queue + g.concurrency - 1) / g.concurrency
	return g.avg * time.Duration(rounds+1)
}

// normalBound is the wait bound outside overload: the configured one, or
// twice the drain time (at least DefaultGateMaxWait). g.mu held.
func (g *Gate) normalBound() time.Duration {
	if g.maxWait > 0 {
		return g.maxWait
	}
	if g.avg <= 0 {
		return DefaultGateMaxWait
	}
	rounds := (g.queue + g.concurrency - 1) / g.concurrency
	return max(DefaultGateMaxWait, 2*g.avg*time.Duration(rounds+1))
}

// purge refuses the waiters that have waited too long: under overload,
// those that have waited one and a half hashes (they would only be served
// late);
// otherwise those beyond the normal bound (which normally wake by
// themselves first). Waiters are in arrival order, so the stale ones are
// at the front. g.mu held.
func (g *Gate) purge(now time.Time) {
	bound, reason := g.normalBound(), RefusedTimeout
	if g.overloaded(now) {
		bound, reason = min(g.staleAfter(), bound), RefusedOverload
	}
	for wt := g.waiters.front(); wt != nil && now.Sub(wt.since) >= bound; wt = g.waiters.front() {
		g.waiters.remove(wt)
		g.queued -= wt.units
		g.stats.refused[reason]++
		wt.done <- BusyError()
	}
}

// staleAfter is the longest anyone waits to be served under overload: one
// and a half hashes. The newest waiter gets the next slot that frees, at
// most one hash away; one that has waited half a hash more has been
// overtaken by newer callers, and would only be served later still. At
// least 1ms. g.mu held.
func (g *Gate) staleAfter() time.Duration {
	if g.avg <= 0 {
		return g.normalBound()
	}
	return max(g.avg*3/2, time.Millisecond)
}

// dispatch refuses the stale waiters, then starts waiters while the one
// whose turn it is fits: the oldest, or under overload the newest.
// g.mu held.
func (g *Gate) dispatch(now time.Time) {
	g.purge(now)
	for {
		wt := g.waiters.front()
		if g.overloaded(now) {
			wt = g.waiters.back()
		}
		if wt == nil || g.used+wt.units > g.concurrency {
			return
		}
		g.waiters.remove(wt)
		g.queued -= wt.units
		g.start(wt.units, now.Sub(wt.since))
		wt.done <- nil
	}
}

// observeRun folds one run time into the moving average (weight 1/8).
// g.mu held.
func (g *Gate) observeRun(d time.Duration) {
	if d <= 0 {
		d = 1
	}
	if g.avg == 0 {
		g.avg = d
		return
	}
	g.avg += (d - g.avg) / 8
}

// Full reports whether a one-unit caller arriving now would be refused for
// want of room. It is a pure hint: it neither reserves nor counts anything.
func (g *Gate) Full() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.full()
}

func (g *Gate) full() bool {
	if g.waiters.empty() && g.used < g.concurrency {
		return false
	}
	return g.queued+1 > g.queueLimit(g.now())
}

// Shed is Full for a caller about to prepare a hash: it reports whether a
// one-unit caller arriving now would be refused for want of room, and if
// so counts the refusal and marks the overload, as if the caller had been
// refused by the gate itself. It lets callers skip expensive preparation
// (database writes) for a request the gate would refuse anyway, so a flood
// of refusals stays cheap and does not slow the admitted work.
func (g *Gate) Shed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.purge(now)
	if !g.full() {
		return false
	}
	g.overflow(now)
	return true
}

// Stats returns how many callers are running and how many wait (callers,
// whatever their weight).
func (g *Gate) Stats() (running, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.waiters.len
}

// GateSnapshot is the state and history of a gate, for metrics.
type GateSnapshot struct {
	Concurrency, Queue         int64 // the limits, in units
	Running, Waiting           int   // callers
	RunningUnits, WaitingUnits int64
	Overloaded                 bool
	// MeanRun is the moving average of a hash (0: none yet); DrainTime
	// what a full queue takes to drain at that pace.
	MeanRun, DrainTime time.Duration
	// Busy is the unit-seconds the finished runs held: over an interval,
	// its growth divided by Concurrency × the interval is the share of the
	// budget that was hashing.
	Busy      float64
	Admitted  uint64
	Cancelled uint64            // callers whose context ended first
	Refused   map[string]uint64 // by reason (Refused* constants)
	// The wait of admitted callers: counts per bucket of GateWaitBuckets
	// (not cumulative), their sum in seconds and their number.
	WaitCounts []uint64
	WaitSum    float64
	WaitCount  uint64
}

// Snapshot returns the gate's current state and counters.
func (g *Gate) Snapshot() GateSnapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	refused := make(map[string]uint64, 3)
	for _, r := range []string{RefusedFull, RefusedOverload, RefusedTimeout} {
		refused[r] = g.stats.refused[r]
	}
	return GateSnapshot{
		Concurrency: g.concurrency, Queue: g.queue,
		Running: g.running, Waiting: g.waiters.len, RunningUnits: g.used, WaitingUnits: g.queued,
		Overloaded: g.overloaded(g.now()), MeanRun: g.avg, DrainTime: g.drainTime(),
		Busy: g.stats.busy, Admitted: g.stats.admitted, Cancelled: g.stats.cancelled, Refused: refused,
		WaitCounts: append([]uint64(nil), g.stats.waitCounts...), WaitSum: g.stats.waitSum, WaitCount: g.stats.admitted,
	}
}

// gateCounters are a gate's cumulative counters. Guarded by Gate.mu.
type gateCounters struct {
	admitted, cancelled uint64
	refused             map[string]uint64
	busy                float64  // unit-seconds of runs finished
	waitCounts          []uint64 // per GateWaitBuckets bucket; beyond the last: only in waitSum/admitted
	waitSum             float64
}

func (c *gateCounters) observeWait(d time.Duration) {
	s := d.Seconds()
	c.waitSum += s
	for i, ub := range GateWaitBuckets {
		if s <= ub {
			c.waitCounts[i]++
			return
		}
	}
}

// waiter is a caller in the queue. done receives the gate's decision once:
// nil (its units are taken: run) or a refusal.
type waiter struct {
	units      int64
	since      time.Time
	done       chan error
	prev, next *waiter
	list       *waitList
}

func (w *waiter) queued() bool { return w.list != nil }

// waitList is a doubly linked list of waiters in arrival order: both ends
// are served (FIFO and LIFO) and a waiter whose context ends leaves from
// anywhere, all in O(1).
type waitList struct {
	head, tail *waiter
	len        int
}

func (l *waitList) empty() bool    { return l.len == 0 }
func (l *waitList) front() *waiter { return l.head }
func (l *waitList) back() *waiter  { return l.tail }
func (l *waitList) pushBack(w *waiter) {
	w.list, w.prev, w.next = l, l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.len++
}

func (l *waitList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.list = nil, nil, nil
	l.len--
}

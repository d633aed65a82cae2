package credentials

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The queue policy tests run the gate on a fake clock with timers that
// never fire: every age, hash time and mode change is set by the test, so
// the outcomes follow from the policy alone, never from the machine's speed.

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func neverFires(time.Duration) (<-chan time.Time, func() bool) {
	return nil, func() bool { return false }
}

// policyGate returns a gate on a fake clock that has measured one hash of
// exactly run.
func policyGate(t *testing.T, concurrency, queue int, maxWait, run time.Duration) (*Gate, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	g := NewGate(concurrency, queue, maxWait)
	g.now, g.timer = clk.Now, neverFires
	if err := g.Do(context.Background(), func() { clk.Advance(run) }); err != nil {
		t.Fatal(err)
	}
	return g, clk
}

// queueCaller starts a caller of units that records name on order when it
// runs and sends its result on the returned channel; it returns once the
// caller waits in the queue.
func queueCaller(t *testing.T, g *Gate, units int64, name string, order chan<- string) <-chan error {
	t.Helper()
	_, before := g.Stats()
	done := make(chan error, 1)
	go func() { done <- g.DoWeighted(context.Background(), units, func() { order <- name }) }()
	waitFor(t, func() bool { _, w := g.Stats(); return w == before+1 })
	return done
}

// arrive starts a one-unit caller and returns once the gate has decided
// about it (queued, admitted or refused).
func arrive(t *testing.T, g *Gate) {
	t.Helper()
	decided := func() uint64 {
		s := g.Snapshot()
		n := s.Admitted + s.Cancelled + uint64(s.Waiting)
		for _, r := range s.Refused {
			n += r
		}
		return n
	}
	before := decided()
	go g.Do(context.Background(), func() {})
	waitFor(t, func() bool { return decided() == before+1 })
}

func drain(t *testing.T, order <-chan string, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		select {
		case s := <-order:
			out = append(out, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("only %v ran", out)
		}
	}
	return out
}

func wantOrder(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("ran %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ran %v, want %v", got, want)
		}
	}
}

func wantRefused(t *testing.T, g *Gate, full, overload, timeout uint64) {
	t.Helper()
	r := g.Snapshot().Refused
	if r[RefusedFull] != full || r[RefusedOverload] != overload || r[RefusedTimeout] != timeout {
		t.Fatalf("refused %v, want %s %d, %s %d, %s %d", r, RefusedFull, full, RefusedOverload, overload, RefusedTimeout, timeout)
	}
}

// A burst within capacity — with the default settings, two hashes running
// and a queue of 8 per hash all taken — is admitted whole, in arrival
// order, however long the last one waits for the queue to drain.
func TestGateBurstWithinCapacityAdmitted(t *testing.T) {
	const run = 40 * time.Millisecond
	g, clk := policyGate(t, 2, 0, 0, run) // default queue, adaptive waits
	if _, q, _ := g.Limits(); q != 16 {
		t.Fatalf("default queue %d, want 16 (8 per hash)", q)
	}
	first, second := hold(t, g), hold(t, g)
	order := make(chan string, 16)
	var results []<-chan error
	wantWait := 0.0
	for i := range 16 {
		results = append(results, queueCaller(t, g, 1, string(rune('a'+i)), order))
		clk.Advance(10 * time.Millisecond)
		wantWait -= float64(10*i) / 1000
	}
	if !g.Full() {
		t.Fatal("two running and sixteen waiting do not fill the default gate")
	}
	// A queue this long takes 9 hash times (360ms) to drain; the oldest
	// has waited 760ms and is still served: the wait bound is twice that
	// drain time, at least DefaultGateMaxWait.
	clk.Advance(600 * time.Millisecond)
	wantWait += 16 * 0.760
	first() // one slot frees: the rest run through it one by one
	got := drain(t, order, 16)
	wantOrder(t, got, "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p")
	for _, r := range results {
		if err := <-r; err != nil {
			t.Fatalf("a caller within capacity was refused: %v", err)
		}
	}
	second()
	wantRefused(t, g, 0, 0, 0)
	s := g.Snapshot()
	// Three callers had no wait (the first run and the two holders).
	if s.Admitted != 19 || s.WaitCount != 19 || s.Waiting != 0 || s.Running != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	var inBuckets uint64
	for _, n := range s.WaitCounts {
		inBuckets += n
	}
	// Waits are 610..760ms after their arrival, 10ms apart: all in the
	// 1s bucket, and the sum is exact on the fake clock.
	if inBuckets != 19 || s.WaitCounts[len(GateWaitBuckets)-3] != 16 || math.Abs(s.WaitSum-wantWait) > 1e-9 {
		t.Fatalf("wait histogram %v, sum %v (want %v)", s.WaitCounts, s.WaitSum, wantWait)
	}
}

// A closed loop of as many callers as the default gate holds (its budget
// plus its queue: 9 × the budget) is never refused, whatever the order in
// which they come back: its population bounds the queue.
func TestGateClosedLoopOfNineTimesTheBudgetNeverRefused(t *testing.T) {
	g := NewGate(2, 0, 0)
	g.timer = neverFires // the machine's pace must not matter
	var refused atomic.Int64
	var wg sync.WaitGroup
	for range 18 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := g.Do(context.Background(), func() { time.Sleep(50 * time.Microsecond) }); err != nil {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d refusals in a closed loop the queue holds", n)
	}
	if s := g.Snapshot(); s.Admitted != 18*50 || s.Overloaded {
		t.Fatalf("snapshot %+v", s)
	}
}

// Once a caller found the queue full, arrivals outpace the hashes: the
// newest waiter is served first, so the admitted ones wait least.
func TestGateOverloadServesNewestFirst(t *testing.T) {
	g, _ := policyGate(t, 1, 3, 0, 40*time.Millisecond)
	release := hold(t, g)
	order := make(chan string, 3)
	var results []<-chan error
	for _, name := range []string{"a", "b", "c"} {
		results = append(results, queueCaller(t, g, 1, name, order))
	}
	if g.Snapshot().Overloaded {
		t.Fatal("overloaded before anyone was refused")
	}
	assertBusy(t, g.Do(context.Background(), func() { t.Error("ran past a full queue") }))
	if !g.Snapshot().Overloaded {
		t.Fatal("not overloaded after a refusal at a full queue")
	}
	release()
	wantOrder(t, drain(t, order, 3), "c", "b", "a")
	for _, r := range results {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	wantRefused(t, g, 1, 0, 0)
}

// Under overload the queue shrinks to one round of the budget (the excess
// is refused at once), and a waiter that has waited 1.5 hashes is refused
// at the next event rather than served late (the stalest goes).
func TestGateOverloadShortQueueDropsTheStalest(t *testing.T) {
	// One slot, three waiting normally; 40ms hashes: stale after 60ms.
	g, clk := policyGate(t, 1, 3, 0, 40*time.Millisecond)
	release := hold(t, g)
	order := make(chan string, 4)
	a := queueCaller(t, g, 1, "a", order)
	clk.Advance(50 * time.Millisecond)
	b := queueCaller(t, g, 1, "b", order)
	c := queueCaller(t, g, 1, "c", order)
	assertBusy(t, g.Do(context.Background(), func() {})) // overload begins
	if _, q, _ := g.Limits(); q != 3 || !g.Full() {
		t.Fatal("the overloaded gate has room")
	}
	clk.Advance(40 * time.Millisecond) // a has waited 90ms, b and c 40ms
	select {
	case err := <-a:
		t.Fatalf("a decided before any event: %v", err)
	default:
	}
	// An arrival: a is purged, and with b and c waiting the short queue
	// (one unit) is still full, so the newcomer is refused at once.
	if !g.Shed() {
		t.Fatal("a caller found room beyond the short queue")
	}
	assertBusy(t, <-a)
	wantRefused(t, g, 2, 1, 0)
	release()
	wantOrder(t, drain(t, order, 2), "c", "b")
	for _, r := range []<-chan error{b, c} {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	// With the queue empty, one caller may wait again (one round).
	release = hold(t, g)
	d := queueCaller(t, g, 1, "d", order)
	assertBusy(t, g.Do(context.Background(), func() {}))
	release()
	if err := <-d; err != nil {
		t.Fatal(err)
	}
}

// A run of overflows keeps the overload mode only OverloadProbeAfter in one
// go; then the normal queue is tried again (and a closed loop it holds
// stays out of overload).
func TestGateOverloadProbesTheNormalQueue(t *testing.T) {
	g, clk := policyGate(t, 1, 3, 0, 40*time.Millisecond)
	release := hold(t, g)
	defer release()
	order := make(chan string, 8)
	queueCaller(t, g, 1, "a", order)
	queueCaller(t, g, 1, "b", order)
	queueCaller(t, g, 1, "c", order)
	assertBusy(t, g.Do(context.Background(), func() {})) // overload begins; a, b, c will go stale
	for elapsed := time.Duration(0); elapsed < OverloadProbeAfter-50*time.Millisecond; elapsed += 50 * time.Millisecond {
		clk.Advance(50 * time.Millisecond)
		arrive(t, g) // takes the short queue's one place or is refused
		if !g.Shed() {
			t.Fatalf("room beyond the short queue after %v", elapsed)
		}
	}
	if !g.Snapshot().Overloaded {
		t.Fatal("the overload ended while the queue kept overflowing")
	}
	clk.Advance(50 * time.Millisecond)
	if g.Snapshot().Overloaded {
		t.Fatalf("still overloaded after %v", OverloadProbeAfter)
	}
	// The normal queue again: beyond the one place of the short queue
	// (taken, perhaps, by the last x), more may wait.
	queueCaller(t, g, 1, "y", order)
	if g.Full() || g.Snapshot().Overloaded {
		t.Fatal("the probe does not offer the normal queue")
	}
}

// The overload ends once the queue has not overflowed for a drain time;
// waiters are then served in arrival order again, and a long (but bounded)
// wait is not a reason to refuse anyone.
func TestGateOverloadEnds(t *testing.T) {
	g, clk := policyGate(t, 1, 2, 0, 40*time.Millisecond) // drains in 120ms
	release := hold(t, g)
	order := make(chan string, 2)
	a := queueCaller(t, g, 1, "a", order)
	b := queueCaller(t, g, 1, "b", order)
	assertBusy(t, g.Do(context.Background(), func() {}))
	clk.Advance(500 * time.Millisecond)
	if g.Snapshot().Overloaded {
		t.Fatal("still overloaded long after the last overflow")
	}
	release()
	wantOrder(t, drain(t, order, 2), "a", "b")
	if err, err2 := <-a, <-b; err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	wantRefused(t, g, 1, 0, 0)
}

// Outside overload a waiter is refused only past the wait bound (a stalled
// machine); that does not start the overload mode.
func TestGateWaitBoundOutsideOverload(t *testing.T) {
	g, clk := policyGate(t, 1, 2, 0, 40*time.Millisecond) // bound: max(1s, 2 × 120ms)
	release := hold(t, g)
	defer release()
	order := make(chan string, 2)
	a := queueCaller(t, g, 1, "a", order)
	clk.Advance(999 * time.Millisecond)
	b := queueCaller(t, g, 1, "b", order)
	select {
	case err := <-a:
		t.Fatalf("a refused within the bound: %v", err)
	default:
	}
	clk.Advance(time.Millisecond)
	if g.Shed() { // an event: purges a, and there is room again
		t.Fatal("Shed refused with room in the queue")
	}
	assertBusy(t, <-a)
	wantRefused(t, g, 0, 0, 1)
	if g.Snapshot().Overloaded {
		t.Fatal("a timeout started the overload mode")
	}
	_ = b
}

// Shed tells a caller about to prepare a hash that it would be refused,
// and counts that as a refusal at a full queue, which starts the overload.
func TestGateShed(t *testing.T) {
	g, _ := policyGate(t, 1, 1, 0, 40*time.Millisecond)
	if g.Shed() {
		t.Fatal("an idle gate sheds")
	}
	release := hold(t, g)
	if g.Shed() {
		t.Fatal("a gate with queue room sheds")
	}
	order := make(chan string, 1)
	a := queueCaller(t, g, 1, "a", order)
	if !g.Shed() || !g.Full() {
		t.Fatal("a full gate does not shed")
	}
	s := g.Snapshot()
	if !s.Overloaded || s.Refused[RefusedFull] != 1 || s.Waiting != 1 || s.Running != 1 {
		t.Fatalf("snapshot after shedding: %+v", s)
	}
	release()
	if err := <-a; err != nil {
		t.Fatal(err)
	}
}

// Under overload the newest waiter goes first, and weights still hold: a
// heavy newest waiter that does not fit yet is not overtaken by a light one
// below it that would.
func TestGateOverloadKeepsWeights(t *testing.T) {
	g, _ := policyGate(t, 2, 4, 0, 40*time.Millisecond)
	h1, h2 := hold(t, g), hold(t, g)
	order := make(chan string, 2)
	light := queueCaller(t, g, 1, "light", order)
	heavy := queueCaller(t, g, 2, "heavy", order)
	assertBusy(t, g.DoWeighted(context.Background(), 2, func() {})) // 3 + 2 > 4
	h1()
	if r, w := g.Stats(); r != 1 || w != 2 {
		t.Fatalf("after one unit freed: %d running, %d waiting; want the light one still waiting", r, w)
	}
	h2()
	wantOrder(t, drain(t, order, 2), "heavy", "light")
	if err, err2 := <-light, <-heavy; err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
}

// Under overload nobody is served after waiting 1.5 hashes: when
// the burst ends and even the newest waiter has waited that long, the
// whole queue left over is refused rather than served late.
func TestGateOverloadNeverServesLate(t *testing.T) {
	g, clk := policyGate(t, 1, 3, 0, 40*time.Millisecond)
	release := hold(t, g)
	order := make(chan string, 3)
	a := queueCaller(t, g, 1, "a", order)
	b := queueCaller(t, g, 1, "b", order)
	c := queueCaller(t, g, 1, "c", order)
	assertBusy(t, g.Do(context.Background(), func() {})) // overload
	// The held hash takes 80ms: the average becomes 45ms, one and a half of
	// which (67.5ms) is less than the 80ms everyone has waited by then.
	clk.Advance(80 * time.Millisecond)
	release()
	for _, r := range []<-chan error{a, b, c} {
		assertBusy(t, <-r)
	}
	select {
	case name := <-order:
		t.Fatalf("%s was served after waiting 80ms under overload", name)
	default:
	}
	wantRefused(t, g, 1, 3, 0)
	// The gate is not stuck: the next caller runs at once.
	if err := g.Do(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
}

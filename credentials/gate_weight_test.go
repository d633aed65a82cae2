package credentials

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// holdWeighted occupies units of g until the returned release is called.
func holdWeighted(t *testing.T, g *Gate, units int64) (release func()) {
	t.Helper()
	started := make(chan struct{})
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if err := g.DoWeighted(context.Background(), units, func() { close(started); <-stop }); err != nil {
			t.Errorf("hold %d units: %v", units, err)
			close(started)
		}
	}()
	<-started
	return func() { close(stop); <-finished }
}

// runAsync calls DoWeighted in the background; ran is closed when fn runs
// and the result arrives on done.
func runAsync(g *Gate, units int64) (ran chan struct{}, done chan error) {
	ran, done = make(chan struct{}), make(chan error, 1)
	go func() { done <- g.DoWeighted(context.Background(), units, func() { close(ran) }) }()
	return ran, done
}

func notYet(t *testing.T, ran chan struct{}, what string) {
	t.Helper()
	// Give a wrongly admitted caller the chance to run.
	time.Sleep(20 * time.Millisecond)
	select {
	case <-ran:
		t.Fatalf("%s ran while the gate had no room for it", what)
	default:
	}
}

// With a budget of 2 units, a 2-unit hash fills the gate: a 1-unit one
// waits until it finishes.
func TestGateWeightBlocksUntilTheRoomIsFree(t *testing.T) {
	g := NewGate(2, 4, 5*time.Second)
	release := holdWeighted(t, g, 2)
	ran, done := runAsync(g, 1)
	waitFor(t, func() bool { _, w := g.Stats(); return w == 1 })
	notYet(t, ran, "a 1-unit hash")
	if r, w := g.Stats(); r != 1 || w != 1 {
		t.Fatalf("Stats = %d running, %d waiting; want 1, 1 (callers, not units)", r, w)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Two 1-unit hashes, on the other hand, run side by side.
	r1 := holdWeighted(t, g, 1)
	r2 := holdWeighted(t, g, 1)
	if r, _ := g.Stats(); r != 2 {
		t.Fatalf("running = %d, want two 1-unit hashes at once", r)
	}
	r1()
	r2()
}

// A hash heavier than the whole budget is capped at the budget: it waits
// for the gate to drain, runs alone, and deadlocks nobody.
func TestGateHugeWeightRunsAlone(t *testing.T) {
	g := NewGate(2, 4, 5*time.Second)
	// On an empty gate it runs at once.
	if err := g.DoWeighted(context.Background(), 1000, func() {}); err != nil {
		t.Fatalf("a huge hash on an empty gate: %v", err)
	}
	small := holdWeighted(t, g, 1)
	var alone atomic.Bool
	hugeRan, hugeDone := make(chan struct{}), make(chan error, 1)
	stopHuge := make(chan struct{})
	go func() {
		hugeDone <- g.DoWeighted(context.Background(), 1000, func() {
			r, _ := g.Stats()
			alone.Store(r == 1)
			close(hugeRan)
			<-stopHuge
		})
	}()
	waitFor(t, func() bool { _, w := g.Stats(); return w == 1 })
	notYet(t, hugeRan, "the huge hash")
	small()
	<-hugeRan
	if !alone.Load() {
		t.Fatal("the huge hash did not run alone")
	}
	// While it runs, even a 1-unit hash waits.
	ran, done := runAsync(g, 1)
	notYet(t, ran, "a 1-unit hash beside the huge one")
	close(stopHuge)
	if err := <-hugeDone; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, w := g.Stats(); r != 0 || w != 0 {
		t.Fatalf("gate not empty afterwards: %d running, %d waiting", r, w)
	}
}

// Room is handed out in arrival order: a light hash that would fit does
// not overtake a heavy one waiting for the room it needs (no starvation).
func TestGateWeightFIFO(t *testing.T) {
	g := NewGate(2, 4, 5*time.Second)
	release := holdWeighted(t, g, 1)
	order := make(chan int64, 2)
	done := make(chan error, 2)
	for i, units := range []int64{2, 1} {
		go func() { done <- g.DoWeighted(context.Background(), units, func() { order <- units }) }()
		want := i + 1
		waitFor(t, func() bool { _, w := g.Stats(); return w == want })
		time.Sleep(20 * time.Millisecond) // let it block in the semaphore
	}
	select {
	case u := <-order:
		t.Fatalf("the %d-unit hash ran although the 2-unit one waits before it", u)
	default:
	}
	release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if a, b := <-order, <-order; a != 2 || b != 1 {
		t.Fatalf("ran in order %d, %d units; want 2, 1", a, b)
	}
}

// Admission counts units: the queue holds units, not callers.
func TestGateAdmissionCountsUnits(t *testing.T) {
	g := NewGate(2, 2, 5*time.Second)
	release := holdWeighted(t, g, 2)
	ran, done := runAsync(g, 2) // 2 running + 2 waiting = 4 = budget + queue
	waitFor(t, func() bool { _, w := g.Stats(); return w == 1 })
	if !g.Full() {
		t.Fatal("a gate with budget and queue taken does not report full")
	}
	assertBusy(t, g.Do(context.Background(), func() {}))
	release()
	<-ran
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.Full() {
		t.Fatal("a drained gate reports full")
	}
}

// A weighted caller that times out leaves no units behind.
func TestGateWeightedTimeoutReleases(t *testing.T) {
	g := NewGate(2, 4, 30*time.Millisecond)
	release := holdWeighted(t, g, 1)
	assertBusy(t, g.DoWeighted(context.Background(), 2, func() { t.Error("ran without room") }))
	if _, w := g.Stats(); w != 0 {
		t.Fatalf("waiting = %d after the timeout", w)
	}
	// The free unit is usable at once, and after release the whole budget.
	if err := g.Do(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
	release()
	if err := g.DoWeighted(context.Background(), 2, func() {}); err != nil {
		t.Fatal(err)
	}
}

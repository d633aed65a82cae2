package credentials

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Exactly concurrency+queue callers looping back to back never overflow the
// gate: a caller that just finished and comes straight back must find its
// own place free again.
func TestGateAdmitsExactlyConcurrencyPlusQueue(t *testing.T) {
	g := NewGate(2, 4, 2*time.Second)
	var busy atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if err := g.Do(context.Background(), func() { time.Sleep(2 * time.Millisecond) }); err != nil {
					busy.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := busy.Load(); n != 0 {
		t.Fatalf("%d callers refused although never more than concurrency+queue were in the gate", n)
	}
	if r, w := g.Stats(); r != 0 || w != 0 {
		t.Fatalf("gate not empty afterwards: %d running, %d waiting", r, w)
	}
}

// Full tells, without reserving anything, that a newcomer would be refused.
func TestGateFullHint(t *testing.T) {
	g := NewGate(1, 1, time.Second)
	if g.Full() {
		t.Fatal("an empty gate reports full")
	}
	started, release := make(chan struct{}), make(chan struct{})
	go g.Do(context.Background(), func() { close(started); <-release })
	<-started
	waiting := make(chan error, 1)
	go func() { waiting <- g.Do(context.Background(), func() {}) }()
	deadline := time.Now().Add(2 * time.Second)
	for !g.Full() {
		if time.Now().After(deadline) {
			t.Fatal("a gate with one running and one waiting caller does not report full")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-waiting; err != nil {
		t.Fatal(err)
	}
	if g.Full() {
		t.Fatal("a drained gate reports full")
	}
}

package credentials

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-dev/latch/fault"
)

func assertBusy(t *testing.T, err error) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("want a server.busy *fault.Error, got %v", err)
	}
	if fe.Code != fault.CodeServerBusy || fe.Status != http.StatusServiceUnavailable || fe.RetryAfter != time.Second {
		t.Fatalf("busy error = %+v, want code %s, status 503, RetryAfter 1s", fe, fault.CodeServerBusy)
	}
}

func TestNewGateDefaults(t *testing.T) {
	cpus := runtime.NumCPU()
	tests := []struct {
		name                string
		concurrency, queue  int
		maxWait             time.Duration
		wantConc, wantQueue int
		wantWait            time.Duration
	}{
		{"all defaults", 0, 0, 0, cpus, DefaultGateQueueFactor * cpus, 0},
		{"explicit", 3, 7, 250 * time.Millisecond, 3, 7, 250 * time.Millisecond},
		{"queue defaults to 8x concurrency", 2, 0, time.Second, 2, 16, time.Second},
		{"negative queue means no waiting", 2, -1, time.Second, 2, 0, time.Second},
		{"negative concurrency and wait take defaults", -5, 1, -time.Second, cpus, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, q, w := NewGate(tt.concurrency, tt.queue, tt.maxWait).Limits()
			if c != tt.wantConc || q != tt.wantQueue || w != tt.wantWait {
				t.Fatalf("Limits() = %d, %d, %v; want %d, %d, %v", c, q, w, tt.wantConc, tt.wantQueue, tt.wantWait)
			}
		})
	}
}

// The acceptance scenario of the issue: concurrency 1, queue 1, a burst of
// 20 slow functions. Some run, the rest are refused quickly, none hang, and
// never more than one runs at a time.
func TestGateBurst(t *testing.T) {
	g := NewGate(1, 1, time.Second)
	const burst = 20
	const work = 50 * time.Millisecond
	var (
		running, maxRunning atomic.Int32
		ok, busy            atomic.Int32
		slowestBusy         atomic.Int64
		wg                  sync.WaitGroup
		start               = make(chan struct{})
	)
	for range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			err := g.Do(context.Background(), func() {
				n := running.Add(1)
				for {
					m := maxRunning.Load()
					if n <= m || maxRunning.CompareAndSwap(m, n) {
						break
					}
				}
				time.Sleep(work)
				running.Add(-1)
			})
			switch {
			case err == nil:
				ok.Add(1)
			default:
				assertBusy(t, err)
				busy.Add(1)
				if d := int64(time.Since(t0)); d > slowestBusy.Load() {
					slowestBusy.Store(d)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	close(start)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("gate burst hung")
	}
	if ok.Load() < 1 || busy.Load() < 1 || ok.Load()+busy.Load() != burst {
		t.Fatalf("ok=%d busy=%d; want some of each, %d in all", ok.Load(), busy.Load(), burst)
	}
	// With one slot and one queue place at most a handful can be admitted.
	if ok.Load() > 4 {
		t.Fatalf("ok=%d; a queue of 1 should admit at most a few of a simultaneous burst", ok.Load())
	}
	if maxRunning.Load() != 1 {
		t.Fatalf("max concurrent runs = %d, want 1", maxRunning.Load())
	}
	// Refusals of a full queue are immediate, not after maxWait.
	if d := time.Duration(slowestBusy.Load()); d > 500*time.Millisecond {
		t.Fatalf("slowest busy refusal took %v", d)
	}
	if r, w := g.Stats(); r != 0 || w != 0 {
		t.Fatalf("Stats after burst = %d running, %d waiting; want 0, 0", r, w)
	}
}

// hold occupies one slot of g until the returned release is called.
func hold(t *testing.T, g *Gate) (release func()) {
	t.Helper()
	started := make(chan struct{})
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if err := g.Do(context.Background(), func() { close(started); <-stop }); err != nil {
			t.Errorf("hold: %v", err)
			close(started)
		}
	}()
	<-started
	return func() { close(stop); <-finished }
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGateRefusals(t *testing.T) {
	tests := []struct {
		name    string
		queue   int
		maxWait time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		want    func(t *testing.T, err error, elapsed time.Duration)
	}{
		{
			name: "no queue refuses at once", queue: -1, maxWait: time.Second,
			ctx: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			want: func(t *testing.T, err error, elapsed time.Duration) {
				assertBusy(t, err)
				if elapsed > 200*time.Millisecond {
					t.Fatalf("refusal took %v", elapsed)
				}
			},
		},
		{
			name: "wait is bounded by maxWait", queue: 4, maxWait: 40 * time.Millisecond,
			ctx: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			want: func(t *testing.T, err error, elapsed time.Duration) {
				assertBusy(t, err)
				if elapsed < 40*time.Millisecond || elapsed > time.Second {
					t.Fatalf("refusal after %v, want about 40ms", elapsed)
				}
			},
		},
		{
			name: "context deadline while waiting", queue: 4, maxWait: 5 * time.Second,
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 30*time.Millisecond)
			},
			want: func(t *testing.T, err error, elapsed time.Duration) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want context.DeadlineExceeded", err)
				}
				if elapsed > time.Second {
					t.Fatalf("cancellation honoured after %v", elapsed)
				}
			},
		},
		{
			name: "context already cancelled", queue: 4, maxWait: 5 * time.Second,
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			want: func(t *testing.T, err error, _ time.Duration) {
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGate(1, tt.queue, tt.maxWait)
			release := hold(t, g)
			defer release()
			ctx, cancel := tt.ctx()
			defer cancel()
			ran := false
			t0 := time.Now()
			err := g.Do(ctx, func() { ran = true })
			tt.want(t, err, time.Since(t0))
			if ran {
				t.Fatal("fn ran although Do failed")
			}
			if _, w := g.Stats(); w != 0 {
				t.Fatalf("waiting = %d after refusal, want 0", w)
			}
		})
	}
}

func TestGateCancelledContextDoesNotRunEvenWithFreeSlot(t *testing.T) {
	g := NewGate(1, 1, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := g.Do(ctx, func() { ran = true }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("err = %v, ran = %v; want context.Canceled and not run", err, ran)
	}
}

// Outside overload (nobody was refused for want of room), waiters are
// served in arrival order.
func TestGateStatsAndFIFOHandoff(t *testing.T) {
	g := NewGate(1, 2, 5*time.Second)
	release := hold(t, g)
	order := make(chan int, 2)
	var wg sync.WaitGroup
	for i := 1; i <= 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Do(context.Background(), func() { order <- i }); err != nil {
				t.Errorf("waiter %d: %v", i, err)
			}
		}()
		want := i
		waitFor(t, func() bool { _, w := g.Stats(); return w == want })
	}
	if r, w := g.Stats(); r != 1 || w != 2 {
		t.Fatalf("Stats = %d running, %d waiting; want 1, 2", r, w)
	}
	if !g.Full() {
		t.Fatal("a gate with its slot and queue taken does not report full")
	}
	release()
	wg.Wait()
	if a, b := <-order, <-order; a != 1 || b != 2 {
		t.Fatalf("waiters ran in order %d, %d; want 1, 2", a, b)
	}
	// The queue full, a third caller is refused at once.
	release = hold(t, g)
	defer release()
	for range 2 {
		go g.Do(context.Background(), func() {})
	}
	waitFor(t, func() bool { _, w := g.Stats(); return w == 2 })
	assertBusy(t, g.Do(context.Background(), func() {}))
}

func TestGatePanicReleasesSlot(t *testing.T) {
	g := NewGate(1, 0, time.Second)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("panic was swallowed")
			}
		}()
		_ = g.Do(context.Background(), func() { panic("boom") })
	}()
	if r, _ := g.Stats(); r != 0 {
		t.Fatalf("running = %d after panic, want 0", r)
	}
	if err := g.Do(context.Background(), func() {}); err != nil {
		t.Fatalf("gate unusable after panic: %v", err)
	}
}

// Once the gate knows how long a run takes, a caller that would certainly
// wait longer than maxWait is refused at once instead of after maxWait.
func TestGateRefusesEarlyWhenExpectedWaitTooLong(t *testing.T) {
	g := NewGate(1, 10, 60*time.Millisecond)
	if err := g.Do(context.Background(), func() { time.Sleep(100 * time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	release := hold(t, g)
	defer release()
	firstDone := make(chan error, 1)
	go func() { firstDone <- g.Do(context.Background(), func() {}) }()
	waitFor(t, func() bool { _, w := g.Stats(); return w == 1 })
	t0 := time.Now()
	err := g.Do(context.Background(), func() {})
	assertBusy(t, err)
	if d := time.Since(t0); d > 30*time.Millisecond {
		t.Fatalf("early refusal took %v", d)
	}
	assertBusy(t, <-firstDone) // the first waiter still times out after maxWait
}

// Memory stays bounded: however many callers arrive, at most queue of them
// wait and at most concurrency run; everything else returns at once.
func TestGateBoundedUnderLoad(t *testing.T) {
	const concurrency, queue, callers = 2, 3, 500
	g := NewGate(concurrency, queue, 20*time.Millisecond)
	var maxRunning, maxWaiting atomic.Int32
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, w := g.Stats()
			if int32(r) > maxRunning.Load() {
				maxRunning.Store(int32(r))
			}
			if int32(w) > maxWaiting.Load() {
				maxWaiting.Store(int32(w))
			}
			runtime.Gosched()
		}
	}()
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	var ok, busy atomic.Int32
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Do(context.Background(), func() { time.Sleep(2 * time.Millisecond) }); err != nil {
				busy.Add(1)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	if maxRunning.Load() > concurrency || maxWaiting.Load() > queue {
		t.Fatalf("max running %d (limit %d), max waiting %d (limit %d)", maxRunning.Load(), concurrency, maxWaiting.Load(), queue)
	}
	if ok.Load()+busy.Load() != callers || ok.Load() == 0 || busy.Load() == 0 {
		t.Fatalf("ok=%d busy=%d", ok.Load(), busy.Load())
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+1 })
}

package credentials

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latch-dev/latch/fault"
)

// The worker tests run real worker processes: this test binary, started
// again with LATCH_TEST_HASH_WORKER set, serves the protocol (TestMain).
const workerEnv = "LATCH_TEST_HASH_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "mute" {
		time.Sleep(time.Minute) // a worker that never says hello
		os.Exit(0)
	}
	if n := os.Getenv(workerEnv); n != "" {
		slots, _ := strconv.Atoi(n)
		if err := ServeHashWorker(WorkerSlots(slots), lightParams); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testWorker is a HashWorker running this test binary as its process, and
// the number of processes it started.
func testWorker(t *testing.T, slots int, stuckAfter time.Duration) (*HashWorker, *atomic.Int32) {
	t.Helper()
	var starts atomic.Int32
	w := NewHashWorker(func() *exec.Cmd {
		starts.Add(1)
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"="+strconv.Itoa(slots))
		return cmd
	}, slots, stuckAfter, nil)
	t.Cleanup(func() { _ = w.Close() })
	return w, &starts
}

// slowHash is a stored argon2id hash that takes a good second to verify
// (and matches no password): a job to catch a worker in the middle of.
func slowHash(t *testing.T) string {
	t.Helper()
	salt, key := make([]byte, 16), make([]byte, 32)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return fmt.Sprintf("$argon2id$v=19$m=65536,t=24,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// oneSlotWorker starts a one-slot worker and returns it, a hasher over
// it, its start count and its pid.
func oneSlotWorker(t *testing.T, stuckAfter time.Duration) (*HashWorker, *Hasher, *atomic.Int32, int) {
	t.Helper()
	w, starts := testWorker(t, 1, stuckAfter)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	return w, NewHasher(lightParams, nil, WithWorker(w)), starts, w.PID()
}

// slowJob verifies slowHash through h in the background and returns its
// error, once the job has had time to start in the worker.
func slowJob(t *testing.T, h *Hasher) <-chan error {
	t.Helper()
	encoded := slowHash(t)
	done := make(chan error, 1)
	go func() {
		_, _, err := h.Verify(context.Background(), "x", encoded)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	return done
}

// isUnavailable reports whether err is the 503 a client may retry.
func isUnavailable(err error) bool {
	var fe *fault.Error
	return errors.As(err, &fe) && fe.Code == fault.CodeUnavailable && fe.Status == http.StatusServiceUnavailable && fe.RetryAfter > 0
}

func TestHashWorkerComputesWhatTheServerWould(t *testing.T) {
	ctx := context.Background()
	w, _ := testWorker(t, 2, 0)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	here := NewHasher(lightParams, nil)
	there := NewHasher(lightParams, NewGate(2, 0, 0), WithWorker(w))

	// A hash made in the worker verifies here, and the other way round.
	made, err := there.Hash(ctx, importPassword)
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := here.Verify(ctx, importPassword, made); !ok || rehash || err != nil {
		t.Fatalf("a worker's hash verified here: ok %v, rehash %v, err %v", ok, rehash, err)
	}
	local, err := here.Hash(ctx, importPassword)
	if err != nil {
		t.Fatal(err)
	}
	cases := append(importedHashes(t), struct{ name, encoded string }{"argon2id made here", local},
		struct{ name, encoded string }{"argon2id made there", made})
	for _, tc := range cases {
		for _, pw := range []string{importPassword, "wrong password"} {
			t.Run(tc.name+"/"+pw, func(t *testing.T) {
				ok1, re1, work1, err1 := here.verify(ctx, pw, tc.encoded)
				ok2, re2, work2, err2 := there.verify(ctx, pw, tc.encoded)
				if ok1 != ok2 || re1 != re2 || work1 != work2 || (err1 == nil) != (err2 == nil) {
					t.Fatalf("inline (%v, %v, %d, %v) ≠ worker (%v, %v, %d, %v)", ok1, re1, work1, err1, ok2, re2, work2, err2)
				}
				if ok2 != (pw == importPassword) {
					t.Fatalf("verify(%q) = %v", pw, ok2)
				}
			})
		}
	}
	// The padding of cheap imported hashes runs there too: the work
	// reported is the worker's, and it reaches the dummy's.
	if _, _, work, err := there.verify(ctx, "x", there.dummyHash()); err != nil || work != there.workTarget() {
		t.Fatalf("dummy through the worker: work %d, err %v; want %d", work, err, there.workTarget())
	}
	// A malformed stored hash is the caller's error, not the worker's:
	// refused here, before any job.
	if _, _, err := there.Verify(ctx, "x", "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA"); !errors.Is(err, ErrMalformedHash) {
		t.Fatalf("malformed hash: %v", err)
	}
}

func TestHashWorkerRunsItsSlotsInParallel(t *testing.T) {
	ctx := context.Background()
	w, starts := testWorker(t, 2, 0)
	h := NewHasher(lightParams, NewGate(2, 64, time.Minute), WithWorker(w))
	stored, err := h.Hash(ctx, "correct")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pw := "correct"
			if i%2 == 1 {
				pw = "wrong"
			}
			ok, _, err := h.Verify(ctx, pw, stored)
			if err == nil && ok != (i%2 == 0) {
				err = fmt.Errorf("verify(%q) = %v", pw, ok)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("%d worker processes started for one server; want 1", n)
	}
}

func TestHashWorkerKilledMidJobAnswersUnavailableThenRecovers(t *testing.T) {
	ctx := context.Background()
	w, h, starts, pid := oneSlotWorker(t, 0)
	done := slowJob(t, h)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !isUnavailable(err) {
			t.Fatalf("job of a killed worker: %v; want server.unavailable with Retry-After", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the job of a killed worker still waits")
	}
	// Within the backoff no process is forked per request: they are told
	// to retry at once.
	if _, err := h.Hash(ctx, "x"); !isUnavailable(err) {
		t.Fatalf("hash right after the death: %v; want unavailable", err)
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("%d starts within the backoff; want 1", n)
	}
	time.Sleep(workerRestartBackoff + 100*time.Millisecond)
	encoded, err := h.Hash(ctx, "after")
	if err != nil {
		t.Fatalf("hash after the backoff: %v", err)
	}
	if ok, _, err := h.Verify(ctx, "after", encoded); !ok || err != nil {
		t.Fatalf("verify after the restart: %v, %v", ok, err)
	}
	if w.PID() == pid || w.PID() == 0 || starts.Load() != 2 {
		t.Fatalf("pid %d (was %d), %d starts: want a second process", w.PID(), pid, starts.Load())
	}
}

func TestHashWorkerStuckIsKilled(t *testing.T) {
	ctx := context.Background()
	_, h, _, pid := oneSlotWorker(t, 500*time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := h.Hash(ctx, "x"); !isUnavailable(err) {
		t.Fatalf("hash on a stopped worker: %v; want unavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("waited %s for a stopped worker; the bound is 500ms", d)
	}
	// The stopped process was killed, not left behind.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil && processState(pid) != "Z" {
		if time.Now().After(deadline) {
			t.Fatalf("stuck worker %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processState returns the state letter of a process from /proc ("" if
// gone or unknown).
func processState(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	for i := len(raw) - 1; i >= 0; i-- {
		if raw[i] == ')' && i+2 < len(raw) {
			return string(raw[i+2])
		}
	}
	return ""
}

func TestHashWorkerThatCannotStart(t *testing.T) {
	ctx := context.Background()
	var starts atomic.Int32
	w := NewHashWorker(func() *exec.Cmd {
		starts.Add(1)
		return exec.Command("/bin/true") // exits without a hello
	}, 1, 0, nil)
	defer w.Close()
	if err := w.Start(); !isUnavailable(err) {
		t.Fatalf("Start of a worker that never says hello: %v; want an error", err)
	}
	h := NewHasher(lightParams, nil, WithWorker(w))
	for range 20 {
		if _, err := h.Hash(ctx, "x"); !isUnavailable(err) {
			t.Fatalf("hash without a worker: %v; want unavailable", err)
		}
	}
	if n := starts.Load(); n != 1 {
		t.Fatalf("%d starts within the backoff; want 1 (no fork per request)", n)
	}
	missing := NewHashWorker(func() *exec.Cmd { return exec.Command("/nonexistent/latch") }, 1, 0, nil)
	defer missing.Close()
	if err := missing.Start(); err == nil {
		t.Fatal("Start of a missing executable succeeded")
	}
}

func TestHashWorkerCloseWaitsForRunningJobs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	ctx := context.Background()
	w, h, _, pid := oneSlotWorker(t, 0)
	done := slowJob(t, h)
	closed := make(chan struct{})
	go func() { _ = w.Close(); close(closed) }()
	if err := <-done; err != nil {
		t.Fatalf("a job running at Close: %v; want it finished", err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the last job")
	}
	if s := processState(pid); s != "" {
		t.Fatalf("worker %d still there (state %s) after Close", pid, s)
	}
	if _, err := h.Hash(ctx, "x"); !isUnavailable(err) {
		t.Fatalf("hash after Close: %v; want unavailable", err)
	}
}

// A caller whose context ends while its job runs is answered at once; the
// job runs on and keeps its slot until it ends, so the worker never runs
// more jobs than it has slots (the memory bound), and nothing is killed.
func TestHashWorkerAbandonedJobKeepsItsSlot(t *testing.T) {
	w, h, starts, pid := oneSlotWorker(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// Waiting for the job's end would answer its result (no match), not
	// the deadline.
	if _, _, err := h.Verify(ctx, "x", slowHash(t)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("verify past its deadline: %v; want context.DeadlineExceeded", err)
	}
	// The slot is still busy with the abandoned job.
	short, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	if _, err := h.Hash(short, "y"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hash while the only slot runs an abandoned job: %v; want it to wait (deadline exceeded)", err)
	}
	// Once it ends the slot serves again, in the same process.
	if _, err := h.Hash(context.Background(), "z"); err != nil {
		t.Fatalf("hash after the abandoned job ended: %v", err)
	}
	if w.PID() != pid || starts.Load() != 1 {
		t.Fatalf("pid %d (was %d), %d starts: an abandoned job must not cost the worker", w.PID(), pid, starts.Load())
	}
}

// A worker slow to say hello holds nobody past their deadline: the start
// runs on its own, callers wait for it until their context ends, and the
// metrics' reads do not wait at all. Once the hello bound passes, the start
// has failed and hashes answer unavailable.
func TestHashWorkerSlowToStartHoldsNoRequest(t *testing.T) {
	w := NewHashWorker(func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=mute")
		return cmd
	}, 1, 0, nil)
	w.hello = 2 * time.Second
	t.Cleanup(func() { _ = w.Close() })
	h := NewHasher(lightParams, nil, WithWorker(w))
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, err := h.Hash(ctx, "x")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("hash %d during a start that hangs: %v; want the request's own deadline", i, err)
		}
		if pid, starts := w.PID(), w.Starts(); pid != 0 || starts != 0 {
			t.Fatalf("during the start: pid %d, %d starts; want none", pid, starts)
		}
	}
	if err := w.Ready(context.Background()); !isUnavailable(err) {
		t.Fatalf("ready after the hello bound: %v; want unavailable", err)
	}
	if _, err := h.Hash(context.Background(), "x"); !isUnavailable(err) {
		t.Fatalf("hash after the failed start: %v; want unavailable", err)
	}
}

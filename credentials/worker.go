package credentials

import (
	"bufio"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"

	"github.com/latch-dev/latch/fault"
)

// A hash worker is a child process that computes the hashes of a server,
// the gate staying in the server. Why a process of its own: Go has one
// scheduler per process, and the two kinds of work a sign-in server does
// want opposite things of it.
//
//   - Hashes want no idle P. x/crypto's argon2 starts a goroutine for every
//     segment of every pass (eight per hash with the default parameters)
//     and waits for it; with a P idle, each start and each wake-up wakes an
//     OS thread that finds nothing to do and preempts a hashing thread on
//     its way. Measured on two CPUs with two hashing goroutines: one spare
//     P costs 8–13% of the hash rate and 1–1.5 ms of CPU per hash, with
//     three times the context switches.
//   - Requests want a spare P. With every P hashing, a request that
//     becomes runnable waits for the runtime to preempt a hash — 10 ms or
//     more, at every step — so refusals under overload take 12–20 ms
//     instead of 1–2 and admitted latency breaks its target.
//
// In two processes each has its own scheduler: the worker runs exactly as
// many Ps as the gate runs hashes, and the server keeps its Ps for
// requests; the kernel interleaves the two at its own, fine granularity.
// The server's heap also stops churning through tens of MiB per hash, so
// its garbage collector has almost nothing to do.
//
// The protocol runs over one pair of pipes per gate slot (the worker's
// file descriptors 3 and 4 for the first slot, 5 and 6 for the second, and
// so on): the server writes a job to a slot's request pipe, the worker
// computes it on that slot's goroutine and writes the result to the slot's
// reply pipe, a gob stream each way; on start every slot first says hello.
// In the worker, no multiplexing and no goroutine hand-off: the slot's
// goroutine waits for its job in a blocking read, so the kernel wakes it the moment
// the job is written, where a goroutine parked on the runtime's poller
// would wait for a P that both hashes hold — 10 ms or more.

// workerHelloTimeout bounds how long a starting worker may take to say it
// is ready.
const workerHelloTimeout = 10 * time.Second

// workerRestartBackoff is how long after a worker failed to start or died
// the next start is tried: requests in between are answered "unavailable"
// at once rather than each forking a process that is likely to fail too.
const workerRestartBackoff = time.Second

// DefaultWorkerStuckAfter is how long a job may run in a worker before the
// worker is deemed stuck (stopped, swapped out, deadlocked) and killed, so
// that the gate's slots are not held forever: hundreds of hashes' time.
const DefaultWorkerStuckAfter = 30 * time.Second

// workerFirstFD is the worker's file descriptor of the first slot's
// request pipe (after stdin, stdout and stderr).
const workerFirstFD = 3

// HashWorker runs hashing jobs in a child process (see above), started on
// first use and started again, after workerRestartBackoff, whenever it
// dies. A job that a dead, stuck or unstartable worker could not finish
// fails with a server.unavailable *fault.Error (503, Retry-After): nothing
// was checked, and a retry a second later will find a new worker.
type HashWorker struct {
	command    func() *exec.Cmd // a fresh command for each start
	slots      int
	log        *slog.Logger
	stuckAfter time.Duration
	hello      time.Duration // how long a start waits for the hello (workerHelloTimeout)

	mu       sync.Mutex
	proc     *workerProc   // nil: none running
	starting chan struct{} // closed when the start under way ends (nil: none)
	failedAt time.Time     // when the last worker died or failed to start
	failure  error         // why
	closed   bool
	starts   uint64 // processes started (and ready)
}

// NewHashWorker returns a worker of slots slots — as many jobs at once,
// the gate's budget — whose process command makes (an exec.Cmd with Path
// and Args set: HashWorker adds the slots' pipes as ExtraFiles, and stderr
// to the server's stderr unless set). The process must serve the worker
// protocol on them (ServeHashWorker). stuckAfter bounds a job (0:
// DefaultWorkerStuckAfter).
func NewHashWorker(command func() *exec.Cmd, slots int, stuckAfter time.Duration, log *slog.Logger) *HashWorker {
	if stuckAfter <= 0 {
		stuckAfter = DefaultWorkerStuckAfter
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HashWorker{command: command, slots: max(slots, 1), log: log, stuckAfter: stuckAfter, hello: workerHelloTimeout}
}

// workerProc is one running worker process.
type workerProc struct {
	cmd  *exec.Cmd
	free chan *workerSlot // the slots no job is using

	mu     sync.Mutex
	dead   chan struct{} // closed when the process is gone (or going)
	err    error         // why, once dead is closed
	deadAt time.Time     // when, once dead is closed
	exited chan struct{} // closed once the process is reaped
	ready  bool          // every slot said hello (guarded by HashWorker.mu)
	files  []*os.File    // the server's ends of the pipes
}

// workerSlot is the server's end of one slot. At most one job is on a
// slot at a time (whoever took it from free), so results holds at most
// one answer.
type workerSlot struct {
	req     *os.File
	out     *bufio.Writer
	enc     *gob.Encoder
	rep     *os.File
	dec     *gob.Decoder
	results chan jobResult // from the slot's reader goroutine
}

// Start starts the worker now, so that a broken worker command is found at
// startup rather than at the first sign-in.
func (w *HashWorker) Start() error {
	_, err := w.running(context.Background())
	return err
}

// Ready returns nil when a worker is running, starting one if none is and
// the backoff after the last failure has passed (waiting for it until ctx
// ends); else why hashes would be refused now. For readiness probes: a
// server whose worker cannot start is taken out of rotation, not sent
// sign-ins it can only refuse.
func (w *HashWorker) Ready(ctx context.Context) error {
	w.mu.Lock()
	failure := w.failure
	w.mu.Unlock()
	if _, err := w.running(ctx); err != nil {
		if failure == nil {
			failure = err
		}
		return failure
	}
	return nil
}

// Starts returns how many worker processes were started so far (one more
// each time one died and was replaced).
func (w *HashWorker) Starts() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.starts
}

// PID returns the process id of the running worker (0: none).
func (w *HashWorker) PID() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc == nil {
		return 0
	}
	return w.proc.cmd.Process.Pid
}

// Close stops the worker: its request pipes are closed, so it exits once
// the jobs it is running are answered; it is killed if it has not after
// stuckAfter. Jobs submitted afterwards fail as unavailable.
func (w *HashWorker) Close() error {
	w.mu.Lock()
	w.closed = true
	p := w.proc
	w.proc = nil
	starting := w.starting
	w.mu.Unlock()
	if starting != nil {
		<-starting // a worker that started meanwhile is stopped by launch
	}
	if p == nil {
		return nil
	}
	// Each slot's request pipe is closed once no job holds it.
	for range cap(p.free) {
		select {
		case s := <-p.free:
			_ = s.req.Close()
		case <-p.dead:
		case <-time.After(w.stuckAfter):
			p.fail(errors.New("a job did not finish during shutdown"))
		}
	}
	select {
	case <-p.exited:
	case <-time.After(w.stuckAfter):
		p.fail(errors.New("did not exit after its input was closed"))
		<-p.exited
	}
	return nil
}

// execute runs j in the worker and waits for its answer (executor), or
// for ctx to end: the job then runs on, and its slot comes back when the
// answer does (or the worker is killed as stuck).
func (w *HashWorker) execute(ctx context.Context, j job) (jobResult, error) {
	p, err := w.running(ctx)
	if err != nil {
		return jobResult{}, err
	}
	var s *workerSlot
	select {
	case s = <-p.free:
	case <-p.dead:
		return jobResult{}, w.unavailable()
	case <-ctx.Done():
		return jobResult{}, ctx.Err()
	}
	if err := s.send(j); err != nil {
		p.fail(err)
		return jobResult{}, w.unavailable()
	}
	sent := time.Now()
	stuck := time.NewTimer(w.stuckAfter)
	defer stuck.Stop()
	select {
	case r := <-s.results:
		p.free <- s
		return r, nil
	case <-p.dead:
		return jobResult{}, w.unavailable()
	case <-stuck.C:
		p.fail(fmt.Errorf("no answer to a job within %s: killed as stuck", w.stuckAfter))
		return jobResult{}, w.unavailable()
	case <-ctx.Done():
		go p.reclaim(s, w.stuckAfter-time.Since(sent))
		return jobResult{}, ctx.Err()
	}
}

// released yields this P to the waiter the gate has just let in (it sits
// in this P's run-next slot): it only sends its job to the worker and
// waits, a few microseconds, and the worker's slot is idle until it does.
// Left to run after this caller's own post-hash work, or to be stolen by
// another thread on a machine whose CPUs both hash, it started 2–3% of
// the slots' time late (measured: slots busy 97–98% → 99%).
func (w *HashWorker) released() { runtime.Gosched() }

// reclaim waits for the answer of a job its caller stopped waiting for,
// then frees the slot; past the stuck bound it kills the worker.
func (p *workerProc) reclaim(s *workerSlot, left time.Duration) {
	stuck := time.NewTimer(max(left, 0))
	defer stuck.Stop()
	select {
	case <-s.results:
		p.free <- s
	case <-p.dead:
	case <-stuck.C:
		p.fail(errors.New("no answer to an abandoned job within the stuck bound: killed as stuck"))
	}
}

// send writes a job to the slot.
func (s *workerSlot) send(j job) error {
	if err := s.enc.Encode(j); err != nil {
		return fmt.Errorf("writing a job: %w", err)
	}
	if err := s.out.Flush(); err != nil {
		return fmt.Errorf("writing a job: %w", err)
	}
	return nil
}

// read delivers the slot's results until the worker's end of the pipe
// closes (the worker died or exited), which fails the process.
func (s *workerSlot) read(p *workerProc) {
	for {
		var r jobResult
		if err := s.dec.Decode(&r); err != nil {
			p.fail(fmt.Errorf("reading a result: %w", err))
			return
		}
		s.results <- r
	}
}

// unavailable is the error of a job the worker could not run. The cause is
// logged when the worker fails (once, not per job); the client learns
// only that it may retry.
func (w *HashWorker) unavailable() error {
	return fault.New(fault.CodeUnavailable, http.StatusServiceUnavailable,
		"Password hashing is unavailable at the moment. Please retry shortly.").Retry(workerRestartBackoff)
}

// running returns the live worker, starting one if there is none (and the
// last failure is older than the backoff). A start runs on a goroutine of
// its own, not under w.mu and not on the caller's time: callers wait for
// it until their ctx ends, so a worker slow to say hello holds no request
// past its deadline, and the metrics and readiness reads do not wait.
func (w *HashWorker) running(ctx context.Context) (*workerProc, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return nil, w.unavailable()
		}
		if p := w.proc; p != nil {
			select {
			case <-p.dead:
				// Died just now (reap may not have run yet): the backoff
				// counts from its death.
				w.proc = nil
				if at := p.diedAt(); at.After(w.failedAt) {
					w.failedAt, w.failure = at, p.cause()
				}
			default:
				w.mu.Unlock()
				return p, nil
			}
		}
		starting := w.starting
		if starting == nil {
			if !w.failedAt.IsZero() && time.Since(w.failedAt) < workerRestartBackoff {
				w.mu.Unlock()
				return nil, w.unavailable()
			}
			starting = make(chan struct{})
			w.starting = starting
			go w.launch(starting)
		}
		w.mu.Unlock()
		select {
		case <-starting: // look again: running, or failed (and backing off)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// launch starts a worker process and records the outcome, then closes done
// (w.starting).
func (w *HashWorker) launch(done chan struct{}) {
	p, err := w.start()
	w.mu.Lock()
	defer w.mu.Unlock()
	defer close(done)
	w.starting = nil
	switch {
	case err != nil:
		w.failedAt, w.failure = time.Now(), err
		w.log.Error("hash worker failed to start; sign-ins answer 503 until it does", slog.String("error", err.Error()))
	case w.closed:
		p.fail(errors.New("closed while starting"))
	default:
		p.ready = true
		w.starts++
		w.proc = p
		w.log.Info("hash worker started", slog.Int("pid", p.cmd.Process.Pid), slog.Int("slots", w.slots))
	}
}

// start starts a worker process and waits for every slot's hello (only
// launch calls it, without w.mu).
func (w *HashWorker) start() (*workerProc, error) {
	cmd := w.command()
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	dieWithParent(cmd)
	p := &workerProc{cmd: cmd, free: make(chan *workerSlot, w.slots), dead: make(chan struct{}), exited: make(chan struct{})}
	var theirs []*os.File
	closeAll := func() {
		for _, f := range append(theirs, p.files...) {
			_ = f.Close()
		}
	}
	slots := make([]*workerSlot, 0, w.slots)
	for range w.slots {
		reqR, reqW, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		repR, repW, err := os.Pipe()
		if err != nil {
			_ = reqR.Close()
			_ = reqW.Close()
			closeAll()
			return nil, err
		}
		theirs = append(theirs, reqR, repW)
		p.files = append(p.files, reqW, repR)
		out := bufio.NewWriter(reqW)
		slots = append(slots, &workerSlot{req: reqW, out: out, enc: gob.NewEncoder(out), rep: repR, dec: gob.NewDecoder(bufio.NewReader(repR)),
			results: make(chan jobResult, 1)})
	}
	cmd.ExtraFiles = theirs
	err := cmd.Start()
	for _, f := range theirs { // the child has its copies
		_ = f.Close()
	}
	theirs = nil
	if err != nil {
		closeAll()
		return nil, err
	}
	go p.reap(w)
	for _, s := range slots {
		_ = s.rep.SetReadDeadline(time.Now().Add(w.hello))
		var hello jobResult
		if err := s.dec.Decode(&hello); err != nil || hello.Err != "" {
			if err == nil {
				err = errors.New(hello.Err)
			}
			// reap finishes the process off; running records the failure.
			p.fail(fmt.Errorf("starting %s: no hello: %w", cmd.Path, err))
			return nil, p.cause()
		}
	}
	for _, s := range slots {
		_ = s.rep.SetReadDeadline(time.Time{}) // stuck jobs are timed by execute
		go s.read(p)
		p.free <- s
	}
	return p, nil
}

// reap waits for the process to end, then fails what it left running and
// records the failure so that the next start waits for the backoff.
func (p *workerProc) reap(w *HashWorker) {
	err := p.cmd.Wait()
	if err == nil {
		err = errors.New("exited")
	}
	p.fail(fmt.Errorf("process %d: %w", p.cmd.Process.Pid, err))
	close(p.exited)
	w.mu.Lock()
	if !w.closed && p.ready {
		w.failedAt, w.failure = time.Now(), p.cause()
		w.log.Error("hash worker died; started again on the next hash", slog.String("error", p.cause().Error()))
	}
	if w.proc == p {
		w.proc = nil
	}
	w.mu.Unlock()
}

// fail marks the process dead (once: the first cause stays), kills it and
// closes the server's ends of its pipes, so that every job waiting on it
// fails at once.
func (p *workerProc) fail(cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.dead:
		return
	default:
	}
	p.err, p.deadAt = cause, time.Now()
	close(p.dead)
	_ = p.cmd.Process.Kill()
	for _, f := range p.files {
		_ = f.Close()
	}
}

func (p *workerProc) diedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deadAt
}

func (p *workerProc) cause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return errors.New("not running")
	}
	return p.err
}

// WorkerSlot is the worker's end of one slot: where its jobs come from and
// where their results go.
type WorkerSlot struct {
	Jobs    io.Reader
	Results io.Writer
}

// WorkerSlots returns the worker's ends of n slots, from its inherited file
// descriptors (see the protocol above).
func WorkerSlots(n int) []WorkerSlot {
	slots := make([]WorkerSlot, n)
	for i := range slots {
		fd := uintptr(workerFirstFD + 2*i)
		slots[i] = WorkerSlot{Jobs: os.NewFile(fd, fmt.Sprintf("jobs-%d", i)), Results: os.NewFile(fd+1, fmt.Sprintf("results-%d", i))}
	}
	return slots
}

// ServeHashWorker is the worker's side of the protocol: on every slot, at
// once, it says hello, then computes each job it reads with parameters p
// and writes its result, until the slot's jobs end. It returns when every
// slot has ended, with the first error other than the end of the jobs.
func ServeHashWorker(slots []WorkerSlot, p Argon2Params) error {
	h := NewHasher(p, nil)
	errs := make(chan error, len(slots))
	for _, s := range slots {
		go func() { errs <- serveSlot(h, s) }()
	}
	var first error
	for range slots {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// serveSlot runs one slot: each job on this goroutine, in turn.
func serveSlot(h *Hasher, s WorkerSlot) error {
	out := bufio.NewWriter(s.Results)
	enc := gob.NewEncoder(out)
	reply := func(r jobResult) error {
		if err := enc.Encode(r); err != nil {
			return err
		}
		return out.Flush()
	}
	if err := reply(jobResult{}); err != nil {
		return fmt.Errorf("hash worker: saying hello: %w", err)
	}
	dec := gob.NewDecoder(bufio.NewReader(s.Jobs))
	for {
		var j job
		if err := dec.Decode(&j); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("hash worker: reading a job: %w", err)
		}
		if err := reply(h.compute(j)); err != nil {
			return fmt.Errorf("hash worker: writing a result: %w", err)
		}
	}
}

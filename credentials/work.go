package credentials

import (
	"context"
	"fmt"

	"github.com/alexedwards/argon2id"
)

// jobOp names what a hashing job computes.
type jobOp uint8

const (
	// jobHash: a new argon2id hash of Password with the current parameters.
	jobHash jobOp = iota + 1
	// jobVerify: Password against the stored hash Encoded, then, when
	// PadKiB > 0, an argon2id padding hash of that much memory.
	jobVerify
)

// job is the work one hash holds a gate slot for, and nothing else: plain
// values, so that it runs in this process or in a hash worker process (see
// HashWorker) alike, and what runs there cannot depend on anything the
// server holds.
type job struct {
	Op       jobOp
	Password string
	Encoded  string // jobVerify
	PadKiB   uint32 // jobVerify
}

// jobResult is what a job computed. Err is the job's own failure (a hash
// that cannot be computed or parsed), as text so that it crosses a process
// boundary; a worker that could not run the job at all is an error of the
// executor instead.
type jobResult struct {
	Encoded string // jobHash
	OK      bool   // jobVerify: the password matches
	Work    int64  // jobVerify: the modelled work done (cost.go units)
	Err     string
}

// executor runs jobs: in this process (the Hasher itself, compute) or in a
// hash worker process. It is called inside the gate, holding the job's
// units, and returns when the job is done — or, for a worker, when ctx
// ends first (a worker stopped or swapped out must not hold a request past
// its deadline): the job then runs on in the worker, whose slot is free
// again only when it ends, so the worker never runs more jobs than slots.
type executor interface {
	execute(ctx context.Context, j job) (jobResult, error)
	// released is called after a job's gate units were given back (and
	// the next waiter, if any, was let in), before its caller goes on.
	released()
}

// inline runs jobs in this process. A hash here cannot be abandoned, so it
// runs to its end whatever ctx does.
type inline struct{ h *Hasher }

func (i inline) execute(_ context.Context, j job) (jobResult, error) { return i.h.compute(j), nil }

// released: the waiter let in would hash on this P for tens of
// milliseconds; this caller's own work comes first.
func (inline) released() {}

// compute runs a job here, now. It holds no lock and touches no state but
// the hasher's parameters and padding salt, so any number run at once.
func (h *Hasher) compute(j job) jobResult {
	switch j.Op {
	case jobHash:
		encoded, err := argon2id.CreateHash(j.Password, h.argon2idParams())
		if err != nil {
			return jobResult{Err: err.Error()}
		}
		return jobResult{Encoded: encoded}
	case jobVerify:
		d, perr := decodeHash(j.Encoded, false)
		if perr == nil {
			perr = d.checkBounds()
		}
		if perr != nil {
			return jobResult{Err: perr.msg}
		}
		ok, err := d.verify(j.Password)
		work := d.work()
		if j.PadKiB > 0 {
			work += h.pad(j.Password, min(j.PadKiB, h.params.MemoryKiB))
		}
		r := jobResult{OK: ok, Work: work}
		if err != nil {
			r.Err = err.Error()
		}
		return r
	default:
		return jobResult{Err: fmt.Sprintf("unknown hashing job %d", j.Op)}
	}
}

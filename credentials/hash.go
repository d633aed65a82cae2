package credentials

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/argon2id"
)

// Argon2 output sizes of the hashes Latch creates (OWASP / RFC 9106).
const (
	Argon2SaltLength = 16
	Argon2KeyLength  = 32
)

// Default argon2id parameters: the OWASP minimum recommendation (19 MiB,
// two passes, one lane), which keeps a hash around 20–40 ms on one core so a
// small machine can still sign in tens of users a second per core.
const (
	DefaultArgon2MemoryKiB   = 19456
	DefaultArgon2Iterations  = 2
	DefaultArgon2Parallelism = 1
)

// Argon2Params are the cost parameters of argon2id hashes. Salt (16 bytes)
// and key (32 bytes) lengths are fixed.
type Argon2Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// DefaultArgon2Params returns m=19456 KiB, t=2, p=1.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{
		MemoryKiB:   DefaultArgon2MemoryKiB,
		Iterations:  DefaultArgon2Iterations,
		Parallelism: DefaultArgon2Parallelism,
	}
}

// String renders the parameters as in a PHC string: "m=19456,t=2,p=1".
func (p Argon2Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Iterations, p.Parallelism)
}

// Validate checks the parameters against the same bounds imported hashes
// must respect, so every hash Latch creates can also be verified by it and a
// misconfiguration is reported at startup rather than on the first sign-in.
func (p Argon2Params) Validate() error {
	if msg := argon2ParamsProblem(p.MemoryKiB, p.Iterations, uint32(p.Parallelism)); msg != "" {
		return errors.New("credentials: invalid argon2id parameters: " + msg)
	}
	return nil
}

// ErrMalformedHash means a stored password hash cannot be parsed or carries
// parameters beyond the safe bounds. It is an internal error (data
// corruption), never the client's fault.
var ErrMalformedHash = errors.New("credentials: malformed stored password hash")

// Hasher creates argon2id password hashes and verifies passwords against
// hashes of every supported algorithm, running all of that work through an
// admission gate, weighted by what each hash costs (see cost.go).
type Hasher struct {
	params Argon2Params
	gate   *Gate
	budget ImportBudget
	exec   executor // where the hashing runs: this process, or a worker
	// padSalt salts the padding hashes of cheap verifications.
	padSalt [Argon2SaltLength]byte

	dummyOnce sync.Once
	dummy     string
}

// HasherOption configures a Hasher beyond its argon2id parameters.
type HasherOption func(*Hasher)

// WithImportBudget sets the most an imported hash may cost to verify (zero
// fields take the defaults of DefaultImportBudget).
func WithImportBudget(b ImportBudget) HasherOption {
	return func(h *Hasher) { h.budget = b.withDefaults() }
}

// WithWorker runs the hasher's hashes in the hash worker process w instead
// of this process (see HashWorker); the gate stays here.
func WithWorker(w *HashWorker) HasherOption {
	return func(h *Hasher) { h.exec = w }
}

// NewHasher returns a Hasher with the given parameters (zero fields take the
// defaults) whose work runs through gate; a nil gate runs work directly,
// which suits the CLI and tests but not a server. Imports are held to
// DefaultImportBudget unless WithImportBudget says otherwise. It panics on
// parameters or a budget that fail Validate: the signature has no error
// because configuration is validated when it is loaded, so reaching here
// with bad values is a bug.
func NewHasher(p Argon2Params, gate *Gate, opts ...HasherOption) *Hasher {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultArgon2MemoryKiB
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultArgon2Iterations
	}
	if p.Parallelism == 0 {
		p.Parallelism = DefaultArgon2Parallelism
	}
	if err := p.Validate(); err != nil {
		panic(err.Error())
	}
	h := &Hasher{params: p, gate: gate, budget: DefaultImportBudget()}
	h.exec = inline{h}
	for _, o := range opts {
		o(h)
	}
	if err := h.budget.Validate(); err != nil {
		panic(err.Error())
	}
	_, _ = rand.Read(h.padSalt[:]) // crypto/rand.Read never fails on supported platforms
	return h
}

// Params returns the parameters new hashes are created with.
func (h *Hasher) Params() Argon2Params { return h.params }

// Gate returns the admission gate the hasher runs through (nil if none).
func (h *Hasher) Gate() *Gate { return h.gate }

// Saturated reports whether the hashing gate would refuse a hash right
// now, counting the refusal (Gate.Shed): callers refuse with BusyError
// before doing work for a hash that would not be admitted.
func (h *Hasher) Saturated() bool { return h.gate != nil && h.gate.Shed() }

// ImportBudget returns the most an imported hash may cost to verify.
func (h *Hasher) ImportBudget() ImportBudget { return h.budget }

// work runs j through the gate, holding units of it, on the hasher's
// executor (this process unless WithWorker). A refusal of the gate, the end
// of ctx before j started or a worker that could not run it is the error;
// the job's own failure is in the result.
func (h *Hasher) work(ctx context.Context, units int64, j job) (jobResult, error) {
	var (
		r    jobResult
		xerr error
	)
	run := func() { r, xerr = h.exec.execute(ctx, j) }
	if h.gate == nil {
		if err := ctx.Err(); err != nil {
			return jobResult{}, err
		}
		run()
	} else if err := h.gate.DoWeighted(ctx, units, run); err != nil {
		return jobResult{}, err
	}
	h.exec.released()
	return r, xerr
}

func (h *Hasher) argon2idParams() *argon2id.Params {
	return &argon2id.Params{
		Memory:      h.params.MemoryKiB,
		Iterations:  h.params.Iterations,
		Parallelism: h.params.Parallelism,
		SaltLength:  Argon2SaltLength,
		KeyLength:   Argon2KeyLength,
	}
}

// Hash returns the encoded PHC string
// ($argon2id$v=19$m=..,t=..,p=..$salt$hash) of password with a fresh random
// salt. The parameters live in the string, so hashes made before a parameter
// change keep verifying. It runs through the gate: a server.busy
// *fault.Error or ctx.Err() means no hash was computed.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	r, err := h.work(ctx, 1, job{Op: jobHash, Password: password})
	if err != nil {
		return "", err
	}
	if r.Err != "" {
		return "", fmt.Errorf("credentials: hashing password: %s", r.Err)
	}
	return r.Encoded, nil
}

// Verify checks password against an encoded hash of any supported algorithm
// (see NormalizeImport for the list). needsRehash reports whether the hash
// is anything but argon2id with exactly the current parameters and sizes;
// it is a property of the stored hash, returned whatever ok is, and callers
// rehash only after a successful verification. The work runs through the
// gate, holding the share the hash's memory and lanes call for (a
// server.busy *fault.Error or ctx.Err() means nothing was checked), and
// every comparison is constant-time.
//
// A verification cheaper than one with the current parameters (an imported
// md5 or bcrypt digest, argon2 with smaller parameters) is padded with an
// argon2id hash making up the difference, right or wrong password alike, so
// that imported, not yet upgraded accounts answer as fast as the others and
// as unknown ones (VerifyDummy): no timing oracle tells them apart.
//
// A stored hash that cannot be parsed or exceeds the safe bounds yields an
// error wrapping ErrMalformedHash and costs no work. The import budget is
// not applied here: a stored hash above it (imported before it was
// lowered) still verifies, alone in the gate if it must.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	ok, needsRehash, _, err = h.verify(ctx, password, encoded)
	return ok, needsRehash, err
}

// verify is Verify, also returning the work done (cost.go units): the sum
// of the modelled work of each hash it actually computed, so tests can
// check the padding by construction rather than with a clock.
func (h *Hasher) verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, work int64, err error) {
	d, perr := decodeHash(encoded, false)
	if perr == nil {
		perr = d.checkBounds()
	}
	if perr != nil {
		return false, false, 0, fmt.Errorf("%w: %s", ErrMalformedHash, perr.msg)
	}
	r, err := h.work(ctx, h.gateWeight(d), job{Op: jobVerify, Password: password, Encoded: encoded, PadKiB: h.padMemoryKiB(d.work())})
	if err != nil {
		return false, false, 0, err
	}
	if r.Err != "" {
		return false, false, r.Work, fmt.Errorf("%w: %s", ErrMalformedHash, r.Err)
	}
	return r.OK, h.needsRehash(d), r.Work, nil
}

func (h *Hasher) needsRehash(d *decodedHash) bool {
	return d.alg != AlgArgon2id ||
		d.memory != h.params.MemoryKiB ||
		d.iterations != h.params.Iterations ||
		d.parallelism != h.params.Parallelism ||
		len(d.salt) != Argon2SaltLength ||
		len(d.key) != Argon2KeyLength
}

// VerifyDummy spends the same work as verifying a password against a real
// argon2id hash with the current parameters, through the same gate and code
// path, and discards the result. Sign-in calls it for an unknown identifier
// so that "no such user" and "wrong password" take the same time.
//
// The dummy hash is made once, lazily, with the current parameters, a
// random salt and a random key: verification costs exactly as much as for a
// hash computed from a password, no password can match it, and making it
// costs no hashing (so the first unknown-user request is not slower than
// the others either). Only gate and context errors are returned.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummyHash())
	return err
}

// dummyHash returns the dummy hash, making it on first use.
func (h *Hasher) dummyHash() string {
	h.dummyOnce.Do(func() {
		salt := make([]byte, Argon2SaltLength)
		key := make([]byte, Argon2KeyLength)
		_, _ = rand.Read(salt) // crypto/rand.Read never fails on supported platforms
		_, _ = rand.Read(key)
		h.dummy = fmt.Sprintf("$argon2id$v=19$%s$%s$%s", h.params,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
	})
	return h.dummy
}

// EncodedAlgorithm returns the algorithm of a well-formed stored hash, as
// named in password_algorithm ("argon2id", "bcrypt", "sha256", ...), or ""
// when the string is not in a stored form. It parses but does not check the
// safe bounds (Verify does) and does no hashing: suitable for filling a
// "password algorithm" column or for statistics.
func EncodedAlgorithm(encoded string) string {
	d, err := decodeHash(encoded, false)
	if err != nil {
		return ""
	}
	return d.alg
}

// MeasureHashRate computes argon2id hashes with p on workers goroutines
// (0 or less: one) for about d, without any gate, and returns hashes per
// second: the "raw" rate that sign-in throughput is compared with.
func MeasureHashRate(p Argon2Params, workers int, d time.Duration) float64 {
	if workers <= 0 {
		workers = 1
	}
	h := NewHasher(p, nil)
	params := h.argon2idParams()
	var count atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := argon2id.CreateHash("measure-hash-rate", params); err != nil {
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(count.Load()) / time.Since(start).Seconds()
}

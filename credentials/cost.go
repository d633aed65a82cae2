package credentials

import (
	"math/bits"

	"golang.org/x/crypto/argon2"
)

// The cost model of password verification, in two dimensions:
//
//   - work: how long a verification takes, which is what a timing oracle
//     sees. Verify pads a verification whose work is below that of a hash
//     with the current parameters (see padMemoryKiB), so a wrong password
//     costs the same whether the account was imported with a cheap hash,
//     still has older parameters, is current, or does not exist.
//   - weight: how much of the hashing gate it holds, in units of a hash with
//     the current parameters (its memory and its lanes).
//
// Work units are an eighth of one argon2 pass over 1 KiB of memory on one
// lane. The other algorithms are converted with factors measured against
// golang.org/x/crypto's argon2 on amd64 and then halved or so, on purpose:
// underestimating them only pads more, overestimating would leave an
// oracle. Measured per unit below (≈ 600 ns per argon2 KiB-pass):
//
//	bcrypt      one of the 2^cost rounds ≈ 110 KiB-passes (880 units) → 400
//	pbkdf2      one sha256 iteration ≈ 0.3 KiB-pass (2.4 units) → 1;
//	            one sha512 iteration ≈ 0.95 (7.6 units) → 3
//	scrypt      one of N·r·p ≈ 0.48 KiB-pass (3.9 units) → 2
//	md5, sha*   microseconds in all → 0
const (
	workPerArgon2KiBPass  = 8
	workPerBcryptRound    = 400
	workPerPBKDF2SHA256   = 1
	workPerPBKDF2SHA512   = 3
	workPerScryptNRPBlock = 2
)

// argon2Work is the work of an argon2 hash: memory × passes, divided by
// the lanes, which run in parallel when cores are free (the fastest, so the
// most conservative, case).
func argon2Work(memoryKiB, iterations uint32, parallelism uint8) int64 {
	return workPerArgon2KiBPass * int64(memoryKiB) * int64(iterations) / int64(max(parallelism, 1))
}

// work estimates the time verifying against d takes. Only called on hashes
// within the safe bounds, so nothing overflows.
func (d *decodedHash) work() int64 {
	switch d.alg {
	case AlgArgon2id, AlgArgon2i:
		return argon2Work(d.memory, d.iterations, d.parallelism)
	case AlgBcrypt:
		return workPerBcryptRound << d.cost
	case AlgPBKDF2SHA256:
		return workPerPBKDF2SHA256 * int64(d.iterations)
	case AlgPBKDF2SHA512:
		return workPerPBKDF2SHA512 * int64(d.iterations)
	case AlgScrypt:
		return workPerScryptNRPBlock * (int64(1) << d.logN) * int64(d.r) * int64(d.p)
	default: // md5, sha1, sha256
		return 0
	}
}

// scryptMemoryKiB is the memory scrypt needs, 128·N·r bytes, in KiB
// (saturating, for parameters beyond any bound).
func scryptMemoryKiB(logN, r int) uint64 {
	if logN < 0 || logN > 63 || r < 0 {
		return ^uint64(0)
	}
	hi, lo := bits.Mul64(uint64(1)<<logN, uint64(r))
	if hi != 0 || lo > ^uint64(0)/128 {
		return ^uint64(0)
	}
	return lo * 128 / 1024
}

// workTarget is the work of verifying a hash with the current parameters:
// what every verification costs at least.
func (h *Hasher) workTarget() int64 {
	return argon2Work(h.params.MemoryKiB, h.params.Iterations, h.params.Parallelism)
}

// gateWeight is the share of the gate verifying against d holds: its
// memory in units of the current parameters' memory, or its lanes in units
// of the current lanes, whichever is more, and at least one unit (bcrypt,
// pbkdf2 and the legacy digests need little memory but a whole core). The
// gate caps it at its budget.
func (h *Hasher) gateWeight(d *decodedHash) int64 {
	var memKiB, lanes uint64
	switch d.alg {
	case AlgArgon2id, AlgArgon2i:
		memKiB, lanes = uint64(d.memory), uint64(d.parallelism)
	case AlgScrypt:
		memKiB, lanes = scryptMemoryKiB(d.logN, d.r), 1 // golang.org/x/crypto/scrypt runs p sequentially
	default:
		return 1
	}
	unitKiB, unitLanes := uint64(h.params.MemoryKiB), uint64(h.params.Parallelism)
	w := max(1, ceilDiv(memKiB, unitKiB), ceilDiv(lanes, unitLanes))
	return int64(min(w, 1<<32)) // the gate caps it far lower
}

func ceilDiv(a, b uint64) uint64 {
	if a == 0 {
		return 0
	}
	return (a-1)/b + 1
}

// padMemoryKiB returns the memory of the argon2id padding hash that brings
// a verification of work `work` up to the target, or 0 when none is needed.
// The pad uses the current passes and lanes and just enough memory (never
// more than the current memory, so it fits the unit the verification
// already holds in the gate).
func (h *Hasher) padMemoryKiB(work int64) uint32 {
	deficit := h.workTarget() - work
	if deficit <= 0 {
		return 0
	}
	p := h.params
	// 8·m·t/p ≥ deficit  ⇔  m ≥ deficit·p / (8·t)
	perKiB := int64(workPerArgon2KiBPass) * int64(p.Iterations)
	m := (deficit*int64(p.Parallelism) + perKiB - 1) / perKiB
	m = max(m, 8*int64(p.Parallelism)) // argon2's minimum
	return uint32(min(m, int64(p.MemoryKiB)))
}

// pad runs the padding hash and returns its work. The result is thrown
// away: no password can be checked against it.
func (h *Hasher) pad(password string, memoryKiB uint32) int64 {
	p := h.params
	_ = argon2.IDKey([]byte(password), h.padSalt[:], p.Iterations, memoryKiB, p.Parallelism, Argon2KeyLength)
	return argon2Work(memoryKiB, p.Iterations, p.Parallelism)
}

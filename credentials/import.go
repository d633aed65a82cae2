package credentials

import (
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"regexp"
	"strconv"
	"strings"

	"github.com/alexedwards/argon2id"
	"github.com/latch-dev/latch/fault"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// Password hash algorithms, as accepted in password_algorithm (matched
// case-insensitively, so Logto's "Argon2i", "SHA256", "MD5", "Bcrypt" work)
// and returned by EncodedAlgorithm.
const (
	AlgArgon2id     = "argon2id"
	AlgArgon2i      = "argon2i"
	AlgBcrypt       = "bcrypt"
	AlgPBKDF2SHA256 = "pbkdf2-sha256"
	AlgPBKDF2SHA512 = "pbkdf2-sha512"
	AlgScrypt       = "scrypt"
	AlgSHA1         = "sha1"
	AlgSHA256       = "sha256"
	AlgMD5          = "md5"
)

// ImportAlgorithms lists the accepted password_algorithm values.
var ImportAlgorithms = []string{
	AlgArgon2id, AlgArgon2i, AlgBcrypt, AlgPBKDF2SHA256, AlgPBKDF2SHA512,
	AlgScrypt, AlgSHA1, AlgSHA256, AlgMD5,
}

// Safe bounds of imported (and stored) hashes. An imported hash dictates the
// work of every later sign-in attempt against it, which an attacker can
// trigger at will, so a hash with huge parameters would be a denial-of-
// service lever (hash-DoS). The bounds sit well above any sane real-world
// setting; imports are also held to the stricter, configurable ImportBudget. Lower bounds refuse degenerate hashes: a short key would let
// random passwords match by chance.
const (
	MaxArgon2MemoryKiB   = 1 << 20 // 1 GiB
	MaxArgon2Iterations  = 64
	MaxArgon2Parallelism = 16
	MinArgon2SaltBytes   = 8 // RFC 9106 minimum
	MaxArgon2SaltBytes   = 64

	MinBcryptCost = bcrypt.MinCost // 4
	MaxBcryptCost = 16

	MaxPBKDF2Iterations = 2_000_000

	MaxScryptLogN        = 20      // N ≤ 2^20
	MaxScryptR           = 64      //
	MaxScryptP           = 16      //
	MaxScryptMemoryBytes = 1 << 30 // 128·N·r ≤ 1 GiB
	MaxScryptWork        = 1 << 24 // N·r·p ≤ 2^24 (2× the "sensitive" N=2^20,r=8,p=1)

	MinKeyBytes      = 16 // derived key / hash length of argon2, pbkdf2, scrypt
	MaxKeyBytes      = 128
	MaxSaltBytes     = 128 // pbkdf2, scrypt and salted legacy digests
	MaxDigestLength  = 1024
	legacyDigestHint = "a hex digest, or <salt>$<hex digest>"
)

// ImportBudget is the most an imported hash may cost to verify: stricter than
// the safe bounds above (which every stored hash must respect), it is what
// an operator accepts to pay on every sign-in attempt against an imported
// account until its first sign-in upgrades it. Imports above it are refused
// with a message naming the bound.
type ImportBudget struct {
	Argon2MemoryKiB   uint32 // argon2id and argon2i m
	Argon2Iterations  uint32 // t
	Argon2Parallelism uint8  // p
	BcryptCost        int
	ScryptMemoryKiB   uint32 // 128·N·r bytes, in KiB
	PBKDF2Iterations  uint32
}

// Default import budget: argon2 64 MiB, t ≤ 10, p ≤ 4 (RFC 9106's second
// recommendation is m=64 MiB, t=3, p=4); bcrypt cost 14 (about a second);
// scrypt 128 MiB (128·N·r bytes, so N·r ≤ 2^20: N=2^17 with r=8, above
// passlib's and Django's defaults, twice the argon2 memory); PBKDF2 one
// million iterations (above OWASP's 600,000 for sha256).
const (
	DefaultImportMaxArgon2MemoryKiB   = 64 << 10
	DefaultImportMaxArgon2Iterations  = 10
	DefaultImportMaxArgon2Parallelism = 4
	DefaultImportMaxBcryptCost        = 14
	DefaultImportMaxScryptMemoryKiB   = 128 << 10
	DefaultImportMaxPBKDF2Iterations  = 1_000_000
)

// DefaultImportBudget returns the default import budget.
func DefaultImportBudget() ImportBudget {
	return ImportBudget{
		Argon2MemoryKiB:   DefaultImportMaxArgon2MemoryKiB,
		Argon2Iterations:  DefaultImportMaxArgon2Iterations,
		Argon2Parallelism: DefaultImportMaxArgon2Parallelism,
		BcryptCost:        DefaultImportMaxBcryptCost,
		ScryptMemoryKiB:   DefaultImportMaxScryptMemoryKiB,
		PBKDF2Iterations:  DefaultImportMaxPBKDF2Iterations,
	}
}

// withDefaults fills zero fields from DefaultImportBudget.
func (b ImportBudget) withDefaults() ImportBudget {
	def := DefaultImportBudget()
	if b.Argon2MemoryKiB == 0 {
		b.Argon2MemoryKiB = def.Argon2MemoryKiB
	}
	if b.Argon2Iterations == 0 {
		b.Argon2Iterations = def.Argon2Iterations
	}
	if b.Argon2Parallelism == 0 {
		b.Argon2Parallelism = def.Argon2Parallelism
	}
	if b.BcryptCost == 0 {
		b.BcryptCost = def.BcryptCost
	}
	if b.ScryptMemoryKiB == 0 {
		b.ScryptMemoryKiB = def.ScryptMemoryKiB
	}
	if b.PBKDF2Iterations == 0 {
		b.PBKDF2Iterations = def.PBKDF2Iterations
	}
	return b
}

// Validate checks the budget lies within the safe bounds (a budget above
// them would promise imports that are refused anyway).
func (b ImportBudget) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("credentials: invalid import budget: "+format, args...)
	}
	switch {
	case b.Argon2MemoryKiB < 8 || b.Argon2MemoryKiB > MaxArgon2MemoryKiB:
		return bad("argon2 memory %d KiB must be between 8 and %d", b.Argon2MemoryKiB, MaxArgon2MemoryKiB)
	case b.Argon2Iterations < 1 || b.Argon2Iterations > MaxArgon2Iterations:
		return bad("argon2 iterations %d must be between 1 and %d", b.Argon2Iterations, MaxArgon2Iterations)
	case b.Argon2Parallelism < 1 || b.Argon2Parallelism > MaxArgon2Parallelism:
		return bad("argon2 parallelism %d must be between 1 and %d", b.Argon2Parallelism, MaxArgon2Parallelism)
	case b.BcryptCost < MinBcryptCost || b.BcryptCost > MaxBcryptCost:
		return bad("bcrypt cost %d must be between %d and %d", b.BcryptCost, MinBcryptCost, MaxBcryptCost)
	case b.ScryptMemoryKiB < 1 || b.ScryptMemoryKiB > MaxScryptMemoryBytes>>10:
		return bad("scrypt memory %d KiB must be between 1 and %d", b.ScryptMemoryKiB, MaxScryptMemoryBytes>>10)
	case b.PBKDF2Iterations < 1 || b.PBKDF2Iterations > MaxPBKDF2Iterations:
		return bad("pbkdf2 iterations %d must be between 1 and %d", b.PBKDF2Iterations, MaxPBKDF2Iterations)
	}
	return nil
}

// exceeded names the bound of b that d exceeds, or returns nil.
func (b ImportBudget) exceeded(d *decodedHash) *parseError {
	switch d.alg {
	case AlgArgon2id, AlgArgon2i:
		switch {
		case d.memory > b.Argon2MemoryKiB:
			return digestErr("argon2 memory %d KiB exceeds the limit of %d KiB", d.memory, b.Argon2MemoryKiB)
		case d.iterations > b.Argon2Iterations:
			return digestErr("argon2 iterations %d exceed the limit of %d", d.iterations, b.Argon2Iterations)
		case d.parallelism > b.Argon2Parallelism:
			return digestErr("argon2 parallelism %d exceeds the limit of %d", d.parallelism, b.Argon2Parallelism)
		}
	case AlgBcrypt:
		if d.cost > b.BcryptCost {
			return digestErr("bcrypt cost %d exceeds the limit of %d", d.cost, b.BcryptCost)
		}
	case AlgPBKDF2SHA256, AlgPBKDF2SHA512:
		if d.iterations > b.PBKDF2Iterations {
			return digestErr("pbkdf2 iterations %d exceed the limit of %d", d.iterations, b.PBKDF2Iterations)
		}
	case AlgScrypt:
		if m := scryptMemoryKiB(d.logN, d.r); m > uint64(b.ScryptMemoryKiB) {
			return digestErr("scrypt memory %d KiB (128·N·r with ln=%d, r=%d) exceeds the limit of %d KiB", m, d.logN, d.r, b.ScryptMemoryKiB)
		}
	}
	return nil
}

// decodedHash is a parsed password hash of any supported algorithm.
type decodedHash struct {
	alg         string
	version     int    // argon2
	memory      uint32 // argon2, KiB
	iterations  uint32 // argon2 t, pbkdf2 i
	parallelism uint8  // argon2
	logN, r, p  int    // scrypt
	cost        int    // bcrypt
	bcrypt      string // bcrypt: the whole modular-crypt string
	salt, key   []byte
}

// parseError is a parse or bounds problem with the field it concerns.
type parseError struct{ field, msg string }

func digestErr(format string, args ...any) *parseError {
	return &parseError{field: "password_digest", msg: fmt.Sprintf(format, args...)}
}

// NormalizeImport validates an imported password hash (password_algorithm
// and password_digest as sent by an API caller) against the safe bounds and
// the hasher's import budget, and returns the encoded string to store,
// which Verify understands and flags for rehashing.
// Input formats (all documented with examples in docs/password-import.md):
//
//	argon2id, argon2i   $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>  (PHC, base64)
//	bcrypt              $2a$12$... / $2b$ / $2y$
//	pbkdf2-sha256/512   $pbkdf2-sha256$i=600000$<salt>$<hash>  (also passlib's $<rounds>$)
//	scrypt              $scrypt$ln=15,r=8,p=1$<salt>$<hash>  (passlib)
//	sha1, sha256, md5   <hex>  or  <salt>$<hex> meaning H(salt || password)
//
// Base64 may be standard or passlib's adapted alphabet ('.' for '+'), padded
// or not. Malformed input, parameters above the import budget and beyond the
// safe bounds (Max* constants) are refused with a fault.Invalid naming
// password_digest or password_algorithm; the digest itself is never echoed
// in a message.
func (h *Hasher) NormalizeImport(algorithm, digest string) (string, error) {
	alg := strings.ToLower(strings.TrimSpace(algorithm))
	if alg == "" {
		return "", fault.Invalid(fault.Detail{Field: "password_algorithm", Message: "is required with password_digest"})
	}
	if !knownAlgorithm(alg) {
		return "", fault.Invalid(fault.Detail{Field: "password_algorithm",
			Message: "is not supported; use one of " + strings.Join(ImportAlgorithms, ", ")})
	}
	digest = strings.TrimSpace(digest)
	if digest == "" {
		return "", fault.Invalid(fault.Detail{Field: "password_digest", Message: "is required with password_algorithm"})
	}
	if len(digest) > MaxDigestLength {
		return "", fault.Invalid(fault.Detail{Field: "password_digest",
			Message: fmt.Sprintf("is longer than %d characters", MaxDigestLength)})
	}

	var (
		d    *decodedHash
		perr *parseError
	)
	switch alg {
	case AlgSHA1, AlgSHA256, AlgMD5:
		d, perr = parseLegacyImport(alg, digest)
	default:
		d, perr = decodeHash(digest, true)
		if perr == nil && d.alg != alg {
			perr = digestErr("is a %s hash, not %s as password_algorithm says", d.alg, alg)
		}
	}
	// The budget first: its message names the bound an operator can change.
	if perr == nil {
		perr = h.budget.exceeded(d)
	}
	if perr == nil {
		perr = d.checkBounds()
	}
	if perr != nil {
		return "", fault.Invalid(fault.Detail{Field: perr.field, Message: perr.msg})
	}
	return d.encode(), nil
}

func knownAlgorithm(alg string) bool {
	for _, a := range ImportAlgorithms {
		if a == alg {
			return true
		}
	}
	return false
}

var bcryptPattern = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// decodeHash parses an encoded hash, inferring the algorithm from its
// prefix. lenient (import) also accepts padded and passlib-alphabet base64,
// passlib's bare pbkdf2 rounds and parameters in any order; stored hashes
// are always in the canonical form encode produces.
func decodeHash(s string, lenient bool) (*decodedHash, *parseError) {
	if strings.HasPrefix(s, "$2") {
		if !bcryptPattern.MatchString(s) {
			return nil, digestErr("is not a bcrypt hash ($2a$, $2b$ or $2y$, two-digit cost, 53 characters of salt and hash)")
		}
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return nil, digestErr("has an invalid bcrypt cost")
		}
		return &decodedHash{alg: AlgBcrypt, cost: cost, bcrypt: s}, nil
	}
	parts := strings.Split(s, "$")
	if len(parts) < 3 || parts[0] != "" {
		return nil, digestErr("is not in a supported format (expected a string starting with $<algorithm>$)")
	}
	switch parts[1] {
	case AlgArgon2id, AlgArgon2i:
		return decodeArgon2(parts, lenient)
	case AlgPBKDF2SHA256, AlgPBKDF2SHA512:
		return decodePBKDF2(parts, lenient)
	case AlgScrypt:
		return decodeScrypt(parts, lenient)
	case AlgSHA1, AlgSHA256, AlgMD5:
		return decodeLegacy(parts)
	}
	return nil, digestErr("has an unsupported algorithm identifier")
}

func decodeArgon2(parts []string, lenient bool) (*decodedHash, *parseError) {
	d := &decodedHash{alg: parts[1]}
	if len(parts) == 5 && lenient && !strings.HasPrefix(parts[2], "v=") {
		return nil, digestErr("is an argon2 version 16 (0x10) hash without v=; only v=19 is supported")
	}
	if len(parts) != 6 {
		return nil, digestErr("must be $%s$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>", d.alg)
	}
	v, ok := strings.CutPrefix(parts[2], "v=")
	if !ok || v != "19" {
		return nil, digestErr("has argon2 version %q; only v=19 is supported", parts[2])
	}
	d.version = 19
	params, perr := parseParams(parts[3], lenient, "m", "t", "p")
	if perr != nil {
		return nil, perr
	}
	if params["m"] > 1<<32-1 || params["t"] > 1<<32-1 || params["p"] > 255 {
		return nil, digestErr("has argon2 parameters out of range")
	}
	d.memory, d.iterations, d.parallelism = uint32(params["m"]), uint32(params["t"]), uint8(params["p"])
	var err *parseError
	if d.salt, err = decodeB64(parts[4], "salt", lenient); err != nil {
		return nil, err
	}
	if d.key, err = decodeB64(parts[5], "hash", lenient); err != nil {
		return nil, err
	}
	return d, nil
}

func decodePBKDF2(parts []string, lenient bool) (*decodedHash, *parseError) {
	d := &decodedHash{alg: parts[1]}
	if len(parts) != 5 {
		return nil, digestErr("must be $%s$i=<iterations>$<salt>$<hash>", d.alg)
	}
	rounds, ok := strings.CutPrefix(parts[2], "i=")
	if !ok && !lenient {
		return nil, digestErr("must carry the iteration count as i=<n>")
	}
	n, perr := parseUint(rounds, "iteration count")
	if perr != nil {
		return nil, perr
	}
	if n > MaxPBKDF2Iterations {
		return nil, digestErr("has %d pbkdf2 iterations; at most %d are accepted", n, MaxPBKDF2Iterations)
	}
	d.iterations = uint32(n)
	if d.salt, perr = decodeB64(parts[3], "salt", lenient); perr != nil {
		return nil, perr
	}
	if d.key, perr = decodeB64(parts[4], "hash", lenient); perr != nil {
		return nil, perr
	}
	return d, nil
}

func decodeScrypt(parts []string, lenient bool) (*decodedHash, *parseError) {
	d := &decodedHash{alg: AlgScrypt}
	if len(parts) != 5 {
		return nil, digestErr("must be $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>")
	}
	params, perr := parseParams(parts[2], lenient, "ln", "r", "p")
	if perr != nil {
		return nil, perr
	}
	if params["ln"] > 63 || params["r"] > 1<<30 || params["p"] > 1<<30 {
		return nil, digestErr("has scrypt parameters out of range")
	}
	d.logN, d.r, d.p = int(params["ln"]), int(params["r"]), int(params["p"])
	if d.salt, perr = decodeB64(parts[3], "salt", lenient); perr != nil {
		return nil, perr
	}
	if d.key, perr = decodeB64(parts[4], "hash", lenient); perr != nil {
		return nil, perr
	}
	return d, nil
}

// decodeLegacy parses the canonical stored form of unsalted and salted
// legacy digests: $md5$<hex> or $md5$s=<base64 salt>$<hex>.
func decodeLegacy(parts []string) (*decodedHash, *parseError) {
	d := &decodedHash{alg: parts[1]}
	hexDigest := parts[len(parts)-1]
	switch len(parts) {
	case 3:
	case 4:
		b64, ok := strings.CutPrefix(parts[2], "s=")
		if !ok {
			return nil, digestErr("must be $%s$<hex> or $%s$s=<base64 salt>$<hex>", d.alg, d.alg)
		}
		var perr *parseError
		if d.salt, perr = decodeB64(b64, "salt", false); perr != nil {
			return nil, perr
		}
		if len(d.salt) == 0 {
			return nil, digestErr("has an empty salt")
		}
	default:
		return nil, digestErr("must be $%s$<hex> or $%s$s=<base64 salt>$<hex>", d.alg, d.alg)
	}
	return d, d.setHexKey(hexDigest)
}

// parseLegacyImport parses the import forms of sha1/sha256/md5 digests:
// "<hex>" (unsalted) or "<salt>$<hex>" meaning H(salt || password), the salt
// taken literally as UTF-8 text and split at the last '$' (hex has none, so
// salts may contain '$'). The canonical form ($md5$s=<base64>$<hex>, which
// also carries binary salts) is accepted as well.
func parseLegacyImport(alg, digest string) (*decodedHash, *parseError) {
	if strings.HasPrefix(digest, "$"+alg+"$") {
		return decodeLegacy(strings.Split(digest, "$"))
	}
	if strings.HasPrefix(digest, "$") && EncodedAlgorithm(digest) != "" {
		return nil, digestErr("is a %s hash, not %s as password_algorithm says", EncodedAlgorithm(digest), alg)
	}
	d := &decodedHash{alg: alg}
	hexDigest := digest
	if i := strings.LastIndexByte(digest, '$'); i >= 0 {
		if i == 0 {
			return nil, digestErr("has an empty salt before '$'; send an unsalted digest as plain hex")
		}
		d.salt, hexDigest = []byte(digest[:i]), digest[i+1:]
	}
	return d, d.setHexKey(hexDigest)
}

func legacyHash(alg string) (func() hash.Hash, int) {
	switch alg {
	case AlgSHA1:
		return sha1.New, sha1.Size
	case AlgSHA256:
		return sha256.New, sha256.Size
	default:
		return md5.New, md5.Size
	}
}

func (d *decodedHash) setHexKey(s string) *parseError {
	_, size := legacyHash(d.alg)
	key, err := hex.DecodeString(s)
	if err != nil || len(key) != size {
		return digestErr("must be %s with a %d-character hex %s digest", legacyDigestHint, 2*size, d.alg)
	}
	d.key = key
	return nil
}

// parseParams parses "k1=v1,k2=v2,..." requiring exactly the given keys, in
// that order unless lenient, each a decimal number.
func parseParams(s string, lenient bool, keys ...string) (map[string]uint64, *parseError) {
	want := strings.Join(keys, "=<n>,") + "=<n>"
	fields := strings.Split(s, ",")
	if len(fields) != len(keys) {
		return nil, digestErr("must have parameters %s", want)
	}
	out := make(map[string]uint64, len(keys))
	for i, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || (!lenient && k != keys[i]) {
			return nil, digestErr("must have parameters %s", want)
		}
		if _, dup := out[k]; dup || !contains(keys, k) {
			return nil, digestErr("must have parameters %s", want)
		}
		n, perr := parseUint(v, "parameter "+k)
		if perr != nil {
			return nil, perr
		}
		out[k] = n
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func parseUint(s, what string) (uint64, *parseError) {
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, digestErr("has an invalid %s", what)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, digestErr("has an invalid %s", what)
	}
	return n, nil
}

// decodeB64 decodes unpadded standard base64 (PHC). Import also accepts
// padding and passlib's adapted alphabet, which writes '.' for '+'.
func decodeB64(s, what string, lenient bool) ([]byte, *parseError) {
	if lenient {
		s = strings.TrimRight(strings.ReplaceAll(s, ".", "+"), "=")
	}
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, digestErr("has an invalid base64 %s", what)
	}
	return b, nil
}

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// encode returns the canonical stored form.
func (d *decodedHash) encode() string {
	switch d.alg {
	case AlgArgon2id, AlgArgon2i:
		return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s", d.alg, d.version, d.memory, d.iterations, d.parallelism, b64(d.salt), b64(d.key))
	case AlgBcrypt:
		return d.bcrypt
	case AlgPBKDF2SHA256, AlgPBKDF2SHA512:
		return fmt.Sprintf("$%s$i=%d$%s$%s", d.alg, d.iterations, b64(d.salt), b64(d.key))
	case AlgScrypt:
		return fmt.Sprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", d.logN, d.r, d.p, b64(d.salt), b64(d.key))
	default: // sha1, sha256, md5
		if len(d.salt) == 0 {
			return fmt.Sprintf("$%s$%s", d.alg, hex.EncodeToString(d.key))
		}
		return fmt.Sprintf("$%s$s=%s$%s", d.alg, b64(d.salt), hex.EncodeToString(d.key))
	}
}

// argon2ParamsProblem returns why argon2 parameters are unacceptable, or "".
func argon2ParamsProblem(m, t, p uint32) string {
	switch {
	case p < 1 || p > MaxArgon2Parallelism:
		return fmt.Sprintf("parallelism p=%d must be between 1 and %d", p, MaxArgon2Parallelism)
	case t < 1 || t > MaxArgon2Iterations:
		return fmt.Sprintf("iterations t=%d must be between 1 and %d", t, MaxArgon2Iterations)
	case m < 8*p || m > MaxArgon2MemoryKiB:
		return fmt.Sprintf("memory m=%d KiB must be between 8×p (%d) and %d (1 GiB)", m, 8*p, MaxArgon2MemoryKiB)
	}
	return ""
}

// checkBounds refuses parameters beyond the safe bounds (hash-DoS) and
// degenerate salts and keys.
func (d *decodedHash) checkBounds() *parseError {
	keyLen := func() *parseError {
		if len(d.key) < MinKeyBytes || len(d.key) > MaxKeyBytes {
			return digestErr("has a %d-byte hash; %d to %d bytes are accepted", len(d.key), MinKeyBytes, MaxKeyBytes)
		}
		return nil
	}
	saltLen := func(min, max int) *parseError {
		if len(d.salt) < min || len(d.salt) > max {
			return digestErr("has a %d-byte salt; %d to %d bytes are accepted", len(d.salt), min, max)
		}
		return nil
	}
	switch d.alg {
	case AlgArgon2id, AlgArgon2i:
		if msg := argon2ParamsProblem(d.memory, d.iterations, uint32(d.parallelism)); msg != "" {
			return digestErr("has argon2 %s", msg)
		}
		if err := saltLen(MinArgon2SaltBytes, MaxArgon2SaltBytes); err != nil {
			return err
		}
		return keyLen()
	case AlgBcrypt:
		if d.cost < MinBcryptCost || d.cost > MaxBcryptCost {
			return digestErr("has bcrypt cost %d; %d to %d is accepted", d.cost, MinBcryptCost, MaxBcryptCost)
		}
	case AlgPBKDF2SHA256, AlgPBKDF2SHA512:
		if d.iterations < 1 || d.iterations > MaxPBKDF2Iterations {
			return digestErr("has %d pbkdf2 iterations; 1 to %d are accepted", d.iterations, MaxPBKDF2Iterations)
		}
		if err := saltLen(0, MaxSaltBytes); err != nil {
			return err
		}
		return keyLen()
	case AlgScrypt:
		switch {
		case d.logN < 1 || d.logN > MaxScryptLogN:
			return digestErr("has scrypt ln=%d; 1 to %d (N ≤ 2^%d) is accepted", d.logN, MaxScryptLogN, MaxScryptLogN)
		case d.r < 1 || d.r > MaxScryptR:
			return digestErr("has scrypt r=%d; 1 to %d is accepted", d.r, MaxScryptR)
		case d.p < 1 || d.p > MaxScryptP:
			return digestErr("has scrypt p=%d; 1 to %d is accepted", d.p, MaxScryptP)
		case 128*(1<<d.logN)*d.r > MaxScryptMemoryBytes:
			return digestErr("needs more than 1 GiB of scrypt memory (128·N·r)")
		case (1<<d.logN)*d.r*d.p > MaxScryptWork:
			return digestErr("has scrypt N·r·p above 2^24")
		}
		if err := saltLen(0, MaxSaltBytes); err != nil {
			return err
		}
		return keyLen()
	default: // legacy: key size already fixed by setHexKey
		return saltLen(0, MaxSaltBytes)
	}
	return nil
}

// verify recomputes the hash of password and compares in constant time.
func (d *decodedHash) verify(password string) (bool, error) {
	var got []byte
	switch d.alg {
	case AlgArgon2id:
		// The library parses its own input again; encode() is the
		// canonical form it expects.
		return argon2id.ComparePasswordAndHash(password, d.encode())
	case AlgArgon2i:
		got = argon2.Key([]byte(password), d.salt, d.iterations, d.memory, d.parallelism, uint32(len(d.key)))
	case AlgBcrypt:
		// Constant-time inside; like every bcrypt it reads at most the
		// first 72 bytes of the password, as the system that made the
		// hash did.
		return bcrypt.CompareHashAndPassword([]byte(d.bcrypt), []byte(password)) == nil, nil
	case AlgPBKDF2SHA256, AlgPBKDF2SHA512:
		h := sha256.New
		if d.alg == AlgPBKDF2SHA512 {
			h = sha512.New
		}
		var err error
		if got, err = pbkdf2.Key(h, password, d.salt, int(d.iterations), len(d.key)); err != nil {
			return false, err
		}
	case AlgScrypt:
		var err error
		if got, err = scrypt.Key([]byte(password), d.salt, 1<<d.logN, d.r, d.p, len(d.key)); err != nil {
			return false, err
		}
	default: // sha1, sha256, md5: H(salt || password)
		newHash, _ := legacyHash(d.alg)
		h := newHash()
		h.Write(d.salt)
		h.Write([]byte(password))
		got = h.Sum(nil)
	}
	return subtle.ConstantTimeCompare(got, d.key) == 1, nil
}

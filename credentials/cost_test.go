package credentials

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"golang.org/x/crypto/argon2"
)

// importedHashes returns stored (normalized) hashes of importPassword that
// verify far faster than argon2id with the default parameters.
func importedHashes(t *testing.T) []struct{ name, encoded string } {
	t.Helper()
	imp := func(alg, digest string) string {
		t.Helper()
		enc, err := testHasher.NormalizeImport(alg, digest)
		if err != nil {
			t.Fatalf("import %s: %v", alg, err)
		}
		return enc
	}
	argon := func(alg string, m, iter uint32, p uint8) string {
		var key []byte
		if alg == AlgArgon2id {
			key = argon2.IDKey([]byte(importPassword), testSalt16, iter, m, p, 32)
		} else {
			key = argon2.Key([]byte(importPassword), testSalt16, iter, m, p, 32)
		}
		return imp(alg, fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", alg, m, iter, p, rawB64(testSalt16), rawB64(key)))
	}
	return []struct{ name, encoded string }{
		{"md5", imp("md5", legacySum(md5.New, ""))},
		{"sha1 salted", imp("sha1", "NaCl$"+legacySum(sha1.New, "NaCl"))},
		{"sha256", imp("sha256", legacySum(sha256.New, ""))},
		{"bcrypt cost 4", imp("bcrypt", mustBcrypt(t, 4, "$2b$"))},
		{"pbkdf2-sha256 1000", imp("pbkdf2-sha256", fmt.Sprintf("$pbkdf2-sha256$i=1000$%s$%s", rawB64(testSalt16), rawB64(pbkdf2Sum(t, sha256.New, 1000, testSalt16))))},
		{"scrypt N=2^10", imp("scrypt", fmt.Sprintf("$scrypt$ln=10,r=8,p=1$%s$%s", rawB64(testSalt16), rawB64(scryptSum(t, 10, 8, 1, testSalt16))))},
		{"argon2id m=8MiB", argon(AlgArgon2id, 8192, 2, 1)},
		{"argon2id m=19MiB t=1", argon(AlgArgon2id, DefaultArgon2MemoryKiB, 1, 1)},
		{"argon2id 4 lanes", argon(AlgArgon2id, DefaultArgon2MemoryKiB, 2, 4)},
		{"argon2i m=8MiB", argon(AlgArgon2i, 8192, 2, 1)},
	}
}

// Every verification costs at least what the dummy hash costs, by
// construction: Verify reports the modelled work of each hash it actually
// computed, and for cheap imported hashes (and argon2 with older, smaller
// parameters) that includes a padding hash making up the difference, on a
// wrong password as on the right one. An unknown account (the dummy hash)
// costs exactly the target. So imported, migrated and unknown accounts
// answer alike. Real default parameters: the padding is what is tested.
func TestVerifyPadsCheapHashesToTheDummyCost(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(DefaultArgon2Params(), nil)
	target := h.workTarget()
	if target != argon2Work(DefaultArgon2MemoryKiB, DefaultArgon2Iterations, DefaultArgon2Parallelism) {
		t.Fatalf("target %d is not the work of the current parameters", target)
	}
	// The unknown account: the dummy hash, exactly the target, no padding.
	_, _, work, err := h.verify(ctx, "whatever", h.dummyHash())
	if err != nil || work != target {
		t.Fatalf("dummy: work %d, err %v; want exactly %d", work, err, target)
	}
	// A migrated account (current parameters): the same.
	current, err := h.Hash(ctx, importPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{importPassword, "wrong"} {
		if _, _, work, err := h.verify(ctx, pw, current); err != nil || work != target {
			t.Fatalf("current hash: work %d, err %v; want exactly %d", work, err, target)
		}
	}
	for _, tc := range importedHashes(t) {
		t.Run(tc.name, func(t *testing.T) {
			d, perr := decodeHash(tc.encoded, false)
			if perr != nil {
				t.Fatal(perr.msg)
			}
			if d.work() >= target {
				t.Fatalf("the case is meant to be cheaper than the dummy (%d ≥ %d)", d.work(), target)
			}
			for _, pw := range []string{"wrong password", importPassword} {
				ok, _, work, err := h.verify(ctx, pw, tc.encoded)
				if err != nil || ok != (pw == importPassword) {
					t.Fatalf("verify(%q) = %v, %v", pw, ok, err)
				}
				if work < target {
					t.Fatalf("verify(%q) did work %d, below the dummy hash's %d: a timing oracle", pw, work, target)
				}
				// Alike, not slower: the pad only makes up the difference.
				if work > target+target/100 {
					t.Fatalf("verify(%q) did work %d, far above the dummy hash's %d", pw, work, target)
				}
			}
		})
	}
}

// Hashes that already cost more than the target are not padded.
func TestVerifyDoesNotPadCostlyHashes(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(lightParams, nil) // target: 64 KiB, one pass
	costly := map[string]string{
		"bcrypt cost 4": mustBcrypt(t, 4, "$2a$"),
		"argon2id m=128": func() string {
			s, _ := argon2id.CreateHash(importPassword, &argon2id.Params{Memory: 128, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
			return s
		}(),
	}
	for name, enc := range costly {
		d, _ := decodeHash(enc, false)
		if h.padMemoryKiB(d.work()) != 0 {
			t.Errorf("%s: padded although it costs %d ≥ %d", name, d.work(), h.workTarget())
		}
		if _, _, work, err := h.verify(ctx, "x", enc); err != nil || work != d.work() {
			t.Errorf("%s: work %d, err %v; want just the hash's own %d", name, work, err, d.work())
		}
	}
}

// The padding hash fits in the unit a verification holds in the gate: at
// most the current memory, the current passes and lanes.
func TestPadMemory(t *testing.T) {
	h := NewHasher(DefaultArgon2Params(), nil)
	target := h.workTarget()
	for _, work := range []int64{0, 1, target / 3, target - 1, target, target * 2} {
		m := h.padMemoryKiB(work)
		if work >= target {
			if m != 0 {
				t.Errorf("work %d: pad %d KiB, want none", work, m)
			}
			continue
		}
		if m < 8 || m > DefaultArgon2MemoryKiB {
			t.Errorf("work %d: pad %d KiB outside [8, current memory]", work, m)
		}
		if got := work + argon2Work(m, DefaultArgon2Iterations, DefaultArgon2Parallelism); got < target {
			t.Errorf("work %d + pad %d KiB = %d, below the target %d", work, m, got, target)
		}
	}
	// Several lanes: the pad runs with them too.
	h4 := NewHasher(Argon2Params{MemoryKiB: 4096, Iterations: 3, Parallelism: 4}, nil)
	if m := h4.padMemoryKiB(0); argon2Work(m, 3, 4) < h4.workTarget() || m > 4096 {
		t.Errorf("4 lanes: pad %d KiB does not make up the target", m)
	}
}

// A verification holds the share of the gate its memory and lanes call
// for, in units of the current parameters.
func TestGateWeightOfHashes(t *testing.T) {
	h := NewHasher(DefaultArgon2Params(), nil) // 19 MiB, one lane
	salt, key := rawB64(testSalt16), rawB64(make([]byte, 32))
	tests := []struct {
		encoded string
		want    int64
	}{
		{"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key, 1},
		{"$argon2id$v=19$m=8192,t=2,p=1$" + salt + "$" + key, 1},
		{"$argon2id$v=19$m=19457,t=2,p=1$" + salt + "$" + key, 2},
		{"$argon2id$v=19$m=65536,t=3,p=4$" + salt + "$" + key, 4},   // 3.4 × memory, 4 lanes
		{"$argon2id$v=19$m=8192,t=1,p=8$" + salt + "$" + key, 8},    // lanes dominate
		{"$argon2i$v=19$m=1048576,t=1,p=1$" + salt + "$" + key, 54}, // 1 GiB, before the budget
		{"$scrypt$ln=17,r=8,p=1$" + salt + "$" + key, 7},            // 128 MiB
		{"$scrypt$ln=10,r=8,p=16$" + salt + "$" + key, 1},
		{mustBcrypt(t, 4, "$2a$"), 1},
		{"$pbkdf2-sha512$i=1000$" + salt + "$" + key, 1},
		{"$md5$" + legacySum(md5.New, ""), 1},
	}
	for _, tt := range tests {
		d, perr := decodeHash(tt.encoded, false)
		if perr != nil {
			t.Fatalf("%s: %s", tt.encoded, perr.msg)
		}
		if got := h.gateWeight(d); got != tt.want {
			t.Errorf("gateWeight(%s) = %d, want %d", tt.encoded[:24], got, tt.want)
		}
	}
}

// A stored hash above the whole gate budget (imported before the budget
// was lowered) still verifies: capped at the budget, alone, no deadlock.
func TestVerifyHashHeavierThanTheGate(t *testing.T) {
	g := NewGate(2, 4, 5*time.Second)
	h := NewHasher(lightParams, g) // one unit: 64 KiB
	heavy, err := argon2id.CreateHash(importPassword, &argon2id.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := decodeHash(heavy, false); h.gateWeight(d) != 16 {
		t.Fatalf("weight %d, want 16 units", h.gateWeight(d))
	}
	if ok, _, err := h.Verify(context.Background(), importPassword, heavy); !ok || err != nil {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	// With one unit taken it waits for the whole gate, then runs.
	release := hold(t, g)
	done := make(chan error, 1)
	go func() { _, _, err := h.Verify(context.Background(), importPassword, heavy); done <- err }()
	waitFor(t, func() bool { _, w := g.Stats(); return w == 1 })
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestScryptMemoryKiB(t *testing.T) {
	tests := []struct {
		logN, r int
		want    uint64
	}{
		{10, 8, 1024},
		{20, 8, 1 << 20}, // 1 GiB
		{21, 8, 2 << 20},
		{63, 1 << 30, ^uint64(0)},
		{64, 1, ^uint64(0)},
	}
	for _, tt := range tests {
		if got := scryptMemoryKiB(tt.logN, tt.r); got != tt.want {
			t.Errorf("scryptMemoryKiB(%d, %d) = %d, want %d", tt.logN, tt.r, got, tt.want)
		}
	}
}

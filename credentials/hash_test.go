package credentials

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/latch-dev/latch/fault"
)

// lightParams keep tests fast; tests about the default cost say so.
var lightParams = Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestDefaultArgon2Params(t *testing.T) {
	want := Argon2Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}
	if got := DefaultArgon2Params(); got != want {
		t.Fatalf("DefaultArgon2Params() = %+v, want %+v", got, want)
	}
	if got := NewHasher(Argon2Params{}, nil).Params(); got != want {
		t.Fatalf("NewHasher(zero).Params() = %+v, want defaults %+v", got, want)
	}
	if s := want.String(); s != "m=19456,t=2,p=1" {
		t.Fatalf("String() = %q", s)
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       Argon2Params
		wantErr string
	}{
		{"defaults", DefaultArgon2Params(), ""},
		{"light", lightParams, ""},
		{"max", Argon2Params{MemoryKiB: 1 << 20, Iterations: 64, Parallelism: 16}, ""},
		{"zero parallelism", Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 0}, "parallelism"},
		{"too many lanes", Argon2Params{MemoryKiB: 1024, Iterations: 1, Parallelism: 17}, "parallelism"},
		{"zero iterations", Argon2Params{MemoryKiB: 64, Iterations: 0, Parallelism: 1}, "iterations"},
		{"too many iterations", Argon2Params{MemoryKiB: 64, Iterations: 65, Parallelism: 1}, "iterations"},
		{"memory below 8p", Argon2Params{MemoryKiB: 31, Iterations: 1, Parallelism: 4}, "memory"},
		{"memory above 1 GiB", Argon2Params{MemoryKiB: 1<<20 + 1, Iterations: 1, Parallelism: 1}, "memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
}

func TestNewHasherPanicsOnInvalidParams(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewHasher accepted t=65")
		}
	}()
	NewHasher(Argon2Params{MemoryKiB: 64, Iterations: 65, Parallelism: 1}, nil)
}

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(lightParams, NewGate(2, 0, time.Second))
	passwords := []struct{ name, password, wrong string }{
		{"ascii", "correct horse battery staple", "correct horse battery stapl"},
		{"empty", "", " "},
		{"unicode", "пароль-密码-🔑", "пароль-密码-🔒"},
		{"max length", strings.Repeat("x", 256), strings.Repeat("x", 255)},
		{"case matters", "Secret123", "secret123"},
	}
	for _, tt := range passwords {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := h.Hash(ctx, tt.password)
			if err != nil {
				t.Fatal(err)
			}
			m := phcPattern.FindStringSubmatch(enc)
			if m == nil || m[1] != "64" || m[2] != "1" || m[3] != "1" {
				t.Fatalf("Hash() = %q, not a PHC argon2id string with m=64,t=1,p=1", enc)
			}
			if EncodedAlgorithm(enc) != AlgArgon2id {
				t.Fatalf("EncodedAlgorithm = %q", EncodedAlgorithm(enc))
			}
			// The library itself agrees.
			if ok, err := argon2id.ComparePasswordAndHash(tt.password, enc); !ok || err != nil {
				t.Fatalf("argon2id library does not verify our hash: %v %v", ok, err)
			}
			ok, rehash, err := h.Verify(ctx, tt.password, enc)
			if err != nil || !ok || rehash {
				t.Fatalf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
			}
			ok, rehash, err = h.Verify(ctx, tt.wrong, enc)
			if err != nil || ok || rehash {
				t.Fatalf("Verify(wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
			}
		})
	}
	t.Run("salts differ", func(t *testing.T) {
		a, _ := h.Hash(ctx, "same")
		b, _ := h.Hash(ctx, "same")
		if a == b {
			t.Fatal("two hashes of one password are equal: salt not random")
		}
	})
}

// A parameter change keeps old hashes verifying and flags them for rehash.
func TestVerifyNeedsRehash(t *testing.T) {
	ctx := context.Background()
	current := NewHasher(lightParams, nil)
	tests := []struct {
		name   string
		params *argon2id.Params
		want   bool
	}{
		{"current", &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, false},
		{"other memory", &argon2id.Params{Memory: 128, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, true},
		{"other iterations", &argon2id.Params{Memory: 64, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}, true},
		{"other parallelism", &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 2, SaltLength: 16, KeyLength: 32}, true},
		{"short salt", &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 8, KeyLength: 32}, true},
		{"long key", &argon2id.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 64}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := argon2id.CreateHash("pa55word", tt.params)
			if err != nil {
				t.Fatal(err)
			}
			ok, rehash, err := current.Verify(ctx, "pa55word", enc)
			if err != nil || !ok || rehash != tt.want {
				t.Fatalf("Verify = %v, %v, %v; want true, %v, nil", ok, rehash, err, tt.want)
			}
			// needsRehash describes the hash, whatever the password.
			if _, rehash, _ := current.Verify(ctx, "nope", enc); rehash != tt.want {
				t.Fatalf("needsRehash with wrong password = %v, want %v", rehash, tt.want)
			}
		})
	}
}

func TestVerifyMalformedStoredHash(t *testing.T) {
	h := NewHasher(lightParams, nil)
	good, _ := h.Hash(context.Background(), "x")
	parts := strings.Split(good, "$")
	// parses: the string is well-formed (EncodedAlgorithm names it) but
	// exceeds the safe bounds.
	tests := []struct {
		name, encoded string
		parses        bool
	}{
		{"empty", "", false},
		{"plain text", "hunter2", false},
		{"unknown algorithm", "$argon2d$v=19$m=64,t=1,p=1$" + parts[4] + "$" + parts[5], false},
		{"truncated", strings.Join(parts[:5], "$"), false},
		{"bad version", "$argon2id$v=16$m=64,t=1,p=1$" + parts[4] + "$" + parts[5], false},
		{"bad params", "$argon2id$v=19$m=64,t=1$" + parts[4] + "$" + parts[5], false},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + parts[4] + "$" + parts[5], false},
		{"bad base64", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + parts[5], false},
		{"padded base64 is not canonical", "$argon2id$v=19$m=64,t=1,p=1$" + parts[4] + "==$" + parts[5], false},
		{"memory above bounds", "$argon2id$v=19$m=2097152,t=1,p=1$" + parts[4] + "$" + parts[5], true},
		{"zero lanes", "$argon2id$v=19$m=64,t=1,p=0$" + parts[4] + "$" + parts[5], true},
		{"bcrypt cost above bounds", "$2a$20$" + strings.Repeat("a", 53), true},
		{"pbkdf2 without i=", "$pbkdf2-sha256$1000$c2FsdA$" + strings.Repeat("A", 43), false},
		{"md5 wrong length", "$md5$abcd", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Now()
			ok, rehash, err := h.Verify(context.Background(), "x", tt.encoded)
			if !errors.Is(err, ErrMalformedHash) || ok || rehash {
				t.Fatalf("Verify = %v, %v, %v; want false, false, ErrMalformedHash", ok, rehash, err)
			}
			if time.Since(t0) > 500*time.Millisecond {
				t.Fatalf("refusing a malformed hash took %v: work was done", time.Since(t0))
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatal("error echoes the stored value")
			}
			if (EncodedAlgorithm(tt.encoded) != "") != tt.parses {
				t.Fatalf("EncodedAlgorithm(%q) = %q, want \"\"", tt.encoded, EncodedAlgorithm(tt.encoded))
			}
		})
	}
}

func TestHasherRunsThroughGate(t *testing.T) {
	g := NewGate(1, -1, time.Second) // one slot, no queue
	h := NewHasher(lightParams, g)
	enc, err := h.Hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	release := hold(t, g)
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Hash", func(ctx context.Context) error { _, err := h.Hash(ctx, "pw"); return err }},
		{"Verify", func(ctx context.Context) error { _, _, err := h.Verify(ctx, "pw", enc); return err }},
		{"VerifyDummy", func(ctx context.Context) error { return h.VerifyDummy(ctx, "pw") }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" busy", func(t *testing.T) {
			if err := tt.call(context.Background()); !fault.Is(err, fault.CodeServerBusy) {
				t.Fatalf("err = %v, want server.busy", err)
			}
		})
	}
	release()
	for _, tt := range tests {
		t.Run(tt.name+" cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := tt.call(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
		t.Run(tt.name+" free", func(t *testing.T) {
			if err := tt.call(context.Background()); err != nil {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestVerifyDummyUsesCurrentParams(t *testing.T) {
	for _, p := range []Argon2Params{lightParams, {MemoryKiB: 256, Iterations: 3, Parallelism: 2}} {
		t.Run(p.String(), func(t *testing.T) {
			h := NewHasher(p, nil)
			if err := h.VerifyDummy(context.Background(), "anything"); err != nil {
				t.Fatal(err)
			}
			first := h.dummy
			if err := h.VerifyDummy(context.Background(), "other"); err != nil || h.dummy != first {
				t.Fatalf("dummy hash not computed once: %v", err)
			}
			d, perr := decodeHash(first, false)
			if perr != nil || d.alg != AlgArgon2id || h.needsRehash(d) {
				t.Fatalf("dummy %q is not a current-params argon2id hash (%v)", first, perr)
			}
			if ok, _, _ := h.Verify(context.Background(), "anything", first); ok {
				t.Fatal("a password matched the dummy hash")
			}
		})
	}
}

// VerifyDummy must cost what a real verification costs (no timing oracle
// for unknown identifiers). That holds by construction, which is what is
// checked here rather than wall-clock time: the dummy is an argon2id hash
// with exactly the current parameters and full-size salt and key (Verify
// reports no rehash needed), it is checked by the same Verify path, and it
// waits in the same admission gate.
func TestVerifyDummyCostsARealVerification(t *testing.T) {
	ctx := context.Background()
	gate := NewGate(1, -1, time.Second) // one slot, nobody may wait
	h := NewHasher(lightParams, gate)
	if err := h.VerifyDummy(ctx, "wrong password"); err != nil {
		t.Fatal(err)
	}
	if alg := EncodedAlgorithm(h.dummy); alg != "argon2id" {
		t.Fatalf("dummy hash algorithm %q", alg)
	}
	ok, needsRehash, err := h.Verify(ctx, "wrong password", h.dummy)
	if err != nil || ok || needsRehash {
		t.Fatalf("dummy hash: ok %v, needsRehash %v (want current parameters), err %v", ok, needsRehash, err)
	}
	d, perr := decodeHash(h.dummy, true)
	if perr != nil || len(d.salt) != Argon2SaltLength || len(d.key) != Argon2KeyLength {
		t.Fatalf("dummy hash %q: salt/key sizes wrong", h.dummy)
	}
	// Through the gate, like a real verification: with the only slot
	// taken it is refused like one.
	release := hold(t, gate)
	defer release()
	if _, ok := fault.As(h.VerifyDummy(ctx, "x")); !ok {
		t.Fatal("VerifyDummy bypassed the admission gate")
	}
}

func TestMeasureHashRate(t *testing.T) {
	rate := MeasureHashRate(lightParams, 2, 50*time.Millisecond)
	if rate <= 0 {
		t.Fatalf("MeasureHashRate = %v", rate)
	}
}

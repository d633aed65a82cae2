package credentials

import (
	"context"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/alexedwards/argon2id"
	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/fault"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

const importPassword = "Tr0ub4dor&3 ünïcödé"

// testHasher holds imports to the default budget; boundsHasher's budget is
// the safe bounds themselves, for the tests of those bounds.
var (
	testHasher   = NewHasher(lightParams, nil)
	boundsHasher = NewHasher(lightParams, nil, WithImportBudget(ImportBudget{
		Argon2MemoryKiB: MaxArgon2MemoryKiB, Argon2Iterations: MaxArgon2Iterations, Argon2Parallelism: MaxArgon2Parallelism,
		BcryptCost: MaxBcryptCost, ScryptMemoryKiB: MaxScryptMemoryBytes >> 10, PBKDF2Iterations: MaxPBKDF2Iterations,
	}))
)

var (
	testSalt16 = []byte("0123456789abcdef")
	rawB64     = base64.RawStdEncoding.EncodeToString
	stdB64     = base64.StdEncoding.EncodeToString
)

// passlibB64 is passlib's "adapted base64": no padding, '.' instead of '+'.
func passlibB64(b []byte) string { return strings.ReplaceAll(rawB64(b), "+", ".") }

func mustBcrypt(t *testing.T, cost int, prefix string) string {
	t.Helper()
	b, err := bcrypt.GenerateFromPassword([]byte(importPassword), cost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(b)[4:] // replace "$2a$"
}

func pbkdf2Sum(t *testing.T, h func() hash.Hash, iter int, salt []byte) []byte {
	t.Helper()
	k, err := pbkdf2.Key(h, importPassword, salt, iter, h().Size())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func scryptSum(t *testing.T, ln, r, p int, salt []byte) []byte {
	t.Helper()
	k, err := scrypt.Key([]byte(importPassword), salt, 1<<ln, r, p, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func legacySum(h func() hash.Hash, salt string) string {
	d := h()
	d.Write([]byte(salt))
	d.Write([]byte(importPassword))
	return hex.EncodeToString(d.Sum(nil))
}

// importCases generate every documented input format from importPassword,
// exactly as another system would have stored it.
func importCases(t *testing.T) []struct {
	name, alg, digest string
} {
	argon2i := argon2.Key([]byte(importPassword), testSalt16, 3, 256, 2, 32)
	argon2idKey := argon2.IDKey([]byte(importPassword), testSalt16, 2, 128, 1, 32)
	argon2idLib, err := argon2id.CreateHash(importPassword, &argon2id.Params{Memory: 512, Iterations: 2, Parallelism: 2, SaltLength: 16, KeyLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	p256 := pbkdf2Sum(t, sha256.New, 1000, testSalt16)
	p512 := pbkdf2Sum(t, sha512.New, 1000, testSalt16)
	// A salt whose base64 contains '+', to exercise passlib's '.' alphabet.
	plusSalt := []byte{0xfb, 0xef, 0xbe, 0xfb, 0xef, 0xbe, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	p256plus := pbkdf2Sum(t, sha256.New, 1000, plusSalt)
	sc := scryptSum(t, 10, 8, 1, testSalt16)

	return []struct{ name, alg, digest string }{
		{"argon2id PHC (library)", "argon2id", argon2idLib},
		{"argon2id PHC (hand-made)", "argon2id", fmt.Sprintf("$argon2id$v=19$m=128,t=2,p=1$%s$%s", rawB64(testSalt16), rawB64(argon2idKey))},
		{"argon2id padded base64", "argon2id", fmt.Sprintf("$argon2id$v=19$m=128,t=2,p=1$%s$%s", stdB64(testSalt16), stdB64(argon2idKey))},
		{"argon2id params in another order", "argon2id", fmt.Sprintf("$argon2id$v=19$t=2,p=1,m=128$%s$%s", rawB64(testSalt16), rawB64(argon2idKey))},
		{"argon2i PHC", "argon2i", fmt.Sprintf("$argon2i$v=19$m=256,t=3,p=2$%s$%s", rawB64(testSalt16), rawB64(argon2i))},
		{"bcrypt $2a$", "bcrypt", mustBcrypt(t, 4, "$2a$")},
		{"bcrypt $2b$", "bcrypt", mustBcrypt(t, 5, "$2b$")},
		{"bcrypt $2y$ (PHP)", "bcrypt", mustBcrypt(t, 4, "$2y$")},
		{"pbkdf2-sha256 i=", "pbkdf2-sha256", fmt.Sprintf("$pbkdf2-sha256$i=1000$%s$%s", rawB64(testSalt16), rawB64(p256))},
		{"pbkdf2-sha256 passlib", "pbkdf2-sha256", fmt.Sprintf("$pbkdf2-sha256$1000$%s$%s", passlibB64(plusSalt), passlibB64(p256plus))},
		{"pbkdf2-sha256 padded", "pbkdf2-sha256", fmt.Sprintf("$pbkdf2-sha256$i=1000$%s$%s", stdB64(plusSalt), stdB64(p256plus))},
		{"pbkdf2-sha512 i=", "pbkdf2-sha512", fmt.Sprintf("$pbkdf2-sha512$i=1000$%s$%s", rawB64(testSalt16), rawB64(p512))},
		{"scrypt passlib", "scrypt", fmt.Sprintf("$scrypt$ln=10,r=8,p=1$%s$%s", rawB64(testSalt16), rawB64(sc))},
		{"sha1 unsalted", "sha1", legacySum(sha1.New, "")},
		{"sha1 salted", "sha1", "NaCl$" + legacySum(sha1.New, "NaCl")},
		{"sha256 unsalted", "sha256", legacySum(sha256.New, "")},
		{"sha256 unsalted upper-case hex", "SHA256", strings.ToUpper(legacySum(sha256.New, ""))},
		{"sha256 salted", "sha256", "s4lt-with-$-inside$" + legacySum(sha256.New, "s4lt-with-$-inside")},
		{"md5 unsalted", "md5", legacySum(md5.New, "")},
		{"md5 salted", "MD5", "pepper$" + legacySum(md5.New, "pepper")},
		{"md5 canonical with binary salt", "md5", "$md5$s=" + rawB64([]byte{0, 255, '$'}) + "$" + legacySum(md5.New, "\x00\xff$")},
		{"algorithm with spaces and Logto case", " Bcrypt ", mustBcrypt(t, 4, "$2b$")},
	}
}

func TestNormalizeImportVerifies(t *testing.T) {
	ctx := context.Background()
	h := NewHasher(lightParams, nil)
	for _, tt := range importCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := testHasher.NormalizeImport(tt.alg, tt.digest)
			if err != nil {
				t.Fatalf("NormalizeImport: %v", err)
			}
			wantAlg := strings.ToLower(strings.TrimSpace(tt.alg))
			if got := EncodedAlgorithm(enc); got != wantAlg {
				t.Fatalf("stored %q is %q, want self-describing %q", enc, got, wantAlg)
			}
			ok, rehash, err := h.Verify(ctx, importPassword, enc)
			if err != nil || !ok || !rehash {
				t.Fatalf("Verify(right) = %v, %v, %v; want true, true (legacy ⇒ rehash), nil", ok, rehash, err)
			}
			for _, wrong := range []string{"", "tr0ub4dor&3 ünïcödé", importPassword + " ", importPassword[:len(importPassword)-1]} {
				if ok, _, err := h.Verify(ctx, wrong, enc); ok || err != nil {
					t.Fatalf("Verify(%q) = %v, %v; want false, nil", wrong, ok, err)
				}
			}
			// The stored form is canonical: importing it again is a no-op.
			again, err := testHasher.NormalizeImport(wantAlg, enc)
			if err != nil || again != enc {
				t.Fatalf("re-import of %q = %q, %v", enc, again, err)
			}
			// And the upgrade after the first successful sign-in verifies
			// without rehash.
			upgraded, err := h.Hash(ctx, importPassword)
			if err != nil {
				t.Fatal(err)
			}
			if ok, rehash, err := h.Verify(ctx, importPassword, upgraded); !ok || rehash || err != nil {
				t.Fatalf("upgraded hash: %v %v %v", ok, rehash, err)
			}
		})
	}
}

// An imported argon2id hash with exactly the current parameters needs no
// rehash.
func TestNormalizeImportCurrentArgon2idNeedsNoRehash(t *testing.T) {
	h := NewHasher(lightParams, nil)
	src, _ := h.Hash(context.Background(), importPassword)
	enc, err := testHasher.NormalizeImport("argon2id", src)
	if err != nil || enc != src {
		t.Fatalf("NormalizeImport = %q, %v; want the input unchanged", enc, err)
	}
	if ok, rehash, err := h.Verify(context.Background(), importPassword, enc); !ok || rehash || err != nil {
		t.Fatalf("Verify = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
}

func TestNormalizeImportCanonicalForms(t *testing.T) {
	tests := []struct{ alg, digest, want string }{
		{"pbkdf2-sha256", "$pbkdf2-sha256$29000$N2ZPzplTSulbK.W8dw5hjA$vC1Vu0qSnF1pWGJcqOUUNN1/Y6oPRj/nMn.JhMZ4kJM",
			"$pbkdf2-sha256$i=29000$N2ZPzplTSulbK+W8dw5hjA$vC1Vu0qSnF1pWGJcqOUUNN1/Y6oPRj/nMn+JhMZ4kJM"},
		{"sha256", "abc$" + strings.Repeat("AB", 32), "$sha256$s=YWJj$" + strings.Repeat("ab", 32)},
		{"sha1", strings.Repeat("0f", 20), "$sha1$" + strings.Repeat("0f", 20)},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			got, err := testHasher.NormalizeImport(tt.alg, tt.digest)
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeImport = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNormalizeImportRefuses(t *testing.T) {
	salt, key := rawB64(testSalt16), rawB64(make([]byte, 32))
	argon := func(alg, params string) string { return "$" + alg + "$v=19$" + params + "$" + salt + "$" + key }
	pbk := func(rounds string) string { return "$pbkdf2-sha256$" + rounds + "$" + salt + "$" + key }
	scr := func(params string) string { return "$scrypt$" + params + "$" + salt + "$" + key }
	bc := mustBcrypt(t, 4, "$2b$")
	hex32 := strings.Repeat("a", 32)

	tests := []struct {
		name, alg, digest string
		field, msg        string // msg: a substring of the message
	}{
		// algorithm
		{"missing algorithm", "", hex32, "password_algorithm", "required"},
		{"unknown algorithm", "sha512", hex32, "password_algorithm", "not supported"},
		{"argon2d is not supported", "argon2d", argon("argon2d", "m=64,t=1,p=1"), "password_algorithm", "not supported"},
		{"algorithm and digest disagree", "argon2i", argon("argon2id", "m=64,t=1,p=1"), "password_digest", "argon2id hash, not argon2i"},
		{"md5 declared, argon2 sent", "md5", argon("argon2id", "m=64,t=1,p=1"), "password_digest", "argon2id hash, not md5"},
		{"bcrypt declared, pbkdf2 sent", "bcrypt", pbk("i=1000"), "password_digest", "not bcrypt"},
		// digest generic
		{"missing digest", "md5", "  ", "password_digest", "required"},
		{"digest too long", "pbkdf2-sha256", "$pbkdf2-sha256$i=1000$" + strings.Repeat("A", 1100) + "$" + key, "password_digest", "longer than 1024"},
		{"no $ prefix", "argon2id", "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key, "password_digest", "not in a supported format"},
		// argon2
		{"argon2 memory above 1 GiB", "argon2id", argon("argon2id", "m=1048577,t=1,p=1"), "password_digest", "memory"},
		{"argon2 huge memory overflow", "argon2id", argon("argon2id", "m=99999999999,t=1,p=1"), "password_digest", "invalid parameter m"},
		{"argon2 t above 64", "argon2id", argon("argon2id", "m=64,t=65,p=1"), "password_digest", "iterations"},
		{"argon2 p=0", "argon2i", argon("argon2i", "m=64,t=1,p=0"), "password_digest", "parallelism"},
		{"argon2 p above 16", "argon2id", argon("argon2id", "m=1024,t=1,p=17"), "password_digest", "parallelism"},
		{"argon2 memory below 8p", "argon2id", argon("argon2id", "m=8,t=1,p=2"), "password_digest", "memory"},
		{"argon2 negative", "argon2id", argon("argon2id", "m=-64,t=1,p=1"), "password_digest", "invalid parameter m"},
		{"argon2 missing parameter", "argon2id", argon("argon2id", "m=64,t=1"), "password_digest", "m=<n>,t=<n>,p=<n>"},
		{"argon2 unknown parameter", "argon2id", argon("argon2id", "m=64,t=1,x=1"), "password_digest", "m=<n>,t=<n>,p=<n>"},
		{"argon2 duplicate parameter", "argon2id", argon("argon2id", "m=64,m=64,p=1"), "password_digest", "m=<n>,t=<n>,p=<n>"},
		{"argon2 version 16", "argon2i", "$argon2i$v=16$m=64,t=1,p=1$" + salt + "$" + key, "password_digest", "v=19"},
		{"argon2 without version", "argon2i", "$argon2i$m=64,t=1,p=1$" + salt + "$" + key, "password_digest", "version 16"},
		{"argon2 bad base64 salt", "argon2id", "$argon2id$v=19$m=64,t=1,p=1$***$" + key, "password_digest", "base64 salt"},
		{"argon2 short salt", "argon2id", "$argon2id$v=19$m=64,t=1,p=1$" + rawB64([]byte("1234567")) + "$" + key, "password_digest", "7-byte salt"},
		{"argon2 short key", "argon2id", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + rawB64(make([]byte, 8)), "password_digest", "8-byte hash"},
		{"argon2 extra field", "argon2id", argon("argon2id", "m=64,t=1,p=1") + "$x", "password_digest", "must be $argon2id$"},
		// bcrypt
		{"bcrypt cost 17", "bcrypt", "$2b$17$" + bc[7:], "password_digest", "cost 17"},
		{"bcrypt cost 31", "bcrypt", "$2a$31$" + bc[7:], "password_digest", "cost 31"},
		{"bcrypt cost 03", "bcrypt", "$2a$03$" + bc[7:], "password_digest", "invalid bcrypt cost"},
		{"bcrypt $2x$", "bcrypt", "$2x$10$" + bc[7:], "password_digest", "not a bcrypt hash"},
		{"bcrypt truncated", "bcrypt", bc[:40], "password_digest", "not a bcrypt hash"},
		{"bcrypt bad alphabet", "bcrypt", bc[:20] + "!" + bc[21:], "password_digest", "not a bcrypt hash"},
		// pbkdf2
		{"pbkdf2 iterations above 2M", "pbkdf2-sha256", pbk("i=2000001"), "password_digest", "2000001 pbkdf2 iterations"},
		{"pbkdf2 iterations far above", "pbkdf2-sha512", "$pbkdf2-sha512$i=9999999999$" + salt + "$" + key, "password_digest", "pbkdf2 iterations"},
		{"pbkdf2 zero iterations", "pbkdf2-sha256", pbk("i=0"), "password_digest", "0 pbkdf2 iterations"},
		{"pbkdf2 non-numeric", "pbkdf2-sha256", pbk("i=lots"), "password_digest", "invalid iteration count"},
		{"pbkdf2 missing field", "pbkdf2-sha256", "$pbkdf2-sha256$i=1000$" + key, "password_digest", "must be $pbkdf2-sha256$"},
		{"pbkdf2 short hash", "pbkdf2-sha256", "$pbkdf2-sha256$i=1000$" + salt + "$" + rawB64(make([]byte, 4)), "password_digest", "4-byte hash"},
		{"pbkdf2 salt too long", "pbkdf2-sha256", "$pbkdf2-sha256$i=1000$" + rawB64(make([]byte, 129)) + "$" + key, "password_digest", "129-byte salt"},
		// scrypt
		{"scrypt N above 2^20", "scrypt", scr("ln=21,r=1,p=1"), "password_digest", "ln=21"},
		{"scrypt memory above 1 GiB", "scrypt", scr("ln=20,r=9,p=1"), "password_digest", "limit of 1048576 KiB"},
		{"scrypt work above 2^24", "scrypt", scr("ln=20,r=8,p=3"), "password_digest", "N·r·p"},
		{"scrypt r*p too big", "scrypt", scr("ln=15,r=64,p=16"), "password_digest", "N·r·p"},
		{"scrypt p above 16", "scrypt", scr("ln=10,r=8,p=17"), "password_digest", "p=17"},
		{"scrypt r above 64", "scrypt", scr("ln=4,r=65,p=1"), "password_digest", "r=65"},
		{"scrypt ln=0", "scrypt", scr("ln=0,r=8,p=1"), "password_digest", "ln=0"},
		{"scrypt huge ln", "scrypt", scr("ln=99,r=8,p=1"), "password_digest", "out of range"},
		{"scrypt missing params", "scrypt", scr("ln=10,r=8"), "password_digest", "ln=<n>,r=<n>,p=<n>"},
		// legacy
		{"md5 wrong length", "md5", strings.Repeat("a", 40), "password_digest", "32-character hex md5"},
		{"sha1 wrong length", "sha1", strings.Repeat("a", 32), "password_digest", "40-character hex sha1"},
		{"sha256 not hex", "sha256", strings.Repeat("z", 64), "password_digest", "64-character hex sha256"},
		{"salted with empty salt", "sha256", "$" + strings.Repeat("a", 64), "password_digest", "empty salt"},
		{"salt too long", "md5", strings.Repeat("s", 129) + "$" + hex32, "password_digest", "129-byte salt"},
		{"canonical with bad salt", "md5", "$md5$x=abc$" + hex32, "password_digest", "s=<base64 salt>"},
		{"canonical with empty salt", "md5", "$md5$s=$" + hex32, "password_digest", "empty salt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := boundsHasher.NormalizeImport(tt.alg, tt.digest)
			if err == nil {
				t.Fatalf("NormalizeImport accepted it: %q", enc)
			}
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.CodeInvalidInput || fe.Status != http.StatusBadRequest || len(fe.Details) != 1 {
				t.Fatalf("err = %#v, want one guard.invalid_input detail", err)
			}
			if d := fe.Details[0]; d.Field != tt.field || !strings.Contains(d.Message, tt.msg) {
				t.Fatalf("detail = %+v, want field %s and a message containing %q", d, tt.field, tt.msg)
			}
			if len(tt.digest) > 8 && strings.Contains(fe.Message, tt.digest) {
				t.Fatal("message echoes the digest")
			}
		})
	}
}

func TestEncodedAlgorithm(t *testing.T) {
	tests := []struct{ encoded, want string }{
		{"$argon2id$v=19$m=64,t=1,p=1$" + rawB64(testSalt16) + "$" + rawB64(make([]byte, 32)), "argon2id"},
		{"$md5$" + strings.Repeat("0", 32), "md5"},
		{"$sha1$s=YWJj$" + strings.Repeat("0", 40), "sha1"},
		{strings.Repeat("0", 32), ""}, // the import form is not a stored form
		{"$unknown$x", ""},
	}
	for _, tt := range tests {
		if got := EncodedAlgorithm(tt.encoded); got != tt.want {
			t.Errorf("EncodedAlgorithm(%q) = %q, want %q", tt.encoded, got, tt.want)
		}
	}
}

// The examples of docs/password-import.md are real hashes of the documented
// password, in the documented input formats.
func TestPasswordImportDocExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("real-cost hashes")
	}
	doc, err := os.ReadFile("../docs/password-import.md")
	if err != nil {
		t.Fatal(err)
	}
	const password = "correct horse battery staple"
	examples := []struct{ alg, digest string }{
		{"argon2id", "$argon2id$v=19$m=65536,t=3,p=4$bGF0Y2gtZG9jLXNhbHQxNg$iy3H5aTxtrX6nCWjwApCb/Q77xJprG8UUmmuSbzaVvk"},
		{"argon2i", "$argon2i$v=19$m=4096,t=3,p=1$bGF0Y2gtZG9jLXNhbHQxNg$d0bvPA3fvk0//aTzKMzXmZMhtg4R+ohyd48VZAwKthM"},
		{"bcrypt", "$2a$10$B01xLg8fBlG5JWmaIYlat.xHWVRg4ZxURJybIYn0gm2SvIqMN0huy"},
		{"pbkdf2-sha256", "$pbkdf2-sha256$i=600000$bGF0Y2gtZG9jLXNhbHQxNg$EtfP109XcZHN4SNoH5dYr1Vuxg1FjzPClNW8JIeiRsI"},
		{"pbkdf2-sha512", "$pbkdf2-sha512$i=210000$bGF0Y2gtZG9jLXNhbHQxNg$PNyaFvtSb/eh/BbUS4ngQSahQ0j9MUowzkRw0ZvP3hE0URei9pN3/HlvtQBA+bPR1m0WpusUmQIUB9AiFqjt6g"},
		{"pbkdf2-sha256", "$pbkdf2-sha256$29000$bGF0Y2gtZG9jLXNhbHQxNg$hp9ZnvHRWeQBekykx5hL/4Tm5P8BKuog5qHG2H2jTn0"},
		{"scrypt", "$scrypt$ln=15,r=8,p=1$bGF0Y2gtZG9jLXNhbHQxNg$jevz/ZJkaxeeoTBYFl8NLMdRn0dFSM51zE5/noGM49M"},
		{"sha1", "abf7aad6438836dbe526aa231abde2d0eef74d42"},
		{"sha1", "NaCl$ece0e76cf7acdb98049bb6c9661654cf33ce80d0"},
		{"sha256", "c4bbcb1fbec99d65bf59d85c8cb62ee2db963f0fe106f483d9afa73bd4e39a8a"},
		{"sha256", "NaCl$c7124467796ef676c7899dc49bbe06dc4b13e11f3f3b89fb82b9a7dd384bd562"},
		{"md5", "9cc2ae8a1ba7a93da39b46fc1019c481"},
		{"md5", "NaCl$e1bc0bb1dc7906017e25f64330178c2f"},
		{"md5", "$md5$s=nwAk4Q$f494868c5b91c0c1362b02cab5c7b0a7"},
	}
	h := NewHasher(lightParams, nil)
	for _, ex := range examples {
		t.Run(ex.alg+" "+ex.digest[:12], func(t *testing.T) {
			if !strings.Contains(string(doc), ex.digest) {
				t.Fatalf("example %q is not in the doc any more", ex.digest)
			}
			enc, err := testHasher.NormalizeImport(ex.alg, ex.digest)
			if err != nil {
				t.Fatal(err)
			}
			if ok, rehash, err := h.Verify(context.Background(), password, enc); !ok || !rehash || err != nil {
				t.Fatalf("Verify = %v, %v, %v", ok, rehash, err)
			}
		})
	}
}

// Imports are held to the import budget (default: argon2 64 MiB, t ≤ 10,
// p ≤ 4; bcrypt 14; scrypt 128 MiB, i.e. N·r ≤ 2^20; pbkdf2 1,000,000): at the bound they
// are accepted, above it refused naming the bound.
func TestNormalizeImportBudget(t *testing.T) {
	salt, key := rawB64(testSalt16), rawB64(make([]byte, 32))
	argon := func(alg, params string) string { return "$" + alg + "$v=19$" + params + "$" + salt + "$" + key }
	pbk := func(i int) string { return fmt.Sprintf("$pbkdf2-sha256$i=%d$%s$%s", i, salt, key) }
	scr := func(params string) string { return "$scrypt$" + params + "$" + salt + "$" + key }
	bcryptTail := mustBcrypt(t, 4, "$2b$")[7:]
	bc := func(cost int) string { return fmt.Sprintf("$2b$%02d$%s", cost, bcryptTail) }

	accepted := []struct{ alg, digest string }{
		{"argon2id", argon("argon2id", "m=65536,t=10,p=4")},
		{"argon2i", argon("argon2i", "m=65536,t=3,p=4")},
		{"bcrypt", bc(14)},
		{"scrypt", scr("ln=17,r=8,p=1")}, // 128 MiB
		{"scrypt", scr("ln=14,r=64,p=1")},
		{"pbkdf2-sha256", pbk(1_000_000)},
	}
	for _, tt := range accepted {
		if _, err := testHasher.NormalizeImport(tt.alg, tt.digest); err != nil {
			t.Errorf("%s at the budget refused: %v", tt.alg, err)
		}
	}
	refused := []struct{ name, alg, digest, msg string }{
		{"argon2id 1 GiB", "argon2id", argon("argon2id", "m=1048576,t=1,p=1"), "argon2 memory 1048576 KiB exceeds the limit of 65536 KiB"},
		{"argon2i 1 GiB", "argon2i", argon("argon2i", "m=1048576,t=1,p=1"), "argon2 memory 1048576 KiB exceeds the limit of 65536 KiB"},
		{"argon2 memory +1", "argon2id", argon("argon2id", "m=65537,t=1,p=1"), "argon2 memory 65537 KiB exceeds the limit of 65536 KiB"},
		{"argon2 t=11", "argon2id", argon("argon2id", "m=1024,t=11,p=1"), "argon2 iterations 11 exceed the limit of 10"},
		{"argon2 p=5", "argon2id", argon("argon2id", "m=1024,t=1,p=5"), "argon2 parallelism 5 exceeds the limit of 4"},
		{"bcrypt 15", "bcrypt", bc(15), "bcrypt cost 15 exceeds the limit of 14"},
		{"scrypt N=2^21 r=8", "scrypt", scr("ln=21,r=8,p=1"), "scrypt memory 2097152 KiB (128·N·r with ln=21, r=8) exceeds the limit of 131072 KiB"},
		{"scrypt N=2^18 r=8", "scrypt", scr("ln=18,r=8,p=1"), "scrypt memory 262144 KiB (128·N·r with ln=18, r=8) exceeds the limit of 131072 KiB"},
		{"scrypt N=2^17 r=9", "scrypt", scr("ln=17,r=9,p=1"), "exceeds the limit of 131072 KiB"},
		{"pbkdf2 2M", "pbkdf2-sha256", pbk(2_000_000), "pbkdf2 iterations 2000000 exceed the limit of 1000000"},
		{"pbkdf2 +1", "pbkdf2-sha512", strings.Replace(pbk(1_000_001), "sha256", "sha512", 1), "pbkdf2 iterations 1000001 exceed the limit of 1000000"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testHasher.NormalizeImport(tt.alg, tt.digest)
			fe, ok := fault.As(err)
			if !ok || fe.Status != http.StatusBadRequest || len(fe.Details) != 1 {
				t.Fatalf("err = %v, want one guard.invalid_input detail", err)
			}
			if d := fe.Details[0]; d.Field != "password_digest" || !strings.Contains(d.Message, tt.msg) {
				t.Fatalf("detail = %+v, want password_digest: %q", d, tt.msg)
			}
		})
	}
}

// The budget is configurable; zero fields keep their defaults, and a budget
// beyond the safe bounds is a configuration bug.
func TestImportBudgetConfigurable(t *testing.T) {
	h := NewHasher(lightParams, nil, WithImportBudget(ImportBudget{BcryptCost: 10, Argon2MemoryKiB: 1 << 20}))
	want := DefaultImportBudget()
	want.BcryptCost, want.Argon2MemoryKiB = 10, 1<<20
	if got := h.ImportBudget(); got != want {
		t.Fatalf("budget = %+v, want %+v", got, want)
	}
	bcryptTail := mustBcrypt(t, 4, "$2b$")[7:]
	if _, err := h.NormalizeImport("bcrypt", "$2b$11$"+bcryptTail); err == nil || !strings.Contains(err.Error(), "limit of 10") {
		t.Fatalf("bcrypt 11 under a budget of 10: %v", err)
	}
	huge := "$argon2id$v=19$m=1048576,t=1,p=1$" + rawB64(testSalt16) + "$" + rawB64(make([]byte, 32))
	if _, err := h.NormalizeImport("argon2id", huge); err != nil {
		t.Fatalf("1 GiB under a raised budget: %v", err)
	}
	bad := []ImportBudget{
		{Argon2MemoryKiB: MaxArgon2MemoryKiB + 1},
		{Argon2Iterations: MaxArgon2Iterations + 1},
		{Argon2Parallelism: MaxArgon2Parallelism + 1},
		{BcryptCost: MaxBcryptCost + 1},
		{BcryptCost: 3},
		{ScryptMemoryKiB: MaxScryptMemoryBytes>>10 + 1},
		{PBKDF2Iterations: MaxPBKDF2Iterations + 1},
	}
	for _, b := range bad {
		if err := b.withDefaults().Validate(); err == nil {
			t.Errorf("budget %+v accepted", b)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewHasher accepted budget %+v", b)
				}
			}()
			NewHasher(lightParams, nil, WithImportBudget(b))
		}()
	}
}

// The configuration's defaults are the package's.
func TestImportBudgetConfigDefaults(t *testing.T) {
	c := config.Default()
	got := ImportBudget{
		Argon2MemoryKiB: c.HashImportMaxArgon2MemoryKiB, Argon2Iterations: c.HashImportMaxArgon2Iterations,
		Argon2Parallelism: c.HashImportMaxArgon2Parallelism, BcryptCost: c.HashImportMaxBcryptCost,
		ScryptMemoryKiB: c.HashImportMaxScryptMemoryKiB, PBKDF2Iterations: c.HashImportMaxPBKDF2Iterations,
	}
	if got != DefaultImportBudget() {
		t.Fatalf("config defaults %+v, credentials defaults %+v", got, DefaultImportBudget())
	}
}

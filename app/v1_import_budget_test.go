package app_test

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"

	"github.com/latch-dev/latch/app/apptest"
)

// budgetHashes are real hashes of docPassword at the default import budget
// (argon2 64 MiB, t=10, p=4; bcrypt 14; scrypt 128 MiB; pbkdf2 1,000,000).
func budgetHashes(t *testing.T) []struct{ name, algorithm, digest string } {
	t.Helper()
	b64 := base64.RawStdEncoding.EncodeToString
	salt := []byte("latch-budget-slt")
	pw := []byte(docPassword)
	argon := func(alg string, m, iter uint32, p uint8) string {
		key := argon2.IDKey(pw, salt, iter, m, p, 32)
		if alg == "argon2i" {
			key = argon2.Key(pw, salt, iter, m, p, 32)
		}
		return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", alg, m, iter, p, b64(salt), b64(key))
	}
	bc, err := bcrypt.GenerateFromPassword(pw, 14)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scrypt.Key(pw, salt, 1<<17, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := pbkdf2.Key(sha256.New, docPassword, salt, 1_000_000, 32)
	if err != nil {
		t.Fatal(err)
	}
	return []struct{ name, algorithm, digest string }{
		{"argon2id 64 MiB", "argon2id", argon("argon2id", 65536, 1, 1)},
		{"argon2id t=10 p=4", "argon2id", argon("argon2id", 1024, 10, 4)},
		{"argon2i 64 MiB p=4", "argon2i", argon("argon2i", 65536, 1, 4)},
		{"bcrypt 14", "bcrypt", string(bc)},
		{"scrypt N=2^17 r=8", "scrypt", fmt.Sprintf("$scrypt$ln=17,r=8,p=1$%s$%s", b64(salt), b64(sc))},
		{"pbkdf2 1,000,000", "pbkdf2-sha256", fmt.Sprintf("$pbkdf2-sha256$i=1000000$%s$%s", b64(salt), b64(pb))},
	}
}

// Imported hashes may not cost more to verify than the import budget
// (hash-DoS): above it POST /v1/users is refused with a 400 naming the
// bound and creates no user; at it the import works and signs in.
func TestV1PasswordImportBudget(t *testing.T) {
	atBudget := budgetHashes(t)
	const salt, key = "bGF0Y2gtZG9jLXNhbHQxNg", "iy3H5aTxtrX6nCWjwApCb/Q77xJprG8UUmmuSbzaVvk"
	bcryptTail := "B01xLg8fBlG5JWmaIYlat.xHWVRg4ZxURJybIYn0gm2SvIqMN0huy"
	refuse := func(t *testing.T, f *v1Fix, algorithm, digest, bound string) {
		t.Helper()
		name := v1Name("budget")
		res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": name,
			"password_digest": digest, "password_algorithm": algorithm})
		wantDetail(t, res, "password_digest")
		if msg := res.Str("message"); !strings.Contains(msg, bound) {
			t.Errorf("message %q does not name the bound %q", msg, bound)
		}
		if strings.Contains(string(res.Raw), digest) {
			t.Errorf("the error echoes the digest: %s", res)
		}
		found := f.call(t, http.MethodGet, "/v1/users?username="+name, f.tok, nil)
		if users, _ := found.JSON["users"].([]any); len(users) != 0 {
			t.Fatalf("created a user anyway: %s", found)
		}
	}
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		t.Run("above the budget", func(t *testing.T) {
			refused := []struct{ name, algorithm, digest, bound string }{
				{"argon2id 1 GiB", "argon2id", "$argon2id$v=19$m=1048576,t=3,p=4$" + salt + "$" + key,
					"argon2 memory 1048576 KiB exceeds the limit of 65536 KiB"},
				{"argon2id t=11", "argon2id", "$argon2id$v=19$m=65536,t=11,p=4$" + salt + "$" + key,
					"argon2 iterations 11 exceed the limit of 10"},
				{"argon2i p=5", "argon2i", "$argon2i$v=19$m=65536,t=3,p=5$" + salt + "$" + key,
					"argon2 parallelism 5 exceeds the limit of 4"},
				{"bcrypt 15", "bcrypt", "$2a$15$" + bcryptTail, "bcrypt cost 15 exceeds the limit of 14"},
				{"scrypt N=2^21 r=8", "scrypt", "$scrypt$ln=21,r=8,p=1$" + salt + "$" + key,
					"scrypt memory 2097152 KiB (128·N·r with ln=21, r=8) exceeds the limit of 131072 KiB"},
				{"pbkdf2 2,000,000", "pbkdf2-sha256", "$pbkdf2-sha256$i=2000000$" + salt + "$" + key,
					"pbkdf2 iterations 2000000 exceed the limit of 1000000"},
			}
			for _, tc := range refused {
				t.Run(tc.name, func(t *testing.T) { refuse(t, f, tc.algorithm, tc.digest, tc.bound) })
			}
		})
		t.Run("at the budget", func(t *testing.T) {
			for _, tc := range atBudget {
				t.Run(tc.name, func(t *testing.T) {
					name := v1Name("atbudget")
					res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": name,
						"password_digest": tc.digest, "password_algorithm": tc.algorithm})
					if res.Status != http.StatusCreated {
						t.Fatalf("import: %s", res)
					}
					f.signIn(t, name, docPassword)
				})
			}
		})
		// The budget is the operator's: lowered, it refuses what the
		// default accepts, naming the configured bound.
		t.Run("configured", func(t *testing.T) {
			g := v1Start(t, b, apptest.With("LATCH_HASH_IMPORT_MAX_BCRYPT_COST", "9"),
				apptest.With("LATCH_HASH_IMPORT_MAX_ARGON2_MEMORY_KIB", "4096"))
			refuse(t, g, "bcrypt", "$2a$10$"+bcryptTail, "bcrypt cost 10 exceeds the limit of 9")
			refuse(t, g, "argon2id", "$argon2id$v=19$m=65536,t=3,p=4$"+salt+"$"+key,
				"argon2 memory 65536 KiB exceeds the limit of 4096 KiB")
		})
	})
}

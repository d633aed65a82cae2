package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// docPassword is the password behind every example of docs/password-import.md.
const docPassword = "correct horse battery staple"

// Users imported with a legacy hash (one per format of
// docs/password-import.md) sign in, and their hash is upgraded to argon2id
// with the current parameters on the first success.
func TestV1PasswordImport(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		// The examples use production-grade costs: give the gate room.
		f := v1Start(t, b)
		current := "$argon2id$v=19$" + f.Services.Hasher.Params().String() + "$"

		cases := []struct{ name, algorithm, digest string }{
			{"argon2id", "argon2id", "$argon2id$v=19$m=65536,t=3,p=4$bGF0Y2gtZG9jLXNhbHQxNg$iy3H5aTxtrX6nCWjwApCb/Q77xJprG8UUmmuSbzaVvk"},
			{"argon2i", "Argon2i", "$argon2i$v=19$m=4096,t=3,p=1$bGF0Y2gtZG9jLXNhbHQxNg$d0bvPA3fvk0//aTzKMzXmZMhtg4R+ohyd48VZAwKthM"},
			{"bcrypt", "bcrypt", "$2a$10$B01xLg8fBlG5JWmaIYlat.xHWVRg4ZxURJybIYn0gm2SvIqMN0huy"},
			{"pbkdf2-sha256", "pbkdf2-sha256", "$pbkdf2-sha256$i=600000$bGF0Y2gtZG9jLXNhbHQxNg$EtfP109XcZHN4SNoH5dYr1Vuxg1FjzPClNW8JIeiRsI"},
			{"pbkdf2-sha256 passlib", "pbkdf2-sha256", "$pbkdf2-sha256$29000$bGF0Y2gtZG9jLXNhbHQxNg$hp9ZnvHRWeQBekykx5hL/4Tm5P8BKuog5qHG2H2jTn0"},
			{"pbkdf2-sha512", "pbkdf2-sha512", "$pbkdf2-sha512$i=210000$bGF0Y2gtZG9jLXNhbHQxNg$PNyaFvtSb/eh/BbUS4ngQSahQ0j9MUowzkRw0ZvP3hE0URei9pN3/HlvtQBA+bPR1m0WpusUmQIUB9AiFqjt6g"},
			{"scrypt", "scrypt", "$scrypt$ln=15,r=8,p=1$bGF0Y2gtZG9jLXNhbHQxNg$jevz/ZJkaxeeoTBYFl8NLMdRn0dFSM51zE5/noGM49M"},
			{"sha1", "sha1", "abf7aad6438836dbe526aa231abde2d0eef74d42"},
			{"sha1 salted", "SHA1", "NaCl$ece0e76cf7acdb98049bb6c9661654cf33ce80d0"},
			{"sha256", "SHA256", "C4BBCB1FBEC99D65BF59D85C8CB62EE2DB963F0FE106F483D9AFA73BD4E39A8A"},
			{"sha256 salted", "sha256", "NaCl$c7124467796ef676c7899dc49bbe06dc4b13e11f3f3b89fb82b9a7dd384bd562"},
			{"md5", "MD5", "9cc2ae8a1ba7a93da39b46fc1019c481"},
			{"md5 salted", "md5", "NaCl$e1bc0bb1dc7906017e25f64330178c2f"},
			{"md5 binary salt", "md5", "$md5$s=nwAk4Q$f494868c5b91c0c1362b02cab5c7b0a7"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				name := v1Name("imp")
				res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": name,
					"password_digest": tc.digest, "password_algorithm": tc.algorithm})
				if res.Status != http.StatusCreated || res.JSON["has_password"] != true || res.JSON["password_temporary"] != false {
					t.Fatalf("import: %s", res)
				}
				id := res.Str("id")
				imported := f.storedHash(t, id)
				if strings.HasPrefix(imported, current) {
					t.Fatalf("stored %q already at the current parameters", imported)
				}
				wantError(t, f.authenticate(t, name, docPassword+"!", nil), http.StatusUnauthorized, "auth_invalid_credentials")
				if got := f.storedHash(t, id); got != imported {
					t.Fatalf("a failed sign-in changed the hash to %q", got)
				}
				f.signIn(t, name, docPassword)
				upgraded := f.storedHash(t, id)
				if !strings.HasPrefix(upgraded, current) {
					t.Fatalf("after sign-in the hash is %q, want %s…", upgraded, current)
				}
				if n := f.countAudit(t, id, "password.rehash", "success"); n != 1 {
					t.Fatalf("%d password.rehash audit events, want 1", n)
				}
				f.signIn(t, name, docPassword)
				if got := f.storedHash(t, id); got != upgraded {
					t.Fatal("the upgraded hash was rehashed again")
				}
			})
		}

		t.Run("refused", func(t *testing.T) {
			t.Parallel()
			bad := []struct{ name, algorithm, digest, field string }{
				{"bcrypt cost 31", "bcrypt", "$2a$31$B01xLg8fBlG5JWmaIYlat.xHWVRg4ZxURJybIYn0gm2SvIqMN0huy", "password_digest"},
				{"argon2 4 GiB", "argon2id", "$argon2id$v=19$m=4194304,t=3,p=4$bGF0Y2gtZG9jLXNhbHQxNg$iy3H5aTxtrX6nCWjwApCb/Q77xJprG8UUmmuSbzaVvk", "password_digest"},
				{"argon2 1000 passes", "argon2id", "$argon2id$v=19$m=65536,t=1000,p=4$bGF0Y2gtZG9jLXNhbHQxNg$iy3H5aTxtrX6nCWjwApCb/Q77xJprG8UUmmuSbzaVvk", "password_digest"},
				{"pbkdf2 3M iterations", "pbkdf2-sha256", "$pbkdf2-sha256$i=3000000$bGF0Y2gtZG9jLXNhbHQxNg$EtfP109XcZHN4SNoH5dYr1Vuxg1FjzPClNW8JIeiRsI", "password_digest"},
				{"scrypt N=2^25", "scrypt", "$scrypt$ln=25,r=8,p=1$bGF0Y2gtZG9jLXNhbHQxNg$jevz/ZJkaxeeoTBYFl8NLMdRn0dFSM51zE5/noGM49M", "password_digest"},
				{"argon2id sent as argon2i", "argon2i", "$argon2id$v=19$m=65536,t=3,p=4$bGF0Y2gtZG9jLXNhbHQxNg$iy3H5aTxtrX6nCWjwApCb/Q77xJprG8UUmmuSbzaVvk", "password_digest"},
				{"short hex", "sha256", "c4bbcb1f", "password_digest"},
				{"empty salt", "md5", "$9cc2ae8a1ba7a93da39b46fc1019c481", "password_digest"},
				{"unknown algorithm", "argon2d", "$argon2d$v=19$m=65536,t=3,p=4$bGF0Y2gtZG9jLXNhbHQxNg$iy3H5aTxtrX6nCWjwApCb/Q77xJprG8UUmmuSbzaVvk", "password_algorithm"},
				{"digest without algorithm", "", "abf7aad6438836dbe526aa231abde2d0eef74d42", "password_digest"},
				{"algorithm without digest", "sha1", "", "password_digest"},
				{"overlong digest", "sha1", strings.Repeat("a", 2000), "password_digest"},
			}
			for _, tc := range bad {
				name := v1Name("bad")
				body := map[string]any{"username": name}
				if tc.algorithm != "" {
					body["password_algorithm"] = tc.algorithm
				}
				if tc.digest != "" {
					body["password_digest"] = tc.digest
				}
				res := f.call(t, http.MethodPost, "/v1/users", f.tok, body)
				wantDetail(t, res, tc.field)
				if tc.digest != "" && len(tc.digest) > 12 && strings.Contains(string(res.Raw), tc.digest) {
					t.Errorf("%s: the error echoes the digest: %s", tc.name, res)
				}
				found := f.call(t, http.MethodGet, "/v1/users?username="+name, f.tok, nil)
				if users, _ := found.JSON["users"].([]any); len(users) != 0 {
					t.Fatalf("%s: created a user anyway", tc.name)
				}
			}
			// A password and a digest at once.
			res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": v1Name("both"),
				"credentials": map[string]any{"password": v1Password()}, "password_digest": cases[7].digest, "password_algorithm": "sha1"})
			wantError(t, res, http.StatusBadRequest, "system_invalid_input")
		})
	})
}

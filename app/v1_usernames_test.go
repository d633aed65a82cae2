package app_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/store"
)

// fullWidth writes an ASCII string in full-width forms ("bob" → "ｂｏｂ").
func fullWidth(s string) string {
	out := []rune{}
	for _, r := range s {
		if r > ' ' && r < 0x7f {
			r += 0xFEE0
		}
		out = append(out, r)
	}
	return string(out)
}

// Usernames are RFC 8265 (PRECIS UsernameCaseMapped) identifiers, at
// creation and at sign-in alike: full-width forms are their ordinary
// letters, case does not matter, zero-width and control characters are
// refused, and a new username may neither mix Latin, Greek and Cyrillic
// letters nor look like an existing one.
func TestUsernamesPRECIS(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)

		t.Run("full-width and case", func(t *testing.T) {
			id, username, password := f.newUser(t)
			for _, typed := range []string{fullWidth(username), fullWidth(strNoCase(username))} {
				res := f.signIn(t, typed, password)
				if sub := expJWT(t, res.Str("id_token"))["sub"]; sub != id {
					t.Fatalf("sign-in as %q reached %v, want %s", typed, sub, id)
				}
			}
			x := f.begin(t, "SignIn", false)
			expMust(t, x.identify(t, x.passwordRecord(t, "username", fullWidth(username), password)), http.StatusNoContent, "identification")
			found := f.call(t, http.MethodGet, "/v1/users?username="+url.QueryEscape(fullWidth(username)), f.tok, nil)
			if users, _ := found.JSON["users"].([]any); len(users) != 1 {
				t.Fatalf("find by the full-width username: %s", found)
			}
			// Taken in any form.
			wantError(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": fullWidth(username)}),
				http.StatusConflict, "username_already_in_use")
			// A full-width name is stored in its ordinary form.
			res := f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": fullWidth("Wide" + username)})
			if res.Status != http.StatusCreated || res.Str("username") != "Wide"+username {
				t.Fatalf("create a full-width username: %s", res)
			}
		})

		t.Run("zero-width and control characters", func(t *testing.T) {
			for _, bad := range []string{"bob\u200b" + v1Name("z"), "\u200d" + v1Name("z"), v1Name("z") + "\u2060", v1Name("z") + "\u0007", v1Name("z") + "\u00a0x"} {
				wantDetail(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": bad}), "username")
				x := f.begin(t, "Register", false)
				expWantAPI(t, x.post(t, "/verification/new-password-identity",
					map[string]any{"identifier": expIdent("username", bad), "password": v1Password()}), http.StatusBadRequest, "guard.invalid_input")
			}
			// A sign-in with one is refused as input, like any invalid name.
			_, username, password := f.newUser(t)
			wantDetail(t, f.authenticate(t, username+"\u200b", password, nil), "username")
		})

		t.Run("look-alikes", func(t *testing.T) {
			f.createUser(t, map[string]any{"username": "paypal"})
			f.createUser(t, map[string]any{"username": "coopex"})
			// Latin with one Cyrillic а: mixed scripts, refused outright.
			wantDetail(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": "pаypal"}), "username")
			// All Cyrillic, drawn like an existing Latin name: taken.
			const cyrillic = "соорех"
			wantError(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": cyrillic}),
				http.StatusConflict, "username_already_in_use")
			wantError(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": "СООРЕХ"}),
				http.StatusConflict, "username_already_in_use")
			// Greek look-alikes too, and in the Experience API.
			f.createUser(t, map[string]any{"username": "ivy"})
			x := f.begin(t, "Register", false)
			expWantAPI(t, x.post(t, "/verification/new-password-identity",
				map[string]any{"identifier": expIdent("username", "ινγ"), "password": v1Password()}), http.StatusUnprocessableEntity, "user.username_already_in_use")
			expWantAPI(t, x.post(t, "/profile", map[string]any{"type": "username", "value": cyrillic}),
				http.StatusUnprocessableEntity, "user.username_already_in_use")
			expWantAPI(t, x.post(t, "/profile", map[string]any{"type": "username", "value": "cооpex"}), http.StatusBadRequest, "guard.invalid_input")
			// Renaming into a look-alike is refused the same way.
			other := f.createUser(t, map[string]any{"username": v1Name("rename")})
			wantError(t, f.call(t, http.MethodPatch, "/v1/users/"+other, f.tok, map[string]any{"username": cyrillic}),
				http.StatusConflict, "username_already_in_use")
			// A name in one non-Latin script that looks like no existing one
			// is fine, and signs in.
			password := v1Password()
			f.createUser(t, map[string]any{"username": "иван", "credentials": map[string]any{"password": password}})
			f.signIn(t, "ИВАН", password)
			if n := f.count(t, "SELECT COUNT(*) FROM users WHERE username_skeleton IS NULL AND username IS NOT NULL"); n != 0 {
				t.Fatalf("%d usernames without a skeleton", n)
			}
		})
	})
}

// strNoCase upper-cases ASCII letters.
func strNoCase(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c >= 'a' && c <= 'z' {
			out[i] = c - 'a' + 'A'
		}
	}
	return string(out)
}

// A case-sensitive deployment uses UsernameCasePreserved: width still maps,
// case does not.
func TestUsernamesPRECISCaseSensitive(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b, apptest.With("LATCH_USERNAME_CASE_SENSITIVE", "true"))
		password := v1Password()
		name := "Bob" + v1Name("")
		f.createUser(t, map[string]any{"username": name, "credentials": map[string]any{"password": password}})
		f.createUser(t, map[string]any{"username": strNoCase(name)})
		f.signIn(t, fullWidth(name), password)
		wantError(t, f.authenticate(t, strNoCase(name), password, nil), http.StatusUnauthorized, "auth_invalid_credentials")
		// Look-alikes keep their case: a Cyrillic Р is a P, not a p.
		f.createUser(t, map[string]any{"username": "pop"})
		f.createUser(t, map[string]any{"username": "РОР"})
		wantError(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": "рор"}), http.StatusConflict, "username_already_in_use")
	})
}

// The migration re-derives the keys of usernames stored before they were
// PRECIS identifiers and fills in their skeletons, so an old full-width
// account is found by its ordinary name and an old name blocks new
// look-alikes.
func TestUsernameMigrationBackfill(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		ctx := context.Background()
		dbURL := apptest.DatabaseURL(t, b)
		db, err := store.Open(ctx, dbURL, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var before [][]store.Migration
		for _, set := range app.Migrations() {
			var kept []store.Migration
			for _, m := range set {
				if m.ID == "experience/0010_username_skeleton" {
					break
				}
				kept = append(kept, m)
			}
			before = append(before, kept)
		}
		if _, err := db.Migrate(ctx, before...); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		for _, u := range [][3]string{
			{"u1", "Ｊｕｎｅ", "ｊｕｎｅ"}, // the old lower-casing kept the width
			{"u2", "coopex", "coopex"},
			{"u3", "Mixed", "mixed"},
			{"u4", "mіxed", "mіxed"}, // Cyrillic і: an old look-alike of u3
			{"u5", "zero\u200bwidth", "zero\u200bwidth"},
		} {
			if err := db.Exec(`INSERT INTO users (id, username, username_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
				u[0], u[1], u[2], now, now).Error; err != nil {
				t.Fatal(err)
			}
		}
		db.Close()

		f := v1Start(t, b, apptest.With("LATCH_DATABASE_URL", dbURL))
		find := func(name string) string {
			res := f.call(t, http.MethodGet, "/v1/users?username="+url.QueryEscape(name), f.tok, nil)
			users, _ := res.JSON["users"].([]any)
			if res.Status != http.StatusOK || len(users) > 1 {
				t.Fatalf("find %q: %s", name, res)
			}
			if len(users) == 0 {
				return ""
			}
			return users[0].(map[string]any)["id"].(string)
		}
		if id := find("june"); id != "u1" {
			t.Fatalf("the old full-width account by its ordinary name: %q", id)
		}
		if id := find("mixed"); id != "u3" {
			t.Fatalf("mixed: %q", id)
		}
		// Existing look-alikes both stay; new ones are refused.
		if n := f.count(t, "SELECT COUNT(*) FROM users WHERE id IN ('u3', 'u4') AND username_skeleton IS NOT NULL"); n != 1 {
			t.Fatalf("%d of two old look-alikes hold the skeleton, want 1", n)
		}
		wantError(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": "соорех"}), http.StatusConflict, "username_already_in_use")
		wantError(t, f.call(t, http.MethodPost, "/v1/users", f.tok, map[string]any{"username": "ｊｕｎｅ"}), http.StatusConflict, "username_already_in_use")
		// A name PRECIS refuses keeps its row and old key.
		if n := f.count(t, "SELECT COUNT(*) FROM users WHERE id = 'u5' AND username_key = ?", "zero\u200bwidth"); n != 1 {
			t.Fatal("the old zero-width username changed")
		}
	})
}

package app_test

import (
	"net/http"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// A password sign-in stores its refresh token in the transaction that opens
// its session (one commit, not two): when the token cannot be stored, the
// sign-in leaves nothing behind — no session, no sign-in time, no success in
// the audit log — and once it can, the same sign-in works.
func TestV1SignInCommitsItsRefreshTokenWithTheSession(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		id, username, password := f.newUser(t)
		db := f.Services.DB.DB
		if err := db.Exec("ALTER TABLE refresh_tokens RENAME TO refresh_tokens_away").Error; err != nil {
			t.Fatal(err)
		}
		res := f.authenticate(t, username, password, nil)
		if res.Status < 500 {
			t.Fatalf("sign-in without a refresh-token table: %s", res)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", id); n != 0 {
			t.Errorf("%d sessions left by a sign-in whose refresh token was not stored", n)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM users WHERE id = ? AND last_sign_in_at IS NOT NULL", id); n != 0 {
			t.Error("the failed sign-in set last_sign_in_at")
		}
		if n := f.countAudit(t, id, "sign_in", "success"); n != 0 {
			t.Errorf("%d successful sign-ins audited", n)
		}
		if err := db.Exec("ALTER TABLE refresh_tokens_away RENAME TO refresh_tokens").Error; err != nil {
			t.Fatal(err)
		}
		res = f.signIn(t, username, password)
		if res.Str("refresh_token") == "" {
			t.Fatalf("no refresh token: %s", res)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM refresh_families WHERE user_id = ? AND session_id = ?", id, res.Str("session_id")); n != 1 {
			t.Fatalf("%d refresh families for the session", n)
		}
		if b == apptest.Postgres {
			// The session and the family carry the id of the transaction
			// that wrote them: one.
			if n := f.count(t, "SELECT COUNT(*) FROM sessions s JOIN refresh_families r ON r.session_id = s.id WHERE s.id = ? AND s.xmin = r.xmin",
				res.Str("session_id")); n != 1 {
				t.Fatal("the session and its refresh family were written by different transactions")
			}
		}
		if res := f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{"refresh_token": res.Str("refresh_token")}); res.Status != http.StatusOK {
			t.Fatalf("refresh: %s", res)
		}
	})
}

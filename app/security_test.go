package app_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// userRow reads a user's whole row straight from the database, to prove a
// refused request changed nothing in it.
func (f *v1Fix) userRow(t testing.TB, id string) map[string]any {
	t.Helper()
	row := map[string]any{}
	if err := f.Services.DB.WithContext(context.Background()).Table("users").Where("id = ?", id).Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	return row
}

func (f *v1Fix) wantUserRow(t testing.TB, id string, before map[string]any) {
	t.Helper()
	if after := f.userRow(t, id); !reflect.DeepEqual(before, after) {
		t.Fatalf("user row changed:\nbefore %v\nafter  %v", before, after)
	}
}

// The takeover the review reproduced: with only the victim's password, an
// attacker proves their own e-mail in the victim's SignIn, adds it to the
// profile and submits, so that the MFA codes then go to them. Every step
// that would change the account is refused, and the row stays as it was.
func TestMFABypassThroughProfileIsClosed(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)
		victim := f.user(t)
		secret := f.totpEnrolled(t, victim)
		before := f.userRow(t, victim.ID)
		sessions := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", victim.ID)

		x := f.signInTx(t, victim) // the password only
		attacker := expEmail("attacker")
		proof := x.sendCode(t, "email", attacker, "Register")
		expMust(t, x.verifyCode(t, "email", attacker, proof, f.deliveredCode(t, "email", attacker)), http.StatusOK, "verify attacker code")

		for _, body := range []map[string]any{
			{"type": "email", "verificationId": proof},
			{"type": "username", "value": v1Name("attacker")},
			{"type": "password", "value": v1Password()},
			{"type": "extraProfile", "values": map[string]any{"name": "Mallory"}},
		} {
			expWantAPI(t, x.post(t, "/profile", body), http.StatusForbidden, "session.mfa.require_mfa_verification")
		}
		// A new factor needs the old one first, as before.
		wid, _ := x.newTOTP(t)
		expWantAPI(t, x.bind(t, "Totp", wid), http.StatusForbidden, "session.mfa.require_mfa_verification")
		// The victim's inbox is no second factor of a TOTP-only user.
		expWantAPI(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": "email"}),
			http.StatusBadRequest, "session.mfa.factor_not_enrolled")
		expWantAPI(t, x.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")

		f.wantUserRow(t, victim.ID, before)
		if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", victim.ID); n != sessions {
			t.Fatalf("sessions %d → %d after refused steps", sessions, n)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM mfa_factors WHERE user_id = ?", victim.ID); n != 1 {
			t.Fatalf("%d factors after refused steps, want the one TOTP", n)
		}
		// /v1: the pending session's code goes nowhere the attacker reads.
		sid, _ := f.pending(t, victim)
		wantError(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "email"}),
			http.StatusBadRequest, "mfa_factor_not_enrolled")
		if n := f.mail.Count(attacker); n != 1 {
			t.Fatalf("%d messages to the attacker, want only their own proof", n)
		}

		// With MFA proven, the same profile change is allowed and audited
		// (field names, the client, never values).
		expMust(t, x.post(t, "/verification/totp/verify", map[string]any{"code": totpNext(t, secret)}), http.StatusOK, "totp")
		expMust(t, x.post(t, "/profile", map[string]any{"type": "email", "verificationId": proof}), http.StatusNoContent, "profile email")
		x.submitTokens(t)
		events := f.auditEvents(t, victim.ID, "user.profile_updated")
		if len(events) != 1 {
			t.Fatalf("profile audit events: %v", events)
		}
		data, _ := events[0]["data"].(map[string]any)
		if events[0]["client_id"] != f.client.ID || !reflect.DeepEqual(strs(data["fields"]), []string{"primary_email"}) {
			t.Fatalf("profile audit event: %v", events[0])
		}
	})
}

// A submit that fails a check writes nothing: here the pending e-mail was
// taken by another account between POST /profile and POST /submit.
func TestRefusedSubmitChangesNothing(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)
		u := f.user(t)
		x := f.signInTx(t, u)
		addr := expEmail("contested")
		proof := x.sendCode(t, "email", addr, "Register")
		expMust(t, x.verifyCode(t, "email", addr, proof, f.deliveredCode(t, "email", addr)), http.StatusOK, "verify")
		expMust(t, x.post(t, "/profile", map[string]any{"type": "extraProfile", "values": map[string]any{"name": "New Name"}}), http.StatusNoContent, "name")
		expMust(t, x.post(t, "/profile", map[string]any{"type": "email", "verificationId": proof}), http.StatusNoContent, "email")
		f.createUser(t, map[string]any{"username": v1Name("taker"), "email": addr})
		before := f.userRow(t, u.ID)
		expWantAPI(t, x.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.email_already_in_use")
		f.wantUserRow(t, u.ID, before)
		if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", u.ID); n != 0 {
			t.Fatalf("%d sessions after a refused submit", n)
		}
		if n := f.countAudit(t, u.ID, "user.profile_updated", ""); n != 0 {
			t.Fatalf("%d profile audit rows after a refused submit", n)
		}
	})
}

// A session belongs to the client that created it: another auth:execute
// client cannot re-authenticate it, complete or lock its MFA, send its
// codes, log it out or read its id — and learns nothing from trying.
func TestSessionsBelongToTheirClient(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)
		other := f.CreateClient("auth:execute", "users:read")
		otherTok := f.ClientToken(other)

		u := f.user(t)
		secret := f.totpAndCodesEnrolled(t, u)
		active, _ := f.pending(t, u)
		f.wantTokens(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": active, "code": totpNext(t, secret)}), f.client.ID, active)
		pending, _ := f.pending(t, u)

		foreign := func(route string, body map[string]any) *apptest.Response {
			t.Helper()
			res := f.call(t, http.MethodPost, route, otherTok, body)
			wantError(t, res, http.StatusBadRequest, "session_not_found")
			return res
		}
		// Unknown, ended and foreign ids answer the same body.
		want := foreign("/v1/auth/session/authenticate", map[string]any{"session_id": active})
		for _, sid := range []string{"no-such-session", active, pending} {
			if got := foreign("/v1/auth/session/authenticate", map[string]any{"session_id": sid}); string(got.Raw) != string(want.Raw) {
				t.Fatalf("session/authenticate %s: %s, want %s", sid, got.Raw, want.Raw)
			}
		}
		foreign("/v1/auth/password/authenticate", authBody(u.Username, u.Password, map[string]any{"session_id": active}))
		foreign("/v1/auth/otp/send", map[string]any{"session_id": pending, "channel": "email"})
		for i := 0; i < 6; i++ { // more than the TOTP pool's five failures
			foreign("/v1/auth/totp/authenticate", map[string]any{"session_id": pending, "code": totpWrong(t, secret)})
		}
		foreign("/v1/auth/backup-code/authenticate", map[string]any{"session_id": pending, "code": "0123456789"})
		foreign("/v1/auth/session/logout", map[string]any{"session_id": active})
		if n := f.mail.Count(u.Email); n != 1 { // the enrolment code only
			t.Fatalf("%d messages to the user, want 1", n)
		}

		// The listing shows the foreign client no usable session id.
		list := f.call(t, http.MethodGet, "/v1/auth/users/"+u.ID+"/sessions", otherTok, nil)
		sessions, _ := list.JSON["sessions"].([]any)
		if list.Status != http.StatusOK || len(sessions) < 2 {
			t.Fatalf("listing: %s", list)
		}
		for _, s := range sessions {
			m := s.(map[string]any)
			lid, _ := m["listing_id"].(string)
			if _, ok := m["session_id"]; ok || lid == "" {
				t.Fatalf("foreign listing entry: %v", m)
			}
			foreign("/v1/auth/session/authenticate", map[string]any{"session_id": lid})
			if lid == active || lid == pending {
				t.Fatal("the listing id is the session id")
			}
		}
		// None of it touched the owner's sessions: the active one still
		// re-authenticates, the pending one completes (the foreign guesses
		// did not lock the user's TOTP).
		f.wantTokens(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": active}), f.client.ID, active)
		expMust(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": pending, "channel": "email"}), http.StatusNoContent, "otp send")
		f.wantTokens(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": pending, "passcode": f.deliveredCode(t, "email", u.Email)}),
			f.client.ID, pending)
		if locked := f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": pending, "code": totpWrong(t, secret)}); locked.Status != http.StatusUnauthorized {
			t.Fatalf("the owner's TOTP after foreign guesses: %s", locked)
		}
		// And the owner logs out its own.
		if res := f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": active}); res.Status != http.StatusNoContent {
			t.Fatalf("logout: %s", res)
		}
		if got := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": active}); string(got.Raw) != string(want.Raw) {
			t.Fatalf("ended session: %s, want %s", got.Raw, want.Raw)
		}
	})
}

// A password change ends the user's other sessions and their refresh
// tokens — by an administrator, through /v1/auth/password/reset, and by a
// ForgotPassword submit — unless the settings say otherwise.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)
		signIn := func(u expUser) (sid, refresh string) {
			t.Helper()
			res := f.signIn(t, u.Username, u.Password)
			return res.Str("session_id"), res.Str("refresh_token")
		}

		t.Run("administrator", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			s1, r1 := signIn(u)
			s2, r2 := signIn(u)
			res := f.call(t, http.MethodPut, "/v1/users/"+u.ID+"/password", f.tok, map[string]any{"password": v1Password()})
			if res.Status != http.StatusOK {
				t.Fatalf("replace password: %s", res)
			}
			f.wantSessionEnded(t, s1, r1)
			f.wantSessionEnded(t, s2, r2)
		})

		t.Run("reset token", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			s1, r1 := signIn(u)
			if res := f.call(t, http.MethodPatch, "/v1/users/"+u.ID+"/password/expiration", f.tok, map[string]any{"expired": true}); res.Status != http.StatusOK {
				t.Fatalf("expire: %s", res)
			}
			expired := f.authenticate(t, u.Username, u.Password, nil)
			wantError(t, expired, http.StatusForbidden, "password_expired")
			res := f.call(t, http.MethodPost, "/v1/auth/password/reset", f.tok,
				map[string]any{"reset_token": expired.Str("reset_token"), "new_password": v1Password()})
			if res.Status != http.StatusOK {
				t.Fatalf("reset: %s", res)
			}
			f.wantSessionEnded(t, s1, r1)
			// The session the reset opened survives.
			if again := f.sessionAuth(t, res.Str("session_id")); again.Status != http.StatusOK {
				t.Fatalf("the reset's own session: %s", again)
			}
		})

		t.Run("forgot password", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			s1, r1 := signIn(u)
			x := f.begin(t, "ForgotPassword", false)
			expMust(t, x.identify(t, x.provenCode(t, "email", u.Email, "")), http.StatusNoContent, "identification")
			expMust(t, x.call(t, http.MethodPut, "/api/experience/profile/password", map[string]any{"password": v1Password()}),
				http.StatusNoContent, "new password")
			expMust(t, x.post(t, "/submit", nil), http.StatusOK, "submit")
			f.wantSessionEnded(t, s1, r1)
		})
	})
}

// password.revoke_sessions_on_change turned off keeps the other sessions.
func TestPasswordChangeCanKeepSessions(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)
		f.settings(t, `{"password":{"revoke_sessions_on_change":false}}`)
		u := f.user(t)
		res := f.signIn(t, u.Username, u.Password)
		if res := f.call(t, http.MethodPut, "/v1/users/"+u.ID+"/password", f.tok, map[string]any{"password": v1Password()}); res.Status != http.StatusOK {
			t.Fatalf("replace password: %s", res)
		}
		if again := f.sessionAuth(t, res.Str("session_id")); again.Status != http.StatusOK {
			t.Fatalf("session after a password change with revoke_sessions_on_change off: %s", again)
		}
	})
}

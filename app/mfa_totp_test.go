package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
)

// Issue 5: TOTP enrolled through the Experience API completes a pending
// /v1 session; codes are single use; wrong codes lock the TOTP pool only;
// an application may choose not to enforce MFA; the Users API lists and
// removes factors.
func TestMFATOTP(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)

		t.Run("enrol, complete, replay, lock", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			secret := f.totpEnrolled(t, u)

			// The secret is stored sealed, never in clear.
			var stored struct{ Secret []byte }
			if err := f.Services.DB.WithContext(context.Background()).
				Raw("SELECT secret FROM mfa_factors WHERE user_id = ? AND type = 'totp'", u.ID).Scan(&stored).Error; err != nil {
				t.Fatal(err)
			}
			if len(stored.Secret) == 0 || strings.Contains(string(stored.Secret), secret) {
				t.Fatalf("stored TOTP secret is empty or in clear (%d bytes)", len(stored.Secret))
			}

			sid, res := f.pending(t, u)
			if got := mfaFactors(res); len(got) != 1 || got[0] != "totp" {
				t.Fatalf("mfa_factors %v, want [totp]", got)
			}
			if !strings.HasSuffix(res.Str("email"), u.Email[strings.IndexByte(u.Email, '@'):]) || strings.Contains(res.Str("email"), u.Email) {
				t.Fatalf("masked email %q for %q", res.Str("email"), u.Email)
			}
			// The enrolment consumed the current step: the next one completes.
			code := totpNext(t, secret)
			ok := f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid, "code": code})
			c := f.wantTokens(t, ok, f.client.ID, sid)
			if c.Sub != u.ID {
				t.Fatalf("sub %q, want %q", c.Sub, u.ID)
			}
			wantAMR(t, c.AMR, "mfa", "pwd", "totp")
			// The session is active now: silent re-authentication works.
			if res := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid}); res.Status != http.StatusOK {
				t.Fatalf("session/authenticate after MFA: %s", res)
			}

			// Replay of the same code, into a new pending session: refused.
			sid2, _ := f.pending(t, u)
			wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid2, "code": code}), http.StatusUnauthorized, "invalid_code")
			// An older step than the last used one is refused as well.
			wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid2, "code": totpNow(t, secret)}), http.StatusUnauthorized, "invalid_code")
			// The pending session still gives no tokens.
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid2}),
				http.StatusBadRequest, "session_not_found")

			// Wrong codes: two failures so far; three more lock the TOTP pool.
			for i := 0; i < 3; i++ {
				wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid2, "code": totpWrong(t, secret)}),
					http.StatusUnauthorized, "invalid_code")
			}
			locked := f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid2, "code": totpWrong(t, secret)})
			wantError(t, locked, http.StatusForbidden, "auth_locked")
			if retryAfter(t, locked) < 10*time.Minute || locked.JSON["retry_after"] == nil {
				t.Fatalf("TOTP lock: %s", locked)
			}
			// Locked means locked, even for a right code.
			wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid2, "code": totpAt(t, secret, time.Now().Add(time.Minute))}),
				http.StatusForbidden, "auth_locked")
			// Password sign-in is not locked: still mfa_required.
			sid3, _ := f.pending(t, u)
			if sid3 == sid2 {
				t.Fatal("a new password sign-in reused the pending session")
			}
			// A TOTP-only user has no e-mailed second factor to fall back
			// on (issue 8: a code to the inbox is a factor only if enrolled).
			wantError(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid3, "channel": "email"}),
				http.StatusBadRequest, "mfa_factor_not_enrolled")
			if n := f.mail.Count(u.Email); n != 0 {
				t.Fatalf("%d messages sent to a TOTP-only user's inbox", n)
			}
		})

		t.Run("bad input and unknown sessions", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			secret := f.totpEnrolled(t, u)
			sid, _ := f.pending(t, u)
			wantDetail(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid}), "code")
			wantDetail(t, f.v1MFA(t, "totp/authenticate", map[string]any{"code": totpNext(t, secret)}), "session_id")
			wantDetail(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid, "passcode": "123456"}), "")
			wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": "no-such-session", "code": totpNext(t, secret)}),
				http.StatusBadRequest, "session_not_found")
			// Without the client token: 401, no attempt spent.
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/totp/authenticate", "", map[string]any{"session_id": sid, "code": "123456"}),
				http.StatusUnauthorized, "invalid_client_token")
			// A user without TOTP cannot complete with a TOTP code.
			v := f.user(t)
			f.enrolWebAuthnOnly(t, v)
			vsid, _ := f.pending(t, v)
			wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": vsid, "code": "123456"}),
				http.StatusBadRequest, "mfa_factor_not_enrolled")
			// The right code still completes after all that.
			c := f.wantTokens(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid, "code": totpNext(t, secret)}), f.client.ID, sid)
			wantAMR(t, c.AMR, "mfa", "pwd", "totp")
		})

		t.Run("concurrent binds keep one TOTP", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			const n = 8
			xs := make([]*expTx, n)
			ids, secrets := make([]string, n), make([]string, n)
			for i := range xs {
				xs[i] = f.signInTx(t, u)
				ids[i], secrets[i] = xs[i].newTOTP(t)
			}
			res := expParallel(t, n, func(i int) (*apptest.Response, error) {
				return xs[i].send(http.MethodPost, "/api/experience/profile/mfa", map[string]any{"type": "Totp", "verificationId": ids[i]})
			})
			won := -1
			for i, r := range res {
				switch {
				case r.Status == http.StatusNoContent:
					if won >= 0 {
						t.Fatalf("two binds won: %v", expTally(res))
					}
					won = i
				case r.Status == http.StatusUnprocessableEntity && r.Str("code") == "user.totp_already_in_use":
				case r.Status == http.StatusForbidden && r.Str("code") == "session.mfa.require_mfa_verification":
				default:
					t.Fatalf("unexpected answer: %s", r)
				}
			}
			if won < 0 {
				t.Fatalf("no bind won: %v", expTally(res))
			}
			if k := f.count(t, "SELECT COUNT(*) FROM mfa_factors WHERE user_id = ? AND type = 'totp'", u.ID); k != 1 {
				t.Fatalf("%d TOTP factors after concurrent binds, want 1", k)
			}
			// The winner's authenticator is the one that signs in.
			sid, _ := f.pending(t, u)
			c := f.wantTokens(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid, "code": totpNext(t, secrets[won])}), f.client.ID, sid)
			wantAMR(t, c.AMR, "mfa", "pwd", "totp")
		})

		t.Run("application that does not enforce MFA", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			secret := f.totpEnrolled(t, u)
			// Two apps of one tenant in cross-application SSO: one does not
			// enforce MFA, one does.
			client, tok := f.appClient(t, false, true)
			peer, peerTok := f.appClient(t, true, true)
			res := f.call(t, http.MethodPost, "/v1/auth/password/authenticate", tok, authBody(u.Username, u.Password, nil))
			c := f.wantTokens(t, res, client.ID, "")
			wantAMR(t, c.AMR, "pwd")
			// The enforcing client still gets mfa_required for the same user.
			f.pending(t, u)
			// Nor does that password-only session give the enforcing peer
			// tokens (silent authentication across apps): mfa_required, with
			// the session to step up; a password into it does not do.
			sid := res.Str("session_id")
			sso := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", peerTok, map[string]any{"session_id": sid})
			wantError(t, sso, http.StatusForbidden, "mfa_required")
			if sso.Str("session_id") != sid || len(mfaFactors(sso)) != 1 || sso.Str("access_token") != "" {
				t.Fatalf("session/authenticate of a session without MFA: %s", sso)
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/password/authenticate", peerTok,
				authBody(u.Username, u.Password, map[string]any{"session_id": sid})), http.StatusForbidden, "mfa_required")
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", peerTok, map[string]any{"session_id": sid}),
				http.StatusForbidden, "mfa_required")
			// The app that opened it keeps using it meanwhile.
			c = f.wantTokens(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", tok, map[string]any{"session_id": sid}), client.ID, sid)
			wantAMR(t, c.AMR, "pwd")
			// Only the owner steps it up: the peer may not complete its MFA.
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/totp/authenticate", peerTok, map[string]any{"session_id": sid, "code": totpNext(t, secret)}),
				http.StatusBadRequest, "session_not_found")
			step := f.call(t, http.MethodPost, "/v1/auth/totp/authenticate", tok, map[string]any{"session_id": sid, "code": totpNext(t, secret)})
			c = f.wantTokens(t, step, client.ID, sid)
			wantAMR(t, c.AMR, "mfa", "pwd", "totp")
			c = f.wantTokens(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", peerTok, map[string]any{"session_id": sid}), peer.ID, sid)
			wantAMR(t, c.AMR, "mfa", "pwd", "totp")
			// A client outside SSO never sees it.
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid}),
				http.StatusBadRequest, "session_not_found")
		})

		t.Run("users API lists and removes factors", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			secret, codes := f.enrol(t, u, true)
			list := f.call(t, http.MethodGet, "/v1/users/"+u.ID+"/mfa-factors", f.tok, nil)
			if list.Status != http.StatusOK {
				t.Fatalf("list factors: %s", list)
			}
			for _, leak := range append([]string{secret, "secret", "digest", "data"}, codes...) {
				if strings.Contains(string(list.Raw), leak) {
					t.Fatalf("factor list exposes %q: %s", leak, list.Raw)
				}
			}
			ids := map[string]string{}
			for _, x := range list.JSON["factors"].([]any) {
				m := x.(map[string]any)
				if m["user_id"] != u.ID || m["id"] == "" || m["created_at"] == nil {
					t.Fatalf("factor %v", m)
				}
				ids[m["type"].(string)] = m["id"].(string)
			}
			if len(ids) != 2 || ids["totp"] == "" || ids["backup_code"] == "" {
				t.Fatalf("factors %v, want totp and backup_code", ids)
			}
			_, res := f.pending(t, u)
			if got := mfaFactors(res); len(got) != 2 || got[0] != "backup_code" || got[1] != "totp" {
				t.Fatalf("mfa_factors %v", got)
			}

			// Remove the TOTP: backup codes still require MFA.
			expMust(t, f.call(t, http.MethodDelete, "/v1/users/"+u.ID+"/mfa-factors/"+ids["totp"], f.tok, nil), http.StatusNoContent, "delete totp")
			sid, res := f.pending(t, u)
			if got := mfaFactors(res); len(got) != 1 || got[0] != "backup_code" {
				t.Fatalf("mfa_factors after removing totp %v", got)
			}
			wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid, "code": totpNext(t, secret)}),
				http.StatusBadRequest, "mfa_factor_not_enrolled")
			// Remove the backup codes: the password alone signs in, and the
			// removed codes are gone with their factor.
			expMust(t, f.call(t, http.MethodDelete, "/v1/users/"+u.ID+"/mfa-factors/"+ids["backup_code"], f.tok, nil), http.StatusNoContent, "delete backup codes")
			if n := f.count(t, "SELECT COUNT(*) FROM backup_codes WHERE user_id = ?", u.ID); n != 0 {
				t.Fatalf("%d backup codes left after removing the factor", n)
			}
			wantError(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": sid, "code": codes[0]}),
				http.StatusUnauthorized, "invalid_code")
			c := f.wantTokens(t, f.authenticate(t, u.Username, u.Password, nil), f.client.ID, "")
			wantAMR(t, c.AMR, "pwd")
			if res := f.call(t, http.MethodGet, "/v1/users/"+u.ID+"/mfa-factors", f.tok, nil); res.Status != http.StatusOK ||
				len(res.JSON["factors"].([]any)) != 0 {
				t.Fatalf("factors after removal: %s", res)
			}
			wantError(t, f.call(t, http.MethodDelete, "/v1/users/"+u.ID+"/mfa-factors/"+ids["totp"], f.tok, nil),
				http.StatusNotFound, "user_mfa_factor_not_found")
			// Binding and removal are audited security events.
			if n, m := f.countAudit(t, u.ID, "mfa.bound", "success"), f.countAudit(t, u.ID, "mfa.removed", "success"); n != 2 || m != 2 {
				t.Fatalf("audit: %d mfa.bound, %d mfa.removed; want 2 and 2", n, m)
			}
		})
	})
}

// totpEnrolled enrols a TOTP authenticator for u (Experience API) and
// returns its secret.
func (f *expFix) totpEnrolled(t testing.TB, u expUser) string {
	t.Helper()
	secret, _ := f.enrol(t, u, false)
	return secret
}

// A pending session lives LATCH_PENDING_SESSION_TTL; once expired it cannot
// be completed, and the refused attempt does not spend the code.
func TestMFAPendingSessionExpires(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b, apptest.With("LATCH_PENDING_SESSION_TTL", "1s"))
		u := f.user(t)
		secret := f.totpEnrolled(t, u)
		sid, _ := f.pending(t, u)
		var expires time.Time
		if err := f.Services.DB.WithContext(context.Background()).Raw("SELECT expires_at FROM sessions WHERE id = ?", sid).Scan(&expires).Error; err != nil {
			t.Fatal(err)
		}
		if d := time.Until(expires); d > 2*time.Second {
			t.Fatalf("pending session expires in %v, want about 1s", d)
		}
		time.Sleep(1100 * time.Millisecond)
		code := totpNext(t, secret)
		wantError(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid, "code": code}), http.StatusBadRequest, "session_not_found")
		wantError(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "email"}), http.StatusBadRequest, "session_not_found")
		wantError(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": "123456"}), http.StatusBadRequest, "session_not_found")
		wantError(t, f.authenticate(t, u.Username, u.Password, map[string]any{"session_id": sid}), http.StatusBadRequest, "session_not_found")
		// A fresh pending session completes with the same code: the
		// refused attempt spent nothing.
		sid2, _ := f.pending(t, u)
		c := f.wantTokens(t, f.v1MFA(t, "totp/authenticate", map[string]any{"session_id": sid2, "code": code}), f.client.ID, sid2)
		wantAMR(t, c.AMR, "mfa", "pwd", "totp")
		// Completed, the session has the full lifetime, not the pending one.
		time.Sleep(1100 * time.Millisecond)
		if res := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid2}); res.Status != http.StatusOK {
			t.Fatalf("completed session expired with the pending TTL: %s", res)
		}
	})
}

package app_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// Issue 5 / DESIGN §2.3: a one-time passcode sent by email or SMS (read
// from the in-test SMTP server and SMS receiver) completes a pending /v1
// session.
func TestMFAOneTimePasscodes(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)

		t.Run("email", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			f.codesEnrolled(t, u)
			sid, _ := f.pending(t, u)
			// Nothing sent yet: no passcode can match.
			wantError(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": "123456"}),
				http.StatusUnauthorized, "invalid_code")
			expMust(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "email"}), http.StatusNoContent, "otp send")
			mail := f.mail.WaitFor(t, u.Email, expWait)
			if len(mail.Code) != 6 {
				t.Fatalf("no code in the mail: %q", mail.Body)
			}
			wantError(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": expOtherCode(mail.Code, 0)}),
				http.StatusUnauthorized, "invalid_code")
			c := f.wantTokens(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": mail.Code}), f.client.ID, sid)
			wantAMR(t, c.AMR, "mfa", "otp", "pwd")
			if c.Sub != u.ID {
				t.Fatalf("sub %q, want %q", c.Sub, u.ID)
			}
			// Single use.
			wantError(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": mail.Code}),
				http.StatusUnauthorized, "invalid_code")
			// A code sent for one session does not complete another.
			sid2, _ := f.pending(t, u)
			expMust(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid2, "channel": "email"}), http.StatusNoContent, "otp send")
			code2 := f.deliveredCode(t, "email", u.Email)
			sid3, _ := f.pending(t, u)
			wantError(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid3, "passcode": code2}),
				http.StatusUnauthorized, "invalid_code")
			f.wantTokens(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid2, "passcode": code2}), f.client.ID, sid2)
		})

		t.Run("sms", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			f.codesEnrolled(t, u)
			sid, res := f.pending(t, u)
			if p := res.Str("phone_number"); p == "" || p == u.Phone || p[len(p)-4:] != u.Phone[len(u.Phone)-4:] {
				t.Fatalf("masked phone %q for %q", p, u.Phone)
			}
			expMust(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "sms"}), http.StatusNoContent, "otp send")
			sms := f.sms.WaitFor(t, u.Phone, expWait)
			if len(sms.Code) != 6 || sms.Purpose == "" {
				t.Fatalf("SMS %+v", sms)
			}
			c := f.wantTokens(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": sms.Code}), f.client.ID, sid)
			wantAMR(t, c.AMR, "mfa", "otp", "pwd")
			if n := f.sms.Rejected(); n != 0 {
				t.Fatalf("the SMS receiver refused %d requests", n)
			}
		})

		t.Run("bad input", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			f.codesEnrolled(t, u)
			sid, _ := f.pending(t, u)
			wantDetail(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "pigeon"}), "channel")
			wantDetail(t, f.v1MFA(t, "otp/send", map[string]any{"channel": "email"}), "session_id")
			wantError(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": "nope", "channel": "email"}), http.StatusBadRequest, "session_not_found")
			wantDetail(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid}), "passcode")
			wantDetail(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "code": "123456"}), "")
			// A user without a phone number has no SMS channel.
			v := expUser{Username: v1Name("nophone"), Email: expEmail("nophone"), Password: v1Password()}
			v.ID = f.createUser(t, map[string]any{"username": v.Username, "email": v.Email, "credentials": map[string]any{"password": v.Password}})
			f.totpEnrolled(t, v)
			vsid, res := f.pending(t, v)
			if _, ok := res.JSON["phone_number"]; ok {
				t.Fatalf("mfa_required names a phone the user does not have: %s", res)
			}
			wantError(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": vsid, "channel": "sms"}), http.StatusBadRequest, "channel_not_available")
		})
	})
}

// Seed 001 (+004): MFA verification codes in the Experience API, sent to
// the identified user's bound email or phone.
func TestMFAVerificationCodeRoutes(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)

		t.Run("email completes the sign-in", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			f.codesEnrolled(t, u)
			x := f.signInTx(t, u)
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")
			id := expVID(t, expMust(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": "email"}),
				http.StatusOK, "send"))
			code := f.deliveredCode(t, "email", u.Email)
			// A wrong code: 400, and the record stays unverified.
			expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": id, "code": expOtherCode(code, 0), "identifierType": "email"}),
				http.StatusBadRequest, "verification_code.code_mismatch")
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")
			// The identifier type must match the record's.
			expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": id, "code": code, "identifierType": "phone"}),
				http.StatusBadRequest, "session.verification_failed")
			res := expMust(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": id, "code": code, "identifierType": "Email"}), http.StatusOK, "verify")
			if res.Str("verificationId") != id {
				t.Fatalf("verify answered %s, want verificationId %s", res, id)
			}
			wantAMR(t, x.submitTokens(t)["amr"], "mfa", "otp", "pwd")
		})

		t.Run("the inbox that signed in is no second factor", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			secret := f.totpAndCodesEnrolled(t, u)
			x := f.begin(t, "SignIn", false)
			expMust(t, x.identify(t, x.provenCode(t, "email", u.Email, "")), http.StatusNoContent, "identification by email code")
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")
			// A second code to the same inbox (or to the phone: the same
			// method) does not satisfy MFA, nor open binding a new factor.
			for _, typ := range []string{"email", "phone"} {
				id := expVID(t, expMust(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": typ}),
					http.StatusOK, "send "+typ))
				to := map[string]string{"email": u.Email, "phone": u.Phone}[typ]
				expMust(t, x.post(t, "/verification/mfa-verification-code/verify",
					map[string]any{"verificationId": id, "code": f.deliveredCode(t, typ, to), "identifierType": typ}), http.StatusOK, "verify "+typ)
				expWantAPI(t, x.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")
			}
			wid, _ := x.newTOTP(t)
			expWantAPI(t, x.bind(t, "Totp", wid), http.StatusForbidden, "session.mfa.require_mfa_verification")
			// The enrolled authenticator does.
			expMust(t, x.post(t, "/verification/totp/verify", map[string]any{"code": totpNext(t, secret)}), http.StatusOK, "totp")
			claims := x.submitTokens(t)
			if claims["sub"] != u.ID {
				t.Fatalf("sub %v, want %s", claims["sub"], u.ID)
			}
			// (Whether otp + totp also make "mfa" is mergeAMR's knowledge
			// vs possession rule, not pinned here.)
			amr := strs(claims["amr"])
			if !slices.Contains(amr, "otp") || !slices.Contains(amr, "totp") || slices.Contains(amr, "pwd") {
				t.Fatalf("amr %v, want otp and totp", amr)
			}
		})

		t.Run("every identifierType spelling", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			x := f.signInTx(t, u)
			for _, typ := range []string{"email", "Email", "phone", "Phone"} {
				id := expVID(t, expMust(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": typ}),
					http.StatusOK, "send "+typ))
				to := u.Email
				if typ == "phone" || typ == "Phone" {
					to = u.Phone
				}
				channel := "email"
				if to == u.Phone {
					channel = "phone"
				}
				code := f.deliveredCode(t, channel, to)
				// The other casing of the same type verifies it.
				other := map[string]string{"email": "Email", "Email": "email", "phone": "Phone", "Phone": "phone"}[typ]
				expMust(t, x.post(t, "/verification/mfa-verification-code/verify",
					map[string]any{"verificationId": id, "code": code, "identifierType": other}), http.StatusOK, "verify "+other)
			}
			for _, bad := range []string{"EMAIL", "sms", "username", ""} {
				expWantAPI(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": bad}),
					http.StatusBadRequest, "guard.invalid_input")
			}
			expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": "x", "code": "123456", "identifierType": "SMS"}),
				http.StatusBadRequest, "guard.invalid_input")
			x.submitTokens(t)
		})

		t.Run("error rows", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			x := f.signInTx(t, u)
			// 404: unknown verificationId, or a record of another kind.
			expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": "no-such-record", "code": "123456", "identifierType": "email"}),
				http.StatusNotFound, "session.verification_session_not_found")
			pw := expVID(t, expMust(t, x.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", u.Username), "password": u.Password}),
				http.StatusOK, "password"))
			expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": pw, "code": "123456", "identifierType": "email"}),
				http.StatusNotFound, "session.verification_session_not_found")
			// 400: the user is not identified (seed 001).
			y := f.begin(t, "SignIn", false)
			expWantAPI(t, y.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": "no-such-record", "code": "123456", "identifierType": "email"}),
				http.StatusBadRequest, "session.identifier_not_found")
			// Sending needs an identified user too (seed 004's MFA record
			// rows: 404 session.identifier_not_found).
			expWantAPI(t, y.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": "email"}),
				http.StatusNotFound, "session.identifier_not_found")
			// Missing fields.
			expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify", map[string]any{"identifierType": "email"}),
				http.StatusBadRequest, "guard.invalid_input")
			// A user without a phone has nothing to send an SMS to.
			v := expUser{Username: v1Name("nophone"), Email: expEmail("nophone"), Password: v1Password()}
			v.ID = f.createUser(t, map[string]any{"username": v.Username, "email": v.Email, "credentials": map[string]any{"password": v.Password}})
			z := f.signInTx(t, v)
			expWantAPI(t, z.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": "phone"}),
				http.StatusBadRequest, "session.mfa.identifier_not_bound")
		})

		t.Run("501 without a connector", func(t *testing.T) {
			t.Parallel()
			bare := expStartBare(t, b)
			u := bare.user(t)
			x := bare.signInTx(t, u)
			for _, typ := range []string{"email", "Phone"} {
				expWantAPI(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": typ}),
					http.StatusNotImplemented, "connector.not_found")
				expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify",
					map[string]any{"verificationId": "some-record", "code": "123456", "identifierType": typ}),
					http.StatusNotImplemented, "connector.not_found")
			}
			if recs := x.records(t); len(recs) != 1 {
				t.Fatalf("records without a connector: %v", recs)
			}
			// And /v1: no connector, no passcode.
			bare.enrol(t, u, false)
			sid, _ := bare.pending(t, u)
			wantError(t, bare.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "email"}),
				http.StatusNotImplemented, "connector_not_configured")
		})
	})
}

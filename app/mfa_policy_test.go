package app_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// Issue 5 / seed 004: POST /profile/mfa and /profile/mfa/mfa-skipped, and
// the submit-time MFA checks of every policy. The subtests change the
// server's sign-in settings, so they run in order.
func TestMFAPolicies(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)
		policy := func(t *testing.T, p string) {
			t.Helper()
			f.settings(t, `{"mfa": {"policy": "`+p+`"}}`)
		}

		t.Run("profile/mfa error rows", func(t *testing.T) {
			// 400: not in a ForgotPassword interaction.
			fp := f.begin(t, "ForgotPassword", false)
			expWantAPI(t, fp.bind(t, "Totp", "x"), http.StatusBadRequest, "session.not_supported_for_forgot_password")
			expWantAPI(t, fp.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusBadRequest, "session.not_supported_for_forgot_password")
			// 404: not identified.
			y := f.begin(t, "SignIn", false)
			expWantAPI(t, y.bind(t, "Totp", "x"), http.StatusNotFound, "session.identifier_not_found")
			expWantAPI(t, y.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusNotFound, "session.identifier_not_found")
			expWantAPI(t, y.post(t, "/verification/totp/secret", nil), http.StatusNotFound, "session.identifier_not_found")
			expWantAPI(t, y.post(t, "/verification/totp/verify", map[string]any{"code": "123456"}), http.StatusNotFound, "session.identifier_not_found")

			u := f.user(t)
			x := f.signInTx(t, u)
			// 400: bad body.
			expWantAPI(t, x.bind(t, "Email", "x"), http.StatusBadRequest, "guard.invalid_input")
			expWantAPI(t, x.post(t, "/profile/mfa", map[string]any{"type": "Totp"}), http.StatusBadRequest, "guard.invalid_input")
			// 404: unknown record.
			expWantAPI(t, x.bind(t, "Totp", "no-such-record"), http.StatusNotFound, "session.verification_session_not_found")
			// 400: a record that is not verified, or not of that type.
			unverified, secret := x.newTOTPSecret(t)
			expWantAPI(t, x.bind(t, "Totp", unverified), http.StatusBadRequest, "session.verification_failed")
			expWantAPI(t, x.post(t, "/verification/totp/verify", map[string]any{"verificationId": unverified, "code": totpWrong(t, secret)}),
				http.StatusBadRequest, "session.mfa.invalid_totp_code")
			expWantAPI(t, x.bind(t, "Totp", unverified), http.StatusBadRequest, "session.verification_failed")
			expWantAPI(t, x.post(t, "/verification/totp/verify", map[string]any{"verificationId": "no-such-record", "code": totpNow(t, secret)}),
				http.StatusNotFound, "session.verification_session_not_found")
			expMust(t, x.post(t, "/verification/totp/verify", map[string]any{"verificationId": unverified, "code": totpNow(t, secret)}),
				http.StatusOK, "totp verify")
			expWantAPI(t, x.bind(t, "WebAuthn", unverified), http.StatusBadRequest, "session.verification_failed")
			pw := x.passwordRecord(t, "username", u.Username, u.Password)
			expWantAPI(t, x.bind(t, "Totp", pw), http.StatusBadRequest, "session.verification_failed")
			// Without an enrolled TOTP, there is nothing to verify against.
			expWantAPI(t, x.post(t, "/verification/totp/verify", map[string]any{"code": totpNow(t, secret)}),
				http.StatusBadRequest, "session.mfa.factor_not_enrolled")
			// 400: the factor is not enabled in the settings.
			f.settings(t, `{"mfa": {"factors": ["webauthn", "backup_code"]}}`)
			expWantAPI(t, x.bind(t, "Totp", unverified), http.StatusBadRequest, "session.mfa.mfa_factor_not_enabled")
			f.settings(t, `{"mfa": {"factors": ["totp", "backup_code", "webauthn", "email_code", "phone_code"]}}`)
			expMust(t, x.bind(t, "Totp", unverified), http.StatusNoContent, "bind totp")
			// The record's secret went to the factor: binding it again is
			// 422 user.totp_already_in_use.
			expWantAPI(t, x.bind(t, "Totp", unverified), http.StatusUnprocessableEntity, "user.totp_already_in_use")
			x.submitTokens(t)

			// A user with TOTP adds another: first verify (403), then 422.
			z := f.signInTx(t, u)
			id2, _ := z.newTOTP(t)
			expWantAPI(t, z.bind(t, "Totp", id2), http.StatusForbidden, "session.mfa.require_mfa_verification")
			expMust(t, z.post(t, "/verification/totp/verify", map[string]any{"code": totpNext(t, secret)}), http.StatusOK, "verify enrolled totp")
			expWantAPI(t, z.bind(t, "Totp", id2), http.StatusUnprocessableEntity, "user.totp_already_in_use")
			wantAMR(t, z.submitTokens(t)["amr"], "mfa", "pwd", "totp")
			// The enrolled authenticator is still the only one.
			if n := f.count(t, "SELECT COUNT(*) FROM mfa_factors WHERE user_id = ? AND type = 'totp'", u.ID); n != 1 {
				t.Fatalf("%d TOTP factors, want 1", n)
			}
		})

		t.Run("code channels follow mfa.factors", func(t *testing.T) {
			u := f.user(t)
			f.totpAndCodesEnrolled(t, u)
			x := f.signInTx(t, u)
			emailID := expVID(t, expMust(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": "email"}),
				http.StatusOK, "send email code"))
			code := f.deliveredCode(t, "email", u.Email)
			sid, _ := f.pending(t, u)
			expMust(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "sms"}), http.StatusNoContent, "otp send")
			passcode := f.deliveredCode(t, "phone", u.Phone)

			f.settings(t, `{"mfa": {"factors": ["totp", "backup_code", "webauthn"]}}`)
			for _, typ := range []string{"email", "phone"} {
				expWantAPI(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": typ}),
					http.StatusBadRequest, "session.mfa.mfa_factor_not_enabled")
			}
			// A code sent before the change no longer counts.
			expWantAPI(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": emailID, "code": code, "identifierType": "email"}),
				http.StatusBadRequest, "session.mfa.mfa_factor_not_enabled")
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")
			for _, ch := range []string{"email", "sms"} {
				wantError(t, f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": ch}), http.StatusBadRequest, "mfa_factor_not_enabled")
			}
			wantError(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": passcode}), http.StatusBadRequest, "mfa_factor_not_enabled")

			// Enabled again, the codes sent earlier still work.
			f.settings(t, `{"mfa": {"factors": ["totp", "backup_code", "webauthn", "email_code", "phone_code"]}}`)
			expMust(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": emailID, "code": code, "identifierType": "email"}), http.StatusOK, "verify")
			wantAMR(t, x.submitTokens(t)["amr"], "mfa", "otp", "pwd")
			c := f.wantTokens(t, f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": passcode}), f.client.ID, sid)
			wantAMR(t, c.AMR, "mfa", "otp", "pwd")
		})

		t.Run("Mandatory", func(t *testing.T) {
			policy(t, "Mandatory")
			u := f.user(t)
			x := f.signInTx(t, u)
			res := x.post(t, "/submit", nil)
			expWantAPI(t, res, http.StatusUnprocessableEntity, "user.missing_mfa")
			if got := strs(dataOf(t, res)["availableFactors"]); !slices.Contains(got, "Totp") {
				t.Fatalf("availableFactors %v", got)
			}
			expWantAPI(t, x.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusUnprocessableEntity, "session.mfa.mfa_policy_not_user_controlled")
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.missing_mfa")
			id, _ := x.newTOTP(t)
			expMust(t, x.bind(t, "Totp", id), http.StatusNoContent, "bind totp")
			wantAMR(t, x.submitTokens(t)["amr"], "mfa", "pwd", "totp")

			r, _ := f.registerTx(t)
			expWantAPI(t, r.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.missing_mfa")
			expWantAPI(t, r.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusUnprocessableEntity, "session.mfa.mfa_policy_not_user_controlled")
			key, rid := r.webAuthnRegister(t)
			expMust(t, r.bind(t, "WebAuthn", rid), http.StatusNoContent, "bind webauthn")
			r.submitTokens(t)
			_ = key
		})

		t.Run("PromptAtSignInAndSignUp", func(t *testing.T) {
			policy(t, "PromptAtSignInAndSignUp")
			u := f.user(t)
			x := f.signInTx(t, u)
			res := x.post(t, "/submit", nil)
			expWantAPI(t, res, http.StatusUnprocessableEntity, "user.suggest_mfa")
			if dataOf(t, res)["skippable"] != true {
				t.Fatalf("suggest_mfa without skippable: %s", res)
			}
			expMust(t, x.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusNoContent, "mfa-skipped")
			wantAMR(t, x.submitTokens(t)["amr"], "pwd")
			// The choice is remembered.
			f.signInTx(t, u).submitTokens(t)

			r, _ := f.registerTx(t)
			expWantAPI(t, r.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.suggest_mfa")
			expMust(t, r.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusNoContent, "mfa-skipped")
			r.submitTokens(t)
		})

		t.Run("PromptOnlyAtSignIn", func(t *testing.T) {
			policy(t, "PromptOnlyAtSignIn")
			r, nu := f.registerTx(t)
			r.submitTokens(t)
			x := f.begin(t, "SignIn", false)
			expMust(t, x.identify(t, x.passwordRecord(t, "username", nu.Username, nu.Password)), http.StatusNoContent, "identification")
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.suggest_mfa")
			expMust(t, x.post(t, "/profile/mfa/mfa-skipped", nil), http.StatusNoContent, "mfa-skipped")
			x.submitTokens(t)
		})

		t.Run("NoPrompt", func(t *testing.T) {
			policy(t, "NoPrompt")
			f.signInTx(t, f.user(t)).submitTokens(t)
			r, _ := f.registerTx(t)
			r.submitTokens(t)
		})

		t.Run("a user with factors must verify one", func(t *testing.T) {
			u := f.user(t)
			secret := f.totpEnrolled(t, u)
			for _, p := range []string{"NoPrompt", "PromptAtSignInAndSignUp", "Mandatory"} {
				policy(t, p)
				x := f.signInTx(t, u)
				res := x.post(t, "/submit", nil)
				expWantAPI(t, res, http.StatusForbidden, "session.mfa.require_mfa_verification")
				if got := strs(dataOf(t, res)["availableFactors"]); len(got) != 1 || got[0] != "Totp" {
					t.Fatalf("%s: availableFactors %v", p, got)
				}
				skip := x.post(t, "/profile/mfa/mfa-skipped", nil)
				if p == "Mandatory" {
					expWantAPI(t, skip, http.StatusUnprocessableEntity, "session.mfa.mfa_policy_not_user_controlled")
				} else if skip.Status != http.StatusForbidden || skip.Str("code") == "" {
					t.Fatalf("%s: mfa-skipped with factors: %s, want 403", p, skip)
				}
				expWantAPI(t, x.post(t, "/verification/totp/verify", map[string]any{"code": totpWrong(t, secret)}),
					http.StatusBadRequest, "session.mfa.invalid_totp_code")
				expWantAPI(t, x.post(t, "/submit", nil), http.StatusForbidden, "session.mfa.require_mfa_verification")
			}
			policy(t, "NoPrompt")
			x := f.signInTx(t, u)
			expMust(t, x.post(t, "/verification/totp/verify", map[string]any{"code": totpNext(t, secret)}), http.StatusOK, "verify")
			wantAMR(t, x.submitTokens(t)["amr"], "mfa", "pwd", "totp")
		})
	})
}

// Under a Mandatory policy every factor the Experience API offers a user
// without factors can be bound there and then completes later sign-ins —
// the code factors included (issue 9: offered email_code could not be bound).
func TestMandatoryOfferedFactorsCanBeBoundAndUsed(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)
		f.settings(t, `{"mfa":{"policy":"Mandatory"}}`)
		for _, factor := range []string{"Totp", "EmailVerificationCode", "PhoneVerificationCode"} {
			u := f.user(t)
			x := f.signInTx(t, u)
			res := x.post(t, "/submit", nil)
			expWantAPI(t, res, http.StatusUnprocessableEntity, "user.missing_mfa")
			offered := strs(dataOf(t, res)["availableFactors"])
			if !slices.Contains(offered, factor) || slices.Contains(offered, "BackupCode") || slices.Contains(offered, "totp") {
				t.Fatalf("availableFactors %v", offered)
			}
			typ, to := "email", u.Email
			if factor == "PhoneVerificationCode" {
				typ, to = "phone", u.Phone
			}
			var secret string
			if factor == "Totp" {
				var id string
				id, secret = x.newTOTP(t)
				expMust(t, x.bind(t, factor, id), http.StatusNoContent, "bind")
			} else {
				id := expVID(t, expMust(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": typ}), http.StatusOK, "send"))
				expMust(t, x.post(t, "/verification/mfa-verification-code/verify",
					map[string]any{"verificationId": id, "code": f.deliveredCode(t, typ, to), "identifierType": typ}), http.StatusOK, "verify")
				expMust(t, x.bind(t, factor, id), http.StatusNoContent, "bind")
			}
			x.submitTokens(t)

			// The next sign-in asks for that factor, and it completes.
			y := f.signInTx(t, u)
			res = y.post(t, "/submit", nil)
			expWantAPI(t, res, http.StatusForbidden, "session.mfa.require_mfa_verification")
			if got := strs(dataOf(t, res)["availableFactors"]); len(got) != 1 || got[0] != factor {
				t.Fatalf("availableFactors after binding %s: %v", factor, got)
			}
			if factor == "Totp" {
				expMust(t, y.post(t, "/verification/totp/verify", map[string]any{"code": totpNext(t, secret)}), http.StatusOK, "totp")
			} else {
				id := expVID(t, expMust(t, y.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": typ}), http.StatusOK, "send"))
				expMust(t, y.post(t, "/verification/mfa-verification-code/verify",
					map[string]any{"verificationId": id, "code": f.deliveredCode(t, typ, to), "identifierType": typ}), http.StatusOK, "verify")
			}
			if amr := strs(y.submitTokens(t)["amr"]); !slices.Contains(amr, "mfa") {
				t.Fatalf("%s sign-in amr %v", factor, amr)
			}
			// And /v1 offers the same factor by its snake_case name.
			_, pend := f.pending(t, u)
			want := map[string]string{"Totp": "totp", "EmailVerificationCode": "email_code", "PhoneVerificationCode": "phone_code"}[factor]
			if got := mfaFactors(pend); len(got) != 1 || got[0] != want {
				t.Fatalf("/v1 mfa_factors %v, want [%s]", got, want)
			}
		}
	})
}

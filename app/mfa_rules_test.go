package app_test

import (
	"net/http"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// A Mandatory MFA policy holds on /v1 too: a user without an enrolled factor
// proves a code sent to an address they have, and a user with no usable
// channel cannot get tokens until they enrol a factor.
func TestMandatoryMFAOnBackendSignIn(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := mfaStart(t, b)
		f.settings(t, `{"mfa":{"policy":"Mandatory"}}`)

		// Unverified addresses are no second factor (issue 8): nothing offered.
		unverified := f.user(t)
		wantError(t, f.authenticate(t, unverified.Username, unverified.Password, nil), http.StatusForbidden, "mfa_enrollment_required")

		u := expUser{Username: v1Name("verified"), Email: expEmail("verified"), Phone: expPhone(), Password: v1Password()}
		u.ID = f.createUser(t, map[string]any{"username": u.Username, "email": u.Email, "phone_number": u.Phone,
			"email_verified": true, "phone_number_verified": true, "credentials": map[string]any{"password": u.Password}})
		sid, res := f.pending(t, u)
		if got := mfaFactors(res); len(got) != 2 || got[0] != "email_code" || got[1] != "phone_code" {
			t.Fatalf("mfa_factors %v, want the code channels", got)
		}
		if sent := f.v1MFA(t, "otp/send", map[string]any{"session_id": sid, "channel": "email"}); sent.Status != http.StatusNoContent {
			t.Fatalf("otp/send: %s", sent)
		}
		code := f.deliveredCode(t, "email", u.Email)
		done := f.v1MFA(t, "otp/authenticate", map[string]any{"session_id": sid, "passcode": code})
		claims := f.wantTokens(t, done, f.client.ID, sid)
		wantAMR(t, claims.AMR, "mfa", "otp", "pwd")

		// No email, no phone, no factor: nothing to prove, nothing issued.
		name, password := v1Name("nochannel"), v1Password()
		f.createUser(t, map[string]any{"username": name, "credentials": map[string]any{"password": password}})
		wantError(t, f.authenticate(t, name, password, nil), http.StatusForbidden, "mfa_enrollment_required")
	})
}

// Two different methods make "mfa": an e-mailed code as the first factor
// and the user's authenticator app as the second.
func TestCodeThenTOTPIsMultiFactor(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := mfaStart(t, b)
		u := f.user(t)
		secret, _ := f.enrol(t, u, false)

		x := f.begin(t, "SignIn", false)
		id := x.provenCode(t, "email", u.Email, "SignIn")
		expMust(t, x.identify(t, id), http.StatusNoContent, "identify")
		expMust(t, x.post(t, "/verification/totp/verify", map[string]any{"code": totpNext(t, secret)}), http.StatusOK, "totp")
		claims := x.submitTokens(t)
		wantAMR(t, claims["amr"], "mfa", "otp", "totp")
	})
}

package app_test

// Every status/error row of seed 004 for the Experience API routes in scope
// of issue 4 (init, interaction-event, identification, submit, profile,
// profile/password, verification/password, verification-code + verify,
// new-password-identity, sso-connectors), plus the social and SSO routes'
// answers for unknown connectors.

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

func TestExperienceErrorRows(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		run := func(name string, fn func(t *testing.T)) {
			t.Run(name, func(t *testing.T) { t.Parallel(); fn(t) })
		}

		// --- PUT /api/experience -------------------------------------
		run("Init", func(t *testing.T) {
			for _, cookie := range []bool{true, false} {
				f.begin(t, "SignIn", cookie)
				f.begin(t, "Register", cookie)
				f.begin(t, "ForgotPassword", cookie)
			}
			expWantAPI(t, f.call(t, http.MethodPut, "/api/experience", f.tok, map[string]any{"interactionEvent": "Bogus"}),
				http.StatusBadRequest, "guard.invalid_input")
			expWantAPI(t, f.call(t, http.MethodPut, "/api/experience", "", map[string]any{"interactionEvent": "SignIn"}),
				http.StatusUnauthorized, "auth.invalid_client_token")
			noExecute := f.ClientToken(f.CreateClient("users:read"))
			expWantAPI(t, f.call(t, http.MethodPut, "/api/experience", noExecute, map[string]any{"interactionEvent": "SignIn"}),
				http.StatusForbidden, "auth.insufficient_scope")
		})

		// --- PUT /interaction-event ----------------------------------
		run("InteractionEvent", func(t *testing.T) {
			x := f.begin(t, "ForgotPassword", false)
			for _, ev := range []string{"SignIn", "Register"} {
				expWantAPI(t, x.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": ev}),
					http.StatusBadRequest, "session.not_supported_for_forgot_password")
			}
			y := f.begin(t, "SignIn", false)
			expWantAPI(t, y.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "ForgotPassword"}),
				http.StatusBadRequest, "session.not_supported_for_forgot_password")
			expMust(t, y.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "Register"}),
				http.StatusNoContent, "SignIn to Register")
			expMust(t, y.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "SignIn"}),
				http.StatusNoContent, "Register to SignIn")
			none := &expTx{f: f, tok: f.tok, hc: f.HTTP}
			expWantAPI(t, none.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "SignIn"}),
				http.StatusNotFound, "session.not_found")
		})

		// --- POST /identification ------------------------------------
		run("IdentificationSignIn", func(t *testing.T) {
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			expWantAPI(t, x.identify(t, ""), http.StatusBadRequest, "guard.invalid_target")
			expWantAPI(t, x.post(t, "/identification", map[string]any{}), http.StatusBadRequest, "guard.invalid_target")
			expWantAPI(t, x.identify(t, "no-such-record"), http.StatusNotFound, "session.verification_session_not_found")
			// A code record that was sent but not verified.
			unverified := x.sendCode(t, "email", u.Email, "")
			f.deliveredCode(t, "email", u.Email)
			expWantAPI(t, x.identify(t, unverified), http.StatusBadRequest, "session.verification_failed")
			// A verified code for an address no account has.
			email := expEmail("nobody")
			stranger := x.provenCode(t, "email", email, "Register")
			expWantAPI(t, x.identify(t, stranger), http.StatusNotFound, "user.user_not_exist")
		})
		run("IdentificationDeletedUser", func(t *testing.T) {
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			id := x.provenCode(t, "email", u.Email, "")
			expMust(t, f.call(t, http.MethodDelete, "/v1/users/"+u.ID, f.tok, nil), http.StatusNoContent, "delete user")
			expWantAPI(t, x.identify(t, id), http.StatusNotFound, "user.user_not_exist")
		})
		run("IdentificationSuspended", func(t *testing.T) {
			for _, event := range []string{"SignIn", "ForgotPassword"} {
				u := f.user(t)
				x := f.begin(t, event, false)
				id := x.provenCode(t, "phone", u.Phone, "")
				expMust(t, f.call(t, http.MethodPost, "/v1/users/"+u.ID+"/suspend", f.tok, nil), http.StatusOK, "suspend")
				expWantAPI(t, x.identify(t, id), http.StatusUnauthorized, "user.suspended")
			}
		})
		run("IdentificationOtherUser", func(t *testing.T) {
			a, b := f.user(t), f.user(t)
			x := f.begin(t, "SignIn", false)
			ra := x.passwordRecord(t, "username", a.Username, a.Password)
			rb := x.passwordRecord(t, "email", b.Email, b.Password)
			expMust(t, x.identify(t, ra), http.StatusNoContent, "identify a")
			expMust(t, x.identify(t, ra), http.StatusNoContent, "identify a again")
			res := x.identify(t, rb)
			if res.Status != http.StatusConflict || res.Str("code") == "" {
				t.Fatalf("identify another user: %s, want 409", res)
			}
			// The interaction still belongs to a.
			if sub := x.submitTokens(t)["sub"]; sub != a.ID {
				t.Fatalf("signed in as %v, want %s", sub, a.ID)
			}
		})
		run("IdentificationForgotPasswordRecords", func(t *testing.T) {
			u := f.user(t)
			x := f.begin(t, "ForgotPassword", false)
			expWantAPI(t, x.identify(t, ""), http.StatusBadRequest, "guard.invalid_target")
			// A password proves nothing in ForgotPassword.
			pw := x.passwordRecord(t, "username", u.Username, u.Password)
			expWantAPI(t, x.identify(t, pw), http.StatusBadRequest, "session.verification_failed")
			// Records of another interaction are not this one's.
			y := f.begin(t, "ForgotPassword", false)
			other := y.provenCode(t, "email", u.Email, "")
			expWantAPI(t, x.identify(t, other), http.StatusNotFound, "session.verification_session_not_found")
		})
		run("IdentificationRegister", func(t *testing.T) {
			x := f.begin(t, "Register", false)
			res := x.identify(t, "")
			expWantAPI(t, res, http.StatusUnprocessableEntity, "user.missing_profile")
			expWantAPI(t, x.identify(t, "no-such-record"), http.StatusNotFound, "session.verification_session_not_found")
			unverified := x.sendCode(t, "email", expEmail("unv"), "")
			expWantAPI(t, x.identify(t, unverified), http.StatusBadRequest, "session.verification_failed")

			// The username was free when the record was made, taken since.
			taken := v1Name("taken")
			npi := expVID(t, expMust(t, x.post(t, "/verification/new-password-identity",
				map[string]any{"identifier": expIdent("username", taken), "password": v1Password()}), http.StatusOK, "new-password-identity"))
			f.createUser(t, map[string]any{"username": taken})
			expWantAPI(t, x.identify(t, npi), http.StatusUnprocessableEntity, "user.username_already_in_use")

			// An email or phone that already has an account (with the
			// username that sign-up requires by default).
			u := f.user(t)
			y := f.begin(t, "Register", false)
			dup1, dup2 := v1Name("dup"), v1Name("dup")
			expMust(t, y.post(t, "/profile", map[string]any{"type": "username", "value": dup1}), http.StatusNoContent, "username")
			expMust(t, y.post(t, "/profile", map[string]any{"type": "password", "value": v1Password()}), http.StatusNoContent, "password")
			id := y.provenCode(t, "email", u.Email, "")
			expWantAPI(t, y.identify(t, id), http.StatusUnprocessableEntity, "user.email_already_in_use")
			z := f.begin(t, "Register", false)
			expMust(t, z.post(t, "/profile", map[string]any{"type": "username", "value": dup2}), http.StatusNoContent, "username")
			expMust(t, z.post(t, "/profile", map[string]any{"type": "password", "value": v1Password()}), http.StatusNoContent, "password")
			id = z.provenCode(t, "phone", u.Phone, "")
			expWantAPI(t, z.identify(t, id), http.StatusUnprocessableEntity, "user.phone_already_in_use")
			for _, name := range []string{taken, dup1, dup2} {
				if n := f.count(t, "SELECT COUNT(*) FROM users WHERE username = ?", name); n > 1 || (n == 1 && name != taken) {
					t.Fatalf("a failed registration created a user %s", name)
				}
			}

			// A created account cannot be created twice.
			w := f.begin(t, "Register", false)
			ok := expVID(t, expMust(t, w.post(t, "/verification/new-password-identity",
				map[string]any{"identifier": expIdent("username", v1Name("once")), "password": v1Password()}), http.StatusOK, "new-password-identity"))
			expMust(t, w.identify(t, ok), http.StatusCreated, "register")
			res = w.identify(t, ok)
			if res.Status != http.StatusConflict {
				t.Fatalf("second registration: %s, want 409", res)
			}
		})

		// --- POST /submit --------------------------------------------
		run("Submit", func(t *testing.T) {
			for _, event := range []string{"SignIn", "Register", "ForgotPassword"} {
				x := f.begin(t, event, false)
				expWantAPI(t, x.post(t, "/submit", nil), http.StatusNotFound, "session.identifier_not_found")
			}
			none := &expTx{f: f, tok: f.tok, hc: f.HTTP}
			expWantAPI(t, none.post(t, "/submit", nil), http.StatusNotFound, "session.not_found")
			// ForgotPassword identified but without a new password.
			u := f.user(t)
			x := f.begin(t, "ForgotPassword", false)
			expMust(t, x.identify(t, x.provenCode(t, "email", u.Email, "")), http.StatusNoContent, "identify")
			expWantAPI(t, x.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.missing_profile")
			// A registration without the password that sign-up requires is
			// refused at identification, and leaves no account behind.
			r := f.begin(t, "Register", false)
			nopw := v1Name("nopw")
			expMust(t, r.post(t, "/profile", map[string]any{"type": "username", "value": nopw}), http.StatusNoContent, "username")
			res := r.identify(t, r.provenCode(t, "email", expEmail("nopw"), ""))
			expWantAPI(t, res, http.StatusUnprocessableEntity, "user.missing_profile")
			if n := f.count(t, "SELECT COUNT(*) FROM users WHERE username = ?", nopw); n != 0 {
				t.Fatalf("a refused registration created %d users", n)
			}
			if d, _ := res.JSON["data"].(map[string]any); d == nil || len(d["missingProfile"].([]any)) != 1 {
				t.Fatalf("missing profile data: %s", res)
			}
			expMust(t, r.post(t, "/profile", map[string]any{"type": "password", "value": v1Password()}), http.StatusNoContent, "password")
			expMust(t, r.identify(t, ""), http.StatusCreated, "register with the password")
			r.submitTokens(t)
			// A user suspended after identification cannot finish signing in.
			v := f.user(t)
			y := f.begin(t, "SignIn", false)
			expMust(t, y.identify(t, y.passwordRecord(t, "username", v.Username, v.Password)), http.StatusNoContent, "identify")
			expMust(t, f.call(t, http.MethodPost, "/v1/users/"+v.ID+"/suspend", f.tok, nil), http.StatusOK, "suspend")
			expWantAPI(t, y.post(t, "/submit", nil), http.StatusUnauthorized, "user.suspended")
		})

		// --- POST /profile -------------------------------------------
		run("Profile", func(t *testing.T) {
			fp := f.begin(t, "ForgotPassword", false)
			expWantAPI(t, fp.post(t, "/profile", map[string]any{"type": "username", "value": v1Name("p")}),
				http.StatusBadRequest, "session.not_supported_for_forgot_password")
			si := f.begin(t, "SignIn", false)
			expWantAPI(t, si.post(t, "/profile", map[string]any{"type": "username", "value": v1Name("p")}),
				http.StatusNotFound, "session.identifier_not_found")

			u := f.user(t)
			x := f.begin(t, "Register", false)
			expWantAPI(t, x.post(t, "/profile", map[string]any{"type": "email", "verificationId": "no-such-record"}),
				http.StatusNotFound, "session.verification_session_not_found")
			unverified := x.sendCode(t, "email", expEmail("p"), "")
			expWantAPI(t, x.post(t, "/profile", map[string]any{"type": "email", "verificationId": unverified}),
				http.StatusBadRequest, "session.verification_failed")
			expWantAPI(t, x.post(t, "/profile", map[string]any{"type": "username", "value": u.Username}),
				http.StatusUnprocessableEntity, "user.username_already_in_use")
			taken := x.provenCode(t, "email", u.Email, "")
			expWantAPI(t, x.post(t, "/profile", map[string]any{"type": "email", "verificationId": taken}),
				http.StatusUnprocessableEntity, "user.email_already_in_use")
			expWantAPI(t, x.post(t, "/profile", map[string]any{"type": "password", "value": "abc"}),
				http.StatusUnprocessableEntity, "password.rejected")

			// The happy path: a profile built before identification
			// becomes the account.
			username, password, name := v1Name("prof"), v1Password(), "Ada Lovelace"
			expMust(t, x.post(t, "/profile", map[string]any{"type": "username", "value": username}), http.StatusNoContent, "username")
			expMust(t, x.post(t, "/profile", map[string]any{"type": "password", "value": password}), http.StatusNoContent, "password")
			expMust(t, x.post(t, "/profile", map[string]any{"type": "extraProfile", "values": map[string]any{"name": name}}),
				http.StatusNoContent, "extra profile")
			expMust(t, x.identify(t, ""), http.StatusCreated, "register from profile")
			sub := x.submitTokens(t)["sub"].(string)
			res := f.call(t, http.MethodGet, "/v1/users/"+sub, f.tok, nil)
			if res.JSON["username"] != username || res.JSON["name"] != name || res.JSON["has_password"] != true {
				t.Fatalf("registered user: %s", res)
			}
		})

		// --- PUT /profile/password -----------------------------------
		run("ProfilePassword", func(t *testing.T) {
			u := f.user(t)
			for _, event := range []string{"SignIn", "Register"} {
				x := f.begin(t, event, false)
				res := x.call(t, http.MethodPut, "/api/experience/profile/password", map[string]any{"password": v1Password()})
				if res.Status != http.StatusBadRequest || res.Str("code") == "" {
					t.Fatalf("profile/password in %s: %s, want 400", event, res)
				}
			}
			x := f.begin(t, "ForgotPassword", false)
			expWantAPI(t, x.call(t, http.MethodPut, "/api/experience/profile/password", map[string]any{"password": v1Password()}),
				http.StatusNotFound, "session.identifier_not_found")
			expMust(t, x.identify(t, x.provenCode(t, "email", u.Email, "")), http.StatusNoContent, "identify")
			expWantAPI(t, x.call(t, http.MethodPut, "/api/experience/profile/password", map[string]any{"password": u.Password}),
				http.StatusUnprocessableEntity, "user.same_password")
			for _, weak := range []string{"abc", "password", u.Username + "1"} {
				expWantAPI(t, x.call(t, http.MethodPut, "/api/experience/profile/password", map[string]any{"password": weak}),
					http.StatusUnprocessableEntity, "user.password_policy_violation")
			}
			// Nothing changed: the old password still signs in.
			if sub := f.expSignIn(t, "username", u.Username, u.Password); sub != u.ID {
				t.Fatalf("signed in as %q", sub)
			}
		})

		// --- POST /verification/password ----------------------------
		run("PasswordVerification", func(t *testing.T) {
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			wrong := x.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", u.Username), "password": "Wrong-" + u.Password})
			expWantAPI(t, wrong, http.StatusUnprocessableEntity, "session.invalid_credentials")
			unknown := x.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", v1Name("ghost")), "password": u.Password})
			expWantAPI(t, unknown, http.StatusUnprocessableEntity, "session.invalid_credentials")
			if wrong.Str("message") != unknown.Str("message") {
				t.Fatalf("unknown user and wrong password differ: %s / %s", wrong, unknown)
			}
			// Failures store nothing.
			if recs := x.records(t); len(recs) != 0 {
				t.Fatalf("failed verifications stored records: %v", recs)
			}

			s := f.user(t)
			expMust(t, f.call(t, http.MethodPost, "/v1/users/"+s.ID+"/suspend", f.tok, nil), http.StatusOK, "suspend")
			expWantAPI(t, x.post(t, "/verification/password", map[string]any{"identifier": expIdent("email", s.Email), "password": s.Password}),
				http.StatusUnauthorized, "user.suspended")

			e := f.user(t)
			expMust(t, f.call(t, http.MethodPatch, "/v1/users/"+e.ID+"/password/expiration", f.tok, map[string]any{"expired": true}),
				http.StatusOK, "expire password")
			expWantAPI(t, x.post(t, "/verification/password", map[string]any{"identifier": expIdent("phone", e.Phone), "password": e.Password}),
				http.StatusUnprocessableEntity, "password.expired")

			// Too many failures lock the identifier, even for the right
			// password (the default policy: 5 failures).
			l := f.user(t)
			for i := 0; i < 5; i++ {
				expWantAPI(t, x.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", l.Username), "password": "nope-" + l.Password}),
					http.StatusUnprocessableEntity, "session.invalid_credentials")
			}
			locked := x.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", l.Username), "password": l.Password})
			expWantAPI(t, locked, http.StatusBadRequest, "session.verification_blocked_too_many_attempts")
			retryAfter(t, locked)
		})

		// --- POST /verification/verification-code (+ /verify) --------
		run("VerificationCode", func(t *testing.T) {
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			for _, bad := range []map[string]any{expIdent("email", "not-an-address"), expIdent("phone", "12"), expIdent("username", u.Username)} {
				expWantAPI(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": bad}),
					http.StatusBadRequest, "guard.invalid_input")
			}
			none := &expTx{f: f, tok: f.tok, hc: f.HTTP}
			expWantAPI(t, none.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", u.Email)}),
				http.StatusNotFound, "session.not_found")

			id := x.sendCode(t, "email", u.Email, "")
			code := f.deliveredCode(t, "email", u.Email)
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			expWantAPI(t, x.verifyCode(t, "email", u.Email, id, wrong), http.StatusBadRequest, "verification_code.code_mismatch")
			expWantAPI(t, x.verifyCode(t, "email", u.Email, "no-such-record", code), http.StatusNotFound, "session.verification_session_not_found")
			expWantAPI(t, x.verifyCode(t, "email", expEmail("other"), id, code), http.StatusBadRequest, "session.verification_failed")
			expWantAPI(t, none.post(t, "/verification/verification-code/verify",
				map[string]any{"identifier": expIdent("email", u.Email), "verificationId": id, "code": code}),
				http.StatusNotFound, "session.not_found")
			expMust(t, x.verifyCode(t, "email", u.Email, id, code), http.StatusOK, "verify")
			// Single use.
			expWantAPI(t, x.verifyCode(t, "email", u.Email, id, code), http.StatusBadRequest, "verification_code.already_used")

			// An expired code.
			id = x.sendCode(t, "phone", u.Phone, "")
			code = f.deliveredCode(t, "phone", u.Phone)
			if err := f.Services.DB.Exec("UPDATE verification_codes SET expires_at = created_at WHERE identifier = ?", u.Phone).Error; err != nil {
				t.Fatal(err)
			}
			expWantAPI(t, x.verifyCode(t, "phone", u.Phone, id, code), http.StatusBadRequest, "verification_code.expired")
		})

		// --- POST /verification/new-password-identity ----------------
		run("NewPasswordIdentity", func(t *testing.T) {
			u := f.user(t)
			x := f.begin(t, "Register", false)
			expWantAPI(t, x.post(t, "/verification/new-password-identity",
				map[string]any{"identifier": expIdent("username", u.Username), "password": v1Password()}),
				http.StatusUnprocessableEntity, "user.username_already_in_use")
			res := x.post(t, "/verification/new-password-identity",
				map[string]any{"identifier": expIdent("username", v1Name("weak")), "password": "abc"})
			expWantAPI(t, res, http.StatusUnprocessableEntity, "password.rejected")
			data, _ := res.JSON["data"].(map[string]any)
			issues, _ := data["issues"].([]any)
			if len(issues) == 0 {
				t.Fatalf("password.rejected without issues: %s", res)
			}
			found := false
			for _, i := range issues {
				m, _ := i.(map[string]any)
				if m["code"] == "" || m["message"] == "" {
					t.Fatalf("issue without code or message: %s", res)
				}
				found = found || m["code"] == "password_rejected.too_short"
			}
			if !found {
				t.Fatalf("issues do not name too_short: %s", res)
			}
			expWantAPI(t, x.post(t, "/verification/new-password-identity",
				map[string]any{"identifier": expIdent("email", expEmail("npi")), "password": v1Password()}),
				http.StatusBadRequest, "guard.invalid_input")
			if recs := x.records(t); len(recs) != 0 {
				t.Fatalf("rejected identities stored records: %v", recs)
			}
		})

		// --- GET /sso-connectors -------------------------------------
		run("SSOConnectors", func(t *testing.T) {
			res := f.call(t, http.MethodGet, "/api/experience/sso-connectors?email="+url.QueryEscape("ada@example.com"), f.tok, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("sso-connectors: %s", res)
			}
			if ids, ok := res.JSON["connectorIds"].([]any); !ok || len(ids) != 0 {
				t.Fatalf("sso-connectors: %s", res)
			}
			for _, q := range []string{"", "?email=", "?email=not-an-address", "?email=ada%40"} {
				expWantAPI(t, f.call(t, http.MethodGet, "/api/experience/sso-connectors"+q, f.tok, nil),
					http.StatusBadRequest, "guard.invalid_input")
			}
		})

		// --- Social and enterprise SSO routes: unknown connectors --------
		run("UnknownConnector", func(t *testing.T) {
			x := f.begin(t, "SignIn", false)
			for _, p := range []string{"/verification/social/google/authorization-uri", "/verification/sso/acme/authorization-uri"} {
				expWantAPI(t, x.post(t, p, map[string]any{"state": "s", "redirectUri": "https://app.example.com/cb"}),
					http.StatusBadRequest, "guard.invalid_input")
			}
			for _, p := range []string{"/verification/social/google/verify", "/verification/sso/acme/verify"} {
				expWantAPI(t, x.post(t, p, map[string]any{"verificationId": "x", "connectorData": map[string]any{"code": "c", "state": "s"}}),
					http.StatusNotFound, "session.verification_session_not_found")
			}
		})
	})
}

// The rows that depend on the sign-in experience settings run on their own
// server, one after the other.
func TestExperienceSettingsRows(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		u := f.user(t)

		// Registration only: SignIn is closed.
		reg := f.begin(t, "Register", false)
		f.settings(t, `{"sign_in_mode": "Register"}`)
		expWantAPI(t, f.call(t, http.MethodPut, "/api/experience", f.tok, map[string]any{"interactionEvent": "SignIn"}),
			http.StatusForbidden, "session.interaction_event_not_enabled")
		expWantAPI(t, reg.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "SignIn"}),
			http.StatusForbidden, "session.interaction_event_not_enabled")

		// Sign-in only: Register is closed, also for interactions begun
		// while it was open.
		f.settings(t, `{"sign_in_mode": "SignIn"}`)
		expWantAPI(t, f.call(t, http.MethodPut, "/api/experience", f.tok, map[string]any{"interactionEvent": "Register"}),
			http.StatusForbidden, "session.interaction_event_not_enabled")
		si := f.begin(t, "SignIn", false)
		expWantAPI(t, si.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "Register"}),
			http.StatusForbidden, "session.interaction_event_not_enabled")
		npi := expVID(t, expMust(t, reg.post(t, "/verification/new-password-identity",
			map[string]any{"identifier": expIdent("username", v1Name("closed")), "password": v1Password()}), http.StatusOK, "new-password-identity"))
		before := f.users(t)
		expWantAPI(t, reg.identify(t, npi), http.StatusForbidden, "session.interaction_event_not_enabled")
		if f.users(t) != before {
			t.Fatal("a closed registration created an account")
		}

		// A sign-in method that is switched off.
		f.settings(t, `{"sign_in_mode": "SignInAndRegister", "sign_in": {"methods": [{"identifier": "username", "password": true}, {"identifier": "email", "password": true}]}}`)
		x := f.begin(t, "SignIn", false)
		res := x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", u.Email)})
		if res.Status != http.StatusForbidden || res.Str("code") == "" {
			t.Fatalf("code sign-in switched off: %s, want 403", res)
		}
		pw := x.passwordRecord(t, "email", u.Email, u.Password)
		f.settings(t, `{"sign_in": {"methods": [{"identifier": "username", "password": true}]}}`)
		res = x.identify(t, pw)
		if res.Status != http.StatusForbidden || res.Str("code") == "" {
			t.Fatalf("email password sign-in switched off: %s, want 403", res)
		}

		// Forgot password switched off.
		f.settings(t, `{"forgot_password": {"email": false, "phone": false}}`)
		expWantAPI(t, f.call(t, http.MethodPut, "/api/experience", f.tok, map[string]any{"interactionEvent": "ForgotPassword"}),
			http.StatusForbidden, "session.interaction_event_not_enabled")
	})
}

// Without a connector, the code routes answer 501 connector.not_found.
func TestExperienceCodesWithoutConnector(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStartBare(t, b)
		u := f.user(t)
		for _, event := range []string{"SignIn", "Register", "ForgotPassword"} {
			x := f.begin(t, event, false)
			for _, id := range [][2]string{{"email", u.Email}, {"phone", u.Phone}, {"email", expEmail("new")}} {
				expWantAPI(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent(id[0], id[1])}),
					http.StatusNotImplemented, "connector.not_found")
				expWantAPI(t, x.verifyCode(t, id[0], id[1], "some-record", "123456"),
					http.StatusNotImplemented, "connector.not_found")
			}
			if recs := x.records(t); len(recs) != 0 {
				t.Fatalf("records without a connector: %v", recs)
			}
		}
		if got := f.Services.Connectors.Describe(); got["email"] != "not configured" || got["sms"] != "not configured" {
			t.Fatalf("Describe() = %v", got)
		}
	})
}

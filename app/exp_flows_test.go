package app_test

// The Experience API flows of issue 4, end to end over HTTP: each once with
// a cookie jar and once with only the Latch-Interaction header, with codes
// read from a real SMTP server and a real signed SMS webhook receiver.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

func TestExperienceFlows(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		// Registration may use a username or a (verified) email.
		f.settings(t, `{"sign_up": {"identifiers": ["username", "email"], "password": true, "verify": true}}`)
		for _, mode := range []struct {
			name   string
			cookie bool
		}{{"cookie", true}, {"header", false}} {
			cookie := mode.cookie
			t.Run(mode.name, func(t *testing.T) {
				t.Parallel()
				t.Run("RegisterUsernamePassword", func(t *testing.T) { t.Parallel(); flowRegisterUsername(t, f, cookie) })
				t.Run("RegisterEmailCodeThenPassword", func(t *testing.T) { t.Parallel(); flowRegisterEmail(t, f, cookie) })
				t.Run("SignInPassword", func(t *testing.T) { t.Parallel(); flowSignInPassword(t, f, cookie) })
				t.Run("SignInEmailCode", func(t *testing.T) { t.Parallel(); flowSignInCode(t, f, cookie, "email") })
				t.Run("SignInPhoneCode", func(t *testing.T) { t.Parallel(); flowSignInCode(t, f, cookie, "phone") })
				t.Run("ForgotPasswordEmail", func(t *testing.T) { t.Parallel(); flowForgotPassword(t, f, cookie, "email") })
				t.Run("ForgotPasswordPhone", func(t *testing.T) { t.Parallel(); flowForgotPassword(t, f, cookie, "phone") })
				t.Run("SwitchKeepsRecords", func(t *testing.T) { t.Parallel(); flowSwitchKeepsRecords(t, f, cookie) })
			})
		}
	})
}

// finished checks that a submitted interaction is gone (and, in cookie
// mode, that the cookie was dropped so the jar no longer sends it).
func finished(t *testing.T, x *expTx) {
	t.Helper()
	if x.cookie && x.jarHandle(t) != "" {
		t.Fatal("submit did not drop the latch_interaction cookie")
	}
	expWantAPI(t, x.view(t), http.StatusNotFound, "session.not_found")
}

func flowRegisterUsername(t *testing.T, f *expFix, cookie bool) {
	x := f.begin(t, "Register", cookie)
	username, password := v1Name("reg"), v1Password()
	id := expVID(t, expMust(t, x.post(t, "/verification/new-password-identity",
		map[string]any{"identifier": expIdent("username", username), "password": password}), http.StatusOK, "new-password-identity"))
	expMust(t, x.identify(t, id), http.StatusCreated, "identification")
	// The account exists once identified; submit signs the new user in.
	claims := x.submitTokens(t)
	finished(t, x)
	if got := f.expSignIn(t, "username", username, password); got != claims["sub"] {
		t.Fatalf("sign in with the new account: sub %q, registered %v", got, claims["sub"])
	}
}

func flowRegisterEmail(t *testing.T, f *expFix, cookie bool) {
	x := f.begin(t, "Register", cookie)
	email, password := expEmail("reg"), v1Password()
	id := x.sendCode(t, "email", email, "")
	mail := f.mail.WaitFor(t, email, expWait)
	if mail.Code == "" || mail.From != "latch@example.com" {
		t.Fatalf("registration mail: from %q, code %q", mail.From, mail.Code)
	}
	expMust(t, x.verifyCode(t, "email", email, id, mail.Code), http.StatusOK, "verify")
	// The password sign-up requires comes before identification creates
	// the account (issue 9: no account is created without it).
	expWantAPI(t, x.identify(t, id), http.StatusUnprocessableEntity, "user.missing_profile")
	expMust(t, x.post(t, "/profile", map[string]any{"type": "password", "value": password}), http.StatusNoContent, "profile password")
	expMust(t, x.identify(t, id), http.StatusCreated, "identification")
	claims := x.submitTokens(t)
	finished(t, x)
	if got := f.expSignIn(t, "email", email, password); got != claims["sub"] {
		t.Fatalf("sign in with the new account: sub %q, registered %v", got, claims["sub"])
	}
	res := f.call(t, http.MethodGet, "/v1/users/"+claims["sub"].(string), f.tok, nil)
	if res.Status != http.StatusOK || res.JSON["primary_email"] != email || res.JSON["email_verified"] != true || res.JSON["has_password"] != true {
		t.Fatalf("registered user: %s", res)
	}
}

func flowSignInPassword(t *testing.T, f *expFix, cookie bool) {
	u := f.user(t)
	for _, id := range [][2]string{{"username", u.Username}, {"email", u.Email}, {"phone", u.Phone}} {
		x := f.begin(t, "SignIn", cookie)
		rec := x.passwordRecord(t, id[0], id[1], u.Password)
		expMust(t, x.identify(t, rec), http.StatusNoContent, "identification")
		if sub := x.submitTokens(t)["sub"]; sub != u.ID {
			t.Fatalf("signed in as %v, want %s", sub, u.ID)
		}
		finished(t, x)
	}
}

func flowSignInCode(t *testing.T, f *expFix, cookie bool, typ string) {
	u := f.user(t)
	value := u.Email
	if typ == "phone" {
		value = u.Phone
	}
	x := f.begin(t, "SignIn", cookie)
	id := x.provenCode(t, typ, value, "")
	expMust(t, x.identify(t, id), http.StatusNoContent, "identification")
	claims := x.submitTokens(t)
	if claims["sub"] != u.ID {
		t.Fatalf("signed in as %v, want %s", claims["sub"], u.ID)
	}
	if amr, _ := claims["amr"].([]any); len(amr) == 0 || amr[0] != "otp" {
		t.Fatalf("amr %v, want otp", claims["amr"])
	}
	finished(t, x)
	if typ == "phone" {
		if n := f.sms.Rejected(); n != 0 {
			t.Fatalf("the SMS receiver refused %d requests (bad signature?)", n)
		}
		if m := f.sms.Messages(); len(m) == 0 || m[len(m)-1].Purpose == "" {
			t.Fatalf("SMS without purpose: %+v", m)
		}
	}
}

func flowForgotPassword(t *testing.T, f *expFix, cookie bool, typ string) {
	u := f.user(t)
	value := u.Email
	if typ == "phone" {
		value = u.Phone
	}
	x := f.begin(t, "ForgotPassword", cookie)
	id := x.provenCode(t, typ, value, "")
	expMust(t, x.identify(t, id), http.StatusNoContent, "identification")
	newPassword := v1Password()
	expMust(t, x.call(t, http.MethodPut, "/api/experience/profile/password", map[string]any{"password": newPassword}),
		http.StatusNoContent, "reset password")
	res := expMust(t, x.post(t, "/submit", nil), http.StatusOK, "submit")
	if strings.TrimSpace(string(res.Raw)) != "{}" {
		t.Fatalf("ForgotPassword submit body %s, want {}", res.Raw)
	}
	finished(t, x)

	// The new password signs in; the old one is refused.
	if sub := f.expSignIn(t, "username", u.Username, newPassword); sub != u.ID {
		t.Fatalf("signed in as %q, want %s", sub, u.ID)
	}
	y := f.begin(t, "SignIn", cookie)
	expWantAPI(t, y.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", u.Username), "password": u.Password}),
		http.StatusUnprocessableEntity, "session.invalid_credentials")
}

func flowSwitchKeepsRecords(t *testing.T, f *expFix, cookie bool) {
	u := f.user(t)
	x := f.begin(t, "SignIn", cookie)
	pw := x.passwordRecord(t, "username", u.Username, u.Password)
	// A code proving a new address, sent while registering.
	expMust(t, x.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "Register"}),
		http.StatusNoContent, "switch to Register")
	email := expEmail("switch")
	codeID := x.sendCode(t, "email", email, "")
	code := f.deliveredCode(t, "email", email)
	expMust(t, x.verifyCode(t, "email", email, codeID, code), http.StatusOK, "verify")
	npi := expVID(t, expMust(t, x.post(t, "/verification/new-password-identity",
		map[string]any{"identifier": expIdent("username", v1Name("sw")), "password": v1Password()}), http.StatusOK, "new-password-identity"))

	expMust(t, x.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "SignIn"}),
		http.StatusNoContent, "switch to SignIn")
	view := expMust(t, x.view(t), http.StatusOK, "view")
	if view.Str("interactionEvent") != "SignIn" {
		t.Fatalf("view after switch: %s", view)
	}
	// No secret of any record is visible: no code, code id, hash or digest.
	raw := string(view.Raw)
	for _, secret := range []string{code, "code_id", "password_hash", "argon2", "digest", "new_password", u.Password} {
		if strings.Contains(raw, secret) {
			t.Fatalf("the interaction view shows %q: %s", secret, raw)
		}
	}
	recs := x.records(t)
	want := map[string]string{pw: "Password", codeID: "EmailVerificationCode", npi: "NewPasswordIdentity"}
	if len(recs) != len(want) {
		t.Fatalf("records after switching: %v", recs)
	}
	for _, r := range recs {
		if want[r["id"].(string)] != r["type"] || r["verified"] != true {
			t.Fatalf("record after switching: %v (want %v)", r, want)
		}
	}
	// The records still work: the password one signs the user in.
	expMust(t, x.identify(t, pw), http.StatusNoContent, "identification")
	if sub := x.submitTokens(t)["sub"]; sub != u.ID {
		t.Fatalf("signed in as %v, want %s", sub, u.ID)
	}
}

// Seed 004's sign-in page path for a new address: a SignIn code goes out
// (registration is open), identification says user.user_not_exist, the page
// switches to Register and finishes there with the same record. In SignIn-only
// mode such a code is created but never sent.
func TestSignInCodeThenRegister(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		f.settings(t, `{"sign_up":{"identifiers":["email"],"password":false,"verify":true}}`)
		addr := expEmail("newcomer")
		x := f.begin(t, "SignIn", true)
		id := x.sendCode(t, "email", addr, "")
		code := f.deliveredCode(t, "email", addr)
		expMust(t, x.verifyCode(t, "email", addr, id, code), http.StatusOK, "verify")
		expWantAPI(t, x.identify(t, id), http.StatusNotFound, "user.user_not_exist")
		expMust(t, x.call(t, http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "Register"}),
			http.StatusNoContent, "switch to Register")
		expMust(t, x.identify(t, id), http.StatusCreated, "register")
		claims := x.submitTokens(t)
		if n := f.count(t, "SELECT COUNT(*) FROM users WHERE id = ? AND primary_email = ? AND email_verified", claims["sub"], addr); n != 1 {
			t.Fatalf("registered user with the verified address: %d rows", n)
		}

		f.settings(t, `{"sign_in_mode":"SignIn"}`)
		ghost := expEmail("ghost")
		y := f.begin(t, "SignIn", false)
		y.sendCode(t, "email", ghost, "")
		known := f.user(t)
		y.sendCode(t, "email", known.Email, "")
		f.deliveredCode(t, "email", known.Email) // delivered after the answer: give the other one time to show up
		if n := f.mail.Count(ghost); n != 0 {
			t.Fatalf("SignIn-only mode mailed %d codes to an unknown address", n)
		}
	})
}

// /v1 password sign-in follows the same settings as the Experience API:
// a Register-only deployment, or a disabled password method, refuses it
// before the password is even checked.
func TestV1PasswordSignInFollowsSettings(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		u := f.user(t)
		f.settings(t, `{"sign_in":{"methods":[{"identifier":"username","password":false},{"identifier":"email","password":true,"verification_code":true},{"identifier":"phone","password":true,"verification_code":true}]}}`)
		wantError(t, f.authenticate(t, u.Username, u.Password, nil), http.StatusForbidden, "sign_in_method_not_enabled")
		wantError(t, f.authenticate(t, u.Username, "wrong password 1234", nil), http.StatusForbidden, "sign_in_method_not_enabled")
		res := f.authenticate(t, u.Email, u.Password, map[string]any{"username_type": "email"})
		if res.Status != http.StatusOK {
			t.Fatalf("e-mail password sign-in: %s", res)
		}
		f.settings(t, `{"sign_in_mode":"Register"}`)
		wantError(t, f.authenticate(t, u.Email, u.Password, map[string]any{"username_type": "email"}), http.StatusForbidden, "sign_in_method_not_enabled")
	})
}

// One interaction, one submit: of 20 parallel submits of one interaction —
// sent to one server, or spread over two replicas — exactly one signs in;
// the others are told the interaction is gone, and only one session exists.
func TestParallelSubmitsOneSession(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		replica := f.Replica()
		for _, spread := range []bool{false, true} {
			u := f.user(t)
			x := f.signInTx(t, u)
			res := expParallel(t, 20, func(i int) (*apptest.Response, error) {
				req, err := x.request(http.MethodPost, "/api/experience/submit", nil)
				if err != nil {
					return nil, err
				}
				if spread && i%2 == 1 {
					req.URL.Host = strings.TrimPrefix(replica.URL, "http://")
				}
				return v1Do(x.hc, req)
			})
			won := 0
			for _, r := range res {
				switch {
				case r.Status == http.StatusOK:
					won++
				case r.Status == http.StatusNotFound && r.Str("code") == "session.not_found":
				default:
					t.Fatalf("parallel submit answered %s", r)
				}
			}
			if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", u.ID); won != 1 || n != 1 {
				t.Fatalf("spread=%v: %d submits won, %d sessions; want 1 and 1", spread, won, n)
			}
		}
	})
}

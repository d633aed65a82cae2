package app_test

// Verification codes: the management API of seed 002, attempts under
// concurrency, single use under concurrency, the per-recipient send
// throttle, the sentinel pool shared with passwords, and silence towards
// addresses without an account.

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
)

// expOtherCode returns a 6-digit code different from code.
func expOtherCode(code string, n int) string {
	var v int
	fmt.Sscanf(code, "%d", &v)
	return fmt.Sprintf("%06d", (v+1+n)%1_000_000)
}

// expParallel runs n calls at once and returns their responses.
func expParallel(t *testing.T, n int, call func(i int) (*apptest.Response, error)) []*apptest.Response {
	t.Helper()
	out := make([]*apptest.Response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			out[i], errs[i] = call(i)
		}(i)
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// expTally counts responses by "status code".
func expTally(res []*apptest.Response) map[string]int {
	m := map[string]int{}
	for _, r := range res {
		m[fmt.Sprintf("%d %s", r.Status, r.Str("code"))]++
	}
	return m
}

func TestManagementVerificationCodes(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		if got := f.Services.Connectors.Describe(); got["email"] != "smtp" || got["sms"] != "webhook" {
			t.Fatalf("Describe() = %v", got)
		}
		manage := f.ClientToken(f.CreateClient("management"))
		const send, verify = "/api/verification-codes", "/api/verification-codes/verify"

		t.Run("Email", func(t *testing.T) {
			t.Parallel()
			email := expEmail("mgmt")
			expMust(t, f.call(t, http.MethodPost, send, manage, map[string]any{"email": email}), http.StatusNoContent, "send")
			mail := f.mail.WaitFor(t, email, expWait)
			if len(mail.Code) != 6 {
				t.Fatalf("no code in %q", mail.Body)
			}
			res := f.call(t, http.MethodPost, verify, manage, map[string]any{"email": email, "verificationCode": expOtherCode(mail.Code, 0)})
			expWantAPI(t, res, http.StatusBadRequest, "verification_code.code_mismatch")
			expMust(t, f.call(t, http.MethodPost, verify, manage, map[string]any{"email": email, "verificationCode": mail.Code}),
				http.StatusNoContent, "verify")
			// Single use.
			res = f.call(t, http.MethodPost, verify, manage, map[string]any{"email": email, "verificationCode": mail.Code})
			if res.Status != http.StatusBadRequest {
				t.Fatalf("second verify: %s", res)
			}
			// Never sent to that address.
			res = f.call(t, http.MethodPost, verify, manage, map[string]any{"email": expEmail("never"), "verificationCode": "123456"})
			if res.Status != http.StatusBadRequest || res.Str("code") == "" {
				t.Fatalf("verify without a code: %s", res)
			}
		})
		t.Run("Phone", func(t *testing.T) {
			t.Parallel()
			phone := expPhone()
			expMust(t, f.call(t, http.MethodPost, send, manage, map[string]any{"phone": phone}), http.StatusNoContent, "send")
			sms := f.sms.WaitFor(t, phone, expWait)
			if sms.Purpose != "Generic" || len(sms.Code) != 6 || !strings.Contains(sms.Message, sms.Code) {
				t.Fatalf("SMS %+v", sms)
			}
			expWantAPI(t, f.call(t, http.MethodPost, verify, manage, map[string]any{"phone": phone, "verificationCode": expOtherCode(sms.Code, 0)}),
				http.StatusBadRequest, "verification_code.code_mismatch")
			expMust(t, f.call(t, http.MethodPost, verify, manage, map[string]any{"phone": phone, "verificationCode": sms.Code}),
				http.StatusNoContent, "verify")
			if n := f.sms.Rejected(); n != 0 {
				t.Fatalf("the SMS receiver refused %d requests", n)
			}
		})
		t.Run("Auth", func(t *testing.T) {
			t.Parallel()
			body := map[string]any{"email": expEmail("auth")}
			for _, path := range []string{send, verify} {
				vbody := body
				if path == verify {
					vbody = map[string]any{"email": body["email"], "verificationCode": "123456"}
				}
				expWantAPI(t, f.call(t, http.MethodPost, path, "", vbody), http.StatusUnauthorized, "auth.invalid_client_token")
				expWantAPI(t, f.call(t, http.MethodPost, path, "not-a-token", vbody), http.StatusUnauthorized, "auth.invalid_client_token")
				noManage := f.ClientToken(f.CreateClient("auth:execute", "users:write"))
				expWantAPI(t, f.call(t, http.MethodPost, path, noManage, vbody), http.StatusForbidden, "auth.insufficient_scope")
			}
			if n := f.mail.Count(body["email"].(string)); n != 0 {
				t.Fatalf("refused calls sent %d mails", n)
			}
		})
		t.Run("BadPayload", func(t *testing.T) {
			t.Parallel()
			email := expEmail("bad")
			for _, c := range []struct {
				path string
				body any
			}{
				{send, map[string]any{}},
				{send, map[string]any{"email": email, "phone": expPhone()}},
				{send, map[string]any{"email": 42}},
				{send, map[string]any{"email": "not-an-address"}},
				{send, map[string]any{"phone": "12"}},
				{send, map[string]any{"email": email, "verificationCode": "123456"}},
				{send, map[string]any{"email": email, "extra": true}},
				{send, "not json"},
				{send, `["` + email + `"]`},
				{verify, map[string]any{"email": email}},
				{verify, map[string]any{"verificationCode": "123456"}},
				{verify, map[string]any{"email": email, "verificationCode": 123456}},
				{verify, map[string]any{"email": email, "verificationCode": "123456", "extra": 1}},
				{verify, "{"},
			} {
				expWantAPI(t, f.call(t, http.MethodPost, c.path, manage, c.body), http.StatusBadRequest, "guard.invalid_input")
			}
			if n := f.mail.Count(email); n != 0 {
				t.Fatalf("bad payloads sent %d mails", n)
			}
		})
	})
}

func TestManagementCodesWithoutConnector(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStartBare(t, b)
		for _, body := range []map[string]any{{"email": expEmail("x")}, {"phone": expPhone()}} {
			expWantAPI(t, f.call(t, http.MethodPost, "/api/verification-codes", f.tok, body), http.StatusNotImplemented, "connector.not_found")
			body["verificationCode"] = "123456"
			expWantAPI(t, f.call(t, http.MethodPost, "/api/verification-codes/verify", f.tok, body), http.StatusNotImplemented, "connector.not_found")
		}
	})
}

func TestVerificationCodesUnderConcurrency(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		// A code allows 5 guesses; the identifier lockout is set far above,
		// so only the code's own limit is under test.
		const tries = 5
		f.settings(t, fmt.Sprintf(`{"lockout": {"max_failures": 1000}, "verification_code": {"max_attempts": %d}}`, tries))

		t.Run("WrongGuesses", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			id := x.sendCode(t, "email", u.Email, "")
			code := f.deliveredCode(t, "email", u.Email)
			res := expParallel(t, 30, func(i int) (*apptest.Response, error) {
				return x.send(http.MethodPost, "/api/experience/verification/verification-code/verify",
					map[string]any{"identifier": expIdent("email", u.Email), "verificationId": id, "code": expOtherCode(code, i%900)})
			})
			got := expTally(res)
			if got["400 verification_code.code_mismatch"] != tries || got["400 verification_code.exceed_max_try"] != 30-tries {
				t.Fatalf("30 parallel wrong guesses with %d tries: %v", tries, got)
			}
			if n := f.count(t, "SELECT MAX(attempts) FROM verification_codes WHERE identifier = ?", u.Email); n != tries {
				t.Fatalf("attempts stored: %d, want %d", n, tries)
			}
			// Now even the right code is refused.
			expWantAPI(t, x.verifyCode(t, "email", u.Email, id, code), http.StatusBadRequest, "verification_code.exceed_max_try")
			expWantAPI(t, x.identify(t, id), http.StatusBadRequest, "session.verification_failed")
		})
		t.Run("RightCodeOnce", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			id := x.sendCode(t, "phone", u.Phone, "")
			code := f.deliveredCode(t, "phone", u.Phone)
			res := expParallel(t, 10, func(int) (*apptest.Response, error) {
				return x.send(http.MethodPost, "/api/experience/verification/verification-code/verify",
					map[string]any{"identifier": expIdent("phone", u.Phone), "verificationId": id, "code": code})
			})
			got := expTally(res)
			if got["200 "] != 1 {
				t.Fatalf("10 parallel verifications of one code: %v, want exactly one 200", got)
			}
			for k := range got {
				if k != "200 " && !strings.HasPrefix(k, "400 ") {
					t.Fatalf("unexpected outcome %q: %v", k, got)
				}
			}
			expMust(t, x.identify(t, id), http.StatusNoContent, "identify")
			if sub := x.submitTokens(t)["sub"]; sub != u.ID {
				t.Fatalf("signed in as %v", sub)
			}
		})
		t.Run("ManagementRightCodeOnce", func(t *testing.T) {
			t.Parallel()
			email := expEmail("mgmtpar")
			expMust(t, f.call(t, http.MethodPost, "/api/verification-codes", f.tok, map[string]any{"email": email}), http.StatusNoContent, "send")
			code := f.deliveredCode(t, "email", email)
			res := expParallel(t, 10, func(int) (*apptest.Response, error) {
				return f.send(http.MethodPost, "/api/verification-codes/verify", f.tok, map[string]any{"email": email, "verificationCode": code})
			})
			if got := expTally(res); got["204 "] != 1 {
				t.Fatalf("10 parallel management verifications: %v, want exactly one 204", got)
			}
		})
		t.Run("ManagementWrongGuesses", func(t *testing.T) {
			t.Parallel()
			email := expEmail("mgmtwrong")
			expMust(t, f.call(t, http.MethodPost, "/api/verification-codes", f.tok, map[string]any{"email": email}), http.StatusNoContent, "send")
			code := f.deliveredCode(t, "email", email)
			res := expParallel(t, 30, func(i int) (*apptest.Response, error) {
				return f.send(http.MethodPost, "/api/verification-codes/verify", f.tok, map[string]any{"email": email, "verificationCode": expOtherCode(code, i)})
			})
			if got := expTally(res); got["400 verification_code.code_mismatch"] != tries || got["400 verification_code.exceed_max_try"] != 30-tries {
				t.Fatalf("30 parallel wrong management guesses: %v", got)
			}
			expWantAPI(t, f.call(t, http.MethodPost, "/api/verification-codes/verify", f.tok, map[string]any{"email": email, "verificationCode": code}),
				http.StatusBadRequest, "verification_code.exceed_max_try")
		})
	})
}

func TestVerificationCodeSendThrottleAndSilence(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)

		t.Run("Throttle", func(t *testing.T) {
			t.Parallel()
			// The default: 10 codes per recipient per 10 minutes.
			email := expEmail("throttle")
			x := f.begin(t, "Register", false)
			for i := 0; i < 10; i++ {
				x.sendCode(t, "email", email, "")
			}
			res := x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", email)})
			expWantAPI(t, res, http.StatusTooManyRequests, "request.message_rate_limited")
			wait := retryAfter(t, res)
			if wait < time.Minute || wait > 10*time.Minute {
				t.Fatalf("Retry-After %s: the send window is 10 minutes", wait)
			}
			if n := f.mail.Count(email); n != 10 {
				t.Fatalf("%d mails delivered, want 10", n)
			}
			// The budget is per recipient and purpose: the management API's
			// Generic codes have their own.
			expMust(t, f.call(t, http.MethodPost, "/api/verification-codes", f.tok, map[string]any{"email": email}),
				http.StatusNoContent, "management send")
			f.deliveredCode(t, "email", email)
			// Other recipients are not affected.
			x.sendCode(t, "email", expEmail("other"), "")
		})
		t.Run("ThrottlePerPurpose", func(t *testing.T) {
			t.Parallel()
			// Anyone may ask for ForgotPassword codes to an address; using up
			// that budget must not block the MFA codes of the address's user,
			// who has just given the right password.
			u := f.user(t)
			f.codesEnrolled(t, u)
			x := f.begin(t, "ForgotPassword", false)
			for i := 0; i < 10; i++ {
				x.sendCode(t, "email", u.Email, "")
				f.deliveredCode(t, "email", u.Email)
			}
			expWantAPI(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", u.Email)}),
				http.StatusTooManyRequests, "request.message_rate_limited")
			sid, _ := f.pending(t, u)
			expMust(t, f.call(t, http.MethodPost, "/v1/auth/otp/send", f.tok, map[string]any{"session_id": sid, "channel": "email"}),
				http.StatusNoContent, "MFA passcode send")
			code := f.deliveredCode(t, "email", u.Email)
			if res := f.call(t, http.MethodPost, "/v1/auth/otp/authenticate", f.tok, map[string]any{"session_id": sid, "passcode": code}); res.Status != http.StatusOK {
				t.Fatalf("otp authenticate: %s", res)
			}
			y := f.begin(t, "SignIn", false)
			expMust(t, y.identify(t, y.passwordRecord(t, "email", u.Email, u.Password)), http.StatusNoContent, "identification")
			expMust(t, y.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": "email"}), http.StatusOK, "MFA code send")
			f.deliveredCode(t, "email", u.Email)
		})
		t.Run("ThrottlePhone", func(t *testing.T) {
			t.Parallel()
			phone := expPhone()
			x := f.begin(t, "Register", false)
			for i := 0; i < 10; i++ {
				x.sendCode(t, "phone", phone, "")
			}
			expWantAPI(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("phone", phone)}),
				http.StatusTooManyRequests, "request.message_rate_limited")
			if n := f.sms.Count(phone); n != 10 {
				t.Fatalf("%d SMS delivered, want 10", n)
			}
		})
		t.Run("UnknownAddressesGetNothing", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			unknownEmail, unknownPhone := expEmail("ghost"), expPhone()
			// (SignIn codes do go to unknown addresses while registration is
			// open: TestSignInCodeThenRegister.)
			for _, event := range []string{"ForgotPassword"} {
				x := f.begin(t, event, false)
				known := expMust(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", u.Email)}),
					http.StatusOK, "known")
				f.deliveredCode(t, "email", u.Email)
				for _, id := range [][2]string{{"email", unknownEmail}, {"phone", unknownPhone}} {
					res := expMust(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent(id[0], id[1])}),
						http.StatusOK, "unknown")
					if expKeys(res.JSON) != expKeys(known.JSON) || len(res.Str("verificationId")) != len(known.Str("verificationId")) ||
						res.Header.Get("Content-Type") != known.Header.Get("Content-Type") {
						t.Fatalf("unknown %s answers %s, known answers %s", id[0], res, known)
					}
					// A guess against it fails like any wrong code.
					expWantAPI(t, x.verifyCode(t, id[0], id[1], res.Str("verificationId"), "123456"), http.StatusBadRequest, "verification_code.code_mismatch")
				}
			}
			// Delivery runs after the answer: one more known delivery, last,
			// gives any stray message time to arrive before counting.
			y := f.begin(t, "SignIn", false)
			y.sendCode(t, "phone", u.Phone, "")
			f.deliveredCode(t, "phone", u.Phone)
			if n, m := f.mail.Count(unknownEmail), f.sms.Count(unknownPhone); n != 0 || m != 0 {
				t.Fatalf("codes delivered to unknown addresses: %d mails, %d SMS", n, m)
			}
			// In Register, the code is for proving a new address: delivered.
			x := f.begin(t, "Register", false)
			x.sendCode(t, "email", unknownEmail, "")
			f.deliveredCode(t, "email", unknownEmail)
		})
		t.Run("SentinelSharedWithPasswords", func(t *testing.T) {
			t.Parallel()
			// Default lockout: 5 failures. Wrong codes count for the address's
			// account like wrong passwords, and then lock its password too.
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			id := x.sendCode(t, "email", u.Email, "")
			code := f.deliveredCode(t, "email", u.Email)
			for i := 0; i < 5; i++ {
				expWantAPI(t, x.verifyCode(t, "email", u.Email, id, expOtherCode(code, i)), http.StatusBadRequest, "verification_code.code_mismatch")
			}
			locked := x.post(t, "/verification/password", map[string]any{"identifier": expIdent("email", u.Email), "password": u.Password})
			expWantAPI(t, locked, http.StatusBadRequest, "session.verification_blocked_too_many_attempts")
			expWantAPI(t, x.verifyCode(t, "email", u.Email, id, code), http.StatusBadRequest, "session.verification_blocked_too_many_attempts")
			// The pool is the account's, whichever identifier names it.
			expWantAPI(t, x.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", u.Username), "password": u.Password}),
				http.StatusBadRequest, "session.verification_blocked_too_many_attempts")
		})
	})
}

// Where the answer must not reveal an account (SignIn, ForgotPassword),
// neither its status nor its latency may depend on delivering the code: a
// receiver that refuses the message, or one that makes the sender retry,
// must look like an unknown address. The sink's failure injection is
// global, so this test has its own server.
func TestVerificationCodeDeliveryDoesNotTell(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		// SignIn-only mode: a SignIn code to an unknown address is not sent
		// (with registration open it would be, TestSignInCodeThenRegister).
		f.settings(t, `{"sign_in_mode":"SignIn"}`)
		// received waits until the SMS receiver has seen n requests.
		received := func(n int) {
			t.Helper()
			deadline := time.Now().Add(expWait)
			for f.sms.Requests() < n {
				if time.Now().After(deadline) {
					t.Fatalf("the SMS receiver saw %d requests, want %d", f.sms.Requests(), n)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		for _, event := range []string{"SignIn", "ForgotPassword"} {
			u := f.user(t)
			x := f.begin(t, event, false)
			unknown := expMust(t, x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("phone", expPhone())}),
				http.StatusOK, "unknown phone")
			seen := f.sms.Requests()
			f.sms.FailNext(1, http.StatusBadRequest) // refused for good
			refused := x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("phone", u.Phone)})
			if refused.Status != unknown.Status || expKeys(refused.JSON) != expKeys(unknown.JSON) {
				t.Fatalf("%s: a refused delivery answers %s, an unknown phone %s", event, refused, unknown)
			}
			received(seen + 1)

			f.sms.FailNext(1, http.StatusServiceUnavailable) // retried after >= 250ms
			start := time.Now()
			res := x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("phone", u.Phone)})
			took := time.Since(start)
			expMust(t, res, http.StatusOK, "send with a retry")
			if n := f.sms.Count(u.Phone); n != 0 || took >= 250*time.Millisecond {
				t.Fatalf("%s: the answer waited for the delivery (%s, %d delivered)", event, took, n)
			}
			code := f.deliveredCode(t, "phone", u.Phone) // delivered afterwards
			expMust(t, x.verifyCode(t, "phone", u.Phone, res.Str("verificationId"), code), http.StatusOK, "verify")
		}
		// Registration and the management API answer once delivered, and
		// say so when delivery fails.
		f.settings(t, `{"sign_in_mode":"SignInAndRegister"}`)
		x := f.begin(t, "Register", false)
		phone := expPhone()
		f.sms.FailNext(1, http.StatusBadRequest)
		res := x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("phone", phone)})
		if res.Status != http.StatusBadGateway || res.Str("code") != "connector.send_failed" {
			t.Fatalf("refused registration code: %s", res)
		}
		x.sendCode(t, "phone", phone, "")
		if n := f.sms.Count(phone); n != 1 {
			t.Fatalf("registration code delivered %d times before the answer", n)
		}
	})
}

// expKeys lists a JSON object's keys.
func expKeys(m map[string]any) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

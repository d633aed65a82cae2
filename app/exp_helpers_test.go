package app_test

// Helpers of the Experience API tests (exp_*_test.go): a server with real
// message connectors (an SMTP server and a signed SMS webhook receiver, both
// in the test process) and an interaction driver that carries the
// interaction either in a cookie jar or only in the Latch-Interaction header.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/messaging/mailsink"
	"github.com/latch-dev/latch/experience/messaging/smssink"
)

const expSMSSecret = "exp-test-webhook-secret-0123456789"

// expWait bounds the wait for a delivered message. Delivery is synchronous
// (the send call answers after the connector accepted the message), so this
// is only a safety net.
const expWait = 5 * time.Second

// expFix is a running server with connectors and the /v1 fixture's
// all-purpose client (auth:execute, users:*, management).
type expFix struct {
	*v1Fix
	mail *mailsink.Sink
	sms  *smssink.Sink
}

// expStart starts a server whose email and SMS connectors reach sinks in
// this process.
func expStart(t *testing.T, b apptest.Backend, opts ...apptest.Option) *expFix {
	t.Helper()
	mail := mailsink.Start(t)
	sms := smssink.Start(t, expSMSSecret)
	opts = append([]apptest.Option{
		apptest.With("LATCH_SMTP_URL", mail.URL()),
		apptest.With("LATCH_SMTP_FROM", "latch@example.com"),
		apptest.With("LATCH_SMS_WEBHOOK_URL", sms.URL()),
		apptest.With("LATCH_SMS_WEBHOOK_SECRET", expSMSSecret),
	}, opts...)
	return &expFix{v1Fix: v1Start(t, b, opts...), mail: mail, sms: sms}
}

// expStartBare starts a server without any message connector.
func expStartBare(t *testing.T, b apptest.Backend) *expFix {
	t.Helper()
	return &expFix{v1Fix: v1Start(t, b)}
}

var expSeq atomic.Int64

// expEmail returns a fresh email address.
func expEmail(prefix string) string {
	return fmt.Sprintf("%s%d.%s@example.com", prefix, expSeq.Add(1), strings.ToLower(credentials.RandomID(6)))
}

// expPhone returns a fresh E.164 phone number (unique within a test run).
func expPhone() string {
	return fmt.Sprintf("+1415555%04d", expSeq.Add(1)%10000)
}

// expUser creates a user with username, email, phone and password.
type expUser struct {
	ID, Username, Email, Phone, Password string
}

func (f *expFix) user(t testing.TB) expUser {
	t.Helper()
	u := expUser{Username: v1Name("exp"), Email: expEmail("user"), Phone: expPhone(), Password: v1Password()}
	u.ID = f.createUser(t, map[string]any{"username": u.Username, "email": u.Email, "phone_number": u.Phone,
		"credentials": map[string]any{"password": u.Password}})
	return u
}

// settings patches the sign-in experience settings.
func (f *expFix) settings(t testing.TB, patch string) { f.patchSettings(t, patch) }

// expTx is one interaction driven over HTTP, with the handle either in a
// cookie jar (cookie mode) or only in the Latch-Interaction header.
type expTx struct {
	f      *expFix
	tok    string
	hc     *http.Client
	cookie bool
	handle string
	// bearerAlways sends tok on every call, not only on init.
	bearerAlways bool
}

// begin runs PUT /api/experience for event with the fixture's client.
func (f *expFix) begin(t testing.TB, event string, cookie bool) *expTx {
	t.Helper()
	return f.beginAs(t, f.tok, event, cookie)
}

// beginAs starts an interaction with a given ClientAccessToken.
func (f *expFix) beginAs(t testing.TB, tok, event string, cookie bool) *expTx {
	t.Helper()
	x := &expTx{f: f, tok: tok, hc: f.HTTP, cookie: cookie}
	if cookie {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		x.hc = &http.Client{Transport: f.HTTP.Transport, Jar: jar}
	}
	res := x.call(t, http.MethodPut, "/api/experience", map[string]any{"interactionEvent": event})
	if res.Status != http.StatusNoContent {
		t.Fatalf("init %s: %s", event, res)
	}
	x.handle = res.Header.Get("Latch-Interaction")
	if !strings.HasPrefix(x.handle, "lxi_") {
		t.Fatalf("init: Latch-Interaction header %q", x.handle)
	}
	var ck *http.Cookie
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == "latch_interaction" {
			ck = c
		}
	}
	if ck == nil || ck.Value != x.handle || ck.Path != "/api/experience" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("init: cookie %+v, want latch_interaction=<handle>; Path=/api/experience; HttpOnly; SameSite=Lax", ck)
	}
	if cookie && x.jarHandle(t) != x.handle {
		t.Fatalf("init: the cookie jar does not hold the interaction for /api/experience/...")
	}
	return x
}

// jarHandle is the interaction cookie the jar would send to the Experience
// API ("" if none).
func (x *expTx) jarHandle(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(x.f.URL + "/api/experience/submit")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range x.hc.Jar.Cookies(u) {
		if c.Name == "latch_interaction" {
			return c.Value
		}
	}
	return ""
}

// request builds a request of this interaction.
func (x *expTx) request(method, path string, body any) (*http.Request, error) {
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return nil, err
		}
	}
	var rd *strings.Reader
	if raw != nil {
		rd = strings.NewReader(string(raw))
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequest(method, x.f.URL+path, rd)
	} else {
		req, err = http.NewRequest(method, x.f.URL+path, nil)
	}
	if err != nil {
		return nil, err
	}
	// As a sign-in page does: JSON on every state-changing call (the cookie
	// alone authorises only those), and the ClientAccessToken only to start
	// an interaction (seed 004: no authorization on the later calls).
	if raw != nil || (method != http.MethodGet && method != http.MethodHead) {
		req.Header.Set("Content-Type", "application/json")
	}
	if x.tok != "" && (x.bearerAlways || (method == http.MethodPut && path == "/api/experience")) {
		req.Header.Set("Authorization", "Bearer "+x.tok)
	}
	if !x.cookie && x.handle != "" {
		req.Header.Set("Latch-Interaction", x.handle)
	}
	return req, nil
}

// send is a goroutine-safe call (it never touches a testing.T).
func (x *expTx) send(method, path string, body any) (*apptest.Response, error) {
	req, err := x.request(method, path, body)
	if err != nil {
		return nil, err
	}
	return v1Do(x.hc, req)
}

// call is send for the test goroutine.
func (x *expTx) call(t testing.TB, method, path string, body any) *apptest.Response {
	t.Helper()
	res, err := x.send(method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// post is call with POST.
func (x *expTx) post(t testing.TB, path string, body any) *apptest.Response {
	t.Helper()
	return x.call(t, http.MethodPost, "/api/experience"+path, body)
}

// must requires a status.
func expMust(t testing.TB, res *apptest.Response, status int, what string) *apptest.Response {
	t.Helper()
	if res.Status != status {
		t.Fatalf("%s: got %s, want %d", what, res, status)
	}
	return res
}

// wantAPI checks an error of the /api dialect: {code, message, data?}.
func expWantAPI(t testing.TB, res *apptest.Response, status int, code string) {
	t.Helper()
	if res.Status != status || res.Str("code") != code {
		t.Fatalf("got %s, want %d %s", res, status, code)
	}
	if res.Str("message") == "" {
		t.Fatalf("error without message: %s", res)
	}
	if _, ok := res.JSON["error_code"]; ok {
		t.Fatalf("/api error in the /v1 dialect: %s", res)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("error is not JSON: %q", res.Header.Get("Content-Type"))
	}
}

// ident is an identifier body.
func expIdent(typ, value string) map[string]any { return map[string]any{"type": typ, "value": value} }

// passwordRecord creates a Password verification record.
func (x *expTx) passwordRecord(t testing.TB, typ, value, password string) string {
	t.Helper()
	res := expMust(t, x.post(t, "/verification/password", map[string]any{"identifier": expIdent(typ, value), "password": password}),
		http.StatusOK, "password verification")
	return expVID(t, res)
}

func expVID(t testing.TB, res *apptest.Response) string {
	t.Helper()
	id := res.Str("verificationId")
	if id == "" {
		t.Fatalf("no verificationId: %s", res)
	}
	return id
}

// sendCode creates a code record for an email or phone.
func (x *expTx) sendCode(t testing.TB, typ, value, event string) string {
	t.Helper()
	body := map[string]any{"identifier": expIdent(typ, value)}
	if event != "" {
		body["interactionEvent"] = event
	}
	return expVID(t, expMust(t, x.post(t, "/verification/verification-code", body), http.StatusOK, "send code"))
}

// verifyCode verifies a code record.
func (x *expTx) verifyCode(t testing.TB, typ, value, id, code string) *apptest.Response {
	t.Helper()
	return x.post(t, "/verification/verification-code/verify",
		map[string]any{"identifier": expIdent(typ, value), "verificationId": id, "code": code})
}

// deliveredCode reads the next code delivered to an email address or phone.
func (f *expFix) deliveredCode(t testing.TB, typ, to string) string {
	t.Helper()
	var code string
	if typ == "phone" {
		code = f.sms.WaitFor(t, to, expWait).Code
	} else {
		code = f.mail.WaitFor(t, to, expWait).Code
	}
	if len(code) != 6 {
		t.Fatalf("delivered code %q is not 6 digits", code)
	}
	return code
}

// provenCode sends a code, reads it from the sink and verifies it.
func (x *expTx) provenCode(t testing.TB, typ, value, event string) string {
	t.Helper()
	id := x.sendCode(t, typ, value, event)
	code := x.f.deliveredCode(t, typ, value)
	res := expMust(t, x.verifyCode(t, typ, value, id, code), http.StatusOK, "verify code")
	if got := res.Str("verificationId"); got != id {
		t.Fatalf("verify answered verificationId %q, want %q", got, id)
	}
	return id
}

// identify calls POST /identification (no body when id is "").
func (x *expTx) identify(t testing.TB, id string) *apptest.Response {
	t.Helper()
	if id == "" {
		return x.post(t, "/identification", nil)
	}
	return x.post(t, "/identification", map[string]any{"verificationId": id})
}

// view is GET /api/experience/interaction.
func (x *expTx) view(t testing.TB) *apptest.Response {
	t.Helper()
	return x.call(t, http.MethodGet, "/api/experience/interaction", nil)
}

// records returns the verification records of the interaction view.
func (x *expTx) records(t testing.TB) []map[string]any {
	t.Helper()
	res := expMust(t, x.view(t), http.StatusOK, "interaction view")
	list, ok := res.JSON["verificationRecords"].([]any)
	if !ok {
		t.Fatalf("view without verificationRecords: %s", res)
	}
	out := make([]map[string]any, 0, len(list))
	for _, r := range list {
		out = append(out, r.(map[string]any))
	}
	return out
}

// submitTokens submits a SignIn/Register and checks the token response;
// it returns the claims of the ID token.
func (x *expTx) submitTokens(t testing.TB) map[string]any {
	t.Helper()
	res := expMust(t, x.post(t, "/submit", nil), http.StatusOK, "submit")
	for _, k := range []string{"access_token", "id_token", "refresh_token", "session_id"} {
		if res.Str(k) == "" {
			t.Fatalf("submit: no %s: %s", k, res)
		}
	}
	if res.Str("token_type") != "Bearer" {
		t.Fatalf("submit: token_type: %s", res)
	}
	claims := expJWT(t, res.Str("id_token"))
	if claims["sid"] != res.Str("session_id") {
		t.Fatalf("id token sid %v, session_id %s", claims["sid"], res.Str("session_id"))
	}
	return claims
}

// jwtPayload decodes a JWT's claims without verifying it (other tests
// verify Latch's signatures; here only the subject matters).
func expJWT(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return m
}

// expSignIn signs in through the Experience API with a password and
// returns the user id of the tokens.
func (f *expFix) expSignIn(t testing.TB, typ, value, password string) string {
	t.Helper()
	x := f.begin(t, "SignIn", false)
	expMust(t, x.identify(t, x.passwordRecord(t, typ, value, password)), http.StatusNoContent, "identify")
	sub, _ := x.submitTokens(t)["sub"].(string)
	return sub
}

// expire moves an interaction's expiry into the past.
func (f *expFix) expire(t testing.TB, handle string) {
	t.Helper()
	res := f.Services.DB.WithContext(context.Background()).
		Exec("UPDATE interactions SET expires_at = ? WHERE id = ?", time.Now().Add(-time.Minute).UTC(), credentials.Digest(handle))
	if res.Error != nil || res.RowsAffected != 1 {
		t.Fatalf("expire interaction: %v (%d rows)", res.Error, res.RowsAffected)
	}
}

// users counts the users table.
func (f *expFix) users(t testing.TB) int64 { return f.count(t, "SELECT COUNT(*) FROM users") }

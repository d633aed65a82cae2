package app_test

// Helpers of the MFA tests (mfa_*_test.go, issue 5): a server with message
// connectors and a WebAuthn relying party, TOTP codes computed the way an
// authenticator app computes them (pquerna/otp), enrolment through the
// Experience API, and the /v1 completion calls.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// The WebAuthn relying party of the MFA servers; the software
// authenticator reports the same id and origin.
const (
	mfaRPID   = "localhost"
	mfaOrigin = "https://localhost"
)

// mfaStart starts a server with email and SMS connectors (sinks in this
// process) and a WebAuthn relying party.
func mfaStart(t *testing.T, b apptest.Backend, opts ...apptest.Option) *expFix {
	t.Helper()
	return expStart(t, b, append([]apptest.Option{
		apptest.With("LATCH_WEBAUTHN_RP_ID", mfaRPID),
		apptest.With("LATCH_WEBAUTHN_ORIGINS", mfaOrigin),
	}, opts...)...)
}

// totpAt is the code an authenticator app shows for secret at time at.
func totpAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatalf("totp.GenerateCode: %v", err)
	}
	return code
}

// totpNow is the current code; totpNext the code of the next 30 s step
// (accepted now thanks to the ±1 step window, and later than a step an
// enrolment just used).
func totpNow(t testing.TB, secret string) string { return totpAt(t, secret, time.Now()) }
func totpNext(t testing.TB, secret string) string {
	return totpAt(t, secret, time.Now().Add(30*time.Second))
}

// totpWrong returns a six-digit code that no step anywhere near now
// accepts.
func totpWrong(t testing.TB, secret string) string {
	t.Helper()
	valid := map[string]bool{}
	for d := -4; d <= 4; d++ {
		valid[totpAt(t, secret, time.Now().Add(time.Duration(d)*30*time.Second))] = true
	}
	for {
		c := fmt.Sprintf("%06d", mrand.IntN(1_000_000))
		if !valid[c] {
			return c
		}
	}
}

// signInTx starts a SignIn interaction and identifies u by password.
func (f *expFix) signInTx(t testing.TB, u expUser) *expTx {
	t.Helper()
	x := f.begin(t, "SignIn", false)
	expMust(t, x.identify(t, x.passwordRecord(t, "username", u.Username, u.Password)), http.StatusNoContent, "identification")
	return x
}

// registerTx starts a Register interaction and creates a new username +
// password account (identified, not yet submitted).
func (f *expFix) registerTx(t testing.TB) (*expTx, expUser) {
	t.Helper()
	x := f.begin(t, "Register", false)
	u := expUser{Username: v1Name("reg"), Password: v1Password()}
	id := expVID(t, expMust(t, x.post(t, "/verification/new-password-identity",
		map[string]any{"identifier": expIdent("username", u.Username), "password": u.Password}), http.StatusOK, "new-password-identity"))
	expMust(t, x.identify(t, id), http.StatusCreated, "identification")
	return x, u
}

// newTOTPSecret creates a TOTP secret record and checks the response shape
// (seed 004: verificationId, secret, secretQrCode as a PNG data URL).
func (x *expTx) newTOTPSecret(t testing.TB) (id, secret string) {
	t.Helper()
	res := expMust(t, x.post(t, "/verification/totp/secret", nil), http.StatusOK, "totp secret")
	id, secret = expVID(t, res), res.Str("secret")
	if len(secret) != 32 || strings.ToUpper(secret) != secret {
		t.Fatalf("secret %q is not 20 bytes of base32", secret)
	}
	const prefix = "data:image/png;base64,"
	qr := res.Str("secretQrCode")
	if !strings.HasPrefix(qr, prefix) {
		t.Fatalf("secretQrCode is not a PNG data URL: %.40q", qr)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(qr, prefix))
	if err != nil {
		t.Fatalf("secretQrCode base64: %v", err)
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(raw)); err != nil || cfg.Width < 100 || cfg.Width != cfg.Height {
		t.Fatalf("secretQrCode is not a square PNG: %v %+v", err, cfg)
	}
	return id, secret
}

// newTOTP creates a TOTP secret and verifies it with the current code.
func (x *expTx) newTOTP(t testing.TB) (id, secret string) {
	t.Helper()
	id, secret = x.newTOTPSecret(t)
	res := expMust(t, x.post(t, "/verification/totp/verify", map[string]any{"verificationId": id, "code": totpNow(t, secret)}),
		http.StatusOK, "totp verify")
	if res.Str("verificationId") != id {
		t.Fatalf("totp verify answered %s, want verificationId %s", res, id)
	}
	return id, secret
}

// bind is POST /profile/mfa.
func (x *expTx) bind(t testing.TB, typ, id string) *apptest.Response {
	t.Helper()
	return x.post(t, "/profile/mfa", map[string]any{"type": typ, "verificationId": id})
}

// generateBackupCodes creates a backup-code record and checks the codes.
func (x *expTx) generateBackupCodes(t testing.TB) (id string, codes []string) {
	t.Helper()
	res := expMust(t, x.post(t, "/verification/backup-code/generate", nil), http.StatusOK, "backup-code generate")
	id = expVID(t, res)
	list, _ := res.JSON["codes"].([]any)
	seen := map[string]bool{}
	for _, c := range list {
		s, _ := c.(string)
		if len(s) != 10 || strings.Trim(s, "0123456789abcdef") != "" || seen[s] {
			t.Fatalf("backup code %q is not 10 distinct lowercase hex characters", s)
		}
		seen[s] = true
		codes = append(codes, s)
	}
	if len(codes) != 10 {
		t.Fatalf("%d backup codes, want 10: %s", len(codes), res)
	}
	return id, codes
}

// enrol binds a TOTP authenticator to u through the Experience API (and,
// with backup, a set of backup codes in the same interaction) and submits.
// The enrolment uses the TOTP step of now.
func (f *expFix) enrol(t testing.TB, u expUser, backup bool) (secret string, codes []string) {
	t.Helper()
	x := f.signInTx(t, u)
	id, secret := x.newTOTP(t)
	expMust(t, x.bind(t, "Totp", id), http.StatusNoContent, "bind totp")
	if backup {
		var bid string
		bid, codes = x.generateBackupCodes(t)
		expMust(t, x.bind(t, "BackupCode", bid), http.StatusNoContent, "bind backup codes")
	}
	claims := x.submitTokens(t)
	wantAMR(t, claims["amr"], "mfa", "pwd", "totp")
	return secret, codes
}

// wantAMR checks an amr claim (from a decoded JWT or idTokenClaims) holds
// exactly want.
func wantAMR(t testing.TB, amr any, want ...string) {
	t.Helper()
	var got []string
	switch v := amr.(type) {
	case []string:
		got = append(got, v...)
	case []any:
		for _, m := range v {
			s, _ := m.(string)
			got = append(got, s)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("amr %v, want %v", got, want)
	}
}

// pending signs u in with the password and requires mfa_required; it
// returns the pending session id and the response.
func (f *expFix) pending(t testing.TB, u expUser) (string, *apptest.Response) {
	t.Helper()
	res := f.authenticate(t, u.Username, u.Password, nil)
	wantError(t, res, http.StatusForbidden, "mfa_required")
	sid := res.Str("session_id")
	if sid == "" || res.Str("access_token") != "" || res.Str("id_token") != "" {
		t.Fatalf("mfa_required: %s", res)
	}
	return sid, res
}

// mfaFactors returns the mfa_factors of an mfa_required response, sorted.
func mfaFactors(res *apptest.Response) []string {
	var out []string
	list, _ := res.JSON["mfa_factors"].([]any)
	for _, f := range list {
		s, _ := f.(string)
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// v1MFA posts to /v1/auth/<route> with the fixture's client.
func (f *expFix) v1MFA(t testing.TB, route string, body map[string]any) *apptest.Response {
	t.Helper()
	return f.call(t, http.MethodPost, "/v1/auth/"+route, f.tok, body)
}

// wantTokens requires a token response for session sid and returns the
// claims of its ID token, verified with go-oidc against the discovery
// document and the client's id.
func (f *expFix) wantTokens(t *testing.T, res *apptest.Response, clientID, sid string) idTokenClaims {
	t.Helper()
	if res.Status != http.StatusOK {
		t.Fatalf("want tokens, got %s", res)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token"} {
		if res.Str(k) == "" {
			t.Fatalf("no %s: %s", k, res)
		}
	}
	if sid != "" && res.Str("session_id") != sid {
		t.Fatalf("session_id %q, want %q", res.Str("session_id"), sid)
	}
	c := verifyIDToken(t, f.Env, clientID, res.Str("id_token"))
	if c.Sid != res.Str("session_id") {
		t.Fatalf("ID token sid %q, session_id %q", c.Sid, res.Str("session_id"))
	}
	return c
}

// noMFAClient creates a client that does not enforce MFA (EnforceMFA
// false, like `latch client create --enforce-mfa=false`) and returns it and
// a ClientAccessToken.
func (f *expFix) noMFAClient(t testing.TB) (apptest.Client, string) {
	t.Helper()
	return f.appClient(t, false, false)
}

// appClient creates an auth:execute client that enforces MFA or not and
// takes part in cross-application SSO or not, and returns its token.
func (f *expFix) appClient(t testing.TB, enforceMFA, sso bool) (apptest.Client, string) {
	t.Helper()
	c, secret, err := f.Services.Tokens.Clients.Create(context.Background(), token.NewClient{
		Name: "app", Scopes: []string{token.ScopeAuthExecute}, EnforceMFA: &enforceMFA, SSO: sso})
	if err != nil {
		t.Fatal(err)
	}
	if c.EnforceMFA != enforceMFA || c.SSO != sso {
		t.Fatalf("client created with EnforceMFA %v SSO %v is %v %v", enforceMFA, sso, c.EnforceMFA, c.SSO)
	}
	client := apptest.Client{ID: c.ID, Secret: secret}
	return client, f.ClientToken(client)
}

// dataOf returns the data object of an /api error.
func dataOf(t testing.TB, res *apptest.Response) map[string]any {
	t.Helper()
	d, _ := res.JSON["data"].(map[string]any)
	if d == nil {
		t.Fatalf("error without data: %s", res)
	}
	return d
}

// strs turns a JSON array into strings.
func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// rawJSON re-encodes a decoded JSON value (options for the authenticator).
func rawJSON(t testing.TB, v any) []byte {
	t.Helper()
	if v == nil {
		t.Fatal("missing JSON value")
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// codesEnrolled enrols u's e-mail and phone as second factors (email_code,
// phone_code) through the Experience API: a code to each address, verified
// and bound. A user without factors may enrol straight away.
func (f *expFix) codesEnrolled(t testing.TB, u expUser) {
	t.Helper()
	x := f.signInTx(t, u)
	x.bindCodes(t, u)
	x.submitTokens(t)
}

// totpAndCodesEnrolled enrols a TOTP authenticator and then, in the same
// interaction (the new TOTP proves MFA), u's e-mail and phone as code
// factors. It returns the TOTP secret.
func (f *expFix) totpAndCodesEnrolled(t testing.TB, u expUser) string {
	t.Helper()
	x := f.signInTx(t, u)
	id, secret := x.newTOTP(t)
	expMust(t, x.bind(t, "Totp", id), http.StatusNoContent, "bind totp")
	x.bindCodes(t, u)
	x.submitTokens(t)
	return secret
}

// bindCodes proves and binds u's e-mail and phone as code factors.
func (x *expTx) bindCodes(t testing.TB, u expUser) {
	t.Helper()
	for _, ch := range []struct{ typ, to, bind string }{{"email", u.Email, "EmailVerificationCode"}, {"phone", u.Phone, "PhoneVerificationCode"}} {
		id := expVID(t, expMust(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": ch.typ}),
			http.StatusOK, "send "+ch.typ+" code"))
		code := x.f.deliveredCode(t, ch.typ, ch.to)
		expMust(t, x.post(t, "/verification/mfa-verification-code/verify",
			map[string]any{"verificationId": id, "code": code, "identifierType": ch.typ}), http.StatusOK, "verify "+ch.typ+" code")
		expMust(t, x.bind(t, ch.bind, id), http.StatusNoContent, "bind "+ch.bind)
	}
}

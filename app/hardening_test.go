package app_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
)

// With registration closed, no code goes out "for Register", whatever the
// interaction: otherwise the send route is a way to mail arbitrary inboxes.
func TestNoRegisterCodesWhileRegistrationIsClosed(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		f.settings(t, `{"sign_in_mode":"SignIn"}`)
		x := f.begin(t, "SignIn", false)
		to := expEmail("stranger")
		res := x.post(t, "/verification/verification-code", map[string]any{"identifier": expIdent("email", to), "interactionEvent": "Register"})
		expWantAPI(t, res, http.StatusForbidden, "user.sign_in_method_not_enabled")
		if n := f.mail.Count(to); n != 0 {
			t.Fatalf("%d messages sent for a closed registration", n)
		}
	})
}

// Two interactions regenerating backup codes at once leave one set, never
// two (a unique index per user; the loser is told to retry).
func TestConcurrentBackupRegenerationKeepsOneSet(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := mfaStart(t, b)
		u := f.user(t)
		f.codesEnrolled(t, u)
		var binds []func() *apptest.Response
		for i := 0; i < 4; i++ {
			x := f.signInTx(t, u)
			id := expVID(t, expMust(t, x.post(t, "/verification/mfa-verification-code", map[string]any{"identifierType": "email"}),
				http.StatusOK, "send"))
			code := f.deliveredCode(t, "email", u.Email)
			expMust(t, x.post(t, "/verification/mfa-verification-code/verify",
				map[string]any{"verificationId": id, "code": code, "identifierType": "email"}), http.StatusOK, "verify")
			bid, _ := x.generateBackupCodes(t)
			binds = append(binds, func() *apptest.Response { return x.bind(t, "BackupCode", bid) })
		}
		var wg sync.WaitGroup
		results := make([]*apptest.Response, len(binds))
		for i, bind := range binds {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = bind() }()
		}
		wg.Wait()
		for _, res := range results {
			if res.Status != http.StatusNoContent && res.Status != http.StatusConflict {
				t.Fatalf("concurrent bind: %s", res)
			}
		}
		list := f.call(t, http.MethodGet, "/v1/users/"+u.ID+"/mfa-factors", f.tok, nil)
		sets := 0
		factors, _ := list.JSON["factors"].([]any)
		for _, fa := range factors {
			if fa.(map[string]any)["type"] == "backup_code" {
				sets++
			}
		}
		if sets != 1 {
			t.Fatalf("%d backup-code sets after concurrent regeneration: %s", sets, list)
		}
	})
}

// Silent re-authentication extends a session's sliding expiry, but writes
// it at most once a minute: a stale session is extended, a fresh one is
// left alone.
func TestSessionReauthenticationExtendsStaleSessions(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		_, username, password := f.newUser(t)
		sid := f.signIn(t, username, password).Str("session_id")
		expiry := func() time.Time {
			var at time.Time
			if err := f.Services.DB.Raw("SELECT expires_at FROM sessions WHERE id = ?", sid).Row().Scan(&at); err != nil {
				t.Fatal(err)
			}
			return at.UTC()
		}
		reauth := func() {
			if res := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid}); res.Status != http.StatusOK {
				t.Fatalf("session/authenticate: %s", res)
			}
		}
		fresh := expiry()
		reauth()
		if got := expiry(); !got.Equal(fresh) {
			t.Fatalf("a fresh session was rewritten: %v -> %v", fresh, got)
		}
		old := time.Now().UTC().Add(-2 * time.Minute)
		if err := f.Services.DB.Exec("UPDATE sessions SET updated_at = ?, expires_at = ? WHERE id = ?", old, old.Add(time.Hour), sid).Error; err != nil {
			t.Fatal(err)
		}
		reauth()
		if got := expiry(); !got.After(old.Add(time.Hour)) {
			t.Fatalf("a stale session was not extended: expires %v", got)
		}
	})
}

// A refresh token is only ever presented by its own client, so only that
// client may introspect it: to others it is inactive and reveals nothing.
func TestIntrospectingAnotherClientsRefreshTokenRevealsNothing(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		_, username, password := f.newUser(t)
		rt := f.signIn(t, username, password).Str("refresh_token")
		if own := f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {rt}}); own.JSON["active"] != true {
			t.Fatalf("own refresh token: %s", own)
		}
		other := f.CreateClient("auth:execute")
		res := f.form(t, "/oidc/token/introspection", other, url.Values{"token": {rt}})
		if res.Status != http.StatusOK || res.JSON["active"] != false || len(res.JSON) != 1 {
			t.Fatalf("another client's refresh token: %s", res)
		}
	})
}

// The identification body is optional, also when it arrives chunked and
// empty (no Content-Length).
func TestIdentificationAcceptsAnEmptyChunkedBody(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := expStart(t, b)
		x := f.begin(t, "Register", false)
		req, err := x.request(http.MethodPost, "/api/experience/identification", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader("")), -1
		res := f.Do(req)
		// No profile yet: the documented 422, not a 400 about the body.
		expWantAPI(t, res, http.StatusUnprocessableEntity, "user.missing_profile")
	})
}

package app_test

import (
	"net/http"
	"sync"
	"testing"

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
		f.totpEnrolled(t, u)
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

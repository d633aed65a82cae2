package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// Issue 5: backup codes are generated and bound after another factor (never
// alone), complete a pending /v1 session or an Experience sign-in once each,
// and of concurrent uses of one code exactly one wins.
func TestMFABackupCodes(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := mfaStart(t, b)

		t.Run("complete a pending session, once", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			_, codes := f.enrol(t, u, true)
			if n := f.count(t, "SELECT COUNT(*) FROM backup_codes WHERE user_id = ? AND used_at IS NULL", u.ID); n != 10 {
				t.Fatalf("%d unused backup codes stored, want 10", n)
			}
			for _, c := range codes {
				if f.count(t, "SELECT COUNT(*) FROM backup_codes WHERE digest = ? OR digest LIKE ?", c, "%"+c+"%") != 0 {
					t.Fatal("a backup code is stored in clear")
				}
			}

			sid, _ := f.pending(t, u)
			c := f.wantTokens(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": sid, "code": codes[0]}), f.client.ID, sid)
			wantAMR(t, c.AMR, "backup_code", "mfa", "pwd")
			if c.Sub != u.ID {
				t.Fatalf("sub %q, want %q", c.Sub, u.ID)
			}
			// The code is spent.
			sid2, _ := f.pending(t, u)
			wantError(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": sid2, "code": codes[0]}),
				http.StatusUnauthorized, "invalid_code")
			if n := f.count(t, "SELECT COUNT(*) FROM backup_codes WHERE user_id = ? AND used_at IS NOT NULL", u.ID); n != 1 {
				t.Fatalf("%d backup codes used, want 1", n)
			}
			// Typed in groups and upper case, a code still counts.
			typed := strings.ToUpper(codes[1][:5] + "-" + codes[1][5:])
			c = f.wantTokens(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": sid2, "code": typed}), f.client.ID, sid2)
			wantAMR(t, c.AMR, "backup_code", "mfa", "pwd")
			// Malformed and unknown codes, and the wrong field name.
			sid3, _ := f.pending(t, u)
			wantError(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": sid3, "code": "not-a-code"}),
				http.StatusUnauthorized, "invalid_code")
			wantDetail(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": sid3, "passcode": codes[2]}), "")
			wantError(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": "nope", "code": codes[2]}),
				http.StatusBadRequest, "session_not_found")
		})

		t.Run("a backup code cannot be the only factor", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			x := f.signInTx(t, u)
			id, codes := x.generateBackupCodes(t)
			expWantAPI(t, x.bind(t, "BackupCode", id), http.StatusUnprocessableEntity, "session.mfa.backup_code_can_not_be_alone")
			// Nothing was bound: the password alone signs in, and the
			// generated codes are worth nothing.
			x.submitTokens(t)
			if n := f.count(t, "SELECT COUNT(*) FROM backup_codes WHERE user_id = ?", u.ID); n != 0 {
				t.Fatalf("%d backup codes stored for a refused binding", n)
			}
			res := f.signIn(t, u.Username, u.Password)
			wantError(t, f.v1MFA(t, "backup-code/authenticate", map[string]any{"session_id": res.Str("session_id"), "code": codes[0]}),
				http.StatusUnauthorized, "invalid_code")
		})

		t.Run("experience sign-in and regeneration", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			_, codes := f.enrol(t, u, true)

			x := f.signInTx(t, u)
			res := x.post(t, "/submit", nil)
			expWantAPI(t, res, http.StatusForbidden, "session.mfa.require_mfa_verification")
			if got := strs(dataOf(t, res)["availableFactors"]); len(got) != 2 {
				t.Fatalf("availableFactors %v, want totp and backup_code", got)
			}
			// Not identified yet: 404.
			y := f.begin(t, "SignIn", false)
			expWantAPI(t, y.post(t, "/verification/backup-code/verify", map[string]any{"code": codes[0]}),
				http.StatusNotFound, "session.identifier_not_found")
			expWantAPI(t, y.post(t, "/verification/backup-code/generate", nil), http.StatusNotFound, "session.identifier_not_found")
			// A wrong code: 400.
			bad := x.post(t, "/verification/backup-code/verify", map[string]any{"code": "0000000000"})
			expWantAPI(t, bad, http.StatusBadRequest, "session.mfa.invalid_backup_code")
			vid := expVID(t, expMust(t, x.post(t, "/verification/backup-code/verify", map[string]any{"code": codes[0]}), http.StatusOK, "backup-code verify"))
			// A verification by backup code is not a new set to bind.
			expWantAPI(t, x.bind(t, "BackupCode", vid), http.StatusBadRequest, "session.mfa.pending_info_not_found")
			// Verified, the user may replace the set; the old codes die.
			gid, fresh := x.generateBackupCodes(t)
			expMust(t, x.bind(t, "BackupCode", gid), http.StatusNoContent, "bind new backup codes")
			wantAMR(t, x.submitTokens(t)["amr"], "backup_code", "mfa", "pwd")

			z := f.signInTx(t, u)
			expWantAPI(t, z.post(t, "/verification/backup-code/verify", map[string]any{"code": codes[0]}),
				http.StatusBadRequest, "session.mfa.invalid_backup_code")
			expWantAPI(t, z.post(t, "/verification/backup-code/verify", map[string]any{"code": codes[1]}),
				http.StatusBadRequest, "session.mfa.invalid_backup_code")
			expMust(t, z.post(t, "/verification/backup-code/verify", map[string]any{"code": fresh[0]}), http.StatusOK, "new backup code")
			z.submitTokens(t)
			if n := f.count(t, "SELECT COUNT(*) FROM backup_codes WHERE user_id = ?", u.ID); n != 10 {
				t.Fatalf("%d backup codes stored after regeneration, want 10", n)
			}
		})

		t.Run("10 parallel uses of one code, one wins", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			_, codes := f.enrol(t, u, true)
			const n = 10
			sids := make([]string, n)
			for i := range sids {
				sids[i], _ = f.pending(t, u)
			}
			res := expParallel(t, n, func(i int) (*apptest.Response, error) {
				return f.send(http.MethodPost, "/v1/auth/backup-code/authenticate", f.tok, map[string]any{"session_id": sids[i], "code": codes[0]})
			})
			tally := map[string]int{}
			won := -1
			for i, r := range res {
				tally[r.Str("error_code")]++
				switch {
				case r.Status == http.StatusOK:
					won = i
				case r.Status == http.StatusUnauthorized && r.Str("error_code") == "invalid_code":
				case r.Status == http.StatusForbidden && r.Str("error_code") == "auth_locked":
				default:
					t.Fatalf("unexpected answer: %s", r)
				}
			}
			if tally[""] != 1 {
				t.Fatalf("%d successes for one backup code (tally %v), want exactly 1", tally[""], tally)
			}
			c := f.wantTokens(t, res[won], f.client.ID, sids[won])
			wantAMR(t, c.AMR, "backup_code", "mfa", "pwd")
			if k := f.count(t, "SELECT COUNT(*) FROM backup_codes WHERE user_id = ? AND used_at IS NOT NULL", u.ID); k != 1 {
				t.Fatalf("%d backup codes used, want 1", k)
			}
			// Only the winner's session was completed.
			for i, sid := range sids {
				r := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid})
				if (i == won) != (r.Status == http.StatusOK) {
					t.Fatalf("session %d (winner %d): %s", i, won, r)
				}
			}
		})
	})
}

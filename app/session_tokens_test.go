package app_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

// Introspection says what /oidc/me says: a user's tokens (access and
// refresh) are inactive once their session has ended, however it ended.
func TestIntrospectionFollowsTheSession(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		ends := []struct {
			name string
			end  func(t *testing.T, userID string, signIn *apptest.Response)
		}{
			{"logout", func(t *testing.T, _ string, s *apptest.Response) {
				if res := f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": s.Str("session_id")}); res.Status != http.StatusNoContent {
					t.Fatalf("logout: %s", res)
				}
			}},
			{"suspension", func(t *testing.T, id string, _ *apptest.Response) {
				if res := f.call(t, http.MethodPost, "/v1/users/"+id+"/suspend", f.tok, nil); res.Status != http.StatusOK {
					t.Fatalf("suspend: %s", res)
				}
			}},
			{"session deletion", func(t *testing.T, id string, _ *apptest.Response) {
				if res := f.call(t, http.MethodDelete, "/v1/auth/users/"+id+"/sessions", f.tok, nil); res.Status != http.StatusNoContent {
					t.Fatalf("delete sessions: %s", res)
				}
			}},
			{"refresh token reuse", func(t *testing.T, _ string, s *apptest.Response) {
				if res := f.refresh(t, s.Str("refresh_token")); res.Status != http.StatusOK {
					t.Fatalf("refresh: %s", res)
				}
				wantError(t, f.refresh(t, s.Str("refresh_token")), http.StatusBadRequest, "invalid_grant")
			}},
			{"password change", func(t *testing.T, id string, _ *apptest.Response) {
				if res := f.call(t, http.MethodPut, "/v1/users/"+id+"/password", f.tok, map[string]any{"password": v1Password()}); res.Status != http.StatusOK {
					t.Fatalf("replace password: %s", res)
				}
			}},
			{"user deletion", func(t *testing.T, id string, _ *apptest.Response) {
				if res := f.call(t, http.MethodDelete, "/v1/users/"+id, f.tok, nil); res.Status != http.StatusNoContent {
					t.Fatalf("delete user: %s", res)
				}
			}},
		}
		for _, tc := range ends {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				id, username, password := f.newUser(t)
				s := f.signIn(t, username, password)
				access := s.Str("access_token")
				intro := f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {access}})
				if intro.JSON["active"] != true || intro.Str("sid") != s.Str("session_id") {
					t.Fatalf("introspection of a live token: %s", intro)
				}
				tc.end(t, id, s)
				if me := f.call(t, http.MethodGet, "/oidc/me", access, nil); me.Status != http.StatusUnauthorized {
					t.Fatalf("/oidc/me after %s: %s", tc.name, me)
				}
				f.wantInactive(t, access)
				f.wantInactive(t, s.Str("refresh_token"))
			})
		}
	})
}

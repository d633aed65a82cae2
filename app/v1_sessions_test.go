package app_test

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/app/apptest"
)

func (f *v1Fix) refresh(t testing.TB, raw string) *apptest.Response {
	t.Helper()
	return f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{"refresh_token": raw})
}

func (f *v1Fix) sessionAuth(t testing.TB, sid string) *apptest.Response {
	t.Helper()
	return f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid})
}

// wantSessionEnded checks that a session and a refresh token of it are dead.
func (f *v1Fix) wantSessionEnded(t testing.TB, sid string, refreshTokens ...string) {
	t.Helper()
	wantError(t, f.sessionAuth(t, sid), http.StatusBadRequest, "session_not_found")
	for _, r := range refreshTokens {
		wantError(t, f.refresh(t, r), http.StatusBadRequest, "invalid_grant")
	}
}

// Refresh tokens rotate on every use; a replayed one ends the family and the
// session (RFC 9700 §4.14.2), on /v1 and on the standard token endpoint.
func TestV1RefreshRotation(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		// The default configuration: strict reuse detection, no grace for
		// duplicates (the "grace" subtest configures one).
		f := v1Start(t, b)

		t.Run("rotation and replay", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			first := f.signIn(t, username, password)
			sid, r1 := first.Str("session_id"), first.Str("refresh_token")
			res := f.refresh(t, r1)
			if res.Status != http.StatusOK {
				t.Fatalf("refresh: %s", res)
			}
			r2 := res.Str("refresh_token")
			if r2 == "" || r2 == r1 || res.Str("access_token") == "" || res.Str("access_token") == first.Str("access_token") ||
				res.Str("session_id") != sid || res.Str("token_type") != "Bearer" {
				t.Fatalf("rotated response: %s", res)
			}
			if c := verifyIDToken(t, f.Env, f.client.ID, res.Str("id_token")); c.Sub != id || c.Sid != sid {
				t.Fatalf("refreshed ID token sub %q sid %q", c.Sub, c.Sid)
			}
			res = f.refresh(t, r2)
			if res.Status != http.StatusOK {
				t.Fatalf("second refresh: %s", res)
			}
			r3 := res.Str("refresh_token")

			// Replaying r1 (rotated twice already) is theft: all ends.
			wantError(t, f.refresh(t, r1), http.StatusBadRequest, "invalid_grant")
			f.wantSessionEnded(t, sid, r3, r2)
			if n := f.countAudit(t, id, "refresh_token.reuse", ""); n < 1 {
				t.Errorf("no refresh_token.reuse audit event")
			}
			// A new sign-in works.
			f.signIn(t, username, password)
		})

		t.Run("parallel refreshes", func(t *testing.T) {
			t.Parallel()
			_, username, password := f.newUser(t)
			first := f.signIn(t, username, password)
			sid, r1 := first.Str("session_id"), first.Str("refresh_token")
			statuses, newest := parallelRefresh(t, f, r1, 20)
			if statuses[http.StatusOK] != 1 || statuses[http.StatusBadRequest] != 19 {
				t.Fatalf("parallel refreshes: %v, want one 200 and 19 400", statuses)
			}
			// After the race: replaying the rotated token ends everything.
			wantError(t, f.refresh(t, r1), http.StatusBadRequest, "invalid_grant")
			f.wantSessionEnded(t, sid, newest)
		})

		t.Run("grace", func(t *testing.T) {
			t.Parallel()
			const grace = time.Second
			g := v1Start(t, b, apptest.With("LATCH_REFRESH_REUSE_GRACE", grace.String()))
			_, username, password := g.newUser(t)
			first := g.signIn(t, username, password)
			sid, r1 := first.Str("session_id"), first.Str("refresh_token")
			statuses, newest := parallelRefresh(t, g, r1, 20)
			if statuses[http.StatusOK] != 1 || statuses[http.StatusBadRequest] != 19 {
				t.Fatalf("parallel refreshes: %v, want one 200 and 19 400", statuses)
			}
			// A duplicate within the grace is refused but ends nothing.
			wantError(t, g.refresh(t, r1), http.StatusBadRequest, "invalid_grant")
			if res := g.sessionAuth(t, sid); res.Status != http.StatusOK {
				t.Fatalf("session after a duplicate within the grace: %s", res)
			}
			time.Sleep(grace + 100*time.Millisecond)
			wantError(t, g.refresh(t, r1), http.StatusBadRequest, "invalid_grant")
			g.wantSessionEnded(t, sid, newest)
		})

		t.Run("oidc token endpoint", func(t *testing.T) {
			t.Parallel()
			_, username, password := f.newUser(t)
			first := f.signIn(t, username, password)
			sid, r1 := first.Str("session_id"), first.Str("refresh_token")
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, f.HTTP)
			cfg := oauth2.Config{ClientID: f.client.ID, ClientSecret: f.client.Secret,
				Endpoint: oauth2.Endpoint{TokenURL: f.URL + "/oidc/token", AuthStyle: oauth2.AuthStyleInHeader}}
			tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: r1}).Token()
			if err != nil {
				t.Fatalf("refresh_token grant: %v", err)
			}
			if tok.AccessToken == "" || tok.RefreshToken == "" || tok.RefreshToken == r1 {
				t.Fatalf("refreshed token: %+v", tok)
			}
			if idt, _ := tok.Extra("id_token").(string); idt == "" {
				t.Fatal("no id_token")
			} else if c := verifyIDToken(t, f.Env, f.client.ID, idt); c.Sid != sid {
				t.Fatalf("sid %q, want %q", c.Sid, sid)
			}
			// Form post, client_secret_post, with the newest token.
			res := f.form(t, "/oidc/token", apptest.Client{}, url.Values{"grant_type": {"refresh_token"},
				"refresh_token": {tok.RefreshToken}, "client_id": {f.client.ID}, "client_secret": {f.client.Secret}})
			if res.Status != http.StatusOK || res.Str("refresh_token") == "" {
				t.Fatalf("form refresh: %s", res)
			}
			newest := res.Str("refresh_token")
			// Replay of r1 at the token endpoint: the OAuth dialect, then
			// the family and the session are gone.
			res = f.form(t, "/oidc/token", f.client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1}})
			if res.Status != http.StatusBadRequest || res.Str("error") != "invalid_grant" {
				t.Fatalf("replay: %s", res)
			}
			f.wantSessionEnded(t, sid, newest)
			// Another client cannot use someone else's refresh token.
			again := f.signIn(t, username, password)
			other := f.CreateClient("auth:execute")
			res = f.form(t, "/oidc/token", other, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {again.Str("refresh_token")}})
			if res.Status != http.StatusBadRequest || res.Str("error") != "invalid_grant" {
				t.Fatalf("foreign client: %s", res)
			}
			if res := f.refresh(t, again.Str("refresh_token")); res.Status != http.StatusOK {
				t.Fatalf("the owner's refresh after a foreign attempt: %s", res)
			}
		})

		t.Run("bad input", func(t *testing.T) {
			t.Parallel()
			wantDetail(t, f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{}), "refresh_token")
			wantDetail(t, f.call(t, http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{"refresh_token": 5}), "refresh_token")
			wantError(t, f.refresh(t, "no-such-token"), http.StatusBadRequest, "invalid_grant")
			wantDetail(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{}), "session_id")
			wantDetail(t, f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": []int{1}}), "session_id")
			wantError(t, f.sessionAuth(t, "no-such-session"), http.StatusBadRequest, "session_not_found")
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": "no-such-session"}),
				http.StatusBadRequest, "session_not_found")
		})
	})
}

// parallelRefresh presents one refresh token n times at once and counts the
// statuses; it returns the refresh token of the (last) success.
func parallelRefresh(t *testing.T, f *v1Fix, raw string, n int) (map[int]int, string) {
	t.Helper()
	results := make([]*apptest.Response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = f.send(http.MethodPost, "/v1/auth/token/refresh", f.tok, map[string]any{"refresh_token": raw})
		}()
	}
	close(start)
	wg.Wait()
	statuses, newest := map[int]int{}, ""
	for i, res := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		statuses[res.Status]++
		switch {
		case res.Status == http.StatusOK:
			newest = res.Str("refresh_token")
		case res.Str("error_code") != "invalid_grant":
			t.Errorf("refresh: %s", res)
		}
	}
	return statuses, newest
}

// Sessions: silent re-authentication, logout, listing and revoking a
// user's sessions, and the tokens that depend on them.
func TestV1Sessions(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)

		t.Run("session authenticate and logout", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			first := f.signIn(t, username, password)
			sid := first.Str("session_id")
			res := f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok, map[string]any{"session_id": sid,
				"claims": map[string]any{"id_token": map[string]any{"username": nil}}})
			if res.Status != http.StatusOK || res.Str("session_id") != sid || res.Str("refresh_token") == "" {
				t.Fatalf("session authenticate: %s", res)
			}
			c := verifyIDToken(t, f.Env, f.client.ID, res.Str("id_token"))
			if c.Sub != id || c.Sid != sid || c.Username == nil || *c.Username != username {
				t.Fatalf("re-issued ID token: %+v", c)
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/authenticate", f.tok,
				map[string]any{"session_id": sid, "org_id": "org_1"}), http.StatusBadRequest, "org_not_found")

			// Userinfo and introspection while the session lives.
			me := f.call(t, http.MethodGet, "/oidc/me", first.Str("access_token"), nil)
			if me.Status != http.StatusOK || me.Str("sub") != id || me.Str("username") != username {
				t.Fatalf("/oidc/me: %s", me)
			}
			intro := f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {first.Str("access_token")}})
			if intro.JSON["active"] != true || intro.Str("sub") != id || intro.Str("sid") != sid {
				t.Fatalf("introspect access token: %s", intro)
			}
			intro = f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {res.Str("refresh_token")}})
			// RFC 7662 §2.2: token_type is an access token type (Bearer); a
			// refresh token has none.
			if _, typed := intro.JSON["token_type"]; intro.JSON["active"] != true || intro.Str("sub") != id || typed {
				t.Fatalf("introspect refresh token: %s", intro)
			}

			if res := f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": sid}); res.Status != http.StatusNoContent {
				t.Fatalf("logout: %s", res)
			}
			f.wantSessionEnded(t, sid, res.Str("refresh_token"), first.Str("refresh_token"))
			me = f.call(t, http.MethodGet, "/oidc/me", first.Str("access_token"), nil)
			if me.Status != http.StatusUnauthorized || me.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("/oidc/me after logout: %s", me)
			}
			intro = f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {res.Str("refresh_token")}})
			if intro.Status != http.StatusOK || intro.JSON["active"] != false {
				t.Fatalf("introspect refresh token after logout: %s", intro)
			}
			wantError(t, f.call(t, http.MethodPost, "/v1/auth/session/logout", f.tok, map[string]any{"session_id": sid}),
				http.StatusBadRequest, "session_not_found")
		})

		t.Run("userinfo needs a user token", func(t *testing.T) {
			t.Parallel()
			for _, bearer := range []string{"", "garbage", f.tok} {
				res := f.call(t, http.MethodGet, "/oidc/me", bearer, nil)
				if res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("/oidc/me with %q: %s", bearer, res)
				}
			}
		})

		t.Run("list and revoke a user's sessions", func(t *testing.T) {
			t.Parallel()
			id, username, password := f.newUser(t)
			a := f.signIn(t, username, password)
			b := f.signIn(t, username, password)
			if a.Str("session_id") == b.Str("session_id") {
				t.Fatal("two sign-ins share a session")
			}
			list := f.call(t, http.MethodGet, "/v1/auth/users/"+id+"/sessions", f.tok, nil)
			sessions, _ := list.JSON["sessions"].([]any)
			if list.Status != http.StatusOK || len(sessions) != 2 {
				t.Fatalf("sessions: %s", list)
			}
			for _, s := range sessions {
				m := s.(map[string]any)
				if m["user_id"] != id || m["state"] != "active" || m["client_id"] != f.client.ID || m["listing_id"] == "" {
					t.Fatalf("session: %v", m)
				}
				// The caller's own sessions come with their ids.
				if m["session_id"] != a.Str("session_id") && m["session_id"] != b.Str("session_id") {
					t.Fatalf("own session listed without its id: %v", m)
				}
			}
			if res := f.call(t, http.MethodDelete, "/v1/auth/users/"+id+"/sessions", f.tok, nil); res.Status != http.StatusNoContent {
				t.Fatalf("revoke sessions: %s", res)
			}
			list = f.call(t, http.MethodGet, "/v1/auth/users/"+id+"/sessions", f.tok, nil)
			if sessions, _ := list.JSON["sessions"].([]any); list.Status != http.StatusOK || len(sessions) != 0 {
				t.Fatalf("sessions after revoke: %s", list)
			}
			f.wantSessionEnded(t, a.Str("session_id"), a.Str("refresh_token"))
			f.wantSessionEnded(t, b.Str("session_id"), b.Str("refresh_token"))
			wantError(t, f.call(t, http.MethodGet, "/v1/auth/users/no-such-user/sessions", f.tok, nil), http.StatusNotFound, "user_not_found")
			wantError(t, f.call(t, http.MethodDelete, "/v1/auth/users/no-such-user/sessions", f.tok, nil), http.StatusNotFound, "user_not_found")
			// Listing needs users:read, ending all needs users:write.
			noScope := f.CreateClient("auth:execute")
			wantError(t, f.call(t, http.MethodGet, "/v1/auth/users/"+id+"/sessions", f.ClientToken(noScope), nil),
				http.StatusForbidden, "insufficient_scope")
			wantError(t, f.call(t, http.MethodDelete, "/v1/auth/users/"+id+"/sessions", f.ClientToken(f.CreateClient("users:read")), nil),
				http.StatusForbidden, "insufficient_scope")
		})
	})
}

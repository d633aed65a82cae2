package app_test

// An interaction belongs to the client that created it and lives at most
// an hour; bad input on every route is refused with 400 guard.invalid_input
// and stores nothing.

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/latch-dev/latch/credentials"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// expRoutes are calls of every interaction route with a valid body.
func expRoutes(u expUser) []struct {
	method, path string
	body         any
} {
	return []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/api/experience/interaction", nil},
		{http.MethodPut, "/api/experience/interaction-event", map[string]any{"interactionEvent": "Register"}},
		{http.MethodPost, "/api/experience/verification/password", map[string]any{"identifier": expIdent("username", u.Username), "password": u.Password}},
		{http.MethodPost, "/api/experience/verification/verification-code", map[string]any{"identifier": expIdent("email", u.Email)}},
		{http.MethodPost, "/api/experience/verification/verification-code/verify",
			map[string]any{"identifier": expIdent("email", u.Email), "verificationId": "x", "code": "123456"}},
		{http.MethodPost, "/api/experience/verification/new-password-identity", map[string]any{"identifier": expIdent("username", v1Name("n")), "password": v1Password()}},
		{http.MethodPost, "/api/experience/identification", map[string]any{"verificationId": "x"}},
		{http.MethodPost, "/api/experience/profile", map[string]any{"type": "username", "value": v1Name("p")}},
		{http.MethodPut, "/api/experience/profile/password", map[string]any{"password": v1Password()}},
		{http.MethodPost, "/api/experience/submit", nil},
	}
}

func TestExperienceInteractionBinding(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		for _, cookie := range []bool{true, false} {
			name := "header"
			if cookie {
				name = "cookie"
			}
			cookie := cookie
			t.Run("OtherClient/"+name, func(t *testing.T) {
				t.Parallel()
				u := f.user(t)
				a := f.begin(t, "SignIn", cookie)
				rec := a.passwordRecord(t, "username", u.Username, u.Password)
				// Client B, with a perfectly good token, presents A's handle
				// (in A's cookie jar, or in the header).
				other := f.ClientToken(f.CreateClient("auth:execute"))
				bx := &expTx{f: f, tok: other, hc: a.hc, cookie: cookie, handle: a.handle, bearerAlways: true}
				for _, r := range expRoutes(u) {
					expWantAPI(t, bx.call(t, r.method, r.path, r.body), http.StatusNotFound, "session.not_found")
				}
				expWantAPI(t, bx.identify(t, rec), http.StatusNotFound, "session.not_found")
				// A's interaction is untouched and still works for A.
				if recs := a.records(t); len(recs) != 1 || recs[0]["id"] != rec {
					t.Fatalf("records of A: %v", recs)
				}
				expMust(t, a.identify(t, rec), http.StatusNoContent, "identify")
				if sub := a.submitTokens(t)["sub"]; sub != u.ID {
					t.Fatalf("signed in as %v", sub)
				}
			})
			t.Run("Expired/"+name, func(t *testing.T) {
				t.Parallel()
				u := f.user(t)
				x := f.begin(t, "SignIn", cookie)
				rec := x.passwordRecord(t, "username", u.Username, u.Password)
				f.expire(t, x.handle)
				for _, r := range expRoutes(u) {
					expWantAPI(t, x.call(t, r.method, r.path, r.body), http.StatusNotFound, "session.not_found")
				}
				expWantAPI(t, x.identify(t, rec), http.StatusNotFound, "session.not_found")
			})
		}
		t.Run("InitClearsThePreviousInteraction", func(t *testing.T) {
			t.Parallel()
			// Seed 004: "Any existing interaction data will be cleared."
			u := f.user(t)
			for _, cookie := range []bool{true, false} {
				x := f.begin(t, "SignIn", cookie)
				x.passwordRecord(t, "username", u.Username, u.Password)
				old := x.handle
				res := x.call(t, http.MethodPut, "/api/experience", map[string]any{"interactionEvent": "Register"})
				expMust(t, res, http.StatusNoContent, "init again")
				x.handle = res.Header.Get("Latch-Interaction")
				if x.handle == old || x.handle == "" {
					t.Fatalf("init again kept the handle")
				}
				if cookie && x.jarHandle(t) != x.handle {
					t.Fatal("init again did not replace the cookie")
				}
				view := expMust(t, x.view(t), http.StatusOK, "view")
				if view.Str("interactionEvent") != "Register" || len(x.records(t)) != 0 {
					t.Fatalf("new interaction: %s", view)
				}
				stale := &expTx{f: f, tok: f.tok, hc: f.HTTP, handle: old}
				expWantAPI(t, stale.view(t), http.StatusNotFound, "session.not_found")
			}
			// Another client's init does not end this client's interaction.
			x := f.begin(t, "SignIn", false)
			other := &expTx{f: f, tok: f.ClientToken(f.CreateClient("auth:execute")), hc: f.HTTP, handle: x.handle}
			expMust(t, other.call(t, http.MethodPut, "/api/experience", map[string]any{"interactionEvent": "SignIn"}), http.StatusNoContent, "other init")
			expMust(t, x.view(t), http.StatusOK, "view after another client's init")
		})
		t.Run("UnknownHandle", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			for _, h := range []string{"", "lxi_nope", "x"} {
				x := &expTx{f: f, tok: f.tok, hc: f.HTTP, handle: h}
				for _, r := range expRoutes(u) {
					expWantAPI(t, x.call(t, r.method, r.path, r.body), http.StatusNotFound, "session.not_found")
				}
			}
		})
		t.Run("HandleAlone", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			x := f.begin(t, "SignIn", false)
			// The handle alone authorises: a sign-in from start to tokens
			// with no Bearer after init (expTx sends it only there).
			expMust(t, x.identify(t, x.passwordRecord(t, "username", u.Username, u.Password)), http.StatusNoContent, "identify")
			if claims := x.submitTokens(t); claims["sub"] != u.ID || claims["aud"] != f.client.ID {
				t.Fatalf("tokens of a handle-only interaction: %v", claims)
			}
			// A Bearer sent as well must be the owner's: another client's
			// is told the interaction does not exist, a broken one is 401.
			y := f.begin(t, "SignIn", false)
			foreign := &expTx{f: f, tok: f.ClientToken(f.CreateClient("auth:execute")), hc: f.HTTP, handle: y.handle, bearerAlways: true}
			broken := &expTx{f: f, tok: "garbage", hc: f.HTTP, handle: y.handle, bearerAlways: true}
			owner := &expTx{f: f, tok: f.tok, hc: f.HTTP, handle: y.handle, bearerAlways: true}
			for _, r := range expRoutes(u) {
				expWantAPI(t, foreign.call(t, r.method, r.path, r.body), http.StatusNotFound, "session.not_found")
				expWantAPI(t, broken.call(t, r.method, r.path, r.body), http.StatusUnauthorized, "auth.invalid_client_token")
			}
			if recs := y.records(t); len(recs) != 0 {
				t.Fatalf("refused calls stored records: %v", recs)
			}
			expMust(t, owner.post(t, "/verification/password", map[string]any{"identifier": expIdent("username", u.Username), "password": u.Password}),
				http.StatusOK, "owner's Bearer")
		})
		t.Run("BrowserSafety", func(t *testing.T) {
			t.Parallel()
			u := f.user(t)
			x := f.begin(t, "SignIn", true)
			send := func(ct, origin, body string) *apptest.Response {
				t.Helper()
				req, _ := http.NewRequest(http.MethodPost, f.URL+"/api/experience/verification/password", strings.NewReader(body))
				if ct != "" {
					req.Header.Set("Content-Type", ct)
				}
				if origin != "" {
					req.Header.Set("Origin", origin)
				}
				res, err := v1Do(x.hc, req)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			good := `{"identifier":{"type":"username","value":"` + u.Username + `"},"password":"` + u.Password + `"}`
			// A cross-site form post carries the cookie but cannot send JSON.
			form := "identifier=" + u.Username + "&password=" + u.Password
			expWantAPI(t, send("application/x-www-form-urlencoded", "https://evil.example", form), http.StatusUnsupportedMediaType, "guard.content_type_not_allowed")
			expWantAPI(t, send("text/plain", "", good), http.StatusUnsupportedMediaType, "guard.content_type_not_allowed")
			// JSON from a foreign origin (a CORS-less fetch would be blocked
			// from reading, not from sending): refused.
			expWantAPI(t, send("application/json", "https://evil.example", good), http.StatusForbidden, "guard.origin_not_allowed")
			if recs := x.records(t); len(recs) != 0 {
				t.Fatalf("refused browser calls stored records: %v", recs)
			}
			// The issuer's own origin, and no Origin at all, pass.
			expMust(t, send("application/json", strings.TrimSuffix(f.URL, "/"), good), http.StatusOK, "same origin")
			expMust(t, send("application/json", "", good), http.StatusOK, "no origin")
			// An origin the client allows passes too.
			app := f.CreateClientFrom(token.NewClient{Scopes: []string{"auth:execute"}, AllowedOrigins: []string{"https://app.example.com"}})
			z := f.beginAs(t, f.ClientToken(app), "SignIn", true)
			x = z
			expMust(t, send("application/json", "https://app.example.com", good), http.StatusOK, "allowed origin")
			expWantAPI(t, send("application/json", "https://other.example.com", good), http.StatusForbidden, "guard.origin_not_allowed")
		})
	})
}

func TestExperienceBadInput(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		u := f.user(t)
		reg := f.begin(t, "Register", false)
		fp := f.begin(t, "ForgotPassword", false)
		users := f.users(t)
		interactions := f.count(t, "SELECT COUNT(*) FROM interactions")

		type badCase struct {
			x    *expTx
			verb string
			path string
			body any
		}
		const x = "/api/experience"
		notJSON, empty, array, truncated := "interactionEvent=SignIn", "", `[]`, `{"interactionEvent":`
		var cases []badCase
		add := func(tx *expTx, verb, path string, bodies ...any) {
			for _, body := range append(bodies, notJSON, empty, array, truncated, `{} {}`) {
				if body == empty && path == x+"/identification" {
					continue // the body is optional there (Register from the profile)
				}
				cases = append(cases, badCase{tx, verb, path, body})
			}
		}
		id := map[string]any{"type": "username", "value": u.Username}
		add(reg, http.MethodPut, x,
			map[string]any{},
			map[string]any{"interactionEvent": 1},
			map[string]any{"interactionEvent": "Bogus"},
			map[string]any{"interactionEvent": "SignIn", "extra": true},
		)
		add(reg, http.MethodPut, x+"/interaction-event",
			map[string]any{},
			map[string]any{"interactionEvent": []string{"SignIn"}},
			map[string]any{"interactionEvent": "signin"},
			map[string]any{"interactionEvent": "SignIn", "extra": true},
		)
		add(reg, http.MethodPost, x+"/identification",
			map[string]any{"verificationId": 7},
			map[string]any{"verificationId": "x", "extra": true},
		)
		add(reg, http.MethodPost, x+"/profile",
			map[string]any{},
			map[string]any{"type": 1, "value": "x"},
			map[string]any{"type": "username"},
			map[string]any{"type": "password"},
			map[string]any{"type": "email"},
			map[string]any{"type": "phone", "value": "+14155550123"},
			map[string]any{"type": "extraProfile"},
			map[string]any{"type": "extraProfile", "values": map[string]any{"name": 5}},
			map[string]any{"type": "bogus", "value": "x"},
			map[string]any{"type": "username", "value": "has space"},
			map[string]any{"type": "username", "value": v1Name("x"), "extra": 1},
		)
		add(fp, http.MethodPut, x+"/profile/password",
			map[string]any{},
			map[string]any{"password": 12345678},
			map[string]any{"password": ""},
			map[string]any{"password": v1Password(), "extra": 1},
		)
		add(reg, http.MethodPost, x+"/verification/password",
			map[string]any{},
			map[string]any{"password": u.Password},
			map[string]any{"identifier": id},
			map[string]any{"identifier": "alice", "password": u.Password},
			map[string]any{"identifier": map[string]any{"type": "username"}, "password": u.Password},
			map[string]any{"identifier": map[string]any{"type": "nickname", "value": "a"}, "password": u.Password},
			map[string]any{"identifier": id, "password": 5},
			map[string]any{"identifier": id, "password": u.Password, "extra": 1},
			map[string]any{"identifier": map[string]any{"type": "username", "value": u.Username, "extra": 1}, "password": u.Password},
		)
		add(reg, http.MethodPost, x+"/verification/verification-code",
			map[string]any{},
			map[string]any{"identifier": map[string]any{"type": "email"}},
			map[string]any{"identifier": map[string]any{"type": "email", "value": 5}},
			map[string]any{"identifier": id},
			map[string]any{"identifier": expIdent("email", "not-an-address")},
			map[string]any{"identifier": expIdent("email", u.Email), "interactionEvent": "Bogus"},
			map[string]any{"identifier": expIdent("email", u.Email), "extra": 1},
		)
		add(reg, http.MethodPost, x+"/verification/verification-code/verify",
			map[string]any{},
			map[string]any{"identifier": expIdent("email", u.Email), "code": "123456"},
			map[string]any{"identifier": expIdent("email", u.Email), "verificationId": "x"},
			map[string]any{"identifier": expIdent("email", u.Email), "verificationId": "x", "code": 123456},
			map[string]any{"identifier": expIdent("email", u.Email), "verificationId": "x", "code": "123456", "extra": 1},
		)
		add(reg, http.MethodPost, x+"/verification/new-password-identity",
			map[string]any{},
			map[string]any{"identifier": expIdent("username", v1Name("n"))},
			map[string]any{"password": v1Password()},
			map[string]any{"identifier": expIdent("email", expEmail("n")), "password": v1Password()},
			map[string]any{"identifier": expIdent("username", v1Name("n")), "password": true},
			map[string]any{"identifier": expIdent("username", "has space"), "password": v1Password()},
			map[string]any{"identifier": expIdent("username", v1Name("n")), "password": v1Password(), "extra": 1},
		)

		for _, c := range cases {
			res := c.x.call(t, c.verb, c.path, c.body)
			if res.Status != http.StatusBadRequest || res.Str("code") != "guard.invalid_input" || res.Str("message") == "" {
				t.Errorf("%s %s %v: got %s, want 400 guard.invalid_input", c.verb, c.path, c.body, res)
			}
		}
		// The same with a JSON body sent as another content type.
		req, err := reg.request(http.MethodPost, x+"/verification/new-password-identity",
			map[string]any{"identifier": expIdent("username", v1Name("ct")), "password": v1Password()})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		if res, err := v1Do(reg.hc, req); err != nil || res.Status != http.StatusBadRequest || res.Str("code") != "guard.invalid_input" {
			t.Fatalf("text/plain body: %v %v", res, err)
		}

		// Nothing was stored: no records, no profile, no users, no
		// interactions, no codes and no messages.
		for _, tx := range []*expTx{reg, fp} {
			view := expMust(t, tx.view(t), http.StatusOK, "view")
			if recs := tx.records(t); len(recs) != 0 {
				t.Fatalf("bad input stored records: %v", recs)
			}
			p, _ := view.JSON["profile"].(map[string]any)
			if len(p) != 1 || p["hasPassword"] != false {
				t.Fatalf("bad input stored profile data: %s", view)
			}
		}
		if reg.view(t).Str("interactionEvent") != "Register" || fp.view(t).Str("interactionEvent") != "ForgotPassword" {
			t.Fatal("bad input changed an interaction's event")
		}
		if n := f.users(t); n != users {
			t.Fatalf("bad input created users: %d -> %d", users, n)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM interactions"); n != interactions {
			t.Fatalf("bad input created interactions: %d -> %d", interactions, n)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM verification_codes"); n != 0 {
			t.Fatalf("bad input created %d codes", n)
		}
		if m, s := len(f.mail.Messages()), len(f.sms.Messages()); m != 0 || s != 0 {
			t.Fatalf("bad input sent %d mails and %d SMS", m, s)
		}
	})
}

// Interactions stored before verification kinds had their own state (the
// union record with "extra") cannot be read back; the migration that came
// with the change drops them, and one that slipped in later answers like an
// expired interaction — 404, never a 500.
func TestOldInteractionStateIsGone(t *testing.T) {
	t.Parallel()
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		x := f.begin(t, "SignIn", false)
		old := `{"client_id":"` + f.client.ID + `","event":"SignIn","records":[{"id":"r1","type":"Totp","verified":true,"user_id":"u1","extra":{"secret":"x"}}],"profile":{}}`
		if err := f.Services.DB.WithContext(context.Background()).Exec("UPDATE interactions SET data = ? WHERE id = ?",
			old, credentials.Digest(x.handle)).Error; err != nil {
			t.Fatal(err)
		}
		expWantAPI(t, x.view(t), http.StatusNotFound, "session.not_found")
		expWantAPI(t, x.post(t, "/submit", nil), http.StatusNotFound, "session.not_found")
	})
}

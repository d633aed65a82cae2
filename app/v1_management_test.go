package app_test

// The management API over HTTP (scope `management`): clients, signing keys,
// settings, audit events with filters and cursors, and the users listing.

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/experience"
)

// clientAudit returns the newest audit event of a kind about a client.
func (f *v1Fix) clientAudit(t *testing.T, clientID, event string) map[string]any {
	t.Helper()
	res := f.call(t, http.MethodGet, "/v1/audit-events?"+url.Values{"client_id": {clientID}, "event": {event}}.Encode(), f.tok, nil)
	list, _ := res.JSON["events"].([]any)
	if res.Status != http.StatusOK || len(list) == 0 {
		t.Fatalf("no %s event for %s: %s", event, clientID, res)
	}
	return list[0].(map[string]any)
}

// clientCredentials asks the token endpoint for a ClientAccessToken.
func (f *v1Fix) clientCredentials(t *testing.T, id, secret string) *apptest.Response {
	t.Helper()
	return f.form(t, "/oidc/token", apptest.Client{ID: id, Secret: secret}, url.Values{"grant_type": {"client_credentials"}})
}

func TestManagementClients(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)

		// A typo in a scope is refused, naming the field.
		wantDetail(t, f.call(t, http.MethodPost, "/v1/clients", f.tok, map[string]any{"name": "typo", "scopes": []string{"auth:exectue"}}), "scopes")
		wantDetail(t, f.call(t, http.MethodPost, "/v1/clients", f.tok, map[string]any{"scopes": []string{"auth:execute"}}), "name")
		wantDetail(t, f.call(t, http.MethodPost, "/v1/clients", f.tok, map[string]any{"name": "x", "grant_types": []string{"password"}}), "grant_types")
		wantDetail(t, f.call(t, http.MethodPost, "/v1/clients", f.tok, map[string]any{"name": "x", "colour": "red"}), "colour")

		created := f.call(t, http.MethodPost, "/v1/clients", f.tok, map[string]any{
			"name": "billing", "scopes": []string{"auth:execute", "openid"}, "resources": []string{"https://billing.example.com"},
			"enforce_mfa": false, "sso": true, "allowed_origins": []string{"https://App.Example.com"}})
		if created.Status != http.StatusCreated || created.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("create: %s", created)
		}
		id, secret := created.Str("client_id"), created.Str("client_secret")
		if id == "" || !strings.HasPrefix(secret, "lcs_") || created.JSON["enforce_mfa"] != false || created.JSON["sso"] != true ||
			stringList(created.JSON["allowed_origins"])[0] != "https://app.example.com" {
			t.Fatalf("create: %s", created)
		}
		tok := f.clientCredentials(t, id, secret)
		if tok.Status != http.StatusOK || tok.Str("scope") != "auth:execute openid" {
			t.Fatalf("the new client's token: %s", tok)
		}
		if ev := f.clientAudit(t, id, "client.created"); ev["data"].(map[string]any)["by_client_id"] != f.client.ID {
			t.Errorf("client.created does not name the caller: %v", ev)
		}

		list := f.call(t, http.MethodGet, "/v1/clients", f.tok, nil)
		if list.Status != http.StatusOK || strings.Contains(string(list.Raw), "client_secret") || !strings.Contains(string(list.Raw), id) {
			t.Fatalf("list: %s", list)
		}
		if got := f.call(t, http.MethodGet, "/v1/clients/"+id, f.tok, nil); got.Status != http.StatusOK || got.Str("name") != "billing" || strings.Contains(string(got.Raw), "secret\"") {
			t.Fatalf("get: %s", got)
		}
		wantError(t, f.call(t, http.MethodGet, "/v1/clients/nope", f.tok, nil), http.StatusNotFound, "not_found")

		// Update: given fields replace, absent ones stay, validated as at
		// creation.
		wantDetail(t, f.call(t, http.MethodPatch, "/v1/clients/"+id, f.tok, map[string]any{"scopes": []string{"users:reed"}}), "scopes")
		wantDetail(t, f.call(t, http.MethodPatch, "/v1/clients/"+id, f.tok, map[string]any{"name": " "}), "name")
		wantError(t, f.call(t, http.MethodPatch, "/v1/clients/nope", f.tok, map[string]any{"name": "x"}), http.StatusNotFound, "not_found")
		patched := f.call(t, http.MethodPatch, "/v1/clients/"+id, f.tok, map[string]any{"name": "billing v2", "scopes": []string{"users:read"}, "sso": false})
		if patched.Status != http.StatusOK || patched.Str("name") != "billing v2" || !slices.Equal(stringList(patched.JSON["scopes"]), []string{"users:read"}) ||
			patched.JSON["sso"] != false || patched.JSON["enforce_mfa"] != false || len(stringList(patched.JSON["resources"])) != 1 {
			t.Fatalf("patch: %s", patched)
		}
		if tok := f.clientCredentials(t, id, secret); tok.Status != http.StatusOK || tok.Str("scope") != "users:read" {
			t.Fatalf("token after the scope change: %s", tok)
		}
		if ev := f.clientAudit(t, id, "client.updated"); !slices.Equal(stringList(ev["data"].(map[string]any)["fields"]), []string{"name", "scopes", "sso"}) {
			t.Errorf("client.updated: %v", ev)
		}

		// Rotation without a body: the old secret stops, issued tokens stay.
		old := f.clientCredentials(t, id, secret).Str("access_token")
		rotated := f.call(t, http.MethodPost, "/v1/clients/"+id+"/secret", f.tok, nil)
		if rotated.Status != http.StatusOK || rotated.Header.Get("Cache-Control") != "no-store" || rotated.Str("client_secret") == secret {
			t.Fatalf("rotate: %s", rotated)
		}
		if res := f.clientCredentials(t, id, secret); res.Status != http.StatusUnauthorized {
			t.Errorf("the old secret after rotation: %s", res)
		}
		if res := f.call(t, http.MethodGet, "/v1/users", old, nil); res.Status != http.StatusOK {
			t.Errorf("a token issued before a plain rotation: %s", res)
		}
		// With revoke_tokens the tokens issued before are refused too.
		secret = rotated.Str("client_secret")
		old = f.clientCredentials(t, id, secret).Str("access_token")
		rotated = f.call(t, http.MethodPost, "/v1/clients/"+id+"/secret", f.tok, map[string]any{"revoke_tokens": true})
		if rotated.Status != http.StatusOK || rotated.Str("tokens_valid_after") == "" {
			t.Fatalf("rotate with revoke_tokens: %s", rotated)
		}
		wantError(t, f.call(t, http.MethodGet, "/v1/users", old, nil), http.StatusUnauthorized, "invalid_client_token")
		if res := f.clientCredentials(t, id, rotated.Str("client_secret")); res.Status != http.StatusOK {
			t.Errorf("the new secret: %s", res)
		}
		if ev := f.clientAudit(t, id, "client.secret_rotated"); ev["data"].(map[string]any)["revoke_tokens"] != true {
			t.Errorf("client.secret_rotated: %v", ev)
		}
		wantDetail(t, f.call(t, http.MethodPost, "/v1/clients/"+id+"/secret", f.tok, map[string]any{"revoke_tokens": "yes"}), "revoke_tokens")
		wantError(t, f.call(t, http.MethodPost, "/v1/clients/nope/secret", f.tok, nil), http.StatusNotFound, "not_found")

		if res := f.call(t, http.MethodDelete, "/v1/clients/"+id, f.tok, nil); res.Status != http.StatusNoContent {
			t.Fatalf("delete: %s", res)
		}
		wantError(t, f.call(t, http.MethodGet, "/v1/clients/"+id, f.tok, nil), http.StatusNotFound, "not_found")
		wantError(t, f.call(t, http.MethodDelete, "/v1/clients/"+id, f.tok, nil), http.StatusNotFound, "not_found")
		if ev := f.clientAudit(t, id, "client.deleted"); ev["data"].(map[string]any)["by_client_id"] != f.client.ID {
			t.Errorf("client.deleted: %v", ev)
		}
	})
}

func TestManagementKeys(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		activeKid := func(res *apptest.Response) string {
			t.Helper()
			for _, k := range res.JSON["keys"].([]any) {
				if k := k.(map[string]any); k["state"] == "active" {
					return k["kid"].(string)
				}
			}
			t.Fatalf("no active key: %s", res)
			return ""
		}
		before := f.call(t, http.MethodGet, "/v1/keys", f.tok, nil)
		if before.Status != http.StatusOK || strings.Contains(string(before.Raw), `"d"`) {
			t.Fatalf("keys: %s", before)
		}
		old := activeKid(before)
		rotated := f.call(t, http.MethodPost, "/v1/keys/rotate", f.tok, nil)
		if rotated.Status != http.StatusOK || rotated.Str("active_kid") == old || rotated.Str("active_kid") != activeKid(rotated) {
			t.Fatalf("rotate: %s (before %s)", rotated, old)
		}
		jwks := f.call(t, http.MethodGet, "/oidc/jwks", "", nil)
		if !strings.Contains(string(jwks.Raw), rotated.Str("active_kid")) || !strings.Contains(string(jwks.Raw), old) {
			t.Errorf("the JWKS lacks the new active or the retired key: %s", jwks.Raw)
		}
		res := f.call(t, http.MethodGet, "/v1/audit-events?event=signing_key.rotated", f.tok, nil)
		ev := res.JSON["events"].([]any)[0].(map[string]any)["data"].(map[string]any)
		if ev["by_client_id"] != f.client.ID || ev["trigger"] != "manual" || ev["active_kid"] != rotated.Str("active_kid") {
			t.Errorf("signing_key.rotated: %v", ev)
		}
	})
}

func TestManagementSettings(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		patch := func(contentType, body string) *apptest.Response {
			req := f.JSONRequest(http.MethodPatch, "/v1/settings", f.tok, body)
			req.Header.Set("Content-Type", contentType)
			return f.Do(req)
		}
		got := f.call(t, http.MethodGet, "/v1/settings", f.tok, nil)
		lockout, _ := got.JSON["lockout"].(map[string]any)
		if got.Status != http.StatusOK || lockout["max_failures"] != float64(5) {
			t.Fatalf("settings: %s", got)
		}
		res := patch("application/merge-patch+json", `{"lockout":{"max_failures":3},"password_expiry":null}`)
		if lockout, _ := res.JSON["lockout"].(map[string]any); res.Status != http.StatusOK || lockout["max_failures"] != float64(3) || lockout["enabled"] != true {
			t.Fatalf("patch: %s", res)
		}
		got = f.call(t, http.MethodGet, "/v1/settings", f.tok, nil)
		if lockout, _ := got.JSON["lockout"].(map[string]any); lockout["max_failures"] != float64(3) {
			t.Fatalf("the patch did not stick: %s", got)
		}
		events := f.call(t, http.MethodGet, "/v1/audit-events?event=settings.updated", f.tok, nil).JSON["events"].([]any)
		ev := events[0].(map[string]any)
		if len(events) != 1 || ev["client_id"] != f.client.ID || !slices.Equal(stringList(ev["data"].(map[string]any)["sections"]), []string{"lockout", "password_expiry"}) {
			t.Errorf("settings.updated: %v", events)
		}

		if ev["data"].(map[string]any)["via"] != "management_api" {
			t.Errorf("settings.updated over HTTP: %v", ev)
		}
		// `latch settings set` goes through the same operation, audited too.
		if _, err := f.Services.Engine.PatchSettings(context.Background(), []byte(`{"lockout":{"max_failures":3}}`), experience.SessionMeta{}); err != nil {
			t.Fatal(err)
		}
		events = f.call(t, http.MethodGet, "/v1/audit-events?event=settings.updated", f.tok, nil).JSON["events"].([]any)
		if len(events) != 2 || events[0].(map[string]any)["data"].(map[string]any)["via"] != "cli" {
			t.Errorf("settings.updated from the CLI: %v", events)
		}

		wantError(t, patch("application/json", `{"lockout":{"max_failures":0}}`), http.StatusBadRequest, "settings_invalid")
		wantError(t, patch("application/json", `{"lockout":{"max_falures":3}}`), http.StatusBadRequest, "settings_invalid")
		wantError(t, patch("application/json", `[1]`), http.StatusBadRequest, "settings_invalid")
		wantError(t, patch("text/plain", `{}`), http.StatusBadRequest, "system_invalid_input")
		if n := len(f.call(t, http.MethodGet, "/v1/audit-events?event=settings.updated", f.tok, nil).JSON["events"].([]any)); n != 2 {
			t.Errorf("refused patches were audited: %d events", n)
		}
		// The settings apply: the third failure now locks.
		_, username, _ := f.newUser(t)
		for i := 0; i < 3; i++ {
			f.authenticate(t, username, "wrong password 123", nil)
		}
		wantError(t, f.authenticate(t, username, "wrong password 123", nil), http.StatusForbidden, "auth_locked")
	})
}

// eventsPages follows next_cursor through an audit listing.
func (f *v1Fix) eventsPages(t *testing.T, q url.Values) (ids []string, pages int) {
	t.Helper()
	for {
		res := f.call(t, http.MethodGet, "/v1/audit-events?"+q.Encode(), f.tok, nil)
		if res.Status != http.StatusOK {
			t.Fatalf("audit events %s: %s", q.Encode(), res)
		}
		pages++
		for _, e := range res.JSON["events"].([]any) {
			ids = append(ids, e.(map[string]any)["id"].(string))
		}
		next := res.Str("next_cursor")
		if next == "" {
			return ids, pages
		}
		q.Set("cursor", next)
	}
}

func TestAuditEventFilters(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		other := v1Wrap(f.Env)
		start := time.Now().Add(-time.Second).UTC()
		var mine []string
		for i := 0; i < 5; i++ {
			id, _, _ := f.newUser(t)
			mine = append(mine, id)
		}
		other.newUser(t)

		all, _ := f.eventsPages(t, url.Values{"event": {"user.created"}, "client_id": {f.client.ID}})
		ids, pages := f.eventsPages(t, url.Values{"event": {"user.created"}, "client_id": {f.client.ID}, "limit": {"2"}})
		if len(all) != 5 || !slices.Equal(ids, all) || pages != 3 {
			t.Fatalf("paged %v in %d pages, unpaged %v", ids, pages, all)
		}
		// By user, and the client filter keeps the other client's out.
		if ids, _ := f.eventsPages(t, url.Values{"user_id": {mine[2]}}); len(ids) == 0 {
			t.Error("no events for a user")
		}
		if ids, _ := f.eventsPages(t, url.Values{"event": {"user.created"}}); len(ids) != 6 {
			t.Errorf("user.created of both clients: %d", len(ids))
		}
		// Time range.
		if ids, _ := f.eventsPages(t, url.Values{"event": {"user.created"}, "since": {start.Format(time.RFC3339Nano)}}); len(ids) != 6 {
			t.Errorf("since the start: %d", len(ids))
		}
		if ids, _ := f.eventsPages(t, url.Values{"event": {"user.created"}, "until": {start.Format(time.RFC3339)}}); len(ids) != 0 {
			t.Errorf("until the start: %d", len(ids))
		}
		if ids, _ := f.eventsPages(t, url.Values{"event": {"user.created"}, "since": {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}}); len(ids) != 0 {
			t.Errorf("since the future: %d", len(ids))
		}
		for q, field := range map[string]string{"cursor=garbage": "cursor", "since=yesterday": "since", "until=2026-13-01": "until", "limit=0": "limit"} {
			wantDetail(t, f.call(t, http.MethodGet, "/v1/audit-events?"+q, f.tok, nil), field)
		}
	})
}

func TestUsersListing(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		list := func(q url.Values) (ids []string, pages int) {
			t.Helper()
			for {
				res := f.call(t, http.MethodGet, "/v1/users?"+q.Encode(), f.tok, nil)
				if res.Status != http.StatusOK {
					t.Fatalf("list %s: %s", q.Encode(), res)
				}
				pages++
				for _, u := range res.JSON["users"].([]any) {
					ids = append(ids, u.(map[string]any)["id"].(string))
				}
				if res.Str("next_cursor") == "" {
					return ids, pages
				}
				q.Set("cursor", res.Str("next_cursor"))
			}
		}
		tag := strings.ToLower(v1Name("lst"))
		var created []string
		for i := 0; i < 5; i++ {
			created = append(created, f.createUser(t, map[string]any{"username": v1Name("u"), "name": "Member " + strings.ToUpper(tag),
				"primary_email": v1Name("m") + "@example.com"}))
		}
		other := f.createUser(t, map[string]any{"username": v1Name(tag + "_"), "primary_email": v1Name("o") + "@example.com"})

		// q matches any of username, e-mail or name, ignoring case; pages
		// follow creation order.
		ids, pages := list(url.Values{"q": {tag}, "limit": {"2"}})
		if !slices.Equal(ids, append(append([]string{}, created...), other)) || pages != 3 {
			t.Fatalf("q=%s: %v in %d pages, want %v + %s", tag, ids, pages, created, other)
		}
		// LIKE wildcards in q are literal.
		if ids, _ := list(url.Values{"q": {"%"}}); len(ids) != 0 {
			t.Errorf("q=%%: %v", ids)
		}
		if res := f.call(t, http.MethodPost, "/v1/users/"+created[1]+"/suspend", f.tok, nil); res.Status != http.StatusOK {
			t.Fatalf("suspend: %s", res)
		}
		if ids, _ := list(url.Values{"q": {tag}, "suspended": {"true"}}); !slices.Equal(ids, created[1:2]) {
			t.Errorf("suspended: %v", ids)
		}
		if ids, _ := list(url.Values{"q": {tag}, "suspended": {"false"}}); len(ids) != 5 || slices.Contains(ids, created[1]) {
			t.Errorf("not suspended: %v", ids)
		}
		// created_after, from a user's own created_at.
		third := f.call(t, http.MethodGet, "/v1/users/"+created[2], f.tok, nil).Str("created_at")
		if ids, _ := list(url.Values{"q": {tag}, "created_after": {third}}); !slices.Equal(ids, []string{created[3], created[4], other}) {
			t.Errorf("created_after %s: %v", third, ids)
		}
		// The exact lookup by one identifier still works, and combines.
		email := f.call(t, http.MethodGet, "/v1/users/"+other, f.tok, nil).Str("primary_email")
		if ids, _ := list(url.Values{"email": {strings.ToUpper(email)}}); !slices.Equal(ids, []string{other}) {
			t.Errorf("email=%s: %v", email, ids)
		}
		if ids, _ := list(url.Values{"email": {email}, "suspended": {"true"}}); len(ids) != 0 {
			t.Errorf("email and suspended: %v", ids)
		}
		// Without filters: everyone (the fixture's users included).
		if ids, _ := list(url.Values{"limit": {"200"}}); len(ids) < 6 {
			t.Errorf("all users: %d", len(ids))
		}
		for q, field := range map[string]string{"suspended=maybe": "suspended", "created_after=soon": "created_after",
			"cursor=x": "cursor", "limit=201": "limit", "email=not-an-address": "email"} {
			wantDetail(t, f.call(t, http.MethodGet, "/v1/users?"+q, f.tok, nil), field)
		}
	})
}

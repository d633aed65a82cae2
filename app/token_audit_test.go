package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
)

// Key rotations (manual and scheduled) and client creation, deletion and
// secret rotation are in the audit log, without any secret.
func TestTokenServiceEventsAreAudited(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		ctx := context.Background()
		tokens := f.Services.Tokens
		c := f.CreateClient("users:read")
		_, rotated, err := tokens.Clients.RotateSecret(ctx, c.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tokens.Clients.RotateSecret(ctx, c.ID, true); err != nil {
			t.Fatal(err)
		}
		if err := tokens.Clients.Delete(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if ok, err := tokens.Keys.Rotate(ctx, 0); err != nil || !ok {
			t.Fatalf("manual rotation: %v %v", ok, err)
		}
		// The scheduler's call: rotate keys active longer than the interval.
		if ok, err := tokens.Keys.Rotate(ctx, time.Nanosecond); err != nil || !ok {
			t.Fatalf("scheduled rotation: %v %v", ok, err)
		}

		byClient := func(event string) []map[string]any {
			var out []map[string]any
			for _, e := range f.auditEvents(t, "", event) {
				if e["client_id"] == c.ID {
					out = append(out, e)
				}
			}
			return out
		}
		if ev := byClient("client.created"); len(ev) != 1 || ev[0]["outcome"] != "success" {
			t.Fatalf("client.created events: %v", ev)
		} else if data, _ := ev[0]["data"].(map[string]any); data["name"] != "test client" {
			t.Fatalf("client.created data: %v", data)
		}
		revoked := map[any]int{}
		for _, e := range byClient("client.secret_rotated") {
			data, _ := e["data"].(map[string]any)
			revoked[data["revoke_tokens"]]++
		}
		if revoked[true] != 1 || revoked[false] != 1 {
			t.Fatalf("client.secret_rotated events by revoke_tokens: %v", revoked)
		}
		if ev := byClient("client.deleted"); len(ev) != 1 {
			t.Fatalf("client.deleted events: %v", ev)
		}
		triggers := map[any]int{}
		for _, e := range f.auditEvents(t, "", "signing_key.rotated") {
			data, _ := e["data"].(map[string]any)
			if data["active_kid"] == "" || data["retired_kid"] == "" || data["active_kid"] == data["retired_kid"] {
				t.Fatalf("signing_key.rotated data: %v", data)
			}
			triggers[data["trigger"]]++
		}
		if triggers["manual"] != 1 || triggers["scheduled"] != 1 {
			t.Fatalf("signing_key.rotated events by trigger: %v", triggers)
		}

		all := f.call(t, http.MethodGet, "/v1/audit-events?limit=1000", f.tok, nil)
		for _, secret := range []string{c.Secret, rotated, "lcs_", "secret_digest", "private"} {
			if strings.Contains(string(all.Raw), secret) {
				t.Fatalf("the audit log holds %q", secret)
			}
		}
	})
}

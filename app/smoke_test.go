package app_test

import (
	"net/http"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
)

func TestWhoamiReportsTheCallingClient(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute", "users:read")
		tok := env.ClientToken(c)
		res := env.JSON(http.MethodGet, "/v1/auth/whoami", tok, nil)
		if res.Status != http.StatusOK || res.Str("client_id") != c.ID {
			t.Fatalf("whoami: %s", res)
		}
		if res.Header.Get("X-Request-Id") == "" {
			t.Fatal("no X-Request-Id")
		}
	})
}

package app

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/config"
)

// A panic in a handler becomes a logged 500 in the route family's JSON
// dialect, with the request id, and never leaks the panic value or a stack.
func TestPanicsBecomeJSON500(t *testing.T) {
	cfg, err := config.Load("", func(k string) string {
		return map[string]string{"LATCH_DATA_DIR": t.TempDir()}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a := New(Deps{Config: cfg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	boom := func(echo.Context) error { panic("boom: internal detail") }
	for _, p := range []string{"/v1/boom", "/api/boom", "/oidc/boom"} {
		a.echo.GET(p, boom)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()

	for _, tc := range []struct{ path, field, code string }{
		{"/v1/boom", "error_code", "internal_server_error"},
		{"/api/boom", "code", "internal_server_error"},
		{"/oidc/boom", "error", "server_error"},
	} {
		res, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var body map[string]any
		if res.StatusCode != http.StatusInternalServerError || json.Unmarshal(raw, &body) != nil || body[tc.field] != tc.code {
			t.Fatalf("%s: %d %s", tc.path, res.StatusCode, raw)
		}
		if strings.Contains(string(raw), "boom") || strings.Contains(string(raw), "goroutine") {
			t.Fatalf("%s leaks the panic: %s", tc.path, raw)
		}
		id := res.Header.Get("X-Request-Id")
		if id == "" || !strings.Contains(logs.String(), id) || !strings.Contains(logs.String(), "panic") {
			t.Fatalf("%s: the 500 is not logged with its request id %q: %s", tc.path, id, logs.String())
		}
	}
}

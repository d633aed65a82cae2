package main

import (
	"encoding/base64"
	"path/filepath"
	"testing"

	"github.com/latch-dev/latch/config"
)

// Issue 15: `latch client create --type spa|web --redirect-uri …
// --post-logout-redirect-uri … --first-party=false` registers a browser
// client; a public one prints no secret.
func TestClientCreateBrowserTypes(t *testing.T) {
	t.Parallel()
	key, err := config.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vars := map[string]string{
		"LATCH_DATABASE_URL": "sqlite://" + filepath.Join(dir, "latch.db"),
		"LATCH_DATA_DIR":     dir,
		"LATCH_SECRET_KEY":   base64.StdEncoding.EncodeToString(key),
	}
	spa := runCLI(t, vars, "", "client", "create", "--name", "SPA", "--type", "spa",
		"--redirect-uri", "https://app.example/cb", "--post-logout-redirect-uri", "https://app.example/", "--output", "json")
	if spa["type"] != "spa" || spa["client_secret"] != "" || spa["first_party"] != true {
		t.Fatalf("spa client: %v", spa)
	}
	if uris, _ := spa["redirect_uris"].([]any); len(uris) != 1 || uris[0] != "https://app.example/cb" {
		t.Fatalf("redirect_uris %v", spa["redirect_uris"])
	}
	web := runCLI(t, vars, "", "client", "create", "--name", "Web", "--type", "web", "--first-party=false",
		"--redirect-uri", "https://web.example/cb", "--refresh-without-offline-access", "--output", "json")
	if web["type"] != "web" || web["client_secret"] == "" || web["first_party"] != false || web["refresh_without_offline_access"] != true {
		t.Fatalf("web client: %v", web)
	}
	backend := runCLI(t, vars, "", "client", "create", "--name", "Backend", "--scope", "auth:execute", "--output", "json")
	if backend["type"] != "backend" || backend["client_secret"] == "" {
		t.Fatalf("backend client: %v", backend)
	}
}

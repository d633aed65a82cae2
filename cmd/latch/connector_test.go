package main

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-dev/latch/config"
)

// `latch connector create|show|update|list|delete`: the secret comes in
// on stdin and never comes out.
func TestConnectorCLI(t *testing.T) {
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
	// runCLI reads JSON: ask for it.
	cli := func(stdin string, args ...string) map[string]any {
		t.Helper()
		return runCLI(t, vars, stdin, append(args, "--output", "json")...)
	}
	const secret = "cli-connector-secret-0123456789"
	out := cli(`{"issuer": "https://idp.example.com", "client_id": "rp", "client_secret": "`+secret+`"}`,
		"connector", "create", "sso", "--name", "Acme", "--provider", "oidc", "--domain", "acme-cli.test", "--jit-org", "org_1", "--config-file", "-")
	id, _ := out["id"].(string)
	if id == "" || out["has_client_secret"] != true {
		t.Fatalf("create: %v", out)
	}
	out = cli("", "connector", "update", "sso", id, "--name", "Acme Corp")
	if out["name"] != "Acme Corp" || out["has_client_secret"] != true {
		t.Fatalf("update: %v", out)
	}
	shown := cli("", "connector", "show", "sso", id)
	listed := cli("", "connector", "list", "sso")
	for _, v := range []map[string]any{out, shown, listed} {
		raw, _ := json.Marshal(v)
		if strings.Contains(string(raw), secret) || !strings.Contains(string(raw), "acme-cli.test") {
			t.Fatalf("connector output: %s", raw)
		}
	}
	if out := cli("", "connector", "delete", "sso", id); out["deleted"] != id {
		t.Fatalf("delete: %v", out)
	}
	if list := cli("", "connector", "list", "sso"); len(list["connectors"].([]any)) != 0 {
		t.Fatalf("list after delete: %v", list)
	}
}

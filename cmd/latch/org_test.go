package main

// `latch org …`: organizations, their members and organization roles from
// the CLI, in text and JSON, run in-process through newRoot like the binary.

import (
	"bytes"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-dev/latch/config"
)

// runCLIText runs a command and returns its text output and error.
func runCLIText(vars map[string]string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	root := newRoot(&stdout, &stderr, func(k string) string { return vars[k] })
	root.SetArgs(args)
	err := root.Execute()
	return stdout.String(), err
}

func TestOrgCLI(t *testing.T) {
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
	run := func(args ...string) map[string]any {
		t.Helper()
		return runCLI(t, vars, "", append(args, "--output", "json")...)
	}
	names := func(list any, field string) []string {
		var out []string
		for _, x := range list.([]any) {
			out = append(out, x.(map[string]any)[field].(string))
		}
		return out
	}

	role := run("org", "role", "create", "--name", "admin", "--permission", "users:manage", "--permission", "billing:read")
	roleID, _ := role["id"].(string)
	if roleID == "" || role["name"] != "admin" || strings.Join(jsonStrings(role["permissions"]), " ") != "users:manage billing:read" {
		t.Fatalf("role create: %v", role)
	}
	run("org", "role", "create", "--name", "viewer")
	if got := names(run("org", "role", "list")["roles"], "name"); strings.Join(got, ",") != "admin,viewer" {
		t.Fatalf("role list: %v", got)
	}

	org := run("org", "create", "--name", "Acme", "--description", "A customer", "--domain", "acme.example",
		"--jit-domain", "jit.acme.example", "--jit-role", "admin", "--mfa-required")
	orgID, _ := org["id"].(string)
	if orgID == "" || org["mfa_required"] != true || strings.Join(jsonStrings(org["domains"]), ",") != "acme.example" ||
		strings.Join(jsonStrings(org["jit_roles"]), ",") != "admin" {
		t.Fatalf("org create: %v", org)
	}
	run("org", "create", "--name", "Beta")
	list := run("org", "list")
	if got := names(list["organizations"], "name"); strings.Join(got, ",") != "Acme,Beta" || list["next_cursor"] != nil {
		t.Fatalf("org list: %v", list)
	}
	page := run("org", "list", "--limit", "1")
	next, _ := page["next_cursor"].(string)
	if got := names(page["organizations"], "name"); len(got) != 1 || got[0] != "Acme" || next == "" {
		t.Fatalf("org list --limit 1: %v", page)
	}
	if got := names(run("org", "list", "--cursor", next)["organizations"], "name"); strings.Join(got, ",") != "Beta" {
		t.Fatalf("org list --cursor: %v", got)
	}
	if got := names(run("org", "list", "--q", "CM")["organizations"], "name"); strings.Join(got, ",") != "Acme" {
		t.Fatalf("org list --q: %v", got)
	}
	if shown := run("org", "show", orgID); shown["name"] != "Acme" || shown["description"] != "A customer" {
		t.Fatalf("org show: %v", shown)
	}

	user := run("user", "create", "--username", "bob")
	userID, _ := user["id"].(string)
	member := run("org", "member", "add", orgID, userID, "--role", "admin,viewer")
	if member["user_id"] != userID || strings.Join(jsonStrings(member["roles"]), ",") != "admin,viewer" {
		t.Fatalf("member add: %v", member)
	}
	members := run("org", "member", "list", orgID)
	if got := names(members["members"], "username"); strings.Join(got, ",") != "bob" {
		t.Fatalf("member list: %v", members)
	}
	if _, err := runCLIText(vars, "org", "member", "add", orgID, userID); err == nil || !strings.Contains(err.Error(), "already a member") {
		t.Fatalf("adding a member twice: %v", err)
	}
	if _, err := runCLIText(vars, "org", "member", "add", orgID, userID+"x", "--role", "ghost"); err == nil {
		t.Fatal("adding an unknown user succeeded")
	}

	// Text output names what it lists.
	text, err := runCLIText(vars, "org", "member", "list", orgID)
	if err != nil || !strings.Contains(text, "bob") || !strings.Contains(text, "admin viewer") {
		t.Fatalf("member list (text): %v\n%s", err, text)
	}
	if text, err = runCLIText(vars, "org", "list"); err != nil || !strings.Contains(text, orgID) || !strings.Contains(text, "acme.example") {
		t.Fatalf("org list (text): %v\n%s", err, text)
	}

	if out := run("org", "role", "delete", roleID); out["deleted"] != roleID {
		t.Fatalf("role delete: %v", out)
	}
	if got := jsonStrings(run("org", "member", "list", orgID)["members"].([]any)[0].(map[string]any)["roles"]); strings.Join(got, ",") != "viewer" {
		t.Fatalf("roles after the role's deletion: %v", got)
	}
	if out := run("org", "member", "remove", orgID, userID); out["removed"] != userID {
		t.Fatalf("member remove: %v", out)
	}
	if got := run("org", "member", "list", orgID)["members"].([]any); len(got) != 0 {
		t.Fatalf("members after remove: %v", got)
	}
	if out := run("org", "delete", orgID); out["deleted"] != orgID {
		t.Fatalf("org delete: %v", out)
	}
	if _, err := runCLIText(vars, "org", "show", orgID); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("show a deleted organization: %v", err)
	}
}

// jsonStrings turns a JSON array of strings into strings.
func jsonStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

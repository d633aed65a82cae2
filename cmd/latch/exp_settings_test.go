package main

// `latch settings show|set` report which message connectors are configured
// (a code method without its connector answers 501 connector.not_found).
// The CLI runs in-process through newRoot, like the binary would.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latch-dev/latch/config"
)

func runCLI(t *testing.T, vars map[string]string, stdin string, args ...string) map[string]any {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRoot(&stdout, &stderr, func(k string) string { return vars[k] })
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	if err := root.Execute(); err != nil {
		t.Fatalf("latch %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("latch %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return out
}

func TestSettingsShowReportsConnectors(t *testing.T) {
	t.Parallel()
	key, err := config.GenerateSecretKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	base := map[string]string{
		"LATCH_DATABASE_URL": "sqlite://" + filepath.Join(dir, "latch.db"),
		"LATCH_DATA_DIR":     dir,
		"LATCH_SECRET_KEY":   base64.StdEncoding.EncodeToString(key),
	}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	connectors := func(out map[string]any) string {
		c, _ := out["connectors"].(map[string]any)
		return c["email"].(string) + "/" + c["sms"].(string)
	}

	// settings show only reads (issue 14): the database must exist first.
	runCLI(t, base, "", "migrate", "-o", "json")
	if got := connectors(runCLI(t, base, "", "settings", "show")); got != "not configured/not configured" {
		t.Fatalf("no connectors: %s", got)
	}
	smtp := map[string]string{"LATCH_SMTP_URL": "smtp://127.0.0.1:2525", "LATCH_SMTP_FROM": "latch@example.com"}
	out := runCLI(t, with(smtp), "", "settings", "show")
	if got := connectors(out); got != "smtp/not configured" {
		t.Fatalf("SMTP only: %s", got)
	}
	raw, _ := json.Marshal(out)
	for _, secret := range []string{"2525", base["LATCH_SECRET_KEY"]} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("settings show reveals %q: %s", secret, raw)
		}
	}
	both := with(map[string]string{"LATCH_SMTP_URL": smtp["LATCH_SMTP_URL"], "LATCH_SMTP_FROM": smtp["LATCH_SMTP_FROM"],
		"LATCH_SMS_WEBHOOK_URL": "http://127.0.0.1:9/sms", "LATCH_SMS_WEBHOOK_SECRET": "cli-test-webhook-secret-0123456789"})
	// settings set prints the result with the connectors too, and a
	// patched list is stored exactly as given.
	out = runCLI(t, both, `{"sign_in": {"methods": [{"identifier": "username", "password": true}, {"identifier": "email", "password": true}]}}`, "settings", "set", "--file", "-")
	if got := connectors(out); got != "smtp/webhook" {
		t.Fatalf("both connectors: %s", got)
	}
	methods := out["sign_in"].(map[string]any)["methods"].([]any)
	if len(methods) != 2 || methods[1].(map[string]any)["identifier"] != "email" || methods[1].(map[string]any)["verification_code"] != false {
		t.Fatalf("patched sign-in methods: %v", methods)
	}
	if strings.Contains(func() string { b, _ := json.Marshal(out); return string(b) }(), "cli-test-webhook-secret") {
		t.Fatal("settings set reveals the webhook secret")
	}
}

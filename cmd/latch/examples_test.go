package main

// Issue 14: the backends in examples/ run against a real server, and the
// README's verification snippets are the examples' own code.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const repoRoot = "../.."

// needTool finds a program the test needs: missing, it fails the test
// under CI=true and skips it elsewhere.
func needTool(t *testing.T, name, why string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (%s)", name, why)
		}
		t.Skipf("%s is not installed (%s); CI=true makes this a failure", name, why)
	}
	return path
}

// nodeModules is where .ci/run installs jose: LATCH_TEST_NODE_PATH, else
// its default cache directory.
func nodeModules(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LATCH_TEST_NODE_PATH")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "latch-examples-npm", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(dir, "jose", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("jose is not installed in %s (.ci/run installs it)", dir)
		}
		t.Skipf("jose is not installed in %s (run .ci/run once); CI=true makes this a failure", dir)
	}
	return dir
}

func TestExamples(t *testing.T) {
	dataVars := map[string]string{"LATCH_DATA_DIR": t.TempDir()}
	s := serve(t, dataVars)
	// A client and a user, as the README quickstart makes them.
	var client struct{ ClientID, ClientSecret string }
	out := mustLatch(t, dataVars, "client", "create", "--name", "examples", "--scope", "auth:execute users:write", "-o", "json")
	var created map[string]any
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	client.ClientID, client.ClientSecret = created["client_id"].(string), created["client_secret"].(string)
	tok := clientToken(t, s.url, client.ClientID, client.ClientSecret).json["access_token"].(string)
	const username, password = "alice", "correct horse battery staple"
	body, _ := json.Marshal(map[string]any{"username": username, "credentials": map[string]any{"password": password}})
	req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/users", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	user := doHTTP(t, req)
	if user.status != http.StatusCreated {
		t.Fatalf("create user: %d %s", user.status, user.body)
	}
	userID := user.json["id"].(string)

	env := []string{"ISSUER=" + s.url, "CLIENT_ID=" + client.ClientID, "CLIENT_SECRET=" + client.ClientSecret,
		"DEMO_USERNAME=" + username, "DEMO_PASSWORD=" + password}
	run := func(t *testing.T, extraEnv []string, name string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = repoRoot
		cmd.Env = append(append(environ(nil), env...), extraEnv...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.String(), stderr.String())
		}
		for _, want := range []string{"client token: ok", "authenticated: session ", "verified: sub=" + userID + "\n",
			"refreshed: ok", "logged out: ok"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%s: output lacks %q:\n%s", name, want, stdout.String())
			}
		}
	}
	t.Run("go", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "example")
		if out, err := exec.Command("go", "build", "-o", bin, "../../examples/go").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		run(t, nil, bin)
	})
	t.Run("node", func(t *testing.T) {
		node := needTool(t, "node", "the Node example")
		run(t, []string{"NODE_PATH=" + nodeModules(t), "NODE_NO_WARNINGS=1"}, node, "examples/node/backend.js")
	})
	t.Run("python", func(t *testing.T) {
		python := needTool(t, "python3", "the Python example")
		run(t, nil, python, "examples/python/backend.py")
	})
}

// The README's verification snippets are lines of the examples (so they
// compile and run today); the PyJWT one, which needs PyPI, is at least
// valid Python.
func TestREADMEVerificationSnippets(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(string(raw))
	for lang, example := range map[string]string{"go": "examples/go/main.go", "js": "examples/node/backend.js"} {
		if len(blocks[lang]) != 1 {
			t.Errorf("README has %d %s blocks, want 1", len(blocks[lang]), lang)
			continue
		}
		src, err := os.ReadFile(filepath.Join(repoRoot, example))
		if err != nil {
			t.Fatal(err)
		}
		if !containsLines(string(src), blocks[lang][0]) {
			t.Errorf("the README's %s snippet is not a part of %s:\n%s", lang, example, blocks[lang][0])
		}
	}
	if len(blocks["python"]) != 1 || !strings.Contains(blocks["python"][0], "jwt.decode(") {
		t.Fatalf("README python blocks: %v", blocks["python"])
	}
	python := needTool(t, "python3", "to check the PyJWT snippet's syntax")
	cmd := exec.Command(python, "-c", "import ast, sys; ast.parse(sys.stdin.read())")
	cmd.Stdin = strings.NewReader(blocks["python"][0])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the README's PyJWT snippet is not valid Python: %v\n%s", err, out)
	}
}

// fencedBlocks returns the README's fenced code blocks by language, with
// the list indentation removed.
func fencedBlocks(text string) map[string][]string {
	out := map[string][]string{}
	var lang string
	var cur []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case !in && strings.HasPrefix(l, "```"):
			in, lang, cur = true, strings.TrimPrefix(l, "```"), nil
		case in && l == "```":
			in = false
			out[lang] = append(out[lang], strings.Join(cur, "\n"))
		case in:
			cur = append(cur, strings.TrimPrefix(line, "   "))
		}
	}
	return out
}

// containsLines reports whether snippet's lines, whitespace-trimmed, occur
// consecutively in src.
func containsLines(src, snippet string) bool {
	trim := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	have, want := trim(src), trim(snippet)
	for i := 0; i+len(want) <= len(have); i++ {
		match := true
		for j := range want {
			if have[i+j] != want[j] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

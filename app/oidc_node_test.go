package app_test

// Issue 15: Node's openid-client (v6) as the relying party completes a
// sign-in with the authorization code flow, PKCE and nonce, for a
// confidential and a public client. openid-client lives in
// $LATCH_TEST_NODE_MODULES/node_modules (.ci/run installs it there); without
// node or the package the test is skipped — and fails under CI=true.

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// nodeRP is the relying party script: it prints the authorization URL,
// reads the callback URL on stdin, redeems the code with
// authorizationCodeGrant (checking state, nonce and the PKCE verifier) and
// prints the ID token's claims.
const nodeRP = `
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [issuer, clientId, secret, redirectUri] = process.argv.slice(2);
const config = await client.discovery(new URL(issuer), clientId, secret || undefined,
  secret ? undefined : client.None(), { execute: [client.allowInsecureRequests] });
const verifier = client.randomPKCECodeVerifier();
const challenge = await client.calculatePKCECodeChallenge(verifier);
const nonce = client.randomNonce();
const state = client.randomState();
const url = client.buildAuthorizationUrl(config, { redirect_uri: redirectUri, scope: 'openid email',
  code_challenge: challenge, code_challenge_method: 'S256', nonce, state });
console.log(JSON.stringify({ url: url.href }));
const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  try {
    const tokens = await client.authorizationCodeGrant(config, new URL(line), {
      pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
    console.log(JSON.stringify({ claims: tokens.claims(), access: !!tokens.access_token }));
  } catch (e) {
    console.log(JSON.stringify({ error: String(e && e.message || e), cause: e && e.cause && JSON.stringify(e.cause) }));
  }
  break;
}
process.exit(0);
`

// nodeModules finds openid-client, or skips (fails under CI).
func nodeModules(t *testing.T) (node, dir string) {
	t.Helper()
	fail := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (.ci/run installs it)")
		}
		t.Skip(msg + "; Node relying-party test skipped")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		fail("node is not installed")
	}
	dir = os.Getenv("LATCH_TEST_NODE_MODULES")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "latch-ci", "node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client", "package.json")); err != nil {
		fail("openid-client is not installed in " + dir)
	}
	return node, dir
}

func TestAuthorizationCodeNodeOpenIDClient(t *testing.T) {
	t.Parallel()
	node, modules := nodeModules(t)
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		t.Parallel()
		f := expStart(t, b)
		u := f.user(t)
		for _, typ := range []string{token.ClientWeb, token.ClientSPA} {
			t.Run(typ, func(t *testing.T) {
				r := f.newRP(t, token.NewClient{Type: typ})
				// ES modules resolve packages from the script's directory up.
				dir := t.TempDir()
				if err := os.Symlink(filepath.Join(modules, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
					t.Fatal(err)
				}
				script := filepath.Join(dir, "rp.mjs")
				if err := os.WriteFile(script, []byte(nodeRP), 0o644); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, node, script, f.URL, r.client.ID, r.secret, rpRedirect)
				stdin, _ := cmd.StdinPipe()
				stdout, _ := cmd.StdoutPipe()
				var stderr strings.Builder
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() { _ = cmd.Wait() }()
				lines := bufio.NewScanner(stdout)
				next := func() map[string]any {
					if !lines.Scan() {
						t.Fatalf("openid-client ended: %s", stderr.String())
					}
					out := map[string]any{}
					if err := json.Unmarshal(lines.Bytes(), &out); err != nil {
						t.Fatalf("openid-client printed %q", lines.Text())
					}
					return out
				}
				start := next()
				authURL, _ := start["url"].(string)
				if !strings.HasPrefix(authURL, f.URL+"/oidc/auth?") {
					t.Fatalf("authorization URL %q", authURL)
				}
				back := f.browser(t).authorize(authURL, u.Username, u.Password)
				if _, err := stdin.Write([]byte(back.String() + "\n")); err != nil {
					t.Fatal(err)
				}
				_ = stdin.Close()
				res := next()
				claims, _ := res["claims"].(map[string]any)
				if claims == nil || claims["sub"] != u.ID || claims["email"] != u.Email || claims["azp"] != r.client.ID || res["access"] != true {
					t.Fatalf("openid-client: %v (%s)", res, stderr.String())
				}
			})
		}
	})
}

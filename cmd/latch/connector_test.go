package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// SAML: Latch makes the SP key pair; the key never comes out.
	saml := cli(`{"entity_id": "https://idp.example.com", "sso_url": "https://idp.example.com/sso", "certificate": "`+cliCert(t)+`"}`,
		"connector", "create", "sso", "--name", "Acme SAML", "--provider", "saml", "--trust-upstream-mfa", "--config-file", "-")
	sp, _ := saml["service_provider"].(map[string]any)
	if saml["trust_upstream_mfa"] != true || saml["has_client_secret"] != true || sp["acs_url"] == nil ||
		!strings.HasSuffix(sp["acs_url"].(string), "/api/authn/saml/"+saml["id"].(string)) {
		t.Fatalf("create saml: %v", saml)
	}
	for _, v := range []map[string]any{saml, cli("", "connector", "show", "sso", saml["id"].(string))} {
		if raw, _ := json.Marshal(v); strings.Contains(string(raw), "PRIVATE KEY") || !strings.Contains(string(raw), "sp_certificate") {
			t.Fatalf("saml connector output: %s", raw)
		}
	}
	cli("", "connector", "delete", "sso", saml["id"].(string))
	if out := cli("", "connector", "delete", "sso", id); out["deleted"] != id {
		t.Fatalf("delete: %v", out)
	}
	if list := cli("", "connector", "list", "sso"); len(list["connectors"].([]any)) != 0 {
		t.Fatalf("list after delete: %v", list)
	}
}

// cliCert is a self-signed certificate (base64 DER, as IdP metadata has it).
func cliCert(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

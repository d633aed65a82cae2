package main

// Issue 14: no Docker engine runs in CI, so the image and compose file are
// checked as configuration; the pieces they run (latch healthcheck, the
// issuer of LATCH_ADDR=:8080) are tested for real elsewhere in this package.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/latch-dev/latch/config"
)

func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, bad := range []string{"VOLUME", "curl"} {
		if regexp.MustCompile(`(?m)^[^#]*\b` + bad + `\b`).MatchString(df) {
			t.Errorf("the Dockerfile still uses %s", bad)
		}
	}
	for _, want := range []string{
		`CMD ["latch", "healthcheck"]`,
		"LATCH_ADDR=:8080",
		"-X github.com/latch-dev/latch/buildinfo.linked=${VERSION}",
		"USER 10001:10001",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}

func TestComposeFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Healthcheck struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	latch, ok := compose.Services["latch"]
	if !ok {
		t.Fatal("no latch service")
	}
	// Published on loopback unless the operator says otherwise.
	if len(latch.Ports) != 1 || !strings.HasPrefix(latch.Ports[0], "${LATCH_BIND:-127.0.0.1}:") {
		t.Errorf("ports %v: want a 127.0.0.1 binding by default", latch.Ports)
	}
	if got := strings.Join(latch.Healthcheck.Test, " "); got != "CMD latch healthcheck --path /readyz" {
		t.Errorf("healthcheck %q", got)
	}
	env := latch.Environment
	if env["LATCH_TRUST_PROXY"] == "" || env["LATCH_ADDR"] != ":8080" || env["LATCH_ENV"] != "production" {
		t.Errorf("environment %v", env)
	}
	// Every variable named in the file is a real setting.
	names := regexp.MustCompile(`\bLATCH_[A-Z0-9_]+`).FindAllString(string(raw), -1)
	var environ []string
	for _, n := range names {
		if n != "LATCH_BIND" && n != "LATCH_PORT" { // compose's own knobs
			environ = append(environ, n+"=x")
		}
	}
	if unknown := config.UnknownVariables(environ); len(unknown) > 0 {
		t.Errorf("docker-compose.yml names variables that are no setting: %v", unknown)
	}
	// The reverse-proxy example is there, with the proxy-trust setting.
	if !strings.Contains(string(raw), "reverse-proxy") || !strings.Contains(string(raw), "LATCH_TRUST_PROXY=true") {
		t.Error("no TLS reverse-proxy example mentioning LATCH_TRUST_PROXY=true")
	}
}

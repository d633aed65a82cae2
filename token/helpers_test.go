package token

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/store"
)

// postgresEnv names the PostgreSQL test DSN (URL form). When it is set every
// database test also runs on PostgreSQL, in a private schema.
const postgresEnv = "LATCH_TEST_POSTGRES_DSN"

const (
	testIssuer   = "https://latch.test"
	testAPI      = "https://latch.test/api"
	testResource = "https://api.example.com"
)

// eachDB runs fn against a fresh migrated SQLite database and, when
// LATCH_TEST_POSTGRES_DSN is set, a fresh PostgreSQL schema.
func eachDB(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var rawURL string
			if name == "sqlite" {
				rawURL = "sqlite://" + t.TempDir() + "/t.db"
			} else {
				if os.Getenv(postgresEnv) == "" {
					t.Skip(postgresEnv + " is not set; PostgreSQL variant skipped")
				}
				rawURL = postgresSchemaURL(t)
			}
			ctx := context.Background()
			db, err := store.Open(ctx, rawURL, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.Migrate(ctx, Migrations()); err != nil {
				t.Fatal(err)
			}
			fn(t, db)
		})
	}
}

// postgresSchemaURL creates a private schema, dropped after the test, and
// returns the DSN with search_path pointing at it.
func postgresSchemaURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv(postgresEnv)
	ctx := context.Background()
	admin, err := store.Open(ctx, base, store.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatalf("postgres at %s: %v", postgresEnv, err)
	}
	schema := "latch_tok_" + credentials.RandomID(12)
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.Exec("DROP SCHEMA " + schema + " CASCADE").Error
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s must be a postgres:// URL: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// testSecretKey seals signing keys; one per test binary, so that several
// services over one database (replicas) share it like a deployment does.
var testSecretKey = func() []byte {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return key
}()

// newTestService returns a token service with keys, over db.
func newTestService(t *testing.T, db *store.DB, mod ...func(*Options)) *Service {
	t.Helper()
	sealer, err := credentials.NewSealer(testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Issuer: testIssuer, APIResource: testAPI,
		ClientTokenTTL: time.Hour, AccessTokenTTL: time.Hour, IDTokenTTL: 30 * time.Minute,
		RefreshTokenTTL: 14 * 24 * time.Hour, SigningAlg: "ES256",
		KeyCacheTTL: time.Minute, ClientCacheTTL: time.Second,
	}
	for _, m := range mod {
		m(&opts)
	}
	s := New(db, sealer, opts)
	if err := s.Keys.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// newTestClient registers a client allowed testResource.
func newTestClient(t *testing.T, s *Service, grants ...string) *Client {
	t.Helper()
	c, _, err := s.Clients.Create(context.Background(), NewClient{Name: "backend", GrantTypes: grants,
		Scopes: []string{ScopeAuthExecute}, Resources: []string{testResource}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testGrant is a typical first grant (a password sign-in) for client.
func testGrant(client *Client) UserGrant {
	now := time.Now().UTC()
	return UserGrant{
		ClientID: client.ID, UserID: "user-" + credentials.RandomID(8), SessionID: "sess-" + credentials.RandomID(8),
		AuthTime: now.Add(-time.Minute), AMR: []string{"pwd"}, Scope: "openid profile",
		SessionExpiresAt: now.Add(14 * 24 * time.Hour), WithRefresh: true,
	}
}

// issue issues tokens or fails the test.
func issue(t *testing.T, s *Service, g UserGrant) *UserTokens {
	t.Helper()
	out, err := s.IssueUserTokens(context.Background(), g)
	if err != nil {
		t.Fatalf("IssueUserTokens: %v", err)
	}
	return out
}

// rotate presents raw as the app does — InspectRefreshToken, then (where the
// app checks the session) RotateRefreshToken — and returns the successor.
func rotate(ctx context.Context, s *Service, client *Client, raw string) (string, *RefreshGrant, error) {
	rg, err := s.InspectRefreshToken(ctx, client, raw)
	if err != nil {
		return "", nil, err
	}
	next, _, err := s.RotateRefreshToken(ctx, rg)
	if err != nil {
		return "", rg, err
	}
	return next, rg, nil
}

// mustRotate rotates raw or fails the test.
func mustRotate(t *testing.T, s *Service, client *Client, raw string) string {
	t.Helper()
	next, _, err := rotate(context.Background(), s, client, raw)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return next
}

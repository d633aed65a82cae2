package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/store"
)

// A `latch serve` killed (-9) while five correct sign-ins of one user are
// in flight leaves their lockout reservations behind, the whole budget of
// 5. They stop counting after the reservation TTL: the next process never
// calls the user locked, and the right password signs in.
func TestE2EKilledServerLocksNobodyOut(t *testing.T) {
	for _, backend := range []apptest.Backend{apptest.SQLite, apptest.Postgres} {
		t.Run(string(backend), func(t *testing.T) {
			if backend == apptest.Postgres && os.Getenv(apptest.PostgresEnv) == "" {
				t.Skip(apptest.PostgresEnv + " is not set; PostgreSQL variant skipped")
			}
			key, err := config.GenerateSecretKey()
			if err != nil {
				t.Fatal(err)
			}
			dataDir := t.TempDir()
			dbURL := "sqlite://" + filepath.Join(dataDir, "latch.db")
			if backend == apptest.Postgres {
				dbURL = apptest.PostgresSchemaURL(t)
			}
			vars := map[string]string{
				"LATCH_DATABASE_URL": dbURL,
				"LATCH_DATA_DIR":     dataDir,
				"LATCH_SECRET_KEY":   base64.StdEncoding.EncodeToString(key),
				"LATCH_ISSUER":       "http://latch.crash.test",
				// Hashes of hundreds of milliseconds, one at a time: the
				// five sign-ins are all reserved long before they end.
				"LATCH_ARGON2_MEMORY_KIB": "65536", "LATCH_ARGON2_ITERATIONS": "6",
				"LATCH_HASH_CONCURRENCY": "1", "LATCH_HASH_QUEUE": "10", "LATCH_HASH_QUEUE_WAIT": "30s",
				"LATCH_LOCKOUT_RESERVATION_TTL": "6s", // the hash must end within half of it, even on a loaded machine
			}
			var created map[string]any
			if err := json.Unmarshal([]byte(mustLatch(t, vars, "client", "create", "--name", "crash",
				"--scope", "auth:execute users:read users:write", "--output", "json")), &created); err != nil {
				t.Fatal(err)
			}
			clientID, secret := created["client_id"].(string), created["client_secret"].(string)

			doomed := serve(t, vars)
			tok := clientToken(t, doomed.url, clientID, secret).json["access_token"].(string)
			post := func(base, path string, body any) *http.Request {
				raw, _ := json.Marshal(body)
				req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(raw))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				return req
			}
			const username, password = "crash-victim", "Crash!Passw0rd-9"
			user := doHTTP(t, post(doomed.url, "/v1/users", map[string]any{"username": username,
				"credentials": map[string]any{"password": password}}))
			if user.status != http.StatusCreated {
				t.Fatalf("create user: %d %s", user.status, user.body)
			}
			userID := user.json["id"].(string)

			db, err := store.Open(context.Background(), dbURL, store.Options{MaxOpenConns: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			reservations := func() int64 {
				var n int64
				if err := db.Raw("SELECT COALESCE(MAX(pending + pending_prev), 0) FROM sentinel_counters WHERE key = ?",
					"user:"+userID+":account").Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				return n
			}
			for i := 0; i < 5; i++ {
				go func() {
					if res, err := http.DefaultClient.Do(post(doomed.url, "/v1/auth/password/authenticate",
						map[string]any{"username": username, "password": password})); err == nil {
						res.Body.Close()
					}
				}()
			}
			eventually(t, 30*time.Second, "five reservations", func() bool { return reservations() == 5 })
			doomed.kill() // SIGKILL: nothing is settled
			if n := reservations(); n != 5 {
				t.Fatalf("%d reservations after the kill, want the 5 it left", n)
			}

			next := serve(t, vars)
			req, _ := http.NewRequest(http.MethodGet, next.url+"/v1/users/"+userID, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			if got := doHTTP(t, req); got.status != http.StatusOK || got.json["locked_seconds"] != float64(0) {
				t.Fatalf("users API after the kill: %d %s", got.status, got.body)
			}
			if res := doHTTP(t, post(next.url, "/v1/auth/password/authenticate",
				map[string]any{"username": username, "password": password})); res.status != http.StatusOK {
				t.Fatalf("sign in after the kill: %d %s", res.status, res.body)
			}
		})
	}
}

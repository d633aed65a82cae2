// Command orgscale measures what organizations cost at scale, on a real
// `latch serve` process with the production argon2id parameters:
//
//	go run ./bench/orgscale -db sqlite
//	go run ./bench/orgscale -db postgres
//
// It bulk-loads (straight into the database, in large transactions) 10^4
// organizations, 10^5 users and 10^6 memberships (each with a role), then
// prints:
//
//   - the p50/p99 of POST /v1/auth/password/authenticate for one member
//     without org_id, with org_id, and by e-mail without org_id (domain
//     discovery), the three interleaved so that drift on a shared machine
//     hits them alike, and the p99 ratio with org_id / without (target:
//     within ±10%);
//   - the latency of GET /v1/users/{id}/organizations for a user with 10
//     memberships before the load (an almost empty table) and after it, and
//     for one with 1,000: it follows the user's memberships, not the table.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // schema setup on PostgreSQL

	"github.com/latch-dev/latch/bench/internal/harness"
	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/store"
)

func main() {
	db := flag.String("db", "sqlite", "database: sqlite or postgres")
	dsn := flag.String("pg", envOr("LATCH_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL base URL")
	orgs := flag.Int("orgs", 10_000, "organizations to load")
	users := flag.Int("users", 100_000, "users to load")
	members := flag.Int("memberships", 1_000_000, "memberships to load (spread evenly over the users)")
	samples := flag.Int("samples", 600, "sign-ins per variant")
	flag.Parse()
	if *members%*orgs != 0 || *members / *orgs > *users || *orgs > *users || *orgs < 1000 {
		fmt.Fprintln(os.Stderr, "orgscale: need 1000 <= orgs <= users, memberships a multiple of orgs, and memberships/orgs <= users")
		os.Exit(2)
	}
	if err := run(*db, *dsn, *orgs, *users, *members, *samples); err != nil {
		fmt.Fprintln(os.Stderr, "orgscale:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type bench struct {
	srv   *harness.Server
	hc    *http.Client
	token string
}

func run(dbKind, dsn string, nOrgs, nUsers, nMembers, samples int) error {
	ctx := context.Background()
	dbURL, cleanup, err := database(dbKind, dsn)
	if err != nil {
		return err
	}
	defer cleanup()
	// The harness makes a SQLite file of its own unless told which
	// database to use: the bench needs to know it, to load it.
	srv, err := harness.Start(ctx, harness.Options{DB: "sqlite", Env: map[string]string{"LATCH_DATABASE_URL": dbURL}})
	if err != nil {
		return err
	}
	defer srv.Close()
	client, err := srv.CreateClient("auth:execute users:read users:write management")
	if err != nil {
		return err
	}
	b := &bench{srv: srv, hc: harness.HTTPClient()}
	if b.token, err = srv.ClientToken(b.hc, client); err != nil {
		return err
	}

	// The probe: a member of 10 organizations, one of which lists the
	// domain of its e-mail (for discovery), created through the API.
	roles := []string{"admin", "billing", "viewer", "editor", "auditor"}
	for i, r := range roles {
		if _, err := b.call("POST", "/v1/organization-roles", map[string]any{"name": r, "permissions": []string{r + ":read", fmt.Sprintf("p%d", i)}}, 201); err != nil {
			return err
		}
	}
	password := "correct horse battery staple 7"
	probe, err := b.call("POST", "/v1/users", map[string]any{"username": "probe", "primary_email": "probe@probe.example",
		"credentials": map[string]any{"password": password}}, 201)
	if err != nil {
		return err
	}
	probeID := probe["id"].(string)
	var probeOrg string
	for i := 0; i < 10; i++ {
		body := map[string]any{"name": fmt.Sprintf("probe org %d", i)}
		if i == 0 {
			body["domains"] = []string{"probe.example"}
		}
		org, err := b.call("POST", "/v1/organizations", body, 201)
		if err != nil {
			return err
		}
		if i == 0 {
			probeOrg = org["id"].(string)
		}
		if _, err := b.call("POST", "/v1/organizations/"+org["id"].(string)+"/members",
			map[string]any{"user_id": probeID, "roles": []string{"admin", "viewer"}}, 201); err != nil {
			return err
		}
	}
	before, err := b.latency(200, "GET", "/v1/users/"+probeID+"/organizations", nil)
	if err != nil {
		return err
	}

	fmt.Printf("loading %d organizations, %d users, %d memberships into %s...\n", nOrgs, nUsers, nMembers, dbKind)
	start := time.Now()
	heavyID, err := load(ctx, dbURL, probeID, nOrgs, nUsers, nMembers)
	if err != nil {
		return err
	}
	fmt.Printf("loaded in %s\n\n", time.Since(start).Round(time.Second))

	after, err := b.latency(200, "GET", "/v1/users/"+probeID+"/organizations", nil)
	if err != nil {
		return err
	}
	heavy, err := b.latency(100, "GET", "/v1/users/"+heavyID+"/organizations", nil)
	if err != nil {
		return err
	}

	variants := []struct {
		name string
		body map[string]any
	}{
		{"without org_id", map[string]any{"username": "probe", "password": password}},
		{"with org_id", map[string]any{"username": "probe", "password": password, "org_id": probeOrg}},
		{"e-mail, discovery", map[string]any{"username": "probe@probe.example", "username_type": "email", "password": password}},
	}
	// Warm up (connections, caches, the hasher), then interleave.
	for i := 0; i < 5; i++ {
		for _, v := range variants {
			if _, err := b.call("POST", "/v1/auth/password/authenticate", v.body, 200); err != nil {
				return err
			}
		}
	}
	// The variants sign in in the contexts they should: none, then the
	// probe's organization (named, then discovered).
	for j, v := range variants {
		res, err := b.call("POST", "/v1/auth/password/authenticate", v.body, 200)
		if err != nil {
			return err
		}
		want := probeOrg
		if j == 0 {
			want = ""
		}
		if got := orgClaim(res["access_token"]); got != want {
			return fmt.Errorf("%s: access token org_id %q, want %q", v.name, got, want)
		}
	}
	lat := make([][]time.Duration, len(variants))
	for i := 0; i < samples; i++ {
		for j, v := range variants {
			t0 := time.Now()
			if _, err := b.call("POST", "/v1/auth/password/authenticate", v.body, 200); err != nil {
				return err
			}
			lat[j] = append(lat[j], time.Since(t0))
		}
	}
	fmt.Printf("POST /v1/auth/password/authenticate, %d sequential sign-ins per variant, interleaved:\n", samples)
	for j, v := range variants {
		fmt.Printf("  %-18s p50 %7s  p90 %7s  p99 %7s\n", v.name, pct(lat[j], 50), pct(lat[j], 90), pct(lat[j], 99))
	}
	ratio := func(p float64) float64 { return float64(pct(lat[1], p)) / float64(pct(lat[0], p)) }
	fmt.Printf("  with org_id / without: p50 %.3f, p90 %.3f, p99 %.3f (target: p99 within 0.90-1.10)\n\n", ratio(50), ratio(90), ratio(99))
	fmt.Println("GET /v1/users/{id}/organizations:")
	for _, row := range []struct {
		what string
		l    []time.Duration
	}{{"10 memberships, before the load", before}, {fmt.Sprintf("10 memberships, %d in the table", nMembers), after},
		{fmt.Sprintf("1000 memberships, %d in the table", nMembers), heavy}} {
		fmt.Printf("  %-40s p50 %7s  p99 %7s\n", row.what, pct(row.l, 50), pct(row.l, 99))
	}
	return nil
}

// database prepares an empty database for the server: a SQLite file or a
// private PostgreSQL schema, removed afterwards.
func database(kind, dsn string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "latch-orgscale-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if kind != "postgres" {
		return "sqlite://" + filepath.Join(dir, "latch.db"), cleanup, nil
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", cleanup, err
	}
	defer db.Close()
	schema := "latch_orgscale_" + credentials.RandomID(10)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		return "", cleanup, fmt.Errorf("postgres: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", cleanup, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		if db, err := sql.Open("pgx", dsn); err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
		cleanup()
	}, nil
}

// load bulk-inserts the organizations, users (sharing the probe's password
// hash), memberships and their roles, plus one user with 1,000
// memberships, whose id it returns.
func load(ctx context.Context, dbURL, probeID string, nOrgs, nUsers, nMembers int) (string, error) {
	db, err := store.Open(ctx, dbURL, store.Options{MaxOpenConns: 1})
	if err != nil {
		return "", err
	}
	defer db.Close()
	if db.Dialect == store.SQLite {
		// One connection, so the pragma holds for every statement below:
		// a page cache that fits the indexes being built.
		if err := db.WithContext(ctx).Exec("PRAGMA cache_size = -262144").Error; err != nil {
			return "", err
		}
	}
	var hash string
	if err := db.WithContext(ctx).Raw("SELECT password_hash FROM users WHERE id = ?", probeID).Scan(&hash).Error; err != nil {
		return "", err
	}
	var roleIDs []string
	if err := db.WithContext(ctx).Raw("SELECT id FROM organization_roles ORDER BY name").Scan(&roleIDs).Error; err != nil {
		return "", err
	}
	now := time.Now().UTC()
	orgID := func(i int) string { return fmt.Sprintf("o%07d", i) }
	userID := func(i int) string { return fmt.Sprintf("u%07d", i) }

	if err := bulk(ctx, db, "organizations (id, name, description, custom_data, mfa_required, created_at, updated_at)", nOrgs,
		func(i int) []any {
			return []any{orgID(i), fmt.Sprintf("bulk org %07d", i), "", "{}", i%10 == 0, now, now}
		}); err != nil {
		return "", err
	}
	// Every tenth organization lists a discovery domain, as real tenants do.
	if err := bulk(ctx, db, "organization_domains (organization_id, purpose, domain)", nOrgs/10,
		func(i int) []any { return []any{orgID(i * 10), "discovery", fmt.Sprintf("org%07d.example", i*10)} }); err != nil {
		return "", err
	}
	if err := bulk(ctx, db, "users (id, username, username_key, username_skeleton, password_hash, password_updated_at, name, custom_data, created_at, updated_at)",
		nUsers+1, func(i int) []any {
			name := fmt.Sprintf("bulk%07d", i)
			return []any{userID(i), name, name, name, hash, now, "", "{}", now, now}
		}); err != nil {
		return "", err
	}
	// Organization o has perOrg members, users o*step … o*step+perOrg-1
	// (mod nUsers), so every user is in perOrg/step organizations. Rows
	// come in primary-key order (organization, user), which keeps the
	// load an append rather than a million random B-tree inserts.
	perOrg, step := nMembers/nOrgs, max(1, nUsers/nOrgs)
	member := func(n int) (string, string) {
		o, j := n/perOrg, n%perOrg
		return orgID(o), userID((o*step + j) % nUsers)
	}
	if err := bulk(ctx, db, "organization_members (organization_id, user_id, created_at)", nOrgs*perOrg, func(n int) []any {
		o, u := member(n)
		return []any{o, u, now}
	}); err != nil {
		return "", err
	}
	if err := bulk(ctx, db, "organization_member_roles (organization_id, user_id, role_id)", nOrgs*perOrg, func(n int) []any {
		o, u := member(n)
		return []any{o, u, roleIDs[n%len(roleIDs)]}
	}); err != nil {
		return "", err
	}
	heavy := userID(nUsers) // the extra user: 1,000 memberships
	if err := bulk(ctx, db, "organization_members (organization_id, user_id, created_at)", 1000, func(i int) []any {
		return []any{orgID(i * (nOrgs / 1000)), heavy, now}
	}); err != nil {
		return "", err
	}
	return heavy, db.WithContext(ctx).Exec("ANALYZE").Error
}

// bulk inserts n rows into table (with its column list): on SQLite one
// prepared single-row statement (SQLite compiles a huge multi-row statement
// slowly), on PostgreSQL multi-row statements (one round trip for many
// rows); many rows per transaction either way.
func bulk(ctx context.Context, db *store.DB, table string, n int, row func(i int) []any) error {
	cols := strings.Count(table, ",") + 1
	placeholders := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	if db.Dialect == store.SQLite {
		sqlDB, err := db.DB.DB()
		if err != nil {
			return err
		}
		for done := 0; done < n; {
			tx, err := sqlDB.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			stmt, err := tx.PrepareContext(ctx, "INSERT INTO "+table+" VALUES "+placeholders)
			if err != nil {
				tx.Rollback()
				return err
			}
			for end := min(n, done+50_000); done < end; done++ {
				if _, err := stmt.ExecContext(ctx, row(done)...); err != nil {
					tx.Rollback()
					return fmt.Errorf("load %s: %w", strings.Fields(table)[0], err)
				}
			}
			stmt.Close()
			if err := tx.Commit(); err != nil {
				return err
			}
		}
		return nil
	}
	perStmt := 1000
	for done := 0; done < n; {
		tx := db.WithContext(ctx).Begin()
		for stmts := 0; stmts < 50 && done < n; stmts++ {
			k := min(perStmt, n-done)
			args := make([]any, 0, k*cols)
			for i := 0; i < k; i++ {
				args = append(args, row(done+i)...)
			}
			sqlText := "INSERT INTO " + table + " VALUES " + strings.TrimSuffix(strings.Repeat(placeholders+", ", k), ", ")
			if err := tx.Exec(sqlText, args...).Error; err != nil {
				tx.Rollback()
				return fmt.Errorf("load %s: %w", strings.Fields(table)[0], err)
			}
			done += k
		}
		if err := tx.Commit().Error; err != nil {
			return err
		}
	}
	return nil
}

// call sends a JSON request with the ClientAccessToken and wants status.
func (b *bench) call(method, path string, body any, want int) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, b.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+b.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := b.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out, nil
}

// latency times n sequential requests.
func (b *bench) latency(n int, method, path string, body any) ([]time.Duration, error) {
	var out []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := b.call(method, path, body, 200); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// orgClaim reads the org_id claim of an access token (unverified: the
// tests verify Latch's signatures; here only the context matters).
func orgClaim(tok any) string {
	raw, _ := tok.(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "?"
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "?"
	}
	var claims struct {
		OrgID string `json:"org_id"`
	}
	_ = json.Unmarshal(payload, &claims)
	return claims.OrgID
}

// pct is the p-th percentile of l.
func pct(l []time.Duration, p float64) time.Duration {
	s := append([]time.Duration{}, l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p/100)].Round(10 * time.Microsecond)
}

package main

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/latch-dev/latch/store"
)

// hotQuery is one statement the server runs per request, in the shape it
// sends it (experience/users.go, sentinel.go, sessions.go, factors.go,
// codes.go, reset.go, interaction.go; token/refresh.go, service.go; select
// lists shortened), with sample arguments.
type hotQuery struct {
	name string
	sql  string // ? placeholders
	args func(p *population, i int) []any
}

var hotQueries = []hotQuery{
	{"user by username", `SELECT * FROM users WHERE username_key = ? LIMIT 1`,
		func(p *population, i int) []any { return []any{username(i)} }},
	{"user by email", `SELECT * FROM users WHERE primary_email = ? LIMIT 1`,
		func(p *population, i int) []any { return []any{email(i)} }},
	{"user by phone", `SELECT * FROM users WHERE primary_phone = ? LIMIT 1`,
		func(p *population, i int) []any { return []any{phone(i)} }},
	{"user by id (sign-in update)", `UPDATE users SET last_sign_in_at = ?, updated_at = ? WHERE id = ?`,
		func(p *population, i int) []any { return []any{p.now, p.now, p.userID(i)} }},
	{"sentinel by key (lock check)", `SELECT locked_until FROM sentinel_counters WHERE key = ?`,
		func(p *population, i int) []any { return []any{"user:" + p.userID(i) + ":account"} }},
	{"sentinel by key (settle)", `DELETE FROM sentinel_counters WHERE key = ? AND (locked_until IS NULL OR locked_until <= ?)`,
		func(p *population, i int) []any { return []any{"user:" + p.userID(i) + ":account", p.now} }},
	{"MFA factors of a user", `SELECT id, user_id, type, created_at, last_used_at FROM mfa_factors WHERE user_id = ? ORDER BY created_at`,
		func(p *population, i int) []any { return []any{p.userID(i)} }},
	{"session by id (with its user)", `SELECT s.*, u.id AS u_id, u.password_hash AS u_password_hash FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`,
		func(p *population, i int) []any { return []any{p.sessionID(i)} }},
	{"refresh token by digest (with its family)", `SELECT t.id, t.family_id, t.used_at, f.client_id, f.session_id, f.revoked_at
FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.digest = ?`,
		func(p *population, i int) []any {
			return []any{"0000000000000000000000000000000000000000000000000000000000000000"}
		}},
	{"refresh rotation: consume the token", `UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL`,
		func(p *population, i int) []any { return []any{p.now, p.tokenID(i)} }},
	{"refresh rotation: touch the family", `UPDATE refresh_families SET rotated_at = ?, rotations = rotations + 1 WHERE id = ? AND revoked_at IS NULL`,
		func(p *population, i int) []any { return []any{p.now, p.familyID(i)} }},
	{"revoked access token by jti", `SELECT count(*) FROM revoked_tokens WHERE jti = ? LIMIT 1`,
		func(p *population, i int) []any { return []any{"jti"} }},
	// Housekeeping that runs inside requests: each code sent, reset token
	// issued or interaction started first deletes the long-expired ones.
	{"expired codes (each code sent)", `DELETE FROM verification_codes WHERE expires_at < ?`,
		func(p *population, i int) []any { return []any{p.now.Add(-24 * time.Hour)} }},
	{"expired reset tokens (each one issued)", `DELETE FROM reset_tokens WHERE expires_at < ?`,
		func(p *population, i int) []any { return []any{p.now.Add(-time.Hour)} }},
	{"expired interactions (each one started)", `DELETE FROM interactions WHERE expires_at < ?`,
		func(p *population, i int) []any { return []any{p.now} }},
}

// plan is the query plan of one hot query and whether it reads through an
// index (no full scan of a table).
type plan struct {
	name    string
	lines   []string
	indexed bool
	note    string
}

// fullScan matches a plan line that reads a whole table: PostgreSQL's "Seq
// Scan on t", SQLite's "SCAN t" (SQLite says SEARCH for an index lookup).
var fullScan = regexp.MustCompile(`Seq Scan|^SCAN `)

func indexed(lines []string) bool {
	for _, l := range lines {
		if fullScan.MatchString(strings.TrimLeft(l, " ->")) {
			return false
		}
	}
	return true
}

// explain returns the plan of every hot query. On PostgreSQL it is the
// generic plan, the one the server's prepared statements end up using
// (EXPLAIN EXECUTE of a PREPAREd statement under plan_cache_mode =
// force_generic_plan); a sequential scan there is checked again with
// enable_seqscan off, which tells a missing index (still a scan) from the
// planner's preference for reading a table of a page or two whole. On
// SQLite, EXPLAIN QUERY PLAN.
func explain(ctx context.Context, db *store.DB, p *population, i int) ([]plan, error) {
	sqlDB, err := db.DB.DB()
	if err != nil {
		return nil, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pg := db.Dialect == store.Postgres
	if pg {
		if _, err := conn.ExecContext(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
			return nil, err
		}
		defer conn.ExecContext(ctx, "RESET plan_cache_mode")
	}
	var out []plan
	for _, q := range hotQueries {
		args := q.args(p, i)
		lines, err := planOf(ctx, conn, pg, q.sql, args)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.name, err)
		}
		pl := plan{name: q.name, lines: lines, indexed: indexed(lines)}
		if !pl.indexed && pg {
			if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
				return nil, err
			}
			forced, err := planOf(ctx, conn, pg, q.sql, args)
			conn.ExecContext(ctx, "RESET enable_seqscan")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", q.name, err)
			}
			if indexed(forced) {
				pl.indexed, pl.note = true, "the planner prefers scanning this small table; with enable_seqscan off:"
				pl.lines = append(pl.lines, forced...)
			}
		}
		out = append(out, pl)
	}
	return out, nil
}

// planOf returns the plan lines of one statement.
func planOf(ctx context.Context, conn *sql.Conn, pg bool, query string, args []any) ([]string, error) {
	var lines []string
	if !pg {
		rows, err := conn.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			return nil, fmt.Errorf("explain: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				return nil, err
			}
			lines = append(lines, detail)
		}
		return lines, rows.Err()
	}
	n := 0
	stmt := regexp.MustCompile(`\?`).ReplaceAllStringFunc(query, func(string) string { n++; return fmt.Sprintf("$%d", n) })
	if _, err := conn.ExecContext(ctx, "PREPARE latch_scale_q AS "+stmt); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	defer conn.ExecContext(ctx, "DEALLOCATE latch_scale_q")
	lits := make([]string, len(args))
	for k, a := range args {
		lits[k] = literal(a)
	}
	rows, err := conn.QueryContext(ctx, "EXPLAIN EXECUTE latch_scale_q("+strings.Join(lits, ", ")+")")
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	return lines, rows.Err()
}

// literal renders a sample argument as an SQL literal (for EXECUTE).
func literal(a any) string {
	switch v := a.(type) {
	case time.Time:
		return "'" + v.Format(time.RFC3339Nano) + "'"
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	default:
		return fmt.Sprint(v)
	}
}

package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/app/apptest"
)

// Every statement the server runs per request reads through an index, so
// its cost does not grow with the number of users (DESIGN §8; bench/scale
// measures the latency). On PostgreSQL sequential scans are disabled for the
// check — on these near-empty tables the planner would rightly prefer them —
// so a scan in the plan means no index can serve the statement.
func TestPerRequestStatementsUseAnIndex(t *testing.T) {
	now := time.Now().UTC()
	statements := []struct {
		sql  string
		args []any
	}{
		{`SELECT * FROM users WHERE username_key = ? LIMIT 1`, []any{"alice"}},
		{`SELECT * FROM users WHERE primary_email = ? LIMIT 1`, []any{"alice@example.com"}},
		{`SELECT * FROM users WHERE primary_phone = ? LIMIT 1`, []any{"+14155550123"}},
		{`UPDATE users SET last_sign_in_at = ? WHERE id = ?`, []any{now, "u"}},
		{`SELECT locked_until FROM sentinel_counters WHERE key = ?`, []any{"user:u:account"}},
		{`SELECT id FROM mfa_factors WHERE user_id = ? ORDER BY created_at`, []any{"u"}},
		{`SELECT s.id, u.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`, []any{"s"}},
		{`SELECT t.id, f.id FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.digest = ?`, []any{"d"}},
		{`UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL`, []any{now, "t"}},
		{`SELECT count(*) FROM revoked_tokens WHERE jti = ?`, []any{"j"}},
		// Housekeeping inside requests: sending a code, issuing a reset
		// token, starting an interaction.
		{`DELETE FROM verification_codes WHERE expires_at < ?`, []any{now}},
		{`DELETE FROM reset_tokens WHERE expires_at < ?`, []any{now}},
		{`DELETE FROM interactions WHERE expires_at < ?`, []any{now}},
		// The housekeeping's batched purges (store.DeleteBatches) read
		// the dead rows through an index, not the live ones.
		{`DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < ? LIMIT ?) AND (expires_at < ?)`, []any{now, 500, now}},
		{`DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE revoked_at < ? LIMIT ?) AND (revoked_at < ?)`, []any{now, 500, now}},
		{`DELETE FROM sentinel_counters WHERE key IN (SELECT key FROM sentinel_counters WHERE ` + sentinelPurge + ` LIMIT ?) AND (` + sentinelPurge + `)`,
			[]any{now, now.UnixMilli(), now, now, 500, now, now.UnixMilli(), now, now}},
	}
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		ctx := context.Background()
		db := open(t, apptest.DatabaseURL(t, b))
		if _, err := db.Migrate(ctx, app.Migrations()...); err != nil {
			t.Fatal(err)
		}
		sqlDB, err := db.DB.DB()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		explain, scan := "EXPLAIN QUERY PLAN ", "SCAN "
		if b == apptest.Postgres {
			explain, scan = "EXPLAIN ", "Seq Scan"
			if _, err := conn.ExecContext(ctx, "SET enable_seqscan = off"); err != nil {
				t.Fatal(err)
			}
		}
		for _, st := range statements {
			q := st.sql
			if b == apptest.Postgres {
				for n := 1; strings.Contains(q, "?"); n++ {
					q = strings.Replace(q, "?", "$"+string(rune('0'+n)), 1)
				}
			}
			rows, err := conn.QueryContext(ctx, explain+q, st.args...)
			if err != nil {
				t.Fatalf("%s: %v", st.sql, err)
			}
			var plan []string
			for _, vals := range apptest.RowValues(t, rows) {
				plan = append(plan, vals[len(vals)-1].(string)) // the plan text is the last column on both engines
			}
			for _, line := range plan {
				if strings.Contains(line, scan) {
					t.Errorf("%s reads a whole table:\n%s", st.sql, strings.Join(plan, "\n"))
					break
				}
			}
		}
	})
}

// sentinelPurge is the condition of experience's purge of lockout counters.
const sentinelPurge = `updated_at < ? AND ((pending = 0 AND pending_prev = 0) OR pending_bucket < ?)
	AND ((locked_until IS NOT NULL AND locked_until < ?) OR (locked_until IS NULL AND (failures = 0 OR window_start < ?)))`

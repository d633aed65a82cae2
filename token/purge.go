package token

import (
	"context"
	"fmt"
	"time"
)

// PurgeBatch is how many rows one DELETE of the purge removes: small enough
// that no statement holds its locks for long (PostgreSQL) or blocks the
// single writer (SQLite) while requests wait, large enough to keep up.
const PurgeBatch = 500

// FlowPurge counts the rows PurgeAuthorizationFlow deleted, per table.
type FlowPurge struct {
	AuthRequests, Codes, BrowserSessions int64
}

// Total is the number of rows deleted.
func (p FlowPurge) Total() int64 { return p.AuthRequests + p.Codes + p.BrowserSessions }

// PurgeAuthorizationFlow deletes the authorization code flow's dead rows:
// authorization requests, codes and browser sessions that expired more than
// retain ago. Codes are kept retain past expiry on purpose: a replay of a
// used code still finds it and revokes what its first use issued (RFC 6749
// §4.1.2). Deletes go in batches of batch rows (PurgeBatch when <= 0), each
// its own statement, until a table has nothing left to purge or ctx ends.
// Idempotent and safe from every replica.
func (s *Service) PurgeAuthorizationFlow(ctx context.Context, retain time.Duration, batch int) (FlowPurge, error) {
	if batch <= 0 {
		batch = PurgeBatch
	}
	cutoff := s.now().Add(-retain)
	var out FlowPurge
	for _, t := range []struct {
		table, key string
		n          *int64
	}{
		{AuthRequest{}.TableName(), "id", &out.AuthRequests},
		{codeRow{}.TableName(), "digest", &out.Codes},
		{browserSessionRow{}.TableName(), "digest", &out.BrowserSessions},
	} {
		n, err := s.purgeBatches(ctx, t.table, t.key, cutoff, batch)
		*t.n = n
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// purgeBatches deletes expired rows of table in batches. The subquery form
// (DELETE … WHERE key IN (SELECT key … LIMIT n)) works alike on SQLite and
// PostgreSQL, which has no DELETE … LIMIT; the expires_at index serves it.
func (s *Service) purgeBatches(ctx context.Context, table, key string, cutoff time.Time, batch int) (int64, error) {
	var total int64
	q := fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE expires_at < ? LIMIT ?)", table, key, key, table)
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res := s.db.WithContext(ctx).Exec(q, cutoff, batch)
		if res.Error != nil {
			return total, fmt.Errorf("token: purge %s: %w", table, res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}

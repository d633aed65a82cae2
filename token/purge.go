package token

import (
	"context"
	"fmt"
	"time"
)

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
// §4.1.2). Deletes go in batches of batch rows (store.PurgeBatch when <= 0), each
// its own statement, until a table has nothing left to purge or ctx ends.
// Idempotent and safe from every replica.
func (s *Service) PurgeAuthorizationFlow(ctx context.Context, retain time.Duration, batch int) (FlowPurge, error) {
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

// purgeBatches deletes the rows of table that expired before cutoff, in
// batches; the expires_at index serves it.
func (s *Service) purgeBatches(ctx context.Context, table, key string, cutoff time.Time, batch int) (int64, error) {
	n, err := s.db.DeleteBatches(ctx, table, key, "expires_at < ?", batch, cutoff)
	if err != nil {
		return n, fmt.Errorf("token: %w", err)
	}
	return n, nil
}

package experience

import (
	"context"
	"fmt"
	"time"
)

// Purge counts the rows PurgeDead deleted, per table.
type Purge struct {
	Sessions, SentinelCounters int64
}

// Total is the number of rows deleted.
func (p Purge) Total() int64 { return p.Sessions + p.SentinelCounters }

// PurgeDead deletes the engine's dead rows, batch rows per statement
// (store.PurgeBatch when <= 0), until none is left or ctx ends. Idempotent
// and safe from every replica.
//
// Sessions go retain after they expired or were revoked. Nothing
// references a session by foreign key; the rows that name one by id
// (refresh-token families, authorization codes, browser sessions) treat a
// missing session as an ended one — as it already was — and its id, random,
// is never handed out again.
//
// Sentinel counters go once they protect nothing (see purgeSentinel).
func (e *Engine) PurgeDead(ctx context.Context, retain time.Duration, batch int) (Purge, error) {
	var out Purge
	cutoff := e.now().Add(-retain)
	// Two statements, each served by its own index, rather than one OR.
	for _, where := range []string{"expires_at < ?", "revoked_at < ?"} {
		n, err := e.db.DeleteBatches(ctx, "sessions", "id", where, batch, cutoff)
		out.Sessions += n
		if err != nil {
			return out, fmt.Errorf("experience: %w", err)
		}
	}
	n, err := e.purgeSentinel(ctx, cutoff, batch)
	out.SentinelCounters = n
	return out, err
}

// purgeSentinel deletes the sentinel counters untouched since cutoff that
// protect nothing: no reservation of theirs still counts, and their failures
// no longer count either — a lock that ended before cutoff (the counter
// restarts with the next attempt), no failures, or failures whose window
// ended before cutoff. A running lock, failures still inside their window
// and reservations in flight always stay: deleting them would unlock a key
// early or give back guesses.
//
// A key's window is the policy's, which the row does not record: the
// longest one the current settings apply (the lockout window, the
// per-recipient send window). Settings another replica changed a moment
// ago are covered by retain; a window raised later does not bring back
// failures that had already stopped counting under the one in force.
func (e *Engine) purgeSentinel(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return 0, err
	}
	window := time.Duration(max(settings.Lockout.WindowSeconds, settings.Code.SendWindowSeconds)) * time.Second
	// A reservation stops counting within the reservation TTL of its
	// bucket (milliseconds), far less than retain: a bucket older than
	// cutoff holds none that counts.
	n, err := e.db.DeleteBatches(ctx, "sentinel_counters", "key", `updated_at < ?
		AND ((pending = 0 AND pending_prev = 0) OR pending_bucket < ?)
		AND ((locked_until IS NOT NULL AND locked_until < ?)
			OR (locked_until IS NULL AND (failures = 0 OR window_start < ?)))`,
		batch, cutoff, cutoff.UnixMilli(), cutoff, cutoff.Add(-window))
	if err != nil {
		return n, fmt.Errorf("experience: sentinel: %w", err)
	}
	return n, nil
}

package experience

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/store"
)

// LockoutPolicy configures the sentinel.
type LockoutPolicy struct {
	Enabled     bool `json:"enabled"`
	MaxFailures int  `json:"max_failures"`
	// WindowSeconds is how long failures are remembered.
	WindowSeconds int `json:"window_seconds"`
	// LockoutSeconds is how long a key stays locked once MaxFailures is hit.
	LockoutSeconds int `json:"lockout_seconds"`
}

// DefaultLockoutPolicy: 5 failures in 15 minutes lock for 15 minutes.
func DefaultLockoutPolicy() LockoutPolicy {
	return LockoutPolicy{Enabled: true, MaxFailures: 5, WindowSeconds: 900, LockoutSeconds: 900}
}

// Sentinel counts failed verifications per key (an account, an unknown
// normalized identifier, or a user and factor) and locks keys that fail too
// often.
//
// An attempt is counted *before* the secret is checked (Reserve), in one
// atomic upsert. So however many attempts run at once, on however many
// replicas, at most MaxFailures secrets are ever checked per window: a
// reservation beyond the limit is refused (and given back) while the
// earlier ones are in flight, and finds the key locked once they failed. A
// success clears the key (Clear); a failure that reaches the limit starts
// the lockout (Fail).
type Sentinel struct {
	db  *store.DB
	now func() time.Time
}

// Verdict is the outcome of a reservation.
type Verdict struct {
	Allowed    bool
	Attempt    int   // the attempt's number within the window
	RetryAfter int64 // seconds until the lock ends, when not allowed
	// Window is when the key's counting window began: with the key, it
	// names one lockout cycle (the counter restarts with a new window).
	Window time.Time
}

// Reserve counts an attempt for key and says whether it may be evaluated.
func (s *Sentinel) Reserve(ctx context.Context, key string, p LockoutPolicy) (Verdict, error) {
	if !p.Enabled {
		return Verdict{Allowed: true}, nil
	}
	now := s.now()
	cutoff := now.Add(-time.Duration(p.WindowSeconds) * time.Second)
	// The counter restarts when a past lock has ended, or when the window
	// has passed without a lock. SET expressions read the old row on both
	// engines, so the same condition is repeated in each.
	const restart = `((sentinel_counters.locked_until IS NOT NULL AND sentinel_counters.locked_until <= @now)
		OR (sentinel_counters.locked_until IS NULL AND sentinel_counters.window_start <= @cutoff))`
	var out struct {
		Failures    int
		WindowStart time.Time
		LockedUntil *time.Time
	}
	err := s.db.WithContext(ctx).Raw(`
INSERT INTO sentinel_counters (key, failures, window_start, locked_until, updated_at)
VALUES (@key, 1, @now, NULL, @now)
ON CONFLICT (key) DO UPDATE SET
	failures = CASE WHEN `+restart+` THEN 1 ELSE sentinel_counters.failures + 1 END,
	window_start = CASE WHEN `+restart+` THEN @now ELSE sentinel_counters.window_start END,
	locked_until = CASE WHEN `+restart+` THEN NULL ELSE sentinel_counters.locked_until END,
	updated_at = @now
RETURNING failures, window_start, locked_until`,
		map[string]any{"key": key, "now": now, "cutoff": cutoff}).Scan(&out).Error
	if err != nil {
		return Verdict{}, fmt.Errorf("experience: sentinel reserve: %w", err)
	}
	if out.LockedUntil != nil && out.LockedUntil.After(now) {
		return Verdict{Attempt: out.Failures, RetryAfter: ceilSeconds(out.LockedUntil.Sub(now)), Window: out.WindowStart}, nil
	}
	if out.Failures > p.MaxFailures {
		// More attempts are already in flight (or failed) than the limit
		// allows: refuse this one, but give its reservation back and do not
		// lock. None of the in-flight attempts has failed yet — they may all
		// carry the right password — so locking here would lock out a user
		// whose concurrent sign-ins are all correct (or merely refused by
		// the hashing gate). If they fail, the one that reaches the limit
		// locks the key (Fail); at most MaxFailures secrets are checked
		// either way.
		if err := s.Release(ctx, key, p); err != nil {
			return Verdict{}, err
		}
		return Verdict{Attempt: out.Failures, RetryAfter: 1, Window: out.WindowStart}, nil
	}
	return Verdict{Allowed: true, Attempt: out.Failures, Window: out.WindowStart}, nil
}

// Fail records that a reserved attempt failed. It reports whether this
// failure locked the key.
func (s *Sentinel) Fail(ctx context.Context, key string, v Verdict, p LockoutPolicy) (locked bool, err error) {
	if !p.Enabled || v.Attempt < p.MaxFailures {
		return false, nil
	}
	_, err = s.lock(ctx, key, p)
	return err == nil, err
}

// lock sets locked_until unless a lock is already running, and returns it.
func (s *Sentinel) lock(ctx context.Context, key string, p LockoutPolicy) (time.Time, error) {
	now := s.now()
	until := now.Add(time.Duration(p.LockoutSeconds) * time.Second)
	db := s.db.WithContext(ctx)
	if err := db.Exec(`UPDATE sentinel_counters SET locked_until = ?, updated_at = ?
		WHERE key = ? AND (locked_until IS NULL OR locked_until <= ?)`, until, now, key, now).Error; err != nil {
		return time.Time{}, fmt.Errorf("experience: sentinel lock: %w", err)
	}
	var current struct{ LockedUntil *time.Time }
	if err := db.Raw(`SELECT locked_until FROM sentinel_counters WHERE key = ?`, key).Scan(&current).Error; err != nil {
		return time.Time{}, fmt.Errorf("experience: sentinel lock: %w", err)
	}
	if current.LockedUntil != nil {
		return *current.LockedUntil, nil
	}
	return until, nil
}

// Clear forgets a key's failures after a success.
func (s *Sentinel) Clear(ctx context.Context, key string) error {
	return s.clear(s.db.WithContext(ctx), key)
}

// clear is Clear through db (a transaction, to commit it with the sign-in).
func (s *Sentinel) clear(db *gorm.DB, key string) error {
	if err := db.Exec(`DELETE FROM sentinel_counters WHERE key = ? AND (locked_until IS NULL OR locked_until <= ?)`,
		key, s.now()).Error; err != nil {
		return fmt.Errorf("experience: sentinel clear: %w", err)
	}
	return nil
}

// Unlock removes any lock and failure count on keys (administrative).
func (s *Sentinel) Unlock(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.db.WithContext(ctx).Exec(`DELETE FROM sentinel_counters WHERE key IN ?`, keys).Error; err != nil {
		return fmt.Errorf("experience: sentinel unlock: %w", err)
	}
	return nil
}

// Locked reports the remaining lock time of key (0 when not locked).
func (s *Sentinel) Locked(ctx context.Context, key string) (int64, error) {
	var current struct{ LockedUntil *time.Time }
	if err := s.db.WithContext(ctx).Raw(`SELECT locked_until FROM sentinel_counters WHERE key = ?`, key).Scan(&current).Error; err != nil {
		return 0, fmt.Errorf("experience: sentinel: %w", err)
	}
	now := s.now()
	if current.LockedUntil == nil || !current.LockedUntil.After(now) {
		return 0, nil
	}
	return ceilSeconds(current.LockedUntil.Sub(now)), nil
}

// identifierKey is the sentinel key of a normalized identifier that names no
// account; password and verification-code failures share it.
func identifierKey(idType, normalized string) string { return "id:" + idType + ":" + normalized }

// accountKey is the one sentinel pool of a user's sign-in secrets: the
// password, and the verification codes sent to the user's addresses. It is
// per account, not per identifier: a guess by username, by email or by phone
// is a guess at the same password, so the limit must hold across them (two
// failures by username, two by email and one by phone lock all three).
func accountKey(userID string) string { return userKey(userID) + ":account" }

// signInKey is the sentinel pool of an attempt naming a normalized
// identifier: its account's when it names a user (as found by the caller),
// else the identifier's own, so guesses at unknown identifiers still count.
func signInKey(idType, normalized string, user *User) string {
	if user != nil {
		return accountKey(user.ID)
	}
	return identifierKey(idType, normalized)
}

func ceilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	if s < 1 {
		s = 1
	}
	return s
}

func secondsToDuration(s int64) time.Duration { return time.Duration(s) * time.Second }

// Release gives back a reserved attempt that was never evaluated.
func (s *Sentinel) Release(ctx context.Context, key string, p LockoutPolicy) error {
	if !p.Enabled {
		return nil
	}
	if err := s.db.WithContext(ctx).Exec(`UPDATE sentinel_counters SET failures = failures - 1, updated_at = ?
		WHERE key = ? AND failures > 0 AND locked_until IS NULL`, s.now(), key).Error; err != nil {
		return fmt.Errorf("experience: sentinel release: %w", err)
	}
	return nil
}

// WindowRemaining is how long, in seconds (at least 1), until the counting
// window of key ends: when a budget counted with Reserve (such as the
// per-recipient send limit, which never locks) is available again.
func (s *Sentinel) WindowRemaining(ctx context.Context, key string, p LockoutPolicy) (int64, error) {
	var current struct{ WindowStart *time.Time }
	if err := s.db.WithContext(ctx).Raw(`SELECT window_start FROM sentinel_counters WHERE key = ?`, key).Scan(&current).Error; err != nil {
		return 0, fmt.Errorf("experience: sentinel: %w", err)
	}
	if current.WindowStart == nil {
		return 1, nil
	}
	return ceilSeconds(current.WindowStart.Add(time.Duration(p.WindowSeconds) * time.Second).Sub(s.now())), nil
}

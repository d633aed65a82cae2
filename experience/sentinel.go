package experience

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
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

// DefaultReservationTTL is how long an unsettled reservation may count at
// most when the engine is not told otherwise.
const DefaultReservationTTL = 10 * time.Second

// Sentinel counts failed verifications per key (an account, an unknown
// normalized identifier, or a user and factor) and locks keys that fail too
// often.
//
// An attempt reserves its place in the key's budget *before* the secret is
// checked (Reserve), in one atomic upsert: evaluated failures plus
// reservations in flight never exceed MaxFailures, however many attempts run
// at once on however many replicas. Each reservation is then settled once: a
// success (Clear) forgets the key's failures, a failure (Fail) turns the
// reservation into a counted failure and locks the key when it reaches the
// limit, and an attempt that was never evaluated (Release: the hashing gate
// refused it, the client went away) gives its place back. An attempt beyond
// the budget waits for the in-flight ones to settle instead of being
// refused: if they succeed it goes on, if they fail up to the limit it finds
// the key locked. Only evaluated failures lock.
//
// A reservation that is never settled (its process crashed, its release
// failed) must not hold the budget for long: reservations are counted in two
// time buckets of half the reservation TTL, the current one and the one
// before, and an older bucket no longer counts, so a reservation lapses
// between TTL/2 and TTL after it was made. A settlement that comes after the
// lapse finds nothing to settle and its outcome is never told (the attempt
// answers server_busy): its place may have gone to another attempt
// meanwhile, and only results of live reservations may ever be revealed —
// that keeps the limit exact even then. The hash of a reservation is bounded
// by its lapse (Bound), so live requests do not run into it.
type Sentinel struct {
	db  *store.DB
	now func() time.Time
	ttl time.Duration
}

// Verdict is the outcome of a reservation: allowed (a reservation to settle
// with Fail, Release or Clear) or refused by a lock.
type Verdict struct {
	Allowed    bool
	RetryAfter int64 // seconds until the lock ends, when not allowed
	// Window is when the key's counting window began: with the key, it
	// names one lockout cycle (the counter restarts with a new window).
	Window time.Time

	key     string
	bucket  int64     // start of the reservation's bucket, Unix milliseconds
	half    int64     // bucket length, milliseconds
	lapse   time.Time // when the reservation stops counting
	policy  LockoutPolicy
	settled bool
}

// reserved reports whether v holds a reservation still to settle.
func (v *Verdict) reserved() bool { return v != nil && v.key != "" && !v.settled }

// Polling while an attempt waits for the budget: from minPoll, doubling up
// to maxPoll (a hash takes tens of milliseconds), with jitter so waiters on
// several replicas do not poll in step.
const (
	minPoll = 2 * time.Millisecond
	maxPoll = 50 * time.Millisecond
	// settleTimeout bounds a settlement, which runs even when the
	// request's context has ended: a cancelled request must still give
	// its reservation back.
	settleTimeout = 2 * time.Second
	// releaseTimeout bounds a release (an attempt that was never
	// evaluated), shorter: one that fails costs nothing but the
	// reservation's lapse, and the client — whose request has often
	// ended already, by its deadline during a database outage — should
	// not wait two more seconds for it (measured in bench/outage: answers
	// at 2× the request deadline during a freeze).
	releaseTimeout = 500 * time.Millisecond
)

// The counter restarts when a past lock has ended, or when the window has
// passed without a lock. SET expressions read the old row on both engines,
// so the condition is repeated where needed.
const (
	restartSQL = `((sentinel_counters.locked_until IS NOT NULL AND sentinel_counters.locked_until <= @now)
		OR (sentinel_counters.locked_until IS NULL AND sentinel_counters.window_start <= @cutoff))`
	// failuresSQL: the failures still counting.
	failuresSQL = `(CASE WHEN ` + restartSQL + ` THEN 0 ELSE sentinel_counters.failures END)`
	// pendingSQL: the reservations still counting in bucket @bucket (a
	// bucket ahead of @bucket comes from a replica whose clock is ahead:
	// it counts whole).
	pendingSQL = `(CASE WHEN sentinel_counters.pending_bucket >= @bucket THEN sentinel_counters.pending + sentinel_counters.pending_prev
		WHEN sentinel_counters.pending_bucket = @prev THEN sentinel_counters.pending ELSE 0 END)`
	notLockedSQL = `(sentinel_counters.locked_until IS NULL OR sentinel_counters.locked_until <= @now)`
	// ownBucketSQL: the row still counts the reservation of bucket @b
	// (as current, or as previous once @next began).
	ownBucketSQL = `sentinel_counters.pending_bucket IN (@b, @next)`
	// unpendSQL: SET clauses taking the reservation of bucket @b out.
	unpendSQL = `pending = CASE WHEN sentinel_counters.pending_bucket = @b AND sentinel_counters.pending > 0
			THEN sentinel_counters.pending - 1 ELSE sentinel_counters.pending END,
		pending_prev = CASE WHEN sentinel_counters.pending_bucket = @next AND sentinel_counters.pending_prev > 0
			THEN sentinel_counters.pending_prev - 1 ELSE sentinel_counters.pending_prev END`
)

// clock returns the current time (to the microsecond, as PostgreSQL keeps
// it) and the bucket arguments of the SQL above.
func (s *Sentinel) clock(p LockoutPolicy) (time.Time, map[string]any) {
	now := s.now().Truncate(time.Microsecond)
	half := s.halfMillis()
	bucket := now.UnixMilli() / half * half
	return now, map[string]any{
		"now": now, "cutoff": now.Add(-time.Duration(p.WindowSeconds) * time.Second),
		"bucket": bucket, "prev": bucket - half, "half": half, "max": p.MaxFailures,
	}
}

func (s *Sentinel) halfMillis() int64 {
	ttl := s.ttl
	if ttl <= 0 {
		ttl = DefaultReservationTTL
	}
	return max(ttl.Milliseconds()/2, 1)
}

// Reserve reserves an attempt on key and says whether it may be evaluated.
// While the budget is held by attempts in flight it waits for them to
// settle, until ctx ends (ctx.Err()) or for at most the reservation TTL
// (server_busy): by then every reservation it waited for has settled or
// lapsed, so a longer wait means others keep taking the budget first.
func (s *Sentinel) Reserve(ctx context.Context, key string, p LockoutPolicy) (*Verdict, error) {
	if !p.Enabled {
		return &Verdict{Allowed: true}, nil
	}
	giveUp := time.Now().Add(time.Duration(2*s.halfMillis()) * time.Millisecond)
	delay := minPoll
	for {
		v, err := s.tryReserve(ctx, key, p)
		if err != nil || v != nil {
			return v, err
		}
		// The budget is held by attempts in flight: wait until a read
		// says it may have room (polling reads, which cost no write
		// lock), then try again.
		for {
			if !time.Now().Before(giveUp) {
				return nil, credentials.BusyError()
			}
			sleep := delay/2 + rand.N(delay)
			delay = min(2*delay, maxPoll)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(sleep):
			}
			row, err := s.read(ctx, key)
			if err != nil {
				return nil, err
			}
			now, args := s.clock(p)
			if retry := row.lockedFor(now, p); retry > 0 {
				return &Verdict{RetryAfter: retry, Window: row.WindowStart}, nil
			}
			if row.room(args) {
				break
			}
		}
	}
}

// tryReserve is one reservation attempt: an allowed verdict, a refusal by
// a lock, or nil when the budget is held by attempts in flight.
func (s *Sentinel) tryReserve(ctx context.Context, key string, p LockoutPolicy) (*Verdict, error) {
	now, args := s.clock(p)
	args["key"] = key
	// One upsert admits the attempt only while the key is not locked and
	// its failures plus the reservations still counting leave room; it
	// rotates the buckets as it counts the new reservation. A refused
	// attempt changes nothing (the WHERE of DO UPDATE) and returns no row.
	var out []struct{ PendingBucket int64 }
	err := s.db.WithContext(ctx).Raw(`
INSERT INTO sentinel_counters (key, failures, window_start, locked_until, updated_at, pending, pending_prev, pending_bucket)
VALUES (@key, 0, @now, NULL, @now, 1, 0, @bucket)
ON CONFLICT (key) DO UPDATE SET
	failures = `+failuresSQL+`,
	window_start = CASE WHEN `+restartSQL+` THEN @now ELSE sentinel_counters.window_start END,
	locked_until = NULL,
	pending_prev = CASE WHEN sentinel_counters.pending_bucket >= @bucket THEN sentinel_counters.pending_prev
		WHEN sentinel_counters.pending_bucket = @prev THEN sentinel_counters.pending ELSE 0 END,
	pending = CASE WHEN sentinel_counters.pending_bucket >= @bucket THEN sentinel_counters.pending + 1 ELSE 1 END,
	pending_bucket = CASE WHEN sentinel_counters.pending_bucket >= @bucket THEN sentinel_counters.pending_bucket ELSE @bucket END,
	updated_at = @now
WHERE `+notLockedSQL+` AND `+failuresSQL+` + `+pendingSQL+` < @max
RETURNING pending_bucket`, args).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("experience: sentinel reserve: %w", err)
	}
	if len(out) == 1 {
		half := args["half"].(int64)
		b := out[0].PendingBucket
		return &Verdict{Allowed: true, key: key, bucket: b, half: half, lapse: time.UnixMilli(b + 2*half), policy: p}, nil
	}
	row, err := s.read(ctx, key)
	if err != nil {
		return nil, err
	}
	if retry := row.lockedFor(now, p); retry > 0 {
		return &Verdict{RetryAfter: retry, Window: row.WindowStart}, nil
	}
	return nil, nil
}

// counterRow is a key's stored state.
type counterRow struct {
	Found         bool
	Failures      int
	WindowStart   time.Time
	LockedUntil   *time.Time
	Pending       int
	PendingPrev   int
	PendingBucket int64
}

func (s *Sentinel) read(ctx context.Context, key string) (counterRow, error) {
	var rows []counterRow
	if err := s.db.WithContext(ctx).Raw(`SELECT TRUE AS found, failures, window_start, locked_until, pending, pending_prev, pending_bucket
		FROM sentinel_counters WHERE key = ?`, key).Scan(&rows).Error; err != nil {
		return counterRow{}, fmt.Errorf("experience: sentinel: %w", err)
	}
	if len(rows) == 0 {
		return counterRow{}, nil
	}
	return rows[0], nil
}

// lockedFor is how long, in seconds, an attempt on the key is refused now:
// the rest of a running lock, or — when the failures already reach the
// limit without a lock (the limit was lowered since) — the rest of their
// window. 0: not locked. It is the Go reading of the conditions Reserve's
// upsert applies, so the Users API and the polling waiters agree with it.
func (r counterRow) lockedFor(now time.Time, p LockoutPolicy) int64 {
	if !r.Found {
		return 0
	}
	if r.LockedUntil != nil {
		if r.LockedUntil.After(now) {
			return ceilSeconds(r.LockedUntil.Sub(now))
		}
		return 0 // the lock ended: the counter restarts
	}
	windowEnd := r.WindowStart.Add(time.Duration(p.WindowSeconds) * time.Second)
	if r.Failures >= p.MaxFailures && windowEnd.After(now) {
		return ceilSeconds(windowEnd.Sub(now))
	}
	return 0
}

// room reports whether an attempt would find room in the budget now (the
// caller has checked that the key is not locked).
func (r counterRow) room(args map[string]any) bool {
	if !r.Found {
		return true
	}
	failures := r.Failures
	if now := args["now"].(time.Time); (r.LockedUntil != nil && !r.LockedUntil.After(now)) ||
		(r.LockedUntil == nil && !r.WindowStart.After(args["cutoff"].(time.Time))) {
		failures = 0
	}
	pending := 0
	switch bucket := args["bucket"].(int64); {
	case r.PendingBucket >= bucket:
		pending = r.Pending + r.PendingPrev
	case r.PendingBucket == args["prev"].(int64):
		pending = r.Pending
	}
	return failures+pending < args["max"].(int)
}

// Bound returns ctx with a deadline at the lapse of v's reservation: work
// done for the attempt (the hash, queueing for it included) must finish
// while the reservation still counts, or its result could not be told.
func (s *Sentinel) Bound(ctx context.Context, v *Verdict) (context.Context, context.CancelFunc) {
	if !v.reserved() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, v.lapse)
}

// settleArgs are the arguments of a settlement of v, and whether v lapsed
// already (by this process's clock).
func (s *Sentinel) settleArgs(v *Verdict) (map[string]any, bool) {
	now, args := s.clock(v.policy)
	args["key"], args["b"], args["next"] = v.key, v.bucket, v.bucket+v.half
	return args, !now.Before(v.lapse)
}

// settleContext is a context for a settlement, which must run even when
// the request's context has ended.
func settleContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
}

// errLapsed is the answer to an attempt whose reservation lapsed before it
// was settled: its outcome is not told (nor counted), the client retries.
func errLapsed() error { return credentials.BusyError() }

// Fail records that v's attempt was evaluated and failed. It reports whether
// this failure locked the key. A lapsed reservation is not counted and
// yields the server_busy error: the failure must then not be told.
func (s *Sentinel) Fail(ctx context.Context, v *Verdict) (locked bool, err error) {
	if !v.reserved() {
		return false, nil
	}
	v.settled = true
	args, lapsed := s.settleArgs(v)
	if lapsed {
		return false, errLapsed()
	}
	until := args["now"].(time.Time).Add(time.Duration(v.policy.LockoutSeconds) * time.Second)
	args["until"] = until
	ctx, cancel := settleContext(ctx)
	defer cancel()
	var out []struct {
		Failures    int
		LockedUntil *time.Time
	}
	if err := s.db.WithContext(ctx).Raw(`UPDATE sentinel_counters SET
		`+unpendSQL+`,
		failures = `+failuresSQL+` + 1,
		window_start = CASE WHEN `+restartSQL+` THEN @now ELSE sentinel_counters.window_start END,
		locked_until = CASE WHEN sentinel_counters.locked_until > @now THEN sentinel_counters.locked_until
			WHEN `+failuresSQL+` + 1 >= @max THEN @until ELSE NULL END,
		updated_at = @now
	WHERE key = @key AND `+ownBucketSQL+`
	RETURNING failures, locked_until`, args).Scan(&out).Error; err != nil {
		return false, fmt.Errorf("experience: sentinel fail: %w", err)
	}
	if len(out) == 0 {
		return false, errLapsed()
	}
	return out[0].LockedUntil != nil && out[0].LockedUntil.Equal(until), nil
}

// Release gives back v's reservation: the attempt was never evaluated (or
// its outcome is not told). It runs even when ctx has ended, and does
// nothing for a verdict already settled, so callers may defer it.
func (s *Sentinel) Release(ctx context.Context, v *Verdict) error {
	if !v.reserved() {
		return nil
	}
	v.settled = true
	args, lapsed := s.settleArgs(v)
	if lapsed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	db := s.db.WithContext(ctx)
	// The row goes when it holds nothing else (the common case: one
	// attempt refused by the hashing gate), so released keys leave no
	// rows behind.
	res := db.Exec(`DELETE FROM sentinel_counters WHERE key = @key AND `+ownBucketSQL+`
		AND sentinel_counters.pending + sentinel_counters.pending_prev <= 1
		AND (sentinel_counters.failures = 0 OR `+restartSQL+`) AND `+notLockedSQL, args)
	if res.Error == nil && res.RowsAffected == 0 {
		res = db.Exec(`UPDATE sentinel_counters SET `+unpendSQL+`, updated_at = @now
			WHERE key = @key AND `+ownBucketSQL, args)
	}
	if res.Error != nil {
		return fmt.Errorf("experience: sentinel release: %w", res.Error)
	}
	return nil
}

// Clear settles v's attempt as a success: the key's failures are forgotten
// (a running lock stays). A lapsed reservation yields the server_busy
// error: the success must then not be told either.
func (s *Sentinel) Clear(ctx context.Context, v *Verdict) error {
	if !v.reserved() {
		return nil
	}
	ctx, cancel := settleContext(ctx)
	defer cancel()
	if err := s.clear(s.db.WithContext(ctx), v); err != nil {
		return err
	}
	v.settled = true
	return nil
}

// clear is Clear through db (a transaction, to commit it with the sign-in;
// the caller marks v settled once that commits).
func (s *Sentinel) clear(db *gorm.DB, v *Verdict) error {
	if !v.reserved() {
		return nil
	}
	args, lapsed := s.settleArgs(v)
	if lapsed {
		return errLapsed()
	}
	// The row goes when this was its only reservation (one statement on
	// the hot path); else the reservation leaves and the failures reset.
	res := db.Exec(`DELETE FROM sentinel_counters WHERE key = @key AND `+ownBucketSQL+`
		AND sentinel_counters.pending + sentinel_counters.pending_prev <= 1 AND `+notLockedSQL, args)
	if res.Error == nil && res.RowsAffected == 0 {
		res = db.Exec(`UPDATE sentinel_counters SET `+unpendSQL+`,
			failures = CASE WHEN sentinel_counters.locked_until > @now THEN sentinel_counters.failures ELSE 0 END,
			window_start = CASE WHEN sentinel_counters.locked_until > @now THEN sentinel_counters.window_start ELSE @now END,
			locked_until = CASE WHEN sentinel_counters.locked_until > @now THEN sentinel_counters.locked_until ELSE NULL END,
			updated_at = @now
			WHERE key = @key AND `+ownBucketSQL, args)
		if res.Error == nil && res.RowsAffected == 0 {
			return errLapsed()
		}
	}
	if res.Error != nil {
		return fmt.Errorf("experience: sentinel clear: %w", res.Error)
	}
	return nil
}

// markSettled marks v settled: its clear committed with the caller's
// transaction.
func (v *Verdict) markSettled() {
	if v != nil {
		v.settled = true
	}
}

// Take counts one use of a budget that never locks and is never given back
// (the per-recipient send limit): it reports whether the use fits within
// p.MaxFailures per window, atomically, and counts it only then.
func (s *Sentinel) Take(ctx context.Context, key string, p LockoutPolicy) (bool, error) {
	_, args := s.clock(p)
	args["key"] = key
	var out []struct{ Failures int }
	if err := s.db.WithContext(ctx).Raw(`
INSERT INTO sentinel_counters (key, failures, window_start, locked_until, updated_at)
VALUES (@key, 1, @now, NULL, @now)
ON CONFLICT (key) DO UPDATE SET
	failures = `+failuresSQL+` + 1,
	window_start = CASE WHEN `+restartSQL+` THEN @now ELSE sentinel_counters.window_start END,
	locked_until = NULL,
	updated_at = @now
WHERE `+failuresSQL+` < @max
RETURNING failures`, args).Scan(&out).Error; err != nil {
		return false, fmt.Errorf("experience: sentinel take: %w", err)
	}
	return len(out) == 1, nil
}

// Unlock removes any lock and failure count on keys (administrative).
// Reservations in flight stay counted until they settle.
func (s *Sentinel) Unlock(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	now := s.now().Truncate(time.Microsecond)
	db := s.db.WithContext(ctx)
	if err := db.Exec(`DELETE FROM sentinel_counters WHERE key IN ? AND pending = 0 AND pending_prev = 0`, keys).Error; err != nil {
		return fmt.Errorf("experience: sentinel unlock: %w", err)
	}
	if err := db.Exec(`UPDATE sentinel_counters SET failures = 0, locked_until = NULL, window_start = ?, updated_at = ? WHERE key IN ?`,
		now, now, keys).Error; err != nil {
		return fmt.Errorf("experience: sentinel unlock: %w", err)
	}
	return nil
}

// Locked reports how long, in seconds, an attempt on key would be refused
// now (0 when it would not): what Reserve answers, without reserving.
// Attempts in flight do not lock; a new one waits for them.
func (s *Sentinel) Locked(ctx context.Context, key string, p LockoutPolicy) (int64, error) {
	if !p.Enabled {
		return 0, nil
	}
	row, err := s.read(ctx, key)
	if err != nil {
		return 0, err
	}
	return row.lockedFor(s.now(), p), nil
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

// WindowRemaining is how long, in seconds (at least 1), until the counting
// window of key ends: when a budget counted with Take (such as the
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

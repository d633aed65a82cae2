package experience

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/fault"
)

// passwordStateError is a correct password whose account may not sign in
// with it as is: expired or temporary. It carries the user so the caller
// can offer the change-password step.
type passwordStateError struct {
	fe   *fault.Error
	user *User
}

func (e *passwordStateError) Error() string { return e.fe.Error() }
func (e *passwordStateError) Unwrap() error { return e.fe }

// VerifyPassword is the Password verification: it checks an identifier and
// password, guarded by the sentinel, and returns the user. It is the one code
// path behind both POST /v1/auth/password/authenticate and
// POST /api/experience/verification/password.
//
// Only a correct password reveals the account's state: suspended, expired
// or temporary. An unknown identifier costs a real hash (no timing oracle)
// and fails exactly like a wrong password.
func (e *Engine) VerifyPassword(ctx context.Context, id Identifier, password string, meta SessionMeta) (*User, error) {
	user, res, err := e.verifyPassword(ctx, id, password, meta)
	defer e.releaseUnsettled(ctx, res)
	if user == nil {
		return nil, err
	}
	if cerr := e.Sentinel.Clear(ctx, res); cerr != nil {
		return nil, cerr
	}
	return user, err
}

// releaseUnsettled gives back a reservation that nothing settled (the
// sign-in failed after the password was checked, e.g. a database error or
// a cancelled request): only evaluated failures count, and only outcomes
// that were told.
func (e *Engine) releaseUnsettled(ctx context.Context, res *Verdict) {
	if err := e.Sentinel.Release(ctx, res); err != nil {
		e.log.ErrorContext(ctx, "sentinel release failed", slog.String("error", err.Error()))
	}
}

// verifyPassword is VerifyPassword without clearing the sentinel key on
// success: it returns the reservation so the caller can clear it in the
// same transaction as the rest of the sign-in (one commit instead of
// several on the hot path), or release it if the sign-in fails before. A
// non-nil user means the password was right; err may then still carry the
// account state (suspended, expired, temporary).
func (e *Engine) verifyPassword(ctx context.Context, id Identifier, password string, meta SessionMeta) (*User, *Verdict, error) {
	normalized, err := e.norm.Normalize(id)
	if err != nil {
		return nil, nil, err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Under overload, refuse before any database work: a refusal must be
	// cheap, or the flood of them slows the requests that were admitted.
	if e.hasher.Saturated() {
		return nil, nil, credentials.BusyError()
	}
	// The user is looked up first so the attempt counts in the account's
	// one pool, whichever identifier names it (an unknown identifier has a
	// pool of its own). The reservation stays one atomic upsert on that
	// key, before any secret is checked: parallel attempts through any
	// identifier, on any replica, still evaluate at most MaxFailures
	// passwords per window. Both lookup and reservation run for known and
	// unknown identifiers alike, so neither timing nor order tells them apart.
	user, err := e.Users.FindByIdentifier(ctx, id.Type, normalized)
	if err != nil {
		return nil, nil, err
	}
	key := signInKey(id.Type, normalized, user)
	verdict, err := e.Sentinel.Reserve(ctx, key, settings.Lockout)
	if err != nil {
		return nil, nil, err
	}
	fail := AuditEvent{Event: EventSignIn, Outcome: OutcomeFailure, ClientID: meta.ClientID, IPAddress: meta.IPAddress,
		Data: map[string]any{"method": AMRPassword, "identifier_type": id.Type}}
	if !verdict.Allowed {
		// Refusals are counted, not written one by one: one row per pool,
		// lockout window and identifier type, however many attempts come.
		fail.Data["reason"] = "locked"
		fold := key + "|" + verdict.Window.UTC().Format(time.RFC3339Nano) + "|" + id.Type
		if err := e.Audit.RecordRepeated(ctx, fold, fail); err != nil {
			e.log.ErrorContext(ctx, "audit write failed", slog.String("event", fail.Event), slog.String("error", err.Error()))
		}
		return nil, nil, errLocked(verdict.RetryAfter)
	}
	// The hash must end while the reservation counts: past its lapse the
	// outcome could no longer be told (see Sentinel).
	hctx, cancel := e.Sentinel.Bound(ctx, verdict)
	ok, needsRehash := false, false
	if user == nil || !user.HasPassword {
		err = e.hasher.VerifyDummy(hctx, password)
	} else {
		ok, needsRehash, err = e.hasher.Verify(hctx, password, user.PasswordHash())
	}
	cancel()
	if err == nil && ctx.Err() != nil {
		// The client went away during the hash: the outcome is never
		// told, so the attempt was not evaluated.
		err = ctx.Err()
	}
	if err != nil {
		// The attempt was never evaluated (the hashing gate is full, the
		// request ended): it must not count against the user. The release
		// runs on a context of its own, as ctx may have ended.
		e.releaseUnsettled(ctx, verdict)
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			// The reservation's time ran out in the queue (hctx, not the
			// request, ended). Any other error — a hash worker down, a
			// malformed stored hash — is answered as what it is.
			err = credentials.BusyError()
		}
		return nil, nil, err
	}
	if !ok {
		if user != nil {
			fail.UserID = user.ID
		}
		locked, err := e.Sentinel.Fail(ctx, verdict)
		if err != nil {
			return nil, nil, err
		}
		// Audited once counted: no more failures are recorded than the
		// sentinel evaluated.
		fail.Data["reason"] = "invalid_credentials"
		e.audit(ctx, fail)
		if locked {
			e.audit(ctx, AuditEvent{Event: EventLockout, Outcome: OutcomeSuccess, UserID: fail.UserID, ClientID: meta.ClientID,
				IPAddress: meta.IPAddress, Data: map[string]any{"identifier_type": id.Type, "lockout_seconds": settings.Lockout.LockoutSeconds}})
		}
		return nil, nil, errInvalidCredentials
	}
	if needsRehash {
		e.rehash(ctx, user, password)
	}
	return user, verdict, e.accountState(user, settings, meta)
}

// accountState says whether a user who gave the right password may go on.
func (e *Engine) accountState(user *User, settings Settings, meta SessionMeta) error {
	if user.Suspended {
		return errSuspended
	}
	now := e.now()
	if user.PasswordTemporary {
		window := time.Duration(settings.PasswordExpiry.TemporaryValidHours) * time.Hour
		if user.PasswordUpdatedAt != nil && now.Sub(*user.PasswordUpdatedAt) > window {
			// A stale temporary password no longer opens anything: an
			// administrator has to issue a new one.
			return errInvalidCredentials
		}
		return &passwordStateError{fault.New(CodePasswordTemporary, http.StatusUnprocessableEntity,
			"The password is temporary and must be changed."), user}
	}
	expired := user.PasswordExpired
	if settings.PasswordExpiry.Enabled && user.PasswordUpdatedAt != nil &&
		now.Sub(*user.PasswordUpdatedAt) > time.Duration(settings.PasswordExpiry.ValidDays)*24*time.Hour {
		expired = true
	}
	if expired {
		return &passwordStateError{fault.New(CodePasswordExpired, http.StatusUnprocessableEntity,
			"The password has expired and must be changed."), user}
	}
	return nil
}

// rehash upgrades a verified password to the current algorithm and
// parameters, unless the stored hash changed meanwhile.
func (e *Engine) rehash(ctx context.Context, user *User, password string) {
	encoded, err := e.hasher.Hash(ctx, password)
	if err != nil {
		e.log.WarnContext(ctx, "password rehash skipped", slog.String("user_id", user.ID), slog.String("error", err.Error()))
		return
	}
	res := e.db.WithContext(ctx).Model(&directory.Row{}).Where("id = ? AND password_hash = ?", user.ID, user.PasswordHash()).
		Update("password_hash", encoded)
	if res.Error != nil {
		e.log.ErrorContext(ctx, "password rehash failed", slog.String("user_id", user.ID), slog.String("error", res.Error.Error()))
		return
	}
	if res.RowsAffected == 1 {
		user.SetPasswordHash(encoded)
		e.audit(ctx, AuditEvent{Event: EventPasswordRehash, Outcome: OutcomeSuccess, UserID: user.ID})
	}
}

package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Refresh tokens (DESIGN §3): opaque 256-bit random strings, stored only as a
// SHA-256 digest, rotated on every use. Each grant starts a family; every
// rotation adds one row to it, so a family is a strict chain with at most one
// live (unused, unrevoked) token. Presenting a token that was already rotated
// means two parties hold the chain — the legitimate client and a thief — and
// the whole family is revoked (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
//
// Concurrency: consuming a token is one conditional UPDATE, so exactly one of
// any number of concurrent presentations wins, on one process or many. The
// operations that revoke rows (family, session, user) and the one that
// continues a family take a per-user transaction-scoped advisory lock on
// PostgreSQL (SQLite's immediate transactions already serialise writers), so
// a revocation can never miss a token being added to the family at the same
// moment: whichever runs second sees the other's committed rows.

// refreshTokenBytes is the entropy of a refresh token: 256 bits.
const refreshTokenBytes = 32

// maxRefreshTokenLen bounds what is hashed and looked up; Latch's tokens are
// 43 characters.
const maxRefreshTokenLen = 512

// refreshRow is the refresh_tokens table.
type refreshRow struct {
	ID        string `gorm:"primaryKey"`
	Digest    string
	FamilyID  string
	ClientID  string
	UserID    string
	SessionID string
	Audience  string
	Scope     string
	OrgID     string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
	RevokedAt *time.Time
}

func (refreshRow) TableName() string { return "refresh_tokens" }

// live reports whether the token could still be exchanged at now.
func (r *refreshRow) live(now time.Time) bool {
	return r.UsedAt == nil && r.RevokedAt == nil && now.Before(r.ExpiresAt)
}

// RefreshGrant is what a consumed refresh token stood for. The caller checks
// that the session is still alive, then calls IssueUserTokens with the same
// FamilyID (and these fields) to continue the family.
type RefreshGrant struct {
	ClientID, UserID, SessionID, FamilyID, Audience, Scope, OrgID string
	// ExpiresAt is when the consumed token would have expired.
	ExpiresAt time.Time
}

// RefreshReuse is returned by UseRefreshToken when an already-rotated token
// is presented again: the token family has been revoked. The caller should
// also end the session (DESIGN §2.3) and write an audit event. It renders as
// invalid_grant: Unwrap yields an invalid_grant *fault.Error, so fault.As
// finds it, and the client learns nothing more than for any dead token.
type RefreshReuse struct {
	SessionID, UserID, FamilyID, ClientID string
}

func (e *RefreshReuse) Error() string {
	return "token: refresh token reuse detected; family " + e.FamilyID + " of session " + e.SessionID + " revoked"
}

// Unwrap returns the client-facing error (a fresh value each time, so a
// caller that decorates it cannot affect another request).
func (e *RefreshReuse) Unwrap() error { return errInvalidRefresh() }

// errInvalidRefresh is the one answer for every refresh token that cannot be
// used — unknown, expired, revoked, used, another client's — so that the
// answer reveals nothing about tokens the caller does not own.
func errInvalidRefresh() *fault.Error {
	return OAuthError(CodeInvalidGrant, "the refresh token is invalid, expired or revoked")
}

// findRefresh looks a presented token up by digest; nil when unknown.
func (s *Service) findRefresh(ctx context.Context, raw string) (*refreshRow, error) {
	if raw == "" || len(raw) > maxRefreshTokenLen {
		return nil, nil
	}
	var row refreshRow
	err := s.db.WithContext(ctx).Where("digest = ?", credentials.Digest(raw)).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token: find refresh token: %w", err)
	}
	return &row, nil
}

// UseRefreshToken atomically consumes a refresh token presented by client.
// Exactly one of N concurrent uses succeeds: the token is consumed by a single
// conditional UPDATE (used_at IS NULL AND revoked_at IS NULL) whose
// RowsAffected decides the winner; the losers of that race get invalid_grant
// without any revocation, because they were presented before the rotation had
// completed and so cannot be a replay of its result.
//
// An unknown, expired or revoked token, or one issued to another client,
// yields OAuthError(CodeInvalidGrant, …); another client's token is never
// consumed. Presenting a token that was already rotated is reuse: the whole
// family is revoked and *RefreshReuse is returned — unless Options.RefreshReuseGrace
// is set and the token was rotated less than that long ago, in which case it
// is treated as a duplicate of the same request (a client retrying or racing
// itself) and refused with plain invalid_grant.
func (s *Service) UseRefreshToken(ctx context.Context, client *Client, raw string) (*RefreshGrant, error) {
	if client == nil {
		return nil, errInvalidClient
	}
	if !client.HasGrant(GrantRefreshToken) {
		return nil, OAuthError(CodeUnauthorizedClient, "the client is not allowed to use the refresh_token grant")
	}
	row, err := s.findRefresh(ctx, raw)
	if err != nil {
		return nil, err
	}
	if row == nil || row.ClientID != client.ID || row.RevokedAt != nil {
		return nil, errInvalidRefresh()
	}
	now := s.now()
	if row.UsedAt != nil {
		return nil, s.reused(ctx, row, now)
	}
	if !now.Before(row.ExpiresAt) {
		return nil, errInvalidRefresh()
	}
	res := s.db.WithContext(ctx).Model(&refreshRow{}).
		Where("id = ? AND client_id = ? AND used_at IS NULL AND revoked_at IS NULL", row.ID, client.ID).
		Update("used_at", now)
	if res.Error != nil {
		return nil, fmt.Errorf("token: consume refresh token: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return nil, errInvalidRefresh() // lost the race to a concurrent use (or a revocation)
	}
	return &RefreshGrant{ClientID: row.ClientID, UserID: row.UserID, SessionID: row.SessionID, FamilyID: row.FamilyID,
		Audience: row.Audience, Scope: row.Scope, OrgID: row.OrgID, ExpiresAt: row.ExpiresAt}, nil
}

// reused handles the presentation of an already-rotated token.
func (s *Service) reused(ctx context.Context, row *refreshRow, now time.Time) error {
	if g := s.opts.RefreshReuseGrace; g > 0 && now.Sub(*row.UsedAt) < g {
		return errInvalidRefresh()
	}
	// Only a presentation after the rotation has completed — the token's
	// successor is stored — can be a replay of it. One that finds the token
	// consumed but no successor yet raced the rotation in flight (a
	// concurrent duplicate that read the row just after the consuming
	// UPDATE): revoking then would also kill the winner's rotation, so that
	// none of N parallel refreshes would succeed. The check and the
	// revocation hold the per-user lock that newRefreshToken takes, so the
	// successor is either seen (and revoked) or stored after this returns.
	replay := false
	err := s.withUserLock(ctx, row.UserID, func(tx *gorm.DB) error {
		var successors int64
		if err := tx.Model(&refreshRow{}).Where("family_id = ? AND id <> ? AND created_at >= ?", row.FamilyID, row.ID, *row.UsedAt).
			Count(&successors).Error; err != nil {
			return err
		}
		if successors == 0 {
			return nil
		}
		replay = true
		return tx.Model(&refreshRow{}).Where("family_id = ? AND revoked_at IS NULL", row.FamilyID).Update("revoked_at", now).Error
	})
	if err != nil {
		return fmt.Errorf("token: revoke refresh token family: %w", err)
	}
	if !replay {
		return errInvalidRefresh()
	}
	return &RefreshReuse{SessionID: row.SessionID, UserID: row.UserID, FamilyID: row.FamilyID, ClientID: row.ClientID}
}

// withUserLock runs fn in a transaction that holds the per-user refresh lock
// (see the comment at the top of this file).
func (s *Service) withUserLock(ctx context.Context, userID string, fn func(tx *gorm.DB) error) error {
	return s.db.Tx(ctx, func(tx *gorm.DB) error {
		if s.db.Dialect == store.Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.latch_refresh_user:' || CAST(? AS TEXT)))",
				userID).Error; err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// revokeFamily revokes every token of a family, used ones included, so that a
// later attempt to continue the family finds it revoked.
func (s *Service) revokeFamily(ctx context.Context, userID, familyID string) error {
	now := s.now()
	err := s.withUserLock(ctx, userID, func(tx *gorm.DB) error {
		return tx.Model(&refreshRow{}).Where("family_id = ? AND revoked_at IS NULL", familyID).
			Update("revoked_at", now).Error
	})
	if err != nil {
		return fmt.Errorf("token: revoke refresh token family: %w", err)
	}
	return nil
}

// RevokeSessionTokens revokes every refresh token of a session (logout, or a
// detected reuse). Tokens already handed out stop working at once on every
// replica; access tokens live on until they expire, so resource servers that
// need immediate logout check the session (sid) themselves.
func (s *Service) RevokeSessionTokens(ctx context.Context, sessionID string) error {
	var users []string
	if err := s.db.WithContext(ctx).Model(&refreshRow{}).Where("session_id = ? AND revoked_at IS NULL", sessionID).
		Distinct().Pluck("user_id", &users).Error; err != nil {
		return fmt.Errorf("token: revoke session tokens: %w", err)
	}
	now := s.now()
	for _, u := range users {
		err := s.withUserLock(ctx, u, func(tx *gorm.DB) error {
			return tx.Model(&refreshRow{}).Where("session_id = ? AND revoked_at IS NULL", sessionID).
				Update("revoked_at", now).Error
		})
		if err != nil {
			return fmt.Errorf("token: revoke session tokens: %w", err)
		}
	}
	return nil
}

// RevokeUserTokens revokes every refresh token of a user (sign out
// everywhere, suspension, deletion, password change).
func (s *Service) RevokeUserTokens(ctx context.Context, userID string) error {
	now := s.now()
	err := s.withUserLock(ctx, userID, func(tx *gorm.DB) error {
		return tx.Model(&refreshRow{}).Where("user_id = ? AND revoked_at IS NULL", userID).
			Update("revoked_at", now).Error
	})
	if err != nil {
		return fmt.Errorf("token: revoke user tokens: %w", err)
	}
	return nil
}

// PurgeRefreshTokens deletes refresh tokens that expired more than retain
// ago and reports how many. Expired rows protect nothing except reuse
// detection of tokens that could not be used anyway; retain keeps them a
// while for audits. Safe to run from every replica.
func (s *Service) PurgeRefreshTokens(ctx context.Context, retain time.Duration) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", s.now().Add(-retain)).Delete(&refreshRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("token: purge refresh tokens: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// newRefreshToken stores a new refresh token for g and returns it. A grant
// without FamilyID starts a family. With FamilyID it continues one, which is
// allowed only when the family exists, belongs to the same client, user and
// session, has no revoked token (reuse, logout or revocation happened) and
// has no live token (its latest token must have just been consumed by
// UseRefreshToken) — so a family stays one chain and a revocation racing the
// rotation cannot be escaped.
func (s *Service) newRefreshToken(ctx context.Context, g UserGrant, audience string, now time.Time) (string, time.Time, string, error) {
	if g.SessionExpiresAt.IsZero() {
		return "", time.Time{}, "", errors.New("token: a refresh token needs the session's expiry (UserGrant.SessionExpiresAt)")
	}
	exp := now.Add(s.opts.RefreshTokenTTL)
	if g.SessionExpiresAt.Before(exp) {
		exp = g.SessionExpiresAt.UTC()
	}
	if !now.Before(exp) {
		return "", time.Time{}, "", OAuthError(CodeInvalidGrant, "the session has expired")
	}
	raw := credentials.RandomToken(refreshTokenBytes)
	row := refreshRow{ID: credentials.RandomID(24), Digest: credentials.Digest(raw), FamilyID: g.FamilyID,
		ClientID: g.ClientID, UserID: g.UserID, SessionID: g.SessionID, Audience: audience, Scope: g.Scope,
		OrgID: g.OrgID, CreatedAt: now, ExpiresAt: exp}
	if g.FamilyID == "" {
		row.FamilyID = credentials.RandomID(24)
		if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
			return "", time.Time{}, "", fmt.Errorf("token: store refresh token: %w", err)
		}
		return raw, exp, row.FamilyID, nil
	}
	err := s.withUserLock(ctx, g.UserID, func(tx *gorm.DB) error {
		var st struct {
			Total      int64
			Mismatched int64
			Revoked    int64
			Live       int64
		}
		if err := tx.Raw(`SELECT COUNT(*) AS total,
	COALESCE(SUM(CASE WHEN client_id <> ? OR user_id <> ? OR session_id <> ? THEN 1 ELSE 0 END), 0) AS mismatched,
	COALESCE(SUM(CASE WHEN revoked_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS revoked,
	COALESCE(SUM(CASE WHEN used_at IS NULL AND revoked_at IS NULL THEN 1 ELSE 0 END), 0) AS live
FROM refresh_tokens WHERE family_id = ?`, g.ClientID, g.UserID, g.SessionID, g.FamilyID).Scan(&st).Error; err != nil {
			return err
		}
		switch {
		case st.Total == 0, st.Mismatched > 0:
			return errInvalidRefresh()
		case st.Revoked > 0:
			return errInvalidRefresh()
		case st.Live > 0:
			return OAuthError(CodeInvalidGrant, "the refresh token family already has a live token")
		}
		return tx.Create(&row).Error
	})
	if err != nil {
		if _, ok := fault.As(err); ok {
			return "", time.Time{}, "", err
		}
		return "", time.Time{}, "", fmt.Errorf("token: rotate refresh token: %w", err)
	}
	return raw, exp, row.FamilyID, nil
}

// introspectRefresh answers RFC 7662 for a refresh token.
func (s *Service) introspectRefresh(ctx context.Context, raw string) (*Introspection, error) {
	row, err := s.findRefresh(ctx, raw)
	if err != nil {
		return nil, err
	}
	if row == nil || !row.live(s.now()) {
		return &Introspection{Active: false}, nil
	}
	return &Introspection{Active: true, ClientID: row.ClientID, Sub: row.UserID, SessionID: row.SessionID,
		Scope: row.Scope, Exp: row.ExpiresAt.Unix(), Iat: row.CreatedAt.Unix(), TokenType: "refresh_token",
		Iss: s.opts.Issuer}, nil
}

// revokeRefresh answers RFC 7009 for a refresh token: the token's whole
// family is revoked (RFC 7009 §2.1 lets revoking a refresh token end the
// grant it belongs to), even when the token was already rotated.
func (s *Service) revokeRefresh(ctx context.Context, client *Client, raw string) error {
	row, err := s.findRefresh(ctx, raw)
	if err != nil {
		return err
	}
	if row == nil {
		return nil
	}
	if row.ClientID != client.ID {
		return OAuthError(CodeUnauthorizedClient, "the token was not issued to this client")
	}
	return s.revokeFamily(ctx, row.UserID, row.FamilyID)
}

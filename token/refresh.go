package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Refresh tokens (DESIGN §3): opaque 256-bit random strings, stored only as a
// SHA-256 digest, rotated on every use. Each grant starts a family; every
// rotation adds one token to it, so a family is a strict chain with at most
// one live token. Presenting a token that was already rotated means two
// parties hold the chain — the legitimate client and a thief — and the whole
// family is revoked (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
//
// Storage: what a grant stands for (client, user, session, audience, scope,
// organisation), its absolute lifetime (the session's expiry when the family
// started) and its revocation live once, in refresh_families; a
// refresh_tokens row holds only its digest, its family, its own expiry and
// when it was used. A token is valid while
//
//	token.used_at IS NULL AND family.revoked_at IS NULL AND now < token.expires_at
//
// (token.expires_at never exceeds family.expires_at). Every operation touches
// O(1) rows, however long the family: revoking a family, a session's or a
// user's families is a single UPDATE of refresh_families rows (one per grant,
// not one per rotation), and a rotation reads one token row joined to its
// family and writes three rows, each by primary key. Nothing reads or
// aggregates over a family's other tokens.
//
// Rotation is two steps, so that the caller can check the session in between:
// InspectRefreshToken reads (one query, no writes unless it detects reuse);
// RotateRefreshToken then, in one transaction, consumes the token with a
// conditional UPDATE (used_at IS NULL) that decides the single winner of any
// number of concurrent presentations, on one process or many; touches the
// family row under the condition revoked_at IS NULL; and inserts the
// successor only if both matched. (On PostgreSQL the three steps are one
// statement, so the rotation costs one round trip; on SQLite they are three
// statements in an immediate transaction.) The family UPDATE is what makes a
// revocation and a rotation serialise: on PostgreSQL both take the family
// row's lock (a revocation that comes second re-evaluates its WHERE against
// the committed rotation and still revokes the family, successor included; a
// rotation that comes second finds the family revoked and stores no
// successor), and SQLite's immediate transactions serialise all writers
// anyway. No advisory lock is needed.
//
// Because the consumption and the successor commit together, a presentation
// that finds a token used always comes after a completed rotation — there is
// no "consumed but no successor yet" state for a concurrent duplicate to
// observe, and a loser of the consumption race never revokes anything.

// refreshTokenBytes is the entropy of a refresh token: 256 bits.
const refreshTokenBytes = 32

// maxRefreshTokenLen bounds what is hashed and looked up; Latch's tokens are
// 43 characters.
const maxRefreshTokenLen = 512

// refreshFamilyRow is the refresh_families table: one row per grant.
type refreshFamilyRow struct {
	ID        string `gorm:"primaryKey"`
	ClientID  string
	UserID    string
	SessionID string
	Audience  string
	Scope     string
	OrgID     string
	// IDClaims are the claim names requested at sign-in (space-separated),
	// so refreshed ID tokens carry them again.
	IDClaims  string `gorm:"column:id_claims"`
	CreatedAt time.Time
	// ExpiresAt is the absolute bound of every token of the family: the
	// session's expiry when the family started.
	ExpiresAt time.Time
	// RotatedAt and Rotations record the family's last rotation and how
	// many there were (written by the UPDATE that serialises a rotation
	// with revocations).
	RotatedAt *time.Time
	Rotations int64
	RevokedAt *time.Time
}

func (refreshFamilyRow) TableName() string { return "refresh_families" }

// refreshTokenRow is the refresh_tokens table: one row per token.
type refreshTokenRow struct {
	ID        string `gorm:"primaryKey"`
	Digest    string
	FamilyID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

func (refreshTokenRow) TableName() string { return "refresh_tokens" }

// refreshView is a token joined to its family.
type refreshView struct {
	ID              string
	FamilyID        string
	CreatedAt       time.Time
	ExpiresAt       time.Time
	UsedAt          *time.Time
	ClientID        string
	UserID          string
	SessionID       string
	Audience        string
	Scope           string
	OrgID           string
	IDClaims        string
	FamilyExpiresAt time.Time
	RevokedAt       *time.Time
}

// live reports whether the token could still be exchanged at now.
func (v *refreshView) live(now time.Time) bool {
	return v.UsedAt == nil && v.RevokedAt == nil && now.Before(v.ExpiresAt)
}

// findRefreshSQL reads a token and its family in one query.
const findRefreshSQL = `SELECT t.id, t.family_id, t.created_at, t.expires_at, t.used_at,
	f.client_id, f.user_id, f.session_id, f.audience, f.scope, f.org_id, f.id_claims,
	f.expires_at AS family_expires_at, f.revoked_at
FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
WHERE t.digest = ?`

// rotatePostgresSQL is RotateRefreshToken's transaction as one statement on
// PostgreSQL: consume the token if unused (its row lock makes concurrent
// rotations of one token queue, and the losers re-check used_at and match
// nothing), then touch the family if unrevoked — only if the token was
// consumed — (its row lock serialises the rotation with revocations), then
// insert the successor only if the family was touched. Exactly one row is
// inserted on success, none otherwise (a revoked family's token may then be
// left marked used, which is harmless). Arguments: now, token id, now,
// family id, successor id, digest, now, expiry.
const rotatePostgresSQL = `WITH used AS (
	UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL RETURNING family_id
), family AS (
	UPDATE refresh_families SET rotated_at = ?, rotations = rotations + 1
	WHERE id = ? AND revoked_at IS NULL AND id IN (SELECT family_id FROM used) RETURNING id
)
INSERT INTO refresh_tokens (id, digest, family_id, created_at, expires_at)
SELECT ?, ?, id, ?, ? FROM family`

// newFamilyPostgresSQL stores a family and its first token in one statement
// on PostgreSQL.
const newFamilyPostgresSQL = `WITH family AS (
	INSERT INTO refresh_families (id, client_id, user_id, session_id, audience, scope, org_id, id_claims, created_at, expires_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
)
INSERT INTO refresh_tokens (id, digest, family_id, created_at, expires_at)
SELECT ?, ?, id, ?, ? FROM family`

// RefreshGrant is what a presented, valid refresh token stands for, as
// returned by InspectRefreshToken. The caller checks that the session is
// still alive, then passes it to RotateRefreshToken; only a grant obtained
// from InspectRefreshToken can be rotated.
type RefreshGrant struct {
	ClientID, UserID, SessionID, FamilyID, Audience, Scope, OrgID string
	// IDClaims are the ID-token claim names requested at sign-in.
	IDClaims []string
	// ExpiresAt is when the presented token expires.
	ExpiresAt time.Time
	// FamilyExpiresAt is the family's absolute bound (the session's expiry
	// when the family started); no successor outlives it.
	FamilyExpiresAt time.Time

	tokenID string
}

// RefreshReuse is returned by InspectRefreshToken when an already-rotated
// token is presented again: the token family has been revoked. The caller
// should also end the session (DESIGN §2.3) and write an audit event. It
// renders as invalid_grant: Unwrap yields an invalid_grant *fault.Error, so
// fault.As finds it, and the client learns nothing more than for any dead
// token.
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

// findRefresh looks a presented token and its family up by digest; nil when
// unknown.
func (s *Service) findRefresh(ctx context.Context, raw string) (*refreshView, error) {
	if raw == "" || len(raw) > maxRefreshTokenLen {
		return nil, nil
	}
	var v refreshView
	res := s.db.WithContext(ctx).Raw(findRefreshSQL, credentials.Digest(raw)).Scan(&v)
	if res.Error != nil {
		return nil, fmt.Errorf("token: find refresh token: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, nil
	}
	return &v, nil
}

// InspectRefreshToken checks a refresh token presented by client without
// consuming it: one query, and no write unless reuse is detected.
//
// An unknown, expired or revoked token, or one issued to another client,
// yields OAuthError(CodeInvalidGrant, …) — the same message for all; another
// client's token is never consumed nor treated as reused. A client without the
// refresh_token grant gets unauthorized_client.
//
// Presenting a token that was already rotated is reuse: the whole family is
// revoked and *RefreshReuse is returned — unless Options.RefreshReuseGrace is
// set and the token was rotated less than that long ago, in which case it is
// treated as a duplicate of the same request (a client retrying or racing
// itself) and refused with plain invalid_grant. Since a token is marked used
// only in the transaction that stores its successor, seeing it used means the
// rotation has completed: this is never a concurrent duplicate of a rotation
// still in flight.
func (s *Service) InspectRefreshToken(ctx context.Context, client *Client, raw string) (*RefreshGrant, error) {
	if client == nil {
		return nil, errInvalidClient
	}
	if !client.HasGrant(GrantRefreshToken) {
		return nil, OAuthError(CodeUnauthorizedClient, "the client is not allowed to use the refresh_token grant")
	}
	v, err := s.findRefresh(ctx, raw)
	if err != nil {
		return nil, err
	}
	if v == nil || v.ClientID != client.ID || v.RevokedAt != nil {
		return nil, errInvalidRefresh()
	}
	now := s.now()
	if v.UsedAt != nil {
		return nil, s.reused(ctx, v, now)
	}
	if !now.Before(v.ExpiresAt) {
		return nil, errInvalidRefresh()
	}
	return &RefreshGrant{ClientID: v.ClientID, UserID: v.UserID, SessionID: v.SessionID, FamilyID: v.FamilyID,
		Audience: v.Audience, Scope: v.Scope, OrgID: v.OrgID, IDClaims: strings.Fields(v.IDClaims), ExpiresAt: v.ExpiresAt,
		FamilyExpiresAt: v.FamilyExpiresAt, tokenID: v.ID}, nil
}

// reused handles the presentation of an already-rotated token of a family
// that was not revoked when it was read.
func (s *Service) reused(ctx context.Context, v *refreshView, now time.Time) error {
	if g := s.opts.RefreshReuseGrace; g > 0 && now.Sub(*v.UsedAt) < g {
		return errInvalidRefresh()
	}
	n, err := s.revokeFamily(ctx, v.FamilyID)
	if err != nil {
		return err
	}
	if n == 0 {
		// Revoked in the meantime (a concurrent replay, a logout): whoever
		// revoked it reports it.
		return errInvalidRefresh()
	}
	return &RefreshReuse{SessionID: v.SessionID, UserID: v.UserID, FamilyID: v.FamilyID, ClientID: v.ClientID}
}

// RotateRefreshToken consumes the token behind g and returns its successor
// in the same family, which expires after Options.RefreshTokenTTL but never
// after the family's absolute bound. It is one transaction of three
// single-row steps (see the comment at the top of this file): consume the
// token if still unused, touch the family if still unrevoked, insert the
// successor. Of any number of concurrent rotations of one token exactly one
// succeeds; the others get plain invalid_grant and change nothing. A rotation
// of a family revoked since g was inspected gets plain invalid_grant too and
// stores no successor (on PostgreSQL the token may stay marked used, which
// changes nothing: its family is revoked).
func (s *Service) RotateRefreshToken(ctx context.Context, g *RefreshGrant) (string, time.Time, error) {
	if g == nil || g.tokenID == "" || g.FamilyID == "" {
		return "", time.Time{}, errors.New("token: RotateRefreshToken needs a grant from InspectRefreshToken")
	}
	now := s.now()
	exp := now.Add(s.opts.RefreshTokenTTL)
	if g.FamilyExpiresAt.Before(exp) {
		exp = g.FamilyExpiresAt.UTC()
	}
	if !now.Before(exp) {
		return "", time.Time{}, errInvalidRefresh()
	}
	raw := credentials.RandomToken(refreshTokenBytes)
	next := refreshTokenRow{ID: credentials.RandomID(24), Digest: credentials.Digest(raw), FamilyID: g.FamilyID,
		CreatedAt: now, ExpiresAt: exp}
	var err error
	if s.db.Dialect == store.Postgres {
		// The same three steps as one statement: one round trip, and
		// still one transaction. The successor is inserted only if both
		// UPDATEs matched their row.
		res := s.db.WithContext(ctx).Exec(rotatePostgresSQL, now, g.tokenID, now, g.FamilyID,
			next.ID, next.Digest, now, next.ExpiresAt)
		if err = res.Error; err == nil && res.RowsAffected != 1 {
			err = errInvalidRefresh() // lost the race, or revoked since inspection
		}
	} else {
		err = s.db.Tx(ctx, func(tx *gorm.DB) error {
			res := tx.Model(&refreshTokenRow{}).Where("id = ? AND used_at IS NULL", g.tokenID).Update("used_at", now)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				return errInvalidRefresh() // lost the race to a concurrent rotation
			}
			res = tx.Model(&refreshFamilyRow{}).Where("id = ? AND revoked_at IS NULL", g.FamilyID).
				Updates(map[string]any{"rotated_at": now, "rotations": gorm.Expr("rotations + 1")})
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected != 1 {
				return errInvalidRefresh() // revoked since inspection
			}
			return tx.Create(&next).Error
		})
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return "", time.Time{}, err
		}
		return "", time.Time{}, fmt.Errorf("token: rotate refresh token: %w", err)
	}
	return raw, exp, nil
}

// revokeFamily revokes a family — every token of it, used ones included —
// and reports whether it was live until now.
func (s *Service) revokeFamily(ctx context.Context, familyID string) (int64, error) {
	res := s.db.WithContext(ctx).Model(&refreshFamilyRow{}).Where("id = ? AND revoked_at IS NULL", familyID).
		Update("revoked_at", s.now())
	if res.Error != nil {
		return 0, fmt.Errorf("token: revoke refresh token family: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// RevokeRefreshFamily revokes one refresh token family: the grant it stands
// for may no longer be used (its organization context ended), while the
// session and its other families live on.
func (s *Service) RevokeRefreshFamily(ctx context.Context, familyID string) error {
	_, err := s.revokeFamily(ctx, familyID)
	return err
}

// RevokeSessionTokens revokes every refresh token of a session (logout, or a
// detected reuse). Tokens already handed out stop working at once on every
// replica; access tokens live on until they expire, so resource servers that
// need immediate logout check the session (sid) themselves.
func (s *Service) RevokeSessionTokens(ctx context.Context, sessionID string) error {
	err := s.db.WithContext(ctx).Model(&refreshFamilyRow{}).Where("session_id = ? AND revoked_at IS NULL", sessionID).
		Update("revoked_at", s.now()).Error
	if err != nil {
		return fmt.Errorf("token: revoke session tokens: %w", err)
	}
	return nil
}

// RevokeUserTokens revokes every refresh token of a user (sign out
// everywhere, suspension, deletion, password change).
func (s *Service) RevokeUserTokens(ctx context.Context, userID string) error {
	err := s.db.WithContext(ctx).Model(&refreshFamilyRow{}).Where("user_id = ? AND revoked_at IS NULL", userID).
		Update("revoked_at", s.now()).Error
	if err != nil {
		return fmt.Errorf("token: revoke user tokens: %w", err)
	}
	return nil
}

// PurgeRefreshTokens deletes refresh tokens that expired more than retain
// ago, and families whose absolute bound passed more than retain ago (every
// token of such a family has expired too), and reports how many tokens were
// deleted. Expired rows protect nothing except reuse detection of tokens that
// could not be used anyway; retain keeps them a while for audits. Safe to run
// from every replica.
func (s *Service) PurgeRefreshTokens(ctx context.Context, retain time.Duration) (int64, error) {
	cutoff := s.now().Add(-retain)
	db := s.db.WithContext(ctx)
	res := db.Where("expires_at < ?", cutoff).Delete(&refreshTokenRow{})
	if res.Error != nil {
		return 0, fmt.Errorf("token: purge refresh tokens: %w", res.Error)
	}
	// Tokens never outlive their family, so this cascades to nothing in
	// practice; ON DELETE CASCADE keeps it correct regardless.
	if err := db.Where("expires_at < ?", cutoff).Delete(&refreshFamilyRow{}).Error; err != nil {
		return res.RowsAffected, fmt.Errorf("token: purge refresh token families: %w", err)
	}
	return res.RowsAffected, nil
}

// RefreshIssue is a refresh token started ahead of the other tokens of a
// sign-in, in the sign-in's own transaction (StoreRefreshFamily).
type RefreshIssue struct {
	Token     string
	ExpiresAt time.Time
	FamilyID  string
}

// StoreRefreshFamily starts a refresh-token family for g (WithRefresh is not
// looked at) through tx, a transaction of the caller's: the token commits
// with the sign-in that earns it — one commit instead of two — or not at
// all. Pass the result to IssueUserTokens as g.Refresh; it is only handed
// out once tx has committed.
func (s *Service) StoreRefreshFamily(tx *gorm.DB, g UserGrant) (*RefreshIssue, error) {
	raw, exp, family, err := s.newRefreshFamily(tx, true, g, s.audienceOf(g), s.now())
	if err != nil {
		return nil, err
	}
	return &RefreshIssue{Token: raw, ExpiresAt: exp, FamilyID: family}, nil
}

// newRefreshFamily starts a family for g with its first token, in one
// transaction (two INSERTs) — db's own when inTx, else one of its own —
// and returns the token, its expiry and the family's id. The family's
// absolute bound is the session's expiry.
func (s *Service) newRefreshFamily(db *gorm.DB, inTx bool, g UserGrant, audience string, now time.Time) (string, time.Time, string, error) {
	if g.SessionExpiresAt.IsZero() {
		return "", time.Time{}, "", errors.New("token: a refresh token needs the session's expiry (UserGrant.SessionExpiresAt)")
	}
	bound := g.SessionExpiresAt.UTC()
	exp := now.Add(s.opts.RefreshTokenTTL)
	if bound.Before(exp) {
		exp = bound
	}
	if !now.Before(exp) {
		return "", time.Time{}, "", OAuthError(CodeInvalidGrant, "the session has expired")
	}
	raw := credentials.RandomToken(refreshTokenBytes)
	fam := refreshFamilyRow{ID: credentials.RandomID(24), ClientID: g.ClientID, UserID: g.UserID, SessionID: g.SessionID,
		Audience: audience, Scope: g.Scope, OrgID: g.OrgID, IDClaims: strings.Join(g.IDClaimNames, " "), CreatedAt: now, ExpiresAt: bound}
	tok := refreshTokenRow{ID: credentials.RandomID(24), Digest: credentials.Digest(raw), FamilyID: fam.ID,
		CreatedAt: now, ExpiresAt: exp}
	var err error
	if s.db.Dialect == store.Postgres {
		// Both INSERTs as one statement: one round trip, one transaction.
		res := db.Exec(newFamilyPostgresSQL, fam.ID, fam.ClientID, fam.UserID, fam.SessionID,
			fam.Audience, fam.Scope, fam.OrgID, fam.IDClaims, fam.CreatedAt, fam.ExpiresAt, tok.ID, tok.Digest, tok.CreatedAt, tok.ExpiresAt)
		if err = res.Error; err == nil && res.RowsAffected != 1 {
			err = fmt.Errorf("stored %d tokens", res.RowsAffected)
		}
	} else {
		insert := func(tx *gorm.DB) error {
			if err := tx.Create(&fam).Error; err != nil {
				return err
			}
			return tx.Create(&tok).Error
		}
		if inTx {
			err = insert(db)
		} else {
			err = db.Transaction(insert)
		}
	}
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("token: store refresh token: %w", err)
	}
	return raw, exp, fam.ID, nil
}

// introspectRefresh answers RFC 7662 for a refresh token. It has no
// token_type: RFC 7662 §2.2 means by it an access token type (RFC 6749
// §5.1, such as Bearer), and a refresh token is not one. A refresh token
// is only ever presented by the client it was issued to, so only that
// client may learn about it: for any other (client non-nil) it is simply
// inactive, revealing neither its user nor its session.
func (s *Service) introspectRefresh(ctx context.Context, client *Client, raw string) (*Introspection, error) {
	v, err := s.findRefresh(ctx, raw)
	if err != nil {
		return nil, err
	}
	if v == nil || !v.live(s.now()) || (client != nil && v.ClientID != client.ID) {
		return &Introspection{Active: false}, nil
	}
	return &Introspection{Active: true, ClientID: v.ClientID, Sub: v.UserID, SessionID: v.SessionID,
		Scope: v.Scope, Exp: v.ExpiresAt.Unix(), Iat: v.CreatedAt.Unix(), Iss: s.opts.Issuer}, nil
}

// revokeRefresh answers RFC 7009 for a refresh token: the token's whole
// family is revoked (RFC 7009 §2.1 lets revoking a refresh token end the
// grant it belongs to), even when the token was already rotated.
func (s *Service) revokeRefresh(ctx context.Context, client *Client, raw string) error {
	v, err := s.findRefresh(ctx, raw)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	if v.ClientID != client.ID {
		return OAuthError(CodeUnauthorizedClient, "the token was not issued to this client")
	}
	_, err = s.revokeFamily(ctx, v.FamilyID)
	return err
}

package experience

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/store"
)

// Session states. A pending session waits for MFA; only an active one gets
// tokens.
const (
	SessionPending = "pending"
	SessionActive  = "active"
	SessionRevoked = "revoked"
)

// Authentication method references (RFC 8176).
const (
	AMRPassword   = "pwd"
	AMROTP        = "otp"
	AMRTOTP       = "totp"
	AMRBackupCode = "backup_code"
	AMRWebAuthn   = "webauthn"
	AMRMFA        = "mfa"
)

// Session is one user's authentication through Latch.
type Session struct {
	ID        string     `json:"session_id,omitempty"`
	UserID    string     `json:"user_id"`
	ClientID  string     `json:"client_id"`
	OrgID     string     `json:"org_id,omitempty"`
	State     string     `json:"state"`
	AMR       []string   `json:"amr"`
	AuthTime  time.Time  `json:"auth_time"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	IPAddress string     `json:"ip_address,omitempty"`
	UserAgent string     `json:"user_agent,omitempty"`
}

type sessionRow struct {
	ID        string `gorm:"primaryKey"`
	UserID    string
	ClientID  string
	OrgID     string
	State     string
	AMR       string `gorm:"column:amr"`
	AuthTime  time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
	RevokedAt *time.Time
	IPAddress string
	UserAgent string
}

func (sessionRow) TableName() string { return "sessions" }

func (r *sessionRow) session() *Session {
	return &Session{ID: r.ID, UserID: r.UserID, ClientID: r.ClientID, OrgID: r.OrgID, State: r.State,
		AMR: strings.Fields(r.AMR), AuthTime: r.AuthTime, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, IPAddress: r.IPAddress, UserAgent: r.UserAgent}
}

// Live reports whether the session can still be used at time now.
func (s *Session) Live(now time.Time) bool {
	return s.State != SessionRevoked && s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// Sessions is the session repository.
type Sessions struct {
	db         *store.DB
	now        func() time.Time
	ttl        time.Duration
	pendingTTL time.Duration
}

// Get returns a session that is live, or session_not_found.
func (s *Sessions) Get(ctx context.Context, id string) (*Session, error) {
	if id == "" || len(id) > 64 {
		return nil, errSessionNotFound()
	}
	var row sessionRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errSessionNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("experience: get session: %w", err)
	}
	sess := row.session()
	if !sess.Live(s.now()) {
		return nil, errSessionNotFound()
	}
	return sess, nil
}

// mergeAMR adds methods to a list and adds "mfa" once two different
// methods are present (pwd + totp, otp + webauthn, …): two proofs of
// different kinds, not the same method twice (two e-mailed codes are one
// inbox).
func mergeAMR(have []string, add ...string) []string {
	set := map[string]bool{}
	for _, m := range append(append([]string{}, have...), add...) {
		set[m] = true
	}
	methods := 0
	for _, m := range []string{AMRPassword, AMROTP, AMRTOTP, AMRBackupCode, AMRWebAuthn, AMRFederated} {
		if set[m] {
			methods++
		}
	}
	if methods >= 2 {
		set[AMRMFA] = true
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// SessionMeta describes where an authentication came from: the calling
// client and the end user's device.
type SessionMeta struct {
	ClientID  string
	OrgID     string
	IPAddress string
	UserAgent string
	// SSO: the calling client takes part in cross-application SSO.
	SSO bool
}

// authenticate records an authentication with methods amr for user. With
// an existing live session (of the same user) it extends it; otherwise it
// creates one. pending sessions get the short TTL.
func (s *Sessions) authenticate(ctx context.Context, tx *gorm.DB, existing *Session, userID string, amr []string, pending bool, meta SessionMeta) (*Session, error) {
	db := s.db.WithContext(ctx)
	if tx != nil {
		db = tx
	}
	now := s.now()
	state, ttl := SessionActive, s.ttl
	if pending {
		state, ttl = SessionPending, s.pendingTTL
	}
	if existing == nil {
		row := sessionRow{ID: credentials.RandomID(24), UserID: userID, ClientID: meta.ClientID, OrgID: meta.OrgID, State: state,
			AMR: strings.Join(mergeAMR(nil, amr...), " "), AuthTime: now, CreatedAt: now, UpdatedAt: now,
			ExpiresAt: now.Add(ttl), IPAddress: truncate(meta.IPAddress, 64), UserAgent: truncate(meta.UserAgent, 512)}
		if err := db.Create(&row).Error; err != nil {
			return nil, fmt.Errorf("experience: create session: %w", err)
		}
		return row.session(), nil
	}
	// An active session stays active when a step-up is pending: pending only
	// gates issuing tokens for a session that never had them.
	if existing.State == SessionActive {
		state, ttl = SessionActive, s.ttl
	}
	merged := mergeAMR(existing.AMR, amr...)
	res := db.Model(&sessionRow{}).
		Where("id = ? AND user_id = ? AND state <> ? AND revoked_at IS NULL", existing.ID, userID, SessionRevoked).
		Updates(map[string]any{"state": state, "amr": strings.Join(merged, " "), "auth_time": now, "updated_at": now,
			"expires_at": now.Add(ttl), "org_id": meta.OrgID})
	if res.Error != nil {
		return nil, fmt.Errorf("experience: extend session: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, errSessionNotFound()
	}
	updated := *existing
	updated.State, updated.AMR, updated.AuthTime, updated.UpdatedAt = state, merged, now, now
	updated.ExpiresAt, updated.OrgID = now.Add(ttl), meta.OrgID
	return &updated, nil
}

// touchInterval coalesces expiry extensions: a session re-authenticated
// many times a minute is written at most once a minute (its sliding expiry
// is then accurate to a minute), which keeps silent re-authentication —
// the hottest path after token issuance — free of a commit per call.
const touchInterval = time.Minute

// Touch extends a live active session (silent re-authentication).
func (s *Sessions) Touch(ctx context.Context, sess *Session, orgID string) (*Session, error) {
	now := s.now()
	if sess.OrgID == orgID && now.Sub(sess.UpdatedAt) < touchInterval {
		return sess, nil
	}
	res := s.db.WithContext(ctx).Model(&sessionRow{}).
		Where("id = ? AND state = ? AND revoked_at IS NULL AND expires_at > ?", sess.ID, SessionActive, now).
		Updates(map[string]any{"updated_at": now, "expires_at": now.Add(s.ttl), "org_id": orgID})
	if res.Error != nil {
		return nil, fmt.Errorf("experience: touch session: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, errSessionNotFound()
	}
	touched := *sess
	touched.UpdatedAt, touched.ExpiresAt, touched.OrgID = now, now.Add(s.ttl), orgID
	return &touched, nil
}

// Revoke ends a session. It reports false when the session was unknown or
// already ended.
func (s *Sessions) Revoke(ctx context.Context, id string) (bool, error) {
	now := s.now()
	res := s.db.WithContext(ctx).Model(&sessionRow{}).Where("id = ? AND revoked_at IS NULL", id).
		Updates(map[string]any{"state": SessionRevoked, "revoked_at": now, "updated_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("experience: revoke session: %w", res.Error)
	}
	return res.RowsAffected > 0, nil
}

// RevokeUser ends every session of a user and returns their ids.
func (s *Sessions) RevokeUser(ctx context.Context, userID string) ([]string, error) {
	var ids []string
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		ids, err = s.revokeUserTx(tx, userID, "")
		return err
	})
	return ids, err
}

// revokeUserTx ends every live session of a user but keep (if any) inside
// tx and returns the ids it ended.
func (s *Sessions) revokeUserTx(tx *gorm.DB, userID, keep string) ([]string, error) {
	var ids []string
	q := func() *gorm.DB {
		q := tx.Model(&sessionRow{}).Where("user_id = ? AND revoked_at IS NULL", userID)
		if keep != "" {
			q = q.Where("id <> ?", keep)
		}
		return q
	}
	if err := q().Pluck("id", &ids).Error; err != nil {
		return nil, fmt.Errorf("experience: revoke user sessions: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	now := s.now()
	if err := q().Updates(map[string]any{"state": SessionRevoked, "revoked_at": now, "updated_at": now}).Error; err != nil {
		return nil, fmt.Errorf("experience: revoke user sessions: %w", err)
	}
	return ids, nil
}

// ListUser returns a user's live sessions, newest first.
func (s *Sessions) ListUser(ctx context.Context, userID string) ([]*Session, error) {
	var rows []sessionRow
	if err := s.db.WithContext(ctx).Where("user_id = ? AND revoked_at IS NULL AND expires_at > ?", userID, s.now()).
		Order("created_at DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("experience: list sessions: %w", err)
	}
	out := make([]*Session, 0, len(rows))
	for i := range rows {
		out = append(out, rows[i].session())
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// sessionUserRow is a session joined with its user (columns prefixed
// u_): one round trip on the hot paths (silent re-authentication, refresh)
// instead of two.
type sessionUserRow struct {
	Session sessionRow    `gorm:"embedded"`
	User    directory.Row `gorm:"embedded;embeddedPrefix:u_"`
}

// userColumns are the users columns, aliased with the u_ prefix.
const userColumns = `u.id AS u_id, u.username AS u_username, u.username_key AS u_username_key,
	u.primary_email AS u_primary_email, u.primary_phone AS u_primary_phone, u.email_verified AS u_email_verified,
	u.phone_verified AS u_phone_verified, u.name AS u_name, u.custom_data AS u_custom_data,
	u.password_hash AS u_password_hash, u.password_updated_at AS u_password_updated_at,
	u.password_expired AS u_password_expired, u.password_temporary AS u_password_temporary,
	u.suspended AS u_suspended, u.mfa_skipped AS u_mfa_skipped, u.created_at AS u_created_at,
	u.updated_at AS u_updated_at, u.last_sign_in_at AS u_last_sign_in_at`

// getWithUser returns a live session and its user, or session_not_found.
func (s *Sessions) getWithUser(ctx context.Context, id string) (*Session, *User, error) {
	if id == "" || len(id) > 64 {
		return nil, nil, errSessionNotFound()
	}
	var rows []sessionUserRow
	err := s.db.WithContext(ctx).Raw(`SELECT s.*, `+userColumns+`
FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?`, id).Scan(&rows).Error
	if err != nil {
		return nil, nil, fmt.Errorf("experience: get session: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil, errSessionNotFound()
	}
	r := rows[0]
	sess := r.Session.session()
	if !sess.Live(s.now()) {
		return nil, nil, errSessionNotFound()
	}
	return sess, r.User.User(), nil
}

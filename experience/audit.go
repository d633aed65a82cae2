package experience

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/store"
)

// Audit event names.
const (
	EventSignIn         = "sign_in"
	EventLockout        = "lockout"
	EventPasswordSet    = "password.set"
	EventPasswordReset  = "password.reset"
	EventPasswordRehash = "password.rehash"
	EventRefreshReuse   = "refresh_token.reuse"
	EventUserCreated    = "user.created"
	EventIdentityLinked = "user.identity_linked"
	// Connector changes (social and SSO identity providers).
	EventConnectorCreated = "connector.created"
	EventConnectorUpdated = "connector.updated"
	EventConnectorDeleted = "connector.deleted"
	EventUserDeleted      = "user.deleted"
	EventUserSuspended    = "user.suspended"
	EventUserUnsuspended  = "user.unsuspended"
	EventUserUnlocked     = "user.unlocked"
	EventSessionRevoked   = "session.revoked"
	EventMFABound         = "mfa.bound"
	EventMFARemoved       = "mfa.removed"
	EventProfileUpdated   = "user.profile_updated"
	EventSettingsUpdated  = "settings.updated"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// AuditEvent is one security-relevant event. Data never holds secrets:
// callers put only identifiers' types, reasons and ids in it.
type AuditEvent struct {
	ID        string         `json:"id"`
	CreatedAt time.Time      `json:"created_at"`
	Event     string         `json:"event"`
	Outcome   string         `json:"outcome"`
	UserID    string         `json:"user_id,omitempty"`
	ClientID  string         `json:"client_id,omitempty"`
	IPAddress string         `json:"ip_address,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
	// Count is how many times the event happened: 1, except for a repeated
	// event folded into one row (see RecordRepeated), whose other fields
	// are those of the first occurrence and LastAt the time of the latest.
	Count  int        `json:"count"`
	LastAt *time.Time `json:"last_at,omitempty"`
}

type auditRow struct {
	ID          string `gorm:"primaryKey"`
	CreatedAt   time.Time
	Event       string
	Outcome     string
	UserID      string
	ClientID    string
	IPAddress   string
	Data        string
	Occurrences int
	LastAt      *time.Time
}

func (auditRow) TableName() string { return "audit_events" }

// Audit is the append-only security event log.
type Audit struct {
	db  *store.DB
	now func() time.Time
}

// Record appends an event.
func (a *Audit) Record(ctx context.Context, ev AuditEvent) error {
	return a.record(a.db.WithContext(ctx), ev)
}

// record appends an event through db (a transaction, to commit the event
// with what it records).
func (a *Audit) record(db *gorm.DB, ev AuditEvent) error {
	data, err := auditData(ev)
	if err != nil {
		return err
	}
	row := auditRow{ID: credentials.RandomID(24), CreatedAt: a.now(), Event: ev.Event, Outcome: ev.Outcome,
		UserID: ev.UserID, ClientID: ev.ClientID, IPAddress: truncate(ev.IPAddress, 64), Data: data, Occurrences: 1}
	if err := db.Create(&row).Error; err != nil {
		return fmt.Errorf("experience: audit: %w", err)
	}
	return nil
}

// RecordRepeated records an event that may repeat without bound — an
// attempt refused because its key is locked — as one row per fold key,
// whose count goes up in place. A flood of refused attempts then costs one
// row per lockout window, not one per request. The row keeps the first
// occurrence's fields; the upsert is atomic, so parallel requests and
// replicas count every occurrence exactly once.
func (a *Audit) RecordRepeated(ctx context.Context, fold string, ev AuditEvent) error {
	data, err := auditData(ev)
	if err != nil {
		return err
	}
	// The id is derived from the fold key (a hash: the key may hold an
	// identifier, which stays out of the id).
	sum := sha256.Sum256([]byte("audit-fold:" + fold))
	err = a.db.WithContext(ctx).Exec(`
INSERT INTO audit_events (id, created_at, event, outcome, user_id, client_id, ip_address, data, occurrences, last_at)
VALUES (@id, @now, @event, @outcome, @user, @client, @ip, @data, 1, NULL)
ON CONFLICT (id) DO UPDATE SET occurrences = audit_events.occurrences + 1, last_at = @now`,
		map[string]any{"id": hex.EncodeToString(sum[:12]), "now": a.now(), "event": ev.Event, "outcome": ev.Outcome,
			"user": ev.UserID, "client": ev.ClientID, "ip": truncate(ev.IPAddress, 64), "data": data}).Error
	if err != nil {
		return fmt.Errorf("experience: audit: %w", err)
	}
	return nil
}

func auditData(ev AuditEvent) (string, error) {
	if len(ev.Data) == 0 {
		return "{}", nil
	}
	raw, err := json.Marshal(ev.Data)
	if err != nil {
		return "", err
	}
	return string(raw), nil
}

// AuditFilter narrows a listing. Zero fields do not filter.
type AuditFilter struct {
	UserID   string
	ClientID string
	Event    string
	// Since and Until bound created_at: Since <= created_at < Until.
	Since, Until time.Time
	// After continues a listing after the last event of the previous page.
	After *store.Cursor
	Limit int
}

// List returns events, newest first (ties by id, so pages never skip or
// repeat an event), and the cursor of the next page ("" on the last).
func (a *Audit) List(ctx context.Context, f AuditFilter) ([]AuditEvent, string, error) {
	q := a.db.WithContext(ctx).Order("created_at DESC, id DESC")
	for col, v := range map[string]string{"user_id": f.UserID, "client_id": f.ClientID, "event": f.Event} {
		if v != "" {
			q = q.Where(col+" = ?", v)
		}
	}
	if !f.Since.IsZero() {
		q = q.Where("created_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("created_at < ?", f.Until.UTC())
	}
	if f.After != nil {
		q = q.Where("(created_at < ? OR (created_at = ? AND id < ?))", f.After.At, f.After.At, f.After.ID)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var rows []auditRow
	// One row more than asked tells whether there is a next page.
	if err := q.Limit(f.Limit + 1).Find(&rows).Error; err != nil {
		return nil, "", fmt.Errorf("experience: list audit: %w", err)
	}
	next := ""
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		last := rows[len(rows)-1]
		next = store.Cursor{At: last.CreatedAt, ID: last.ID}.String()
	}
	out := make([]AuditEvent, 0, len(rows))
	for _, r := range rows {
		ev := AuditEvent{ID: r.ID, CreatedAt: r.CreatedAt, Event: r.Event, Outcome: r.Outcome, UserID: r.UserID,
			ClientID: r.ClientID, IPAddress: r.IPAddress, Count: r.Occurrences, LastAt: r.LastAt}
		_ = json.Unmarshal([]byte(r.Data), &ev.Data)
		out = append(out, ev)
	}
	return out, next, nil
}

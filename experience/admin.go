package experience

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/fault"
)

// NewUser is the input to CreateUser. At most one of Password and
// PasswordDigest is set.
type NewUser struct {
	Profile
	Password string
	// Temporary marks Password as one to change at first sign-in.
	Temporary bool
	// PasswordDigest and PasswordAlgorithm import an existing hash (see
	// docs/password-import.md); it is upgraded on the first sign-in.
	PasswordDigest    string
	PasswordAlgorithm string
	Meta              SessionMeta
}

// CreateUser creates a user, optionally with a password or imported hash.
func (e *Engine) CreateUser(ctx context.Context, in NewUser) (*User, error) {
	if in.Password != "" && in.PasswordDigest != "" {
		return nil, fault.Invalid(fault.Detail{Field: "credentials", Message: "give either a password or a password_digest, not both"})
	}
	var encoded string
	switch {
	case in.PasswordDigest != "" || in.PasswordAlgorithm != "":
		var err error
		if encoded, err = e.hasher.NormalizeImport(in.PasswordAlgorithm, in.PasswordDigest); err != nil {
			return nil, err
		}
	case in.Password != "":
		// Check the policy against the profile being created.
		probe := &directory.Row{CustomData: "{}"}
		if err := e.Users.Apply(probe, in.Profile); err != nil {
			return nil, err
		}
		if len(in.Password) > maxPasswordBytes {
			return nil, rejected([]credentials.Violation{{Code: "password_rejected.too_long", Message: "The password is too long."}})
		}
		violations, err := e.ValidatePassword(ctx, in.Password, probe.User().Info(), nil)
		if err != nil {
			return nil, err
		}
		if len(violations) > 0 {
			return nil, rejected(violations)
		}
		if encoded, err = e.hasher.Hash(ctx, in.Password); err != nil {
			return nil, err
		}
	}
	var row *directory.Row
	err := e.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if row, err = e.Users.CreateTx(tx, in.Profile, encoded, in.Temporary && encoded != ""); err != nil {
			return err
		}
		return e.provisionJIT(tx, row.User(), in.Meta, "users_api")
	})
	if err != nil {
		return nil, err
	}
	e.audit(ctx, AuditEvent{Event: EventUserCreated, Outcome: OutcomeSuccess, UserID: row.ID, ClientID: in.Meta.ClientID,
		Data: map[string]any{"password": encoded != "", "imported": in.PasswordDigest != ""}})
	if encoded != "" {
		e.audit(ctx, AuditEvent{Event: EventPasswordSet, Outcome: OutcomeSuccess, UserID: row.ID, ClientID: in.Meta.ClientID,
			Data: map[string]any{"temporary": in.Temporary, "imported": in.PasswordDigest != ""}})
	}
	return row.User(), nil
}

// UpdateUser changes a user's profile; the change and its audit row (the
// field names, never values) commit together.
func (e *Engine) UpdateUser(ctx context.Context, id string, p Profile, meta SessionMeta) (*User, error) {
	var out *User
	err := e.db.Tx(ctx, func(tx *gorm.DB) error {
		var err error
		if out, err = e.Users.UpdateTx(tx, id, p); err != nil {
			return err
		}
		if fields := p.Fields(); len(fields) > 0 {
			return e.Audit.record(tx, AuditEvent{Event: EventProfileUpdated, Outcome: OutcomeSuccess, UserID: id,
				ClientID: meta.ClientID, IPAddress: meta.IPAddress, Data: map[string]any{"via": "users_api", "fields": fields}})
		}
		return nil
	})
	return out, err
}

// DeleteUser deletes a user; their sessions go with them. It returns the
// ids of the sessions that were live, so the caller can revoke tokens.
func (e *Engine) DeleteUser(ctx context.Context, id string, meta SessionMeta) ([]string, error) {
	if _, err := e.Users.Get(ctx, id); err != nil {
		return nil, err
	}
	ids, err := e.Sessions.RevokeUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := e.Users.Delete(ctx, id); err != nil {
		return nil, err
	}
	e.audit(ctx, AuditEvent{Event: EventUserDeleted, Outcome: OutcomeSuccess, UserID: id, ClientID: meta.ClientID})
	return ids, nil
}

// SetSuspended suspends or reinstates a user. Suspending ends every session
// (their ids are returned so the caller can revoke tokens).
func (e *Engine) SetSuspended(ctx context.Context, id string, suspended bool, meta SessionMeta) (*User, []string, error) {
	user, err := e.Users.SetFlags(ctx, id, map[string]any{"suspended": suspended})
	if err != nil {
		return nil, nil, err
	}
	var ended []string
	event := EventUserUnsuspended
	if suspended {
		event = EventUserSuspended
		if ended, err = e.Sessions.RevokeUser(ctx, id); err != nil {
			return nil, nil, err
		}
	}
	e.audit(ctx, AuditEvent{Event: event, Outcome: OutcomeSuccess, UserID: id, ClientID: meta.ClientID})
	return user, ended, nil
}

// SetPasswordExpired sets or clears the per-user expired flag.
func (e *Engine) SetPasswordExpired(ctx context.Context, id string, expired bool) (*User, error) {
	user, err := e.Users.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !user.HasPassword && expired {
		return nil, fault.New(CodeNoPasswordSet, http.StatusConflict, "The user has no password.")
	}
	return e.Users.SetFlags(ctx, id, map[string]any{"password_expired": expired})
}

// Unlock lifts the sentinel's locks on a user: the account's pool, every MFA
// factor's, and (left from before pools were per account) any pool of the
// user's identifiers.
func (e *Engine) Unlock(ctx context.Context, id string, meta SessionMeta) error {
	user, err := e.Users.Get(ctx, id)
	if err != nil {
		return err
	}
	keys := []string{userKey(user.ID), accountKey(user.ID)}
	for _, factor := range []string{FactorTOTP, FactorBackupCode, FactorWebAuthn, "otp"} {
		keys = append(keys, factorKey(user.ID, factor))
	}
	for _, ident := range user.Identifiers() {
		normalized, err := e.norm.Normalize(ident)
		if err != nil {
			continue
		}
		keys = append(keys, identifierKey(ident.Type, normalized))
	}
	if err := e.Sentinel.Unlock(ctx, keys...); err != nil {
		return err
	}
	e.audit(ctx, AuditEvent{Event: EventUserUnlocked, Outcome: OutcomeSuccess, UserID: id, ClientID: meta.ClientID})
	return nil
}

// LockStatus reports the remaining lock on a user's account pool, the one
// password sign-in (by any identifier) and codes to their addresses answer to.
func (e *Engine) LockStatus(ctx context.Context, user *User) (int64, error) {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return 0, err
	}
	return e.Sentinel.Locked(ctx, accountKey(user.ID), settings.Lockout)
}

// userKey prefixes the per-user sentinel pools (the account, MFA factors).
func userKey(userID string) string { return "user:" + userID }

// RemoveFactor deletes one of a user's MFA factors (and, for backup codes,
// the codes with it).
func (e *Engine) RemoveFactor(ctx context.Context, userID, factorID string, meta SessionMeta) error {
	if _, err := e.Users.Get(ctx, userID); err != nil {
		return err
	}
	factors, err := e.Factors.List(ctx, userID)
	if err != nil {
		return err
	}
	var removed *Factor
	for i := range factors {
		if factors[i].ID == factorID {
			removed = &factors[i]
		}
	}
	if removed == nil {
		return fault.New(CodeMFAFactorNotFound, http.StatusNotFound, "The MFA factor does not exist.")
	}
	if _, err := e.Factors.Remove(ctx, userID, factorID); err != nil {
		return err
	}
	e.audit(ctx, AuditEvent{Event: EventMFARemoved, Outcome: OutcomeSuccess, UserID: userID, ClientID: meta.ClientID,
		Data: map[string]any{"factor": removed.Type, "factor_id": factorID}})
	return nil
}

// PatchSettings applies an RFC 7396 merge patch to the settings (validated
// by SettingsStore.Patch) and audits the change: the top-level sections the
// patch touched and who asked (meta.ClientID; empty from the CLI). Settings
// hold policies, never secrets, but only the section names are recorded.
func (e *Engine) PatchSettings(ctx context.Context, patch []byte, meta SessionMeta) (Settings, error) {
	s, err := e.Settings.Patch(ctx, patch)
	if err != nil {
		return s, err
	}
	var top map[string]json.RawMessage
	_ = json.Unmarshal(patch, &top)
	sections := make([]string, 0, len(top))
	for k := range top {
		sections = append(sections, k)
	}
	sort.Strings(sections)
	via := "management_api"
	if meta.ClientID == "" {
		via = "cli"
	}
	e.audit(ctx, AuditEvent{Event: EventSettingsUpdated, Outcome: OutcomeSuccess, ClientID: meta.ClientID, IPAddress: meta.IPAddress,
		Data: map[string]any{"sections": sections, "via": via}})
	return s, nil
}

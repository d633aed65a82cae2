package experience

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/directory"
	"github.com/latch-dev/latch/fault"
)

// maxPasswordBytes bounds what is ever hashed, whatever the policy says, so
// a request cannot make a hash arbitrarily expensive.
const maxPasswordBytes = 1024

// ValidatePassword checks a candidate password against the policy (and, for
// an existing user, their history). It returns every violated rule.
func (e *Engine) ValidatePassword(ctx context.Context, password string, info credentials.UserInfo, user *User) ([]credentials.Violation, error) {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, err
	}
	violations := settings.PasswordPolicy.Check(password, info)
	if user != nil && len(violations) == 0 {
		reused, err := e.inHistory(ctx, user, password, settings.PasswordPolicy.HistorySize)
		if err != nil {
			return nil, err
		}
		if reused {
			violations = append(violations, credentials.Violation{Code: "password_rejected.history",
				Message: fmt.Sprintf("The password was used recently; choose one not among the last %d.", settings.PasswordPolicy.HistorySize)})
		}
	}
	return violations, nil
}

// inHistory reports whether password matches the current password or one of
// the last n previous ones.
func (e *Engine) inHistory(ctx context.Context, user *User, password string, n int) (bool, error) {
	if n <= 0 {
		return false, nil
	}
	hashes := []string{}
	if user.HasPassword {
		hashes = append(hashes, user.PasswordHash())
	}
	var previous []string
	if err := e.db.WithContext(ctx).Table("password_history").Where("user_id = ?", user.ID).
		Order("created_at DESC").Limit(n-1).Pluck("password_hash", &previous).Error; err != nil {
		return false, fmt.Errorf("experience: password history: %w", err)
	}
	for _, h := range append(hashes, previous...) {
		ok, _, err := e.hasher.Verify(ctx, password, h)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// rejected is the password.rejected error carrying every violation.
func rejected(violations []credentials.Violation) error {
	return fault.New(CodePasswordRejected, http.StatusUnprocessableEntity, "%s", violations[0].Message).
		With("issues", violations)
}

// SetPasswordOptions tune SetPassword.
type SetPasswordOptions struct {
	// Temporary marks the password as one the user must change at the next
	// sign-in (an administrator's "force replace").
	Temporary bool
	// MustNotExist refuses when the user already has a password (register
	// first password).
	MustNotExist bool
	// Event names the audit event.
	Event string
	Meta  SessionMeta
}

// SetPassword checks a new password against policy and history, stores its
// hash and keeps the previous one in the history.
func (e *Engine) SetPassword(ctx context.Context, userID, password string, opts SetPasswordOptions) (*User, error) {
	user, err := e.Users.Get(ctx, userID)
	if err != nil {
		return nil, err
	}
	if opts.MustNotExist && user.HasPassword {
		return nil, fault.New("user.password_exists", http.StatusConflict, "The user already has a password; replace it instead.")
	}
	if err := e.checkNewPassword(ctx, user, password); err != nil {
		return nil, err
	}
	encoded, err := e.hasher.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, err
	}
	if opts.Event == "" {
		opts.Event = EventPasswordSet
	}
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := e.storePassword(ctx, tx, user, encoded, opts.Temporary); err != nil {
			return err
		}
		if err := e.endOtherSessions(ctx, tx, user.ID, "", settings); err != nil {
			return err
		}
		return e.Audit.record(tx, AuditEvent{Event: opts.Event, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: opts.Meta.ClientID,
			IPAddress: opts.Meta.IPAddress, Data: map[string]any{"temporary": opts.Temporary}})
	})
	if err != nil {
		return nil, err
	}
	return e.Users.Get(ctx, userID)
}

func (e *Engine) checkNewPassword(ctx context.Context, user *User, password string) error {
	if len(password) > maxPasswordBytes {
		return rejected([]credentials.Violation{{Code: "password_rejected.too_long", Message: "The password is too long."}})
	}
	violations, err := e.ValidatePassword(ctx, password, user.Info(), user)
	if err != nil {
		return err
	}
	if len(violations) > 0 {
		return rejected(violations)
	}
	return nil
}

// storePassword writes a new hash (in tx when given) and moves the old one
// into the history, trimmed to the policy's size.
func (e *Engine) storePassword(ctx context.Context, tx *gorm.DB, user *User, encoded string, temporary bool) error {
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	write := func(tx *gorm.DB) error {
		now := e.now()
		if user.HasPassword && settings.PasswordPolicy.HistorySize > 0 {
			if err := tx.Exec("INSERT INTO password_history (id, user_id, password_hash, created_at) VALUES (?, ?, ?, ?)",
				credentials.RandomID(20), user.ID, user.PasswordHash(), now).Error; err != nil {
				return err
			}
			var keep []string
			if err := tx.Table("password_history").Where("user_id = ?", user.ID).Order("created_at DESC").
				Limit(settings.PasswordPolicy.HistorySize).Pluck("id", &keep).Error; err != nil {
				return err
			}
			if err := tx.Exec("DELETE FROM password_history WHERE user_id = ? AND id NOT IN ?", user.ID, keep).Error; err != nil {
				return err
			}
		}
		// A reset token was an offer to change the old password: any change
		// of password withdraws it.
		if err := tx.Model(&resetTokenRow{}).Where("user_id = ? AND used_at IS NULL", user.ID).
			Update("used_at", now).Error; err != nil {
			return err
		}
		res := tx.Model(&directory.Row{}).Where("id = ?", user.ID).Updates(map[string]any{
			"password_hash": encoded, "password_updated_at": now, "password_expired": false,
			"password_temporary": temporary, "updated_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errUserNotFound()
		}
		return nil
	}
	if tx != nil {
		return write(tx)
	}
	return e.db.Tx(ctx, write)
}

// endOtherSessions ends, inside tx, every session of a user whose password
// just changed, but keep: whoever knew the old password (or held a session
// opened with it) is out, as the settings' password.revoke_sessions_on_change
// says (default true). Their refresh tokens die with them: refresh and
// introspection check the session.
func (e *Engine) endOtherSessions(ctx context.Context, tx *gorm.DB, userID, keep string, settings Settings) error {
	if !settings.Password.RevokeSessionsOnChange {
		return nil
	}
	ids, err := e.Sessions.revokeUserTx(tx, userID, keep)
	if err != nil || len(ids) == 0 {
		return err
	}
	return e.Audit.record(tx, AuditEvent{Event: EventSessionRevoked, Outcome: OutcomeSuccess, UserID: userID,
		Data: map[string]any{"reason": "password_changed", "sessions": len(ids)}})
}

// PasswordReset is a backend's request to change an expired or temporary
// password with the reset token it received.
type PasswordReset struct {
	ResetToken  string
	NewPassword string
	Meta        SessionMeta
	EnforceMFA  bool
}

// ResetPassword changes the password behind a reset token (single use) and
// signs the user in as if with the new password.
func (e *Engine) ResetPassword(ctx context.Context, req PasswordReset) (*SignIn, error) {
	org, err := e.requestedOrg(ctx, req.Meta.OrgID)
	if err != nil {
		return nil, err
	}
	row, err := e.resets.peek(ctx, req.ResetToken, req.Meta.ClientID)
	if err != nil {
		return nil, err
	}
	user, err := e.Users.Get(ctx, row.UserID)
	if err != nil {
		if fault.Is(err, CodeUserNotFound) {
			return nil, errResetTokenInvalid()
		}
		return nil, err
	}
	if user.Suspended {
		return nil, errSuspended
	}
	// The reset token proves the password was right; a non-member learns
	// so before the token is used up and the password changed.
	if _, err := e.orgAccess(ctx, org, user.ID); err != nil {
		return nil, err
	}
	if user.HasPassword {
		same, _, err := e.hasher.Verify(ctx, req.NewPassword, user.PasswordHash())
		if err != nil {
			return nil, err
		}
		if same {
			return nil, fault.New(CodeSamePassword, http.StatusUnprocessableEntity, "The new password must differ from the current one.")
		}
	}
	if err := e.checkNewPassword(ctx, user, req.NewPassword); err != nil {
		return nil, err
	}
	encoded, err := e.hasher.Hash(ctx, req.NewPassword)
	if err != nil {
		return nil, err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return nil, err
	}
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := e.resets.consume(tx, row.Digest); err != nil {
			return err
		}
		if err := e.storePassword(ctx, tx, user, encoded, false); err != nil {
			return err
		}
		// The session this reset opens (below) is the only one to survive.
		if err := e.endOtherSessions(ctx, tx, user.ID, "", settings); err != nil {
			return err
		}
		return e.Audit.record(tx, AuditEvent{Event: EventPasswordReset, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: req.Meta.ClientID,
			IPAddress: req.Meta.IPAddress, Data: map[string]any{"reason": row.Reason}})
	})
	if err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) {
			return nil, fe
		}
		return nil, fmt.Errorf("experience: reset password: %w", err)
	}
	user, err = e.Users.Get(ctx, user.ID)
	if err != nil {
		return nil, err
	}
	return e.completeFirstFactor(ctx, user, nil, []string{AMRPassword}, req.Meta, req.EnforceMFA, nil, orgAsk{org: org}, nil)
}

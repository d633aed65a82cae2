package experience

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// enrolment is what binding a verified record writes: the factor row and,
// for backup codes, the digests of the new set (which replaces the old).
type enrolment struct {
	row           factorRow
	backupDigests []string
}

// newFactorRow starts the row of a factor being enrolled for user.
func (e *Engine) newFactorRow(user *User, factor string) factorRow {
	return factorRow{ID: credentials.RandomID(20), UserID: user.ID, Type: factor, Data: "{}", CreatedAt: e.now()}
}

// bindTypeMatches says whether the type named in POST /profile/mfa fits the
// record: the record's own kind, its factor's /v1 name, or the seed's name
// of the factor (EmailVerificationCode, PhoneVerificationCode for codes).
func bindTypeMatches(named, kind, factor string) bool {
	return named == "" || strings.EqualFold(named, kind) || named == factor ||
		strings.EqualFold(named, experienceFactorNames[factor])
}

// BindMFA enrolls the factor a verified record proves (POST /profile/mfa).
// The rules that span kinds (the factor enabled, an existing factor proven
// first in a SignIn, one code factor per channel) are checked here; what a
// kind needs (a new secret, a credential, a current address) its record
// checks in its enrolment.
func (e *Engine) BindMFA(ctx context.Context, handle, clientID, factorType, recordID string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event == EventForgotPasswordFlow {
		return fault.New(CodeNotForForgotPassword, http.StatusBadRequest, "MFA cannot be bound in a ForgotPassword interaction.")
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return err
	}
	v := in.record(recordID)
	if v == nil {
		return errRecordNotFound()
	}
	rec, ok := v.(enrolling)
	if !ok || !bindTypeMatches(factorType, v.Kind(), rec.factor()) || !v.Verified() {
		return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The MFA verification record is invalid or not verified.")
	}
	factor := rec.factor()
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if !settings.MFA.factorEnabled(factor) {
		return fault.New(CodeFactorNotEnabled, http.StatusBadRequest, "The %s factor is not enabled.", factor)
	}
	existing, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if in.Event == EventSignInFlow && len(existing) > 0 && !mfaProven(in) {
		return fault.New(CodeRequireMFA, http.StatusForbidden, "Verify an existing factor before adding another.")
	}
	for _, f := range existing {
		if (factor == FactorEmailCode || factor == FactorPhoneCode) && f.Type == factor {
			return fault.New(CodeMFAFactorBound, http.StatusUnprocessableEntity, "The user already uses %s as a second factor.", factor)
		}
	}
	enr, err := rec.enrolment(e, user, existing)
	if err != nil {
		return err
	}
	if err := e.writeEnrolment(ctx, user, clientID, factor, enr); err != nil {
		return err
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if r, ok := in.record(recordID).(enrolling); ok {
			r.forget() // the secret now lives (sealed) with the factor only
		}
		// A new TOTP, WebAuthn credential or code was just proven; a new set
		// of backup codes proves nothing, so it must not count as a method
		// used (amr) nor as MFA verified.
		if factor != FactorBackupCode {
			if in.MFA == nil {
				in.MFA = map[string]bool{}
			}
			in.MFA[factor] = true
		}
		return nil
	})
	return err
}

// writeEnrolment stores a new factor and its audit row in one transaction.
func (e *Engine) writeEnrolment(ctx context.Context, user *User, clientID, factor string, enr *enrolment) error {
	err := e.db.Tx(ctx, func(tx *gorm.DB) error {
		if factor == FactorBackupCode {
			// A new set replaces the old one.
			if err := tx.Where("user_id = ? AND type = ?", user.ID, FactorBackupCode).Delete(&factorRow{}).Error; err != nil {
				return err
			}
		}
		if err := tx.Create(&enr.row).Error; err != nil {
			return err
		}
		for _, d := range enr.backupDigests {
			if err := tx.Exec("INSERT INTO backup_codes (user_id, factor_id, digest) VALUES (?, ?, ?)", user.ID, enr.row.ID, d).Error; err != nil {
				return err
			}
		}
		return e.Audit.record(tx, AuditEvent{Event: EventMFABound, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: clientID,
			Data: map[string]any{"factor": factor}})
	})
	if err == nil {
		return nil
	}
	// Concurrent binds: the database keeps one TOTP per user and each
	// WebAuthn credential id once across users.
	if store.IsUniqueViolation(err) {
		switch factor {
		case FactorTOTP:
			return fault.New(CodeTOTPInUse, http.StatusUnprocessableEntity, "The user already has a TOTP authenticator.")
		case FactorWebAuthn:
			return fault.New(CodeWebAuthnFailed, http.StatusBadRequest, "The WebAuthn credential is already registered.")
		case FactorBackupCode:
			return fault.New(CodeInteractionConflict, http.StatusConflict, "Another request replaced the backup codes at the same time; generate new ones.")
		}
	}
	return fmt.Errorf("experience: bind mfa: %w", err)
}

// SkipMFA records that the user chose not to bind a factor now.
func (e *Engine) SkipMFA(ctx context.Context, handle, clientID string) error {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return err
	}
	if in.Event == EventForgotPasswordFlow {
		return fault.New(CodeNotForForgotPassword, http.StatusBadRequest, "MFA can only be skipped in SignIn or Register.")
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return err
	}
	settings, err := e.Settings.Get(ctx)
	if err != nil {
		return err
	}
	if settings, err = e.orgMFASettings(ctx, user, settings); err != nil {
		return err
	}
	if settings.MFA.Policy == PolicyMandatory {
		return fault.New(CodePolicyNotUserControl, http.StatusUnprocessableEntity, "MFA is mandatory and cannot be skipped.")
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if len(factors) > 0 {
		return fault.New(CodeMFAFactorsExist, http.StatusForbidden, "The user has MFA factors; verify one instead.")
	}
	if _, err := e.Users.SetFlags(ctx, user.ID, map[string]any{"mfa_skipped": true}); err != nil {
		return err
	}
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		in.MFASkipped = true
		return nil
	})
	return err
}

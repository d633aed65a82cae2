package experience

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// factorOfRecord maps a bindable record type to its factor type.
func factorOfRecord(t string) string {
	switch t {
	case RecordTOTP:
		return FactorTOTP
	case RecordBackupCode:
		return FactorBackupCode
	case RecordWebAuthn:
		return FactorWebAuthn
	case RecordMFAEmailCode:
		return FactorEmailCode
	case RecordMFAPhoneCode:
		return FactorPhoneCode
	}
	return ""
}

// bindTypeMatches says whether the type named in POST /profile/mfa fits the
// record: the record's own type, its factor's /v1 name, or the seed's name
// of the code factors (EmailVerificationCode, PhoneVerificationCode).
func bindTypeMatches(named, recordType, factor string) bool {
	if named == "" || strings.EqualFold(named, recordType) || named == factor {
		return true
	}
	switch factor {
	case FactorEmailCode:
		return strings.EqualFold(named, RecordEmailCode)
	case FactorPhoneCode:
		return strings.EqualFold(named, RecordPhoneCode)
	}
	return false
}

// BindMFA enrolls the factor a verified record proves (POST /profile/mfa).
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
	rec := in.record(recordID)
	if rec == nil {
		return errRecordNotFound()
	}
	factor := factorOfRecord(rec.Type)
	if factor == "" || !bindTypeMatches(factorType, rec.Type, factor) || !rec.Verified {
		return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The MFA verification record is invalid or not verified.")
	}
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
	now := e.now()
	row := factorRow{ID: credentials.RandomID(20), UserID: user.ID, Type: factor, Data: "{}", CreatedAt: now}
	switch factor {
	case FactorTOTP:
		for _, f := range existing {
			if f.Type == FactorTOTP {
				return fault.New(CodeTOTPInUse, http.StatusUnprocessableEntity, "The user already has a TOTP authenticator.")
			}
		}
		if rec.Extra["secret"] == "" {
			return fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new TOTP secret.")
		}
		secret, err := e.openTOTP(user.ID, rec.Extra["secret"])
		if err != nil {
			return err
		}
		if row.Secret, err = e.sealer.Seal([]byte(secret), []byte("totp:"+user.ID)); err != nil {
			return err
		}
		if step := rec.Extra["step"]; step != "" {
			var n int64
			fmt.Sscan(step, &n)
			row.LastUsedStep = &n
		}
	case FactorBackupCode:
		if rec.Extra["digests"] == "" {
			return fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new backup codes.")
		}
		others := 0
		for _, f := range existing {
			if f.Type != FactorBackupCode {
				others++
			}
		}
		if others == 0 {
			return fault.New(CodeBackupCodeAlone, http.StatusUnprocessableEntity, "Backup codes cannot be the only MFA factor.")
		}
	case FactorEmailCode, FactorPhoneCode:
		// The code went to the user's address as it is now; an address
		// changed since then is not the one that was proven.
		if rec.UserID != user.ID || rec.Identifier == nil || !user.HasAddress(*rec.Identifier) {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The code record does not prove the user's current address.")
		}
	case FactorWebAuthn:
		if rec.Extra["credential"] == "" {
			return fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new WebAuthn credential.")
		}
		cred, err := credentials.UnmarshalCredential(rec.Extra["credential"])
		if err != nil {
			return err
		}
		id := base64.RawURLEncoding.EncodeToString(cred.ID)
		row.Data, row.CredentialID = rec.Extra["credential"], &id
	}
	err = e.db.Tx(ctx, func(tx *gorm.DB) error {
		if factor == FactorBackupCode {
			// A new set replaces the old one.
			if err := tx.Where("user_id = ? AND type = ?", user.ID, FactorBackupCode).Delete(&factorRow{}).Error; err != nil {
				return err
			}
		}
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		if factor == FactorBackupCode {
			for _, d := range strings.Split(rec.Extra["digests"], ",") {
				if err := tx.Exec("INSERT INTO backup_codes (user_id, factor_id, digest) VALUES (?, ?, ?)", user.ID, row.ID, d).Error; err != nil {
					return err
				}
			}
		}
		return e.Audit.record(tx, AuditEvent{Event: EventMFABound, Outcome: OutcomeSuccess, UserID: user.ID, ClientID: clientID,
			Data: map[string]any{"factor": factor}})
	})
	if err != nil {
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
	_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		if r := in.record(recordID); r != nil {
			r.Extra = nil // the secret now lives (sealed) with the factor only
		}
		// A new TOTP or WebAuthn credential was just proven (code,
		// attestation); a new set of backup codes proves nothing, so it
		// must not count as a method used (amr) nor as MFA verified.
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

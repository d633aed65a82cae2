package experience

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
)

// webAuthnUser builds the ceremony user with the user's credentials.
func (e *Engine) webAuthnUser(ctx context.Context, user *User) (credentials.WebAuthnUser, []factorRow, error) {
	var rows []factorRow
	if err := e.db.WithContext(ctx).Where("user_id = ? AND type = ?", user.ID, FactorWebAuthn).Find(&rows).Error; err != nil {
		return credentials.WebAuthnUser{}, nil, fmt.Errorf("experience: load webauthn: %w", err)
	}
	wu := credentials.WebAuthnUser{ID: []byte(user.ID), Name: user.ID, DisplayName: user.Name}
	if ids := user.Identifiers(); len(ids) > 0 {
		wu.Name = ids[0].Value
	}
	if wu.DisplayName == "" {
		wu.DisplayName = wu.Name
	}
	for _, r := range rows {
		c, err := credentials.UnmarshalCredential(r.Data)
		if err != nil {
			return credentials.WebAuthnUser{}, nil, err
		}
		wu.Credentials = append(wu.Credentials, *c)
	}
	return wu, rows, nil
}

// WebAuthnOptions are the options of a started ceremony.
type WebAuthnOptions struct {
	VerificationID string          `json:"verificationId"`
	Options        json.RawMessage `json:"-"`
}

// StartWebAuthn begins a registration (register=true) or authentication.
func (e *Engine) StartWebAuthn(ctx context.Context, handle, clientID string, register bool) (*WebAuthnOptions, error) {
	if e.webauthn == nil {
		return nil, fault.New(CodeFactorNotEnabled, http.StatusBadRequest, "WebAuthn is not configured.")
	}
	_, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return nil, err
	}
	wu, _, err := e.webAuthnUser(ctx, user)
	if err != nil {
		return nil, err
	}
	var opts json.RawMessage
	var session string
	if register {
		opts, session, err = e.webauthn.BeginRegistration(wu)
	} else {
		if len(wu.Credentials) == 0 {
			return nil, fault.New(CodeFactorNotEnrolled, http.StatusBadRequest, "The user has no WebAuthn credential.")
		}
		opts, session, err = e.webauthn.BeginLogin(wu)
	}
	if err != nil {
		return nil, err
	}
	kind := "authentication"
	if register {
		kind = "registration"
	}
	rec := &Record{ID: credentials.RandomID(20), Type: RecordWebAuthn, UserID: user.ID,
		Extra: map[string]string{"session": session, "kind": kind}}
	if _, err := e.addRecord(ctx, handle, clientID, rec); err != nil {
		return nil, err
	}
	return &WebAuthnOptions{VerificationID: rec.ID, Options: opts}, nil
}

// FinishWebAuthn verifies an attestation (registration) or assertion.
func (e *Engine) FinishWebAuthn(ctx context.Context, handle, clientID, recordID string, register bool, payload json.RawMessage) (string, error) {
	if e.webauthn == nil {
		return "", fault.New(CodeFactorNotEnabled, http.StatusBadRequest, "WebAuthn is not configured.")
	}
	in, user, err := e.identifiedInteraction(ctx, handle, clientID)
	if err != nil {
		return "", err
	}
	rec := in.record(recordID)
	if rec == nil || rec.Type != RecordWebAuthn {
		return "", errRecordNotFound()
	}
	kind := "authentication"
	if register {
		kind = "registration"
	}
	if rec.Extra["session"] == "" || rec.Extra["kind"] != kind || rec.Verified {
		return "", fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "No WebAuthn %s challenge is pending in this record.", kind)
	}
	wu, rows, err := e.webAuthnUser(ctx, user)
	if err != nil {
		return "", err
	}
	failed := func(err error) error {
		return fault.New(CodeWebAuthnFailed, http.StatusBadRequest, "The WebAuthn response could not be verified.")
	}
	verified := *rec
	verified.Extra = map[string]string{"kind": kind}
	if register {
		cred, err := e.webauthn.FinishRegistration(wu, rec.Extra["session"], payload)
		if err != nil {
			return "", failed(err)
		}
		// A credential id is unique across users (a crafted attestation
		// could reuse another account's): refuse it here, not with a 500
		// from the unique index at bind time.
		var taken int64
		if err := e.db.WithContext(ctx).Model(&factorRow{}).
			Where("credential_id = ?", base64.RawURLEncoding.EncodeToString(cred.ID)).Count(&taken).Error; err != nil {
			return "", fmt.Errorf("experience: webauthn credential lookup: %w", err)
		}
		if taken > 0 {
			return "", failed(nil)
		}
		data, err := credentials.MarshalCredential(cred)
		if err != nil {
			return "", err
		}
		verified.Verified = true
		verified.Extra["credential"] = data
		_, err = e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
			r := in.record(recordID)
			if r == nil {
				return errRecordNotFound()
			}
			*r = verified
			return nil
		})
		return recordID, err
	}
	err = e.guardFactor(ctx, user, FactorWebAuthn, func() error {
		cred, err := e.webauthn.FinishLogin(wu, rec.Extra["session"], payload)
		if err != nil {
			return failed(err)
		}
		data, err := credentials.MarshalCredential(cred)
		if err != nil {
			return err
		}
		credID := base64.RawURLEncoding.EncodeToString(cred.ID)
		for _, r := range rows {
			if r.CredentialID != nil && *r.CredentialID == credID {
				// Compare-and-set on the stored record: a concurrent
				// assertion with the same counter cannot also pass.
				res := e.db.WithContext(ctx).Model(&factorRow{}).Where("id = ? AND data = ?", r.ID, r.Data).
					Updates(map[string]any{"data": data, "last_used_at": e.now()})
				if res.Error != nil {
					return res.Error
				}
				if res.RowsAffected != 1 {
					return failed(nil)
				}
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	verified.Verified = true
	return recordID, e.markMFA(ctx, handle, clientID, &verified, FactorWebAuthn)
}

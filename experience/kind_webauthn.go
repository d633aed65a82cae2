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

// RecordWebAuthn is a WebAuthn ceremony: registering a new credential
// (a passkey or security key to bind) or asserting an enrolled one (MFA).
const RecordWebAuthn = "WebAuthn"

func init() { registerKind(RecordWebAuthn, func() Verification { return &webAuthnRecord{} }) }

// WebAuthn ceremonies.
const (
	ceremonyRegistration   = "registration"
	ceremonyAuthentication = "authentication"
)

type webAuthnRecord struct {
	record
	UserID   string `json:"user_id"`
	Ceremony string `json:"ceremony"`
	// Session is the pending ceremony's challenge state, until it is done.
	Session string `json:"session,omitempty"`
	// Credential is a registered credential until it is bound.
	Credential string `json:"credential,omitempty"`
}

func (r *webAuthnRecord) Kind() string   { return RecordWebAuthn }
func (r *webAuthnRecord) Proof() Proof   { return Proof{UserID: r.UserID, Method: AMRWebAuthn} }
func (r *webAuthnRecord) factor() string { return FactorWebAuthn }
func (r *webAuthnRecord) forget()        { r.Credential = "" }

func (r *webAuthnRecord) enrolment(e *Engine, user *User, _ []Factor) (*enrolment, error) {
	if r.Credential == "" {
		return nil, fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "The record holds no new WebAuthn credential.")
	}
	cred, err := credentials.UnmarshalCredential(r.Credential)
	if err != nil {
		return nil, err
	}
	id := base64.RawURLEncoding.EncodeToString(cred.ID)
	row := e.newFactorRow(user, FactorWebAuthn)
	row.Data, row.CredentialID = r.Credential, &id
	return &enrolment{row: row}, nil
}

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
	ceremony := ceremonyAuthentication
	if register {
		ceremony = ceremonyRegistration
	}
	rec := &webAuthnRecord{record: newRecord(), UserID: user.ID, Ceremony: ceremony, Session: session}
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
	rec, ok := recordAs[*webAuthnRecord](in, recordID)
	if !ok {
		return "", errRecordNotFound()
	}
	ceremony := ceremonyAuthentication
	if register {
		ceremony = ceremonyRegistration
	}
	if rec.Session == "" || rec.Ceremony != ceremony || rec.Verified() {
		return "", fault.New(CodePendingInfoNotFound, http.StatusBadRequest, "No WebAuthn %s challenge is pending in this record.", ceremony)
	}
	wu, rows, err := e.webAuthnUser(ctx, user)
	if err != nil {
		return "", err
	}
	failed := func(err error) error {
		return fault.New(CodeWebAuthnFailed, http.StatusBadRequest, "The WebAuthn response could not be verified.")
	}
	session := rec.Session
	rec.Session = "" // a challenge is answered once
	if register {
		cred, err := e.webauthn.FinishRegistration(wu, session, payload)
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
		rec.markVerified()
		rec.Credential = data
		return recordID, e.replaceRecord(ctx, handle, clientID, rec)
	}
	err = e.guardFactor(ctx, user, FactorWebAuthn, func() error {
		cred, err := e.webauthn.FinishLogin(wu, session, payload)
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
	rec.markVerified()
	return recordID, e.markMFA(ctx, handle, clientID, rec, FactorWebAuthn)
}

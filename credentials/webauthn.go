package credentials

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// WebAuthnTimeout is how long a ceremony may take, sent to the browser as
// the options' timeout and enforced on the server from the session data,
// so a challenge cannot be answered hours later even if the caller keeps
// the session around.
const WebAuthnTimeout = 5 * time.Minute

var (
	// ErrWebAuthnFailed means a registration or assertion response was
	// refused: malformed, wrong challenge, origin or RP id, bad signature,
	// unknown credential, expired or unreadable session. The error wraps
	// the library's error as well, for logs; clients get
	// session.mfa.webauthn_verification_failed.
	ErrWebAuthnFailed = errors.New("credentials: webauthn verification failed")
	// ErrWebAuthnCloned means an assertion verified but its signature
	// counter did not increase over the stored one: the private key may
	// exist on two authenticators (cloned), or the assertion was replayed.
	// The sign-in is refused and the stored credential is not updated.
	ErrWebAuthnCloned = errors.New("credentials: webauthn signature counter did not increase (cloned authenticator?)")
	// ErrWebAuthnNoCredentials means BeginLogin was called for a user with
	// no registered WebAuthn credential.
	ErrWebAuthnNoCredentials = errors.New("credentials: user has no webauthn credential")
)

// WebAuthnConfig names the relying party: RPID is the registrable domain
// credentials are scoped to ("example.com"), RPName is shown by
// authenticators, Origins are the exact origins the browser may report
// ("https://auth.example.com").
type WebAuthnConfig struct {
	RPID    string
	RPName  string
	Origins []string
}

// WebAuthn runs the registration and authentication ceremonies of WebAuthn
// as a second factor (the user is already identified). It holds no state
// between calls: the session strings it returns carry the challenge and are
// kept by the caller, server-side, until the matching Finish call. Safe for
// concurrent use.
type WebAuthn struct {
	wa *webauthn.WebAuthn
}

// NewWebAuthn validates cfg and returns a WebAuthn. Attestation is not
// requested ("none"): as a second factor Latch needs proof of possession,
// not the authenticator's make and model, and asking for attestation only
// adds a privacy prompt in browsers. User verification is "preferred": the
// password already proved knowledge, so a security key without PIN is
// enough.
func NewWebAuthn(cfg WebAuthnConfig) (*WebAuthn, error) {
	if cfg.RPID == "" || cfg.RPName == "" || len(cfg.Origins) == 0 {
		return nil, errors.New("credentials: webauthn needs an RP id, an RP name and at least one origin")
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: WebAuthnTimeout, TimeoutUVD: WebAuthnTimeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPName,
		RPOrigins:             append([]string(nil), cfg.Origins...),
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("credentials: webauthn configuration: %w", err)
	}
	return &WebAuthn{wa: wa}, nil
}

// WebAuthnUser is the user of a ceremony: the user handle (opaque bytes,
// at most 64, never an e-mail: it is stored on the authenticator), the name
// and display name shown by authenticators, and the credentials already
// registered (excluded at registration, allowed at login).
type WebAuthnUser struct {
	ID          []byte
	Name        string
	DisplayName string
	Credentials []webauthn.Credential
}

// webauthnUser adapts WebAuthnUser to the library's webauthn.User.
type webauthnUser struct{ u *WebAuthnUser }

func (w webauthnUser) WebAuthnID() []byte                         { return w.u.ID }
func (w webauthnUser) WebAuthnName() string                       { return w.u.Name }
func (w webauthnUser) WebAuthnDisplayName() string                { return w.u.DisplayName }
func (w webauthnUser) WebAuthnCredentials() []webauthn.Credential { return w.u.Credentials }

// Session kinds, so that a registration session cannot finish a login and
// the reverse.
const (
	webauthnSessionRegistration = "registration"
	webauthnSessionLogin        = "login"
)

// webauthnSession is the JSON kept by the caller between Begin and Finish.
type webauthnSession struct {
	Kind string               `json:"kind"`
	Data webauthn.SessionData `json:"data"`
}

func encodeWebAuthnSession(kind string, data *webauthn.SessionData) (string, error) {
	b, err := json.Marshal(webauthnSession{Kind: kind, Data: *data})
	if err != nil {
		return "", fmt.Errorf("credentials: encoding webauthn session: %w", err)
	}
	return string(b), nil
}

func decodeWebAuthnSession(kind, s string) (webauthn.SessionData, error) {
	var sess webauthnSession
	if err := json.Unmarshal([]byte(s), &sess); err != nil || sess.Kind != kind || sess.Data.Challenge == "" {
		return webauthn.SessionData{}, fmt.Errorf("%w: unreadable or wrong-kind %s session", ErrWebAuthnFailed, kind)
	}
	return sess.Data, nil
}

// webauthnFailed wraps a library error so that errors.Is matches both
// ErrWebAuthnFailed and the original (protocol.Error etc.).
func webauthnFailed(err error) error {
	return fmt.Errorf("%w: %w", ErrWebAuthnFailed, err)
}

// BeginRegistration returns the PublicKeyCredentialCreationOptions JSON to
// hand to the browser/authenticator (navigator.credentials.create({publicKey:
// options}) after base64url decoding, or PublicKeyCredential.
// parseCreationOptionsFromJSON) and the session data to keep server-side
// (JSON string) until FinishRegistration. The user's existing credentials
// are listed in excludeCredentials, so an authenticator is not registered
// twice.
func (w *WebAuthn) BeginRegistration(u WebAuthnUser) (options json.RawMessage, session string, err error) {
	exclude := webauthn.Credentials(u.Credentials).CredentialDescriptors()
	creation, data, err := w.wa.BeginRegistration(webauthnUser{&u}, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, "", fmt.Errorf("credentials: webauthn registration options: %w", err)
	}
	options, err = json.Marshal(creation.Response)
	if err != nil {
		return nil, "", fmt.Errorf("credentials: encoding webauthn registration options: %w", err)
	}
	session, err = encodeWebAuthnSession(webauthnSessionRegistration, data)
	if err != nil {
		return nil, "", err
	}
	return options, session, nil
}

// FinishRegistration verifies the browser's registration response (the
// PublicKeyCredential JSON, as from credential.toJSON()) against the
// session from BeginRegistration and returns the new credential to store
// (see MarshalCredential). Every failure wraps ErrWebAuthnFailed, including
// a credential the user already has. Credential ids must also be unique
// across users: the caller's store enforces that with a unique index.
func (w *WebAuthn) FinishRegistration(u WebAuthnUser, session string, response json.RawMessage) (*webauthn.Credential, error) {
	data, err := decodeWebAuthnSession(webauthnSessionRegistration, session)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	cred, err := w.wa.CreateCredential(webauthnUser{&u}, data, parsed)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	for _, c := range u.Credentials {
		if bytes.Equal(c.ID, cred.ID) {
			return nil, fmt.Errorf("%w: credential already registered", ErrWebAuthnFailed)
		}
	}
	return cred, nil
}

// BeginLogin returns the PublicKeyCredentialRequestOptions JSON (challenge,
// rpId and the user's credentials in allowCredentials) to hand to the
// browser and the session data to keep server-side until FinishLogin. A
// user without credentials gets ErrWebAuthnNoCredentials.
func (w *WebAuthn) BeginLogin(u WebAuthnUser) (options json.RawMessage, session string, err error) {
	if len(u.Credentials) == 0 {
		return nil, "", ErrWebAuthnNoCredentials
	}
	assertion, data, err := w.wa.BeginLogin(webauthnUser{&u})
	if err != nil {
		return nil, "", fmt.Errorf("credentials: webauthn login options: %w", err)
	}
	options, err = json.Marshal(assertion.Response)
	if err != nil {
		return nil, "", fmt.Errorf("credentials: encoding webauthn login options: %w", err)
	}
	session, err = encodeWebAuthnSession(webauthnSessionLogin, data)
	if err != nil {
		return nil, "", err
	}
	return options, session, nil
}

// FinishLogin verifies an assertion (the PublicKeyCredential JSON) against
// the session from BeginLogin and the user's credentials, and returns the
// used credential with its sign counter and flags updated: the caller
// stores it back (by credential ID), ideally with a compare-and-set on the
// previous counter so two concurrent assertions cannot both pass.
//
// A sign counter that does not increase (the authenticator reports a
// counter and it is ≤ the stored one) is ErrWebAuthnCloned: the key may
// have been cloned or the assertion replayed, and WebAuthn leaves the
// reaction to the relying party; Latch refuses. Authenticators that do not
// implement a counter always report 0 and pass. Every other failure wraps
// ErrWebAuthnFailed.
func (w *WebAuthn) FinishLogin(u WebAuthnUser, session string, response json.RawMessage) (*webauthn.Credential, error) {
	data, err := decodeWebAuthnSession(webauthnSessionLogin, session)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	// The clone warning must reflect this assertion only, not a flag left
	// on a stored record; copy so the caller's slice is not modified.
	creds := make([]webauthn.Credential, len(u.Credentials))
	copy(creds, u.Credentials)
	for i := range creds {
		creds[i].Authenticator.CloneWarning = false
	}
	user := u
	user.Credentials = creds
	cred, err := w.wa.ValidateLogin(webauthnUser{&user}, data, parsed)
	if err != nil {
		return nil, webauthnFailed(err)
	}
	if cred.Authenticator.CloneWarning {
		return nil, ErrWebAuthnCloned
	}
	return cred, nil
}

// MarshalCredential encodes a credential for storage as JSON (the
// library's own field names, stable across its versions). The public key
// is not secret, but the record should still be stored where it cannot be
// altered by anyone who cannot also change the user's password.
func MarshalCredential(c *webauthn.Credential) (string, error) {
	if c == nil {
		return "", errors.New("credentials: nil webauthn credential")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("credentials: encoding webauthn credential: %w", err)
	}
	return string(b), nil
}

// UnmarshalCredential decodes a credential stored by MarshalCredential. A
// record without an id or public key is refused: it could never verify and
// signals corruption.
func UnmarshalCredential(s string) (*webauthn.Credential, error) {
	var c webauthn.Credential
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, fmt.Errorf("credentials: decoding webauthn credential: %w", err)
	}
	if len(c.ID) == 0 || len(c.PublicKey) == 0 {
		return nil, errors.New("credentials: decoding webauthn credential: missing id or public key")
	}
	return &c, nil
}

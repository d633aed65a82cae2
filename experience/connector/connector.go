// Package connector is what the engine knows of an upstream identity
// provider (a customer's Okta or Entra, "Sign in with Google"): one
// interface, implemented by one small package per upstream protocol
// (connector/oidc, connector/oauth2, connector/saml), chosen by the
// connector's stored provider name. The engine keeps the state of a sign-in (state, nonce,
// PKCE verifier) in its verification record and checks the state itself;
// a connector builds the authorization URL and turns the callback's code
// into a verified upstream identity.
package connector

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/latch-dev/latch/fault"
)

// Error codes of upstream failures (Logto's connector.* codes). Their
// messages never carry the upstream's own text.
const (
	CodeAuthorizationFailed = "connector.authorization_failed"
	CodeInvalidResponse     = "connector.invalid_response"
	CodeInvalidConfig       = "connector.invalid_config"
)

// Request is one authorization round trip as the engine holds it.
type Request struct {
	RedirectURI string
	State       string
	// Nonce binds the ID token to this request (OIDC).
	Nonce string
	// Verifier is the PKCE code verifier ("" when PKCE is not used).
	Verifier string
	// Relay leads a provider's post back to this request's record (SAML's
	// RelayState); the client's State stays in the record.
	Relay string
}

// Identity is what the upstream says about the user, verified.
type Identity struct {
	// Subject is the upstream's stable user id (unique per connector).
	Subject       string `json:"sub"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
	Avatar        string `json:"avatar,omitempty"`
	// AMR are the methods the upstream reports it used (OIDC amr; SAML
	// "mfa" from a multi-factor AuthnContextClassRef).
	AMR []string `json:"amr,omitempty"`
	// DirectoryEmail: Email is an attribute of the upstream's directory
	// with no verification claim of its own (SAML). The engine counts it
	// as verified in the connector's own domains only.
	DirectoryEmail bool `json:"directory_email,omitempty"`
}

// Assertion is a verified assertion a provider posted back: the identity,
// and the assertion's id, which must be single use until Expires.
type Assertion struct {
	Identity *Identity
	ID       string
	Expires  time.Time
}

// AssertionConsumer is a connector whose provider posts its answer to
// Latch (SAML's assertion consumer service) instead of a code to redeem.
type AssertionConsumer interface {
	// Consume verifies a posted response as the answer to r.
	Consume(ctx context.Context, r Request, response string) (*Assertion, error)
	// Metadata is what the provider must know of Latch (SAML SP metadata).
	Metadata() ([]byte, error)
}

// Endpoint is Latch's own address of one connector: SAML's assertion
// consumer service (the SP metadata at URL + "/metadata").
type Endpoint struct {
	URL string
}

// Connector is one configured upstream.
type Connector interface {
	// AuthorizationURL is where the user agent goes to sign in upstream.
	AuthorizationURL(ctx context.Context, r Request) (string, error)
	// Exchange redeems a callback's code and returns the verified identity.
	Exchange(ctx context.Context, r Request, code string) (*Identity, error)
	// UsesPKCE says whether requests carry a code challenge.
	UsesPKCE() bool
}

// Kind is one upstream protocol: it validates stored configurations and
// opens connectors from them.
type Kind interface {
	// Split validates a configuration and separates its secret (the
	// client secret) from the rest, which may be stored and shown. An
	// absent secret is "" (a PATCH keeps the stored one).
	Split(config json.RawMessage) (public json.RawMessage, secret string, err error)
	// Open builds a connector from a stored configuration and its secret;
	// at is the connector's endpoint at Latch.
	Open(ctx context.Context, public json.RawMessage, secret string, at Endpoint, hc *http.Client) (Connector, error)
}

// Generated is a Kind that fills some configuration members itself (the
// SAML SP certificate): a request may not set them, only remove them (null
// in a patch) to have them made anew.
type Generated interface {
	Generated() []string
}

// Kinds maps provider names ("oidc", "oauth2", "saml") to their kinds.
type Kinds map[string]Kind

// InvalidConfig is a configuration error naming the field.
func InvalidConfig(field, message string) error {
	if field != "" {
		field = "config." + field
	} else {
		field = "config"
	}
	return fault.Invalid(fault.Detail{Field: field, Message: message})
}

// AuthorizationFailed: the upstream refused the code (or the user).
func AuthorizationFailed() *fault.Error {
	return fault.New(CodeAuthorizationFailed, http.StatusUnauthorized, "The identity provider did not authorize the sign-in.")
}

// Refusal is a client-facing error (Err, in Latch's words) with the
// upstream's own detail for the log only.
type Refusal struct {
	Err    *fault.Error
	Detail error
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// InvalidResponse: the upstream answered something that does not verify
// (a bad ID token, a userinfo without subject) or could not be reached.
func InvalidResponse(what string) *fault.Error {
	return fault.New(CodeInvalidResponse, http.StatusBadRequest, "The identity provider's response is invalid: %s.", what)
}

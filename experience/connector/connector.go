// Package connector is what the engine knows of an upstream identity
// provider (a customer's Okta or Entra, "Sign in with Google"): one
// interface, implemented by one small package per upstream protocol
// (connector/oidc, connector/oauth2), chosen by the connector's stored
// provider name. The engine keeps the state of a sign-in (state, nonce,
// PKCE verifier) in its verification record and checks the state itself;
// a connector builds the authorization URL and turns the callback's code
// into a verified upstream identity.
package connector

import (
	"context"
	"encoding/json"
	"net/http"

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
}

// Identity is what the upstream says about the user, verified.
type Identity struct {
	// Subject is the upstream's stable user id (unique per connector).
	Subject       string `json:"sub"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
	Avatar        string `json:"avatar,omitempty"`
	// AMR are the methods the upstream reports it used (OIDC amr).
	AMR []string `json:"amr,omitempty"`
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
	// Open builds a connector from a stored configuration and its secret.
	Open(ctx context.Context, public json.RawMessage, secret string, hc *http.Client) (Connector, error)
}

// Kinds maps provider names ("oidc", "oauth2") to their kinds.
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

// InvalidResponse: the upstream answered something that does not verify
// (a bad ID token, a userinfo without subject) or could not be reached.
func InvalidResponse(what string) *fault.Error {
	return fault.New(CodeInvalidResponse, http.StatusBadRequest, "The identity provider's response is invalid: %s.", what)
}

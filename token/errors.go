package token

import (
	"net/http"
	"strings"

	"github.com/latch-dev/latch/fault"
)

// OAuthPrefix prefixes the fault codes of RFC 6749 §5.2 errors; the /oidc
// dialect renders the code without it.
const OAuthPrefix = "oauth."

// OAuth error codes (RFC 6749 §5.2, RFC 8707, RFC 7009).
const (
	CodeInvalidRequest       = OAuthPrefix + "invalid_request"
	CodeInvalidClient        = OAuthPrefix + "invalid_client"
	CodeInvalidGrant         = OAuthPrefix + "invalid_grant"
	CodeUnauthorizedClient   = OAuthPrefix + "unauthorized_client"
	CodeUnsupportedGrantType = OAuthPrefix + "unsupported_grant_type"
	CodeInvalidScope         = OAuthPrefix + "invalid_scope"
	CodeInvalidTarget        = OAuthPrefix + "invalid_target"
	CodeUnsupportedTokenType = OAuthPrefix + "unsupported_token_type"
	// CodeAccessDenied refuses a token the client may not have for this
	// user (an organization token for a non-member), with 403.
	CodeAccessDenied = OAuthPrefix + "access_denied"
)

// Codes for Latch's own API authentication (rendered in the /v1 dialect).
const (
	CodeInvalidClientToken = "auth.invalid_client_token"
	CodeInsufficientScope  = "auth.insufficient_scope"
)

// OAuthError returns an RFC 6749 error; status defaults to 400.
func OAuthError(code string, description string) *fault.Error {
	status := http.StatusBadRequest
	if code == CodeInvalidClient {
		status = http.StatusUnauthorized
	}
	return &fault.Error{Code: code, Status: status, Message: description}
}

// ErrAccessDenied is access_denied (403): the grant is valid but may not
// yield the token asked for.
func ErrAccessDenied(description string) *fault.Error {
	return &fault.Error{Code: CodeAccessDenied, Status: http.StatusForbidden, Message: description}
}

// IsOAuth reports whether a fault code belongs to the OAuth dialect.
func IsOAuth(code string) bool { return strings.HasPrefix(code, OAuthPrefix) }

var errInvalidClient = OAuthError(CodeInvalidClient, "client authentication failed")

// ErrInvalidClientToken is returned for a missing, malformed, expired,
// revoked or foreign ClientAccessToken.
func ErrInvalidClientToken(reason string) *fault.Error {
	return &fault.Error{Code: CodeInvalidClientToken, Status: http.StatusUnauthorized, Message: reason}
}

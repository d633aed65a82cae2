package experience

import (
	"net/http"

	"github.com/latch-dev/latch/fault"
)

// Error codes of the engine, in the Experience API's (Logto) vocabulary.
// The /v1 dialect maps them to its own snake_case codes in app.
const (
	CodeInvalidCredentials = "session.invalid_credentials"
	CodeLocked             = "session.verification_blocked_too_many_attempts"
	CodeSuspended          = "user.suspended"
	CodePasswordExpired    = "password.expired"
	CodePasswordTemporary  = "password.temporary"
	CodePasswordRejected   = "password.rejected"
	CodeSamePassword       = "user.same_password"
	CodeSessionNotFound    = "session.not_found"
	CodeMFARequired        = "session.mfa.require_mfa_verification"
	CodeResetTokenInvalid  = "session.reset_token_invalid"
	CodeMFAFactorNotFound  = "user.mfa_factor_not_found"
	CodeNoPasswordSet      = "user.password_not_set"
	CodeSettingsInvalid    = "settings.invalid"
	CodeImportRejected     = "user.password_import_rejected"
)

// errInvalidCredentials is identical for an unknown user and a wrong
// password, so neither status, body nor timing tells them apart.
var errInvalidCredentials = fault.New(CodeInvalidCredentials, http.StatusUnprocessableEntity,
	"The identifier or the password is incorrect.")

func errLocked(retry int64) *fault.Error {
	e := fault.New(CodeLocked, http.StatusBadRequest, "Too many failed attempts; try again later.")
	return e.Retry(secondsToDuration(retry))
}

var errSuspended = fault.New(CodeSuspended, http.StatusUnauthorized, "The user account is suspended.")

func errSessionNotFound() *fault.Error {
	return fault.New(CodeSessionNotFound, http.StatusBadRequest, "The session does not exist or has ended.")
}

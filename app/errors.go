package app

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
	"github.com/latch-dev/latch/token"
)

// dialect is the error body style of a route family (DESIGN §4).
type dialect int

const (
	dialectV1    dialect = iota // /v1/*: {error_code, message, ...}
	dialectOAuth                // /oidc/*, /.well-known/*: {error, error_description}
	dialectAPI                  // /api/*: {code, message, data?}
)

func dialectOf(path string) dialect {
	switch {
	case strings.HasPrefix(path, "/oidc/"), strings.HasPrefix(path, "/.well-known/"):
		return dialectOAuth
	case strings.HasPrefix(path, "/api/"):
		return dialectAPI
	default:
		return dialectV1
	}
}

// v1Code maps catalog codes to the /v1 dialect's snake_case error codes and,
// where they differ from the catalog's, statuses.
var v1Codes = map[string]struct {
	code   string
	status int
}{
	fault.CodeInvalidInput:               {"system_invalid_input", http.StatusBadRequest},
	fault.CodeNotFound:                   {"not_found", http.StatusNotFound},
	fault.CodeServerBusy:                 {"server_busy", http.StatusServiceUnavailable},
	fault.CodeUnavailable:                {"server_unavailable", http.StatusServiceUnavailable},
	fault.CodeRateLimited:                {"too_many_requests", http.StatusTooManyRequests},
	fault.CodeInternal:                   {"internal_server_error", http.StatusInternalServerError},
	token.CodeInvalidClientToken:         {"invalid_client_token", http.StatusUnauthorized},
	token.CodeInsufficientScope:          {"insufficient_scope", http.StatusForbidden},
	codeMethodNotAllowed:                 {"method_not_allowed", http.StatusMethodNotAllowed},
	codeBodyTooLarge:                     {"request_too_large", http.StatusRequestEntityTooLarge},
	codeUnsupportedMedia:                 {"unsupported_media_type", http.StatusUnsupportedMediaType},
	experience.CodeInvalidCredentials:    {"auth_invalid_credentials", http.StatusUnauthorized},
	experience.CodeSessionNotFound:       {"session_not_found", http.StatusBadRequest},
	experience.CodeSuspended:             {"user_not_active", http.StatusForbidden},
	experience.CodeUserNotFound:          {"user_not_found", http.StatusNotFound},
	experience.CodePasswordExpired:       {"password_expired", http.StatusForbidden},
	experience.CodePasswordTemporary:     {"temporary_password", http.StatusForbidden},
	experience.CodeLocked:                {"auth_locked", http.StatusForbidden},
	experience.CodeMFARequired:           {"mfa_required", http.StatusForbidden},
	experience.CodeMissingMFA:            {"mfa_enrollment_required", http.StatusForbidden},
	experience.CodeMethodNotEnabled:      {"sign_in_method_not_enabled", http.StatusForbidden},
	experience.CodeResetTokenInvalid:     {"invalid_reset_token", http.StatusBadRequest},
	experience.CodePasswordRejected:      {"password_policy_violation", http.StatusBadRequest},
	experience.CodeSamePassword:          {"password_policy_violation", http.StatusBadRequest},
	experience.CodeUsernameInUse:         {"username_already_in_use", http.StatusConflict},
	experience.CodeEmailInUse:            {"email_already_in_use", http.StatusConflict},
	experience.CodePhoneInUse:            {"phone_number_already_in_use", http.StatusConflict},
	experience.CodeOrgMembershipRequired: {"org_membership_required", http.StatusForbidden},
	experience.CodeSignInOrgNotFound:     {"org_not_found", http.StatusBadRequest},
	experience.CodeOrgNotFound:           {"org_not_found", http.StatusNotFound},
	experience.CodeOrgNameInUse:          {"org_name_already_in_use", http.StatusConflict},
	experience.CodeOrgRoleNotFound:       {"org_role_not_found", http.StatusNotFound},
	experience.CodeOrgRoleNameInUse:      {"org_role_name_already_in_use", http.StatusConflict},
	experience.CodeOrgMemberExists:       {"org_member_already_exists", http.StatusConflict},
	experience.CodeOrgMemberNotFound:     {"org_member_not_found", http.StatusNotFound},
	experience.CodeInvalidTOTP:           {"invalid_code", http.StatusUnauthorized},
	experience.CodeInvalidBackupCode:     {"invalid_code", http.StatusUnauthorized},
	experience.CodeCodeMismatch:          {"invalid_code", http.StatusUnauthorized},
	experience.CodeCodeNotFound:          {"invalid_code", http.StatusUnauthorized},
	experience.CodeCodeUsed:              {"invalid_code", http.StatusUnauthorized},
	experience.CodeCodeExpired:           {"code_expired", http.StatusUnauthorized},
	experience.CodeCodeMaxTries:          {"code_attempts_exceeded", http.StatusUnauthorized},
	experience.CodeFactorNotEnrolled:     {"mfa_factor_not_enrolled", http.StatusBadRequest},
	experience.CodeFactorNotEnabled:      {"mfa_factor_not_enabled", http.StatusBadRequest},
	experience.CodeMFAIdentifierNotBound: {"channel_not_available", http.StatusBadRequest},
	experience.CodeConnectorNotFound:     {"connector_not_configured", http.StatusNotImplemented},
	experience.CodeMessageLimited:        {"too_many_requests", http.StatusTooManyRequests},
}

// Codes for HTTP-level failures that do not come from a domain package.
const (
	codeMethodNotAllowed = "request.method_not_allowed"
	codeBodyTooLarge     = "request.body_too_large"
	codeUnsupportedMedia = "request.unsupported_media_type"
)

// toFault turns any error into a client-facing *fault.Error. A database
// that cannot serve the request right now (store.IsUnavailable), or a
// request whose client went away, is a 503 with Retry-After. Other internal
// errors become a generic 500 whose detail stays in the log.
func toFault(err error) (*fault.Error, bool) {
	if fe, ok := fault.As(err); ok {
		return fe, false
	}
	if store.IsUnavailable(err) || errors.Is(err, context.Canceled) {
		return errUnavailable(), false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		switch he.Code {
		case http.StatusNotFound:
			return fault.New(fault.CodeNotFound, he.Code, "no such route"), false
		case http.StatusMethodNotAllowed:
			return fault.New(codeMethodNotAllowed, he.Code, "method not allowed on this route"), false
		case http.StatusRequestEntityTooLarge:
			return fault.New(codeBodyTooLarge, he.Code, "the request body is too large"), false
		case http.StatusUnsupportedMediaType:
			return fault.New(codeUnsupportedMedia, he.Code, "unsupported content type"), false
		case http.StatusBadRequest:
			return fault.Invalid(fault.Detail{Message: "malformed request"}), false
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			return fault.New(fault.CodeRateLimited, he.Code, "%s", msg), false
		}
		if he.Code < 500 {
			return fault.New("request.invalid", he.Code, "%s", msg), false
		}
	}
	return fault.New(fault.CodeInternal, http.StatusInternalServerError, "internal server error"), true
}

// errorHandler renders every error as JSON in the route family's dialect.
func (a *App) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	fe, internal := toFault(err)
	ctx := c.Request().Context()
	switch reason := store.UnavailableReason(err); {
	case reason != "":
		// One line per burst, not per request (outageLog).
		a.outage.note(ctx, reason, requestID(c), c.Path(), err)
	case errors.Is(err, context.Canceled):
		// The client went away (or the server cut it at shutdown): nobody
		// reads the answer, and nothing is wrong with the service.
		a.log.DebugContext(ctx, "request cancelled", slog.String("request_id", requestID(c)),
			slog.String("route", c.Path()))
	case internal || fe.Status >= 500:
		a.log.ErrorContext(ctx, "request failed",
			slog.String("request_id", requestID(c)), slog.String("route", c.Path()),
			slog.String("error", err.Error()))
	}
	if fe.RetryAfter > 0 {
		secs := int64((fe.RetryAfter + 999_999_999) / 1_000_000_000)
		c.Response().Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	var status int
	var body any
	switch dialectOf(c.Request().URL.Path) {
	case dialectOAuth:
		status, body = renderOAuth(c, fe)
	case dialectAPI:
		status = fe.Status
		m := map[string]any{"code": fe.Code, "message": fe.Message}
		if len(fe.Data) > 0 {
			m["data"] = fe.Data
		}
		if len(fe.Details) > 0 && fe.Data == nil {
			m["data"] = map[string]any{"details": fe.Details}
		}
		body = m
	default:
		status, body = renderV1(fe)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}

func renderV1(fe *fault.Error) (int, map[string]any) {
	code, status := strings.NewReplacer(".", "_").Replace(fe.Code), fe.Status
	if m, ok := v1Codes[fe.Code]; ok {
		code, status = m.code, m.status
	}
	if token.IsOAuth(fe.Code) {
		code = strings.TrimPrefix(fe.Code, token.OAuthPrefix)
	}
	body := map[string]any{}
	for k, v := range fe.Data {
		body[k] = v
	}
	body["error_code"] = code
	body["message"] = fe.Message
	if len(fe.Details) > 0 {
		body["details"] = fe.Details
	}
	if fe.RetryAfter > 0 {
		body["retry_after"] = int64((fe.RetryAfter + 999_999_999) / 1_000_000_000)
	}
	return status, body
}

func renderOAuth(c echo.Context, fe *fault.Error) (int, map[string]any) {
	code := strings.TrimPrefix(fe.Code, token.OAuthPrefix)
	status := fe.Status
	switch {
	case token.IsOAuth(fe.Code):
	case fe.Code == fault.CodeInvalidInput:
		code = "invalid_request"
	case fe.Code == token.CodeInvalidClientToken:
		code = "invalid_token"
	case status >= 500:
		code = "server_error"
		if fe.Code == fault.CodeServerBusy || fe.Code == fault.CodeUnavailable {
			code = "temporarily_unavailable"
		}
	default:
		code = "invalid_request"
	}
	if code == "invalid_client" {
		// RFC 6749 §5.2: a 401 invalid_client names the authentication scheme.
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="latch"`)
	}
	body := map[string]any{"error": code}
	if fe.Message != "" {
		body["error_description"] = fe.Message
	}
	return status, body
}

// Package fault is Latch's one error catalog. Domain packages return *Error
// values with a stable dotted code (the Experience API's vocabulary, e.g.
// "session.invalid_credentials"), a default HTTP status and optional data;
// the app package renders them in the dialect of each route family. Errors
// that are not *Error are internal and are never shown to clients.
package fault

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error is a client-facing failure.
type Error struct {
	// Code is stable and machine-readable, e.g. "session.invalid_credentials".
	Code string
	// Status is the HTTP status of the Experience (/api) dialect.
	Status int
	// Message is a human-readable sentence; it never contains secrets.
	Message string
	// Data carries structured detail (e.g. violated password rules).
	Data map[string]any
	// RetryAfter, when non-zero, becomes a Retry-After header.
	RetryAfter time.Duration
	// Details lists per-field problems of invalid input.
	Details []Detail
}

// Detail is one problem with one input field.
type Detail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New returns an error with the given code, status and message.
func New(code string, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

// With returns a copy of e carrying data key=value.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Data = make(map[string]any, len(e.Data)+1)
	for k, v := range e.Data {
		c.Data[k] = v
	}
	c.Data[key] = value
	return &c
}

// Retry returns a copy of e with a Retry-After duration.
func (e *Error) Retry(after time.Duration) *Error {
	c := *e
	c.RetryAfter = after
	return &c
}

// As extracts an *Error from err's chain.
func As(err error) (*Error, bool) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe, true
	}
	return nil, false
}

// Is reports whether err is an *Error with the given code.
func Is(err error, code string) bool {
	fe, ok := As(err)
	return ok && fe.Code == code
}

// Invalid returns a guard.invalid_input error listing field problems.
func Invalid(details ...Detail) *Error {
	msg := "The request is invalid."
	if len(details) > 0 {
		msg = details[0].Field + ": " + details[0].Message
		if details[0].Field == "" {
			msg = details[0].Message
		}
	}
	return &Error{Code: CodeInvalidInput, Status: http.StatusBadRequest, Message: msg, Details: details}
}

// Codes shared across packages.
const (
	CodeInvalidInput = "guard.invalid_input"
	CodeNotFound     = "entity.not_found"
	CodeInternal     = "internal_server_error"
	CodeServerBusy   = "server.busy"
	// CodeUnavailable: a dependency (the database) is down, unreachable or
	// did not answer within the request deadline; retry later.
	CodeUnavailable = "server.unavailable"
	CodeRateLimited = "request.rate_limited"
)

package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	sqlitedriver "modernc.org/sqlite"
)

// Why the database is unavailable, as UnavailableReason reports it (also
// the label values of the unavailability metric).
const (
	// ReasonTimeout: the database did not answer within the caller's
	// deadline (the request deadline, a pool wait, a cancelled statement).
	ReasonTimeout = "timeout"
	// ReasonConnection: no connection could be made, or it broke (refused,
	// reset, closed, a PostgreSQL class 08 error).
	ReasonConnection = "connection"
	// ReasonShutdown: PostgreSQL is shutting down, starting up or was told
	// to end the session (class 57, operator intervention).
	ReasonShutdown = "shutdown"
	// ReasonBusy: the database refused more work for now (SQLite's write
	// lock still held after the busy timeout, PostgreSQL out of
	// connection slots).
	ReasonBusy = "busy"
)

// SQLite result codes (sqlite3.h); the extended codes keep the primary
// code in their low byte.
const (
	sqliteBusy      = 5
	sqliteInterrupt = 9
)

// IsUnavailable reports whether err means the database could not serve the
// operation right now — it is down, unreachable, overloaded or did not
// answer in time — as opposed to refusing the operation itself (a
// constraint, a syntax error, a bug). Such a failure is worth retrying
// later and is the service's condition, not the request's: callers answer
// 503, not 500.
func IsUnavailable(err error) bool { return UnavailableReason(err) != "" }

// UnavailableReason returns why err means the database is unavailable (one
// of the Reason constants), or "" when it does not. A context cancelled by
// the caller (a client that went away) is not unavailability.
func UnavailableReason(err error) string {
	if err == nil || errors.Is(err, context.Canceled) {
		return ""
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgReason(pgErr.Code)
	}
	var sqliteErr *sqlitedriver.Error
	if errors.As(err, &sqliteErr) {
		switch sqliteErr.Code() & 0xff {
		case sqliteBusy:
			return ReasonBusy
		case sqliteInterrupt:
			// Only a done context interrupts a statement.
			return ReasonTimeout
		}
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return ReasonTimeout
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return ReasonConnection
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		if netErr.Timeout() {
			return ReasonTimeout
		}
		return ReasonConnection
	}
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return ReasonConnection
	}
	return ""
}

// pgReason classifies a PostgreSQL SQLSTATE.
func pgReason(code string) string {
	switch {
	case code == "57014": // query_canceled: statement_timeout or a cancel request
		return ReasonTimeout
	case strings.HasPrefix(code, "57"): // admin_shutdown, crash_shutdown, cannot_connect_now, …
		return ReasonShutdown
	case strings.HasPrefix(code, "08"): // connection_exception and its subclasses
		return ReasonConnection
	case code == "53300": // too_many_connections
		return ReasonBusy
	}
	return ""
}

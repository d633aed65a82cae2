package store_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/store"
	"github.com/latch-dev/latch/store/faultproxy"
)

// pgBehindProxy opens a private PostgreSQL schema through a fault proxy.
func pgBehindProxy(t *testing.T, maxConns int) (*store.DB, *faultproxy.Proxy) {
	t.Helper()
	proxied, p := apptest.PostgresBehindProxy(t)
	db, err := store.Open(context.Background(), proxied, store.Options{MaxOpenConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, p
}

func selectOne(db *store.DB, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var n int
	return db.WithContext(ctx).Raw("SELECT 1").Scan(&n).Error
}

func wantReason(t *testing.T, what string, err error, reasons ...string) {
	t.Helper()
	got := store.UnavailableReason(err)
	for _, r := range reasons {
		if got == r {
			if store.IsUnavailable(err) != (r != "") {
				t.Fatalf("%s: IsUnavailable disagrees with reason %q", what, got)
			}
			return
		}
	}
	t.Fatalf("%s: reason %q, want one of %q (error: %v)", what, got, reasons, err)
}

// The database failing to serve — refused, reset, frozen past the deadline,
// a terminated backend — is "unavailable"; the database refusing the
// statement itself is not.
func TestUnavailablePostgres(t *testing.T) {
	db, p := pgBehindProxy(t, 2)
	if err := selectOne(db, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("CREATE TABLE u (id TEXT PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	db.Exec("INSERT INTO u VALUES ('a')")
	wantReason(t, "unique violation", db.Exec("INSERT INTO u VALUES ('a')").Error, "")
	wantReason(t, "syntax error", db.Exec("SELEC 1").Error, "")
	wantReason(t, "success", nil, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	wantReason(t, "cancelled by the caller", db.WithContext(ctx).Exec("SELECT 1").Error, "")

	// Cut: the pooled connection is reset, then connecting is refused.
	if err := p.Set(faultproxy.Cut); err != nil {
		t.Fatal(err)
	}
	wantReason(t, "reset connection", selectOne(db, 5*time.Second), store.ReasonConnection)
	wantReason(t, "refused connection", selectOne(db, 5*time.Second), store.ReasonConnection)
	if err := p.Set(faultproxy.Forward); err != nil {
		t.Fatal(err)
	}
	if err := selectOne(db, 5*time.Second); err != nil {
		t.Fatalf("after the cut: %v", err)
	}

	// Freeze: the statement outlives its deadline.
	if err := p.Set(faultproxy.Freeze); err != nil {
		t.Fatal(err)
	}
	wantReason(t, "frozen database", selectOne(db, 200*time.Millisecond), store.ReasonTimeout)
	wantReason(t, "connecting to a frozen database", selectOne(db, 200*time.Millisecond), store.ReasonTimeout)
	if err := p.Set(faultproxy.Forward); err != nil {
		t.Fatal(err)
	}
	if err := selectOne(db, 5*time.Second); err != nil {
		t.Fatalf("after the freeze: %v", err)
	}

	// An administrator ends the session (57P01, as at a PostgreSQL
	// shutdown): the next statement on it fails as unavailable.
	conn, err := db.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	c, err := conn.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var pid int
	if err := c.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", os.Getenv(apptest.PostgresEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	var n int
	err = c.QueryRowContext(context.Background(), "SELECT 1").Scan(&n)
	wantReason(t, "terminated backend", err, store.ReasonShutdown, store.ReasonConnection)
}

// SQLite: a write blocked by another connection's write transaction fails
// with SQLITE_BUSY after the busy timeout, which is unavailability; a
// constraint is not.
func TestUnavailableSQLiteBusy(t *testing.T) {
	path := t.TempDir() + "/busy.db"
	db, err := store.Open(context.Background(), "sqlite://"+path, store.Options{BusyTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Exec("CREATE TABLE u (id TEXT PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	db.Exec("INSERT INTO u VALUES ('a')")
	wantReason(t, "unique violation", db.Exec("INSERT INTO u VALUES ('a')").Error, "")

	holder := lockSQLite(t, path)
	err = db.Exec("INSERT INTO u VALUES ('b')").Error
	wantReason(t, "locked database", err, store.ReasonBusy)
	holder()
	if err := db.Exec("INSERT INTO u VALUES ('b')").Error; err != nil {
		t.Fatalf("after the lock is released: %v", err)
	}
}

// lockSQLite takes SQLite's write lock on the file at path from a
// connection of its own and returns the function releasing it.
func lockSQLite(t *testing.T, path string) func() {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := raw.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	release := func() {
		conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
		raw.Close()
	}
	t.Cleanup(release)
	return release
}

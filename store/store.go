// Package store opens Latch's database (embedded SQLite or PostgreSQL through
// gorm), applies versioned migrations and offers the transaction helper the
// domain packages share.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	sqlitedriver "modernc.org/sqlite"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// Supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database: the gorm handle plus the dialect, which the few
// engine-specific statements (locks, upserts) need.
type DB struct {
	*gorm.DB
	Dialect Dialect
}

// Options tune Open.
type Options struct {
	MaxOpenConns int
	// BusyTimeout is how long a SQLite statement waits for another
	// connection's write lock before failing with SQLITE_BUSY (default 10s).
	// The wait also ends when the statement's context does (with the
	// context's error), so a shorter bound than the request deadline only
	// makes a write blocked by a lock fail as busy rather than as late.
	BusyTimeout time.Duration
}

// Open connects to the database named by rawURL: sqlite:///path/file.db (or
// sqlite://relative/path.db) or postgres://…. The SQLite file's directory is
// created if missing.
func Open(ctx context.Context, rawURL string, opts Options) (*DB, error) {
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = 16
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	gcfg := &gorm.Config{
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		SkipDefaultTransaction: true,
		// No gorm statement cache: it prepares a statement first run in a
		// transaction on that transaction, and database/sql then prepares
		// and closes it again in every later transaction — three round trips
		// per statement of every sign-in on PostgreSQL. pgx caches prepared
		// statements per connection by itself (inside transactions too), and
		// so do Latch's SQLite connections (stmtcache.go).
		PrepareStmt: false,
	}
	var (
		db      *gorm.DB
		dialect Dialect
		err     error
	)
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		dialect = SQLite
		path := strings.TrimPrefix(rawURL, "sqlite://")
		query := ""
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path, query = path[:i], path[i+1:]
		}
		if path == "" {
			return nil, errors.New("store: sqlite URL has no file path")
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: create %s: %w", dir, err)
			}
		}
		// WAL lets readers proceed during a write; busy_timeout makes writers
		// queue instead of failing; _txlock=immediate takes the write lock at
		// BEGIN so read-then-write transactions never dead-lock on upgrade.
		q, _ := url.ParseQuery(query)
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", max(opts.BusyTimeout.Milliseconds(), 1)))
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Set("_txlock", "immediate")
		// Times as text in SQLite's own format ("2006-01-02
		// 15:04:05.999999999-07:00"), the one earlier releases wrote: the
		// SQL compares stored times as strings.
		q.Set("_time_format", "sqlite")
		// Columns declared DATETIME read back as time.Time, whether stored
		// as text or as an integer.
		q.Set("_texttotime", "1")
		q.Set("_inttotime", "1")
		// Switching a fresh file to WAL takes a lock SQLite does not wait
		// for (busy_timeout does not apply): processes opening one new file
		// at the same instant fail with SQLITE_BUSY. A lock file beside the
		// database serialises the first connection (and Migrate).
		unlock, lerr := lockFile(ctx, sqliteLockPath(path))
		if lerr != nil {
			return nil, fmt.Errorf("store: lock %s: %w", path, lerr)
		}
		defer unlock()
		// Each connection keeps its compiled statements (stmtcache.go).
		conns := sql.OpenDB(cachingConnector{dsn: "file:" + path + "?" + q.Encode(), driver: &sqlitedriver.Driver{}})
		db, err = gorm.Open(sqlite.New(sqlite.Config{Conn: conns}), gcfg)
		if err != nil {
			conns.Close()
		}
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		dialect = Postgres
		// No gorm statement cache on PostgreSQL: pgx already prepares and
		// caches statements per connection, bound to the caller's context.
		// gorm's layer on top prepares each statement again on every
		// transaction's connection and deallocates it at commit under
		// pgx's own 5 s background timeout, which outlives the request
		// deadline when the database stops answering.
		gcfg.PrepareStmt = false
		db, err = gorm.Open(postgres.Open(rawURL), gcfg)
	default:
		return nil, errors.New("store: database URL must start with sqlite:// or postgres://")
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sqlDB.SetMaxOpenConns(opts.MaxOpenConns)
	sqlDB.SetMaxIdleConns(opts.MaxOpenConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: connect to %s database: %w", dialect, err)
	}
	return &DB{DB: db, Dialect: dialect}, nil
}

// Close releases the connection pool.
func (db *DB) Close() error {
	sqlDB, err := db.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	sqlDB, err := db.DB.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// Tx runs fn in a transaction bound to ctx. On SQLite the transaction holds
// the write lock from its start; on PostgreSQL it runs at READ COMMITTED, so
// callers that read-then-write use row locks or single atomic statements.
func (db *DB) Tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.WithContext(ctx).Transaction(fn)
}

// ForUpdate adds a row lock to a query on PostgreSQL. On SQLite, the
// immediate transaction already serialises writers, so it is a no-op.
func (db *DB) ForUpdate(q *gorm.DB) *gorm.DB {
	if db.Dialect == Postgres {
		return q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	return q
}

// IsUniqueViolation reports whether err is a unique-constraint violation.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

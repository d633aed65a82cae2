package store

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Migration is one forward-only schema step. ID is recorded in the
// schema_migrations table once applied and must never change. SQL is written
// in portable DDL; the types BLOB and TIMESTAMP are rewritten to BYTEA and
// TIMESTAMPTZ on PostgreSQL. Statements are separated by ";\n".
type Migration struct {
	ID  string
	SQL string
	// Run, when set, runs after SQL in the same transaction: a data step
	// that needs Go (values computed by a Go function). Like SQL, it must
	// depend on nothing but the database (no configuration).
	Run func(tx *gorm.DB) error
}

var (
	blobType      = regexp.MustCompile(`\bBLOB\b`)
	timestampType = regexp.MustCompile(`\bTIMESTAMP\b`)
	statementSep  = regexp.MustCompile(`;\s*\n`)
)

func (db *DB) translate(ddl string) string {
	if db.Dialect == Postgres {
		ddl = blobType.ReplaceAllString(ddl, "BYTEA")
		ddl = timestampType.ReplaceAllString(ddl, "TIMESTAMPTZ")
	}
	return ddl
}

// Migrate applies, in order, every migration not yet recorded. It is safe
// when several processes start at once: on PostgreSQL an advisory lock scoped
// to the current schema serialises them, on SQLite a lock file beside the
// database does (the immediate transaction alone would give up after
// busy_timeout behind a long migration). Everything runs in one transaction,
// so a failed step applies nothing.
func (db *DB) Migrate(ctx context.Context, sets ...[]Migration) (applied []string, err error) {
	if db.Dialect == SQLite {
		unlock, err := db.lockSQLite(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: migrate: %w", err)
		}
		defer unlock()
	}
	seen := map[string]bool{}
	var all []Migration
	for _, set := range sets {
		for _, m := range set {
			if seen[m.ID] {
				return nil, fmt.Errorf("store: duplicate migration id %q", m.ID)
			}
			seen[m.ID] = true
			all = append(all, m)
		}
	}
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		if db.Dialect == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.latch_migrations'))").Error; err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		if err := tx.Exec(db.translate(`CREATE TABLE IF NOT EXISTS schema_migrations (
			id TEXT PRIMARY KEY,
			applied_at TIMESTAMP NOT NULL
		)`)).Error; err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var done []string
		if err := tx.Raw("SELECT id FROM schema_migrations").Scan(&done).Error; err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		have := map[string]bool{}
		for _, id := range done {
			have[id] = true
		}
		for _, m := range all {
			if have[m.ID] {
				continue
			}
			for _, stmt := range statementSep.Split(db.translate(m.SQL), -1) {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("migration %s: %w", m.ID, err)
				}
			}
			if m.Run != nil {
				if err := m.Run(tx); err != nil {
					return fmt.Errorf("migration %s: %w", m.ID, err)
				}
			}
			if err := tx.Exec("INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)", m.ID, time.Now().UTC()).Error; err != nil {
				return fmt.Errorf("record migration %s: %w", m.ID, err)
			}
			applied = append(applied, m.ID)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w", err)
	}
	return applied, nil
}

// Pending lists the migrations of sets that are not applied yet.
func (db *DB) Pending(ctx context.Context, sets ...[]Migration) ([]string, error) {
	var done []string
	if err := db.WithContext(ctx).Raw("SELECT id FROM schema_migrations").Scan(&done).Error; err != nil {
		done = nil // table missing: nothing applied
	}
	have := map[string]bool{}
	for _, id := range done {
		have[id] = true
	}
	var pending []string
	for _, set := range sets {
		for _, m := range set {
			if !have[m.ID] {
				pending = append(pending, m.ID)
			}
		}
	}
	return pending, nil
}

// sqliteLockPath names the lock file that serialises opening and migrating
// the SQLite database at path.
func sqliteLockPath(path string) string { return path + ".lock" }

// lockSQLite takes the database's lock file (see Open).
func (db *DB) lockSQLite(ctx context.Context) (func(), error) {
	var file string
	if err := db.WithContext(ctx).Raw("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file).Error; err != nil {
		return nil, fmt.Errorf("locate database file: %w", err)
	}
	if file == "" {
		return func() {}, nil // in-memory or temporary: nothing to share
	}
	unlock, err := lockFile(ctx, sqliteLockPath(file))
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return unlock, nil
}

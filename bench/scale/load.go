package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latch-dev/latch/store"
)

// sqliteBatch is how many rows one INSERT carries on SQLite. The driver
// binds each parameter in time proportional to the statement's parameter
// count, so large batches cost more than they save.
const sqliteBatch = 32

// loadRows inserts users [from, to) and their rows in every table of p,
// bypassing the API: COPY on PostgreSQL, batched INSERTs in one transaction
// on SQLite. The server keeps running meanwhile (and is idle).
func loadRows(ctx context.Context, db *store.DB, dsn string, p *population, from, to int) error {
	start := time.Now()
	var err error
	if db.Dialect == store.Postgres {
		err = copyPostgres(ctx, dsn, p, from, to)
	} else {
		err = insertSQLite(ctx, db, p, from, to)
	}
	if err != nil {
		return err
	}
	loaded := time.Since(start)
	// PostgreSQL plans by its statistics: refresh them as autovacuum would
	// after such a load, so the plans are those of a settled database.
	// SQLite is left as Latch leaves it (no ANALYZE): its plans for these
	// equality lookups do not depend on statistics.
	if db.Dialect == store.Postgres {
		if err := db.WithContext(ctx).Exec("ANALYZE users, sessions, refresh_families, refresh_tokens, sentinel_counters, " +
			"organizations, organization_roles, organization_members, organization_member_roles").Error; err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	} else if err := db.WithContext(ctx).Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error; err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	fmt.Printf("  loaded users %d..%d with their sessions, refresh tokens, sentinel rows and memberships in %s (%.0f users/s), settled in %s\n",
		from, to, loaded.Round(time.Millisecond), float64(to-from)/loaded.Seconds(), (time.Since(start) - loaded).Round(time.Millisecond))
	return nil
}

func copyPostgres(ctx context.Context, dsn string, p *population, from, to int) error {
	conn, err := pgx.Connect(ctx, dsn) // the URL's search_path selects the private schema
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for _, t := range p.tables() {
		i := from
		src := pgx.CopyFromFunc(func() ([]any, error) {
			for ; i < to; i++ {
				if row := t.row(i); row != nil {
					i++
					return row, nil
				}
			}
			return nil, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.columns, src); err != nil {
			return fmt.Errorf("copy %s: %w", t.name, err)
		}
	}
	return tx.Commit(ctx)
}

func insertSQLite(ctx context.Context, db *store.DB, p *population, from, to int) error {
	sqlDB, err := db.DB.DB()
	if err != nil {
		return err
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// A large page cache for this connection only: random keys into six
	// indexes otherwise spill and re-read pages all the time. The server's
	// connections keep their own (default) cache.
	if _, err := tx.ExecContext(ctx, "PRAGMA cache_size = -1048576; PRAGMA temp_store = MEMORY"); err != nil {
		return err
	}
	for _, t := range p.tables() {
		// One statement of sqliteBatch rows, prepared once; the rest one
		// by one.
		one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(t.columns)), ",") + ")"
		head := "INSERT INTO " + t.name + " (" + strings.Join(t.columns, ", ") + ") VALUES "
		batch, err := tx.PrepareContext(ctx, head+strings.TrimSuffix(strings.Repeat(one+",", sqliteBatch), ","))
		if err != nil {
			return fmt.Errorf("insert %s: %w", t.name, err)
		}
		single, err := tx.PrepareContext(ctx, head+one)
		if err != nil {
			batch.Close()
			return fmt.Errorf("insert %s: %w", t.name, err)
		}
		args := make([]any, 0, sqliteBatch*len(t.columns))
		n := 0
		for i := from; i < to && err == nil; i++ {
			row := t.row(i)
			if row == nil {
				continue
			}
			args = append(args, row...)
			if n++; n == sqliteBatch {
				_, err = batch.ExecContext(ctx, args...)
				args, n = args[:0], 0
			}
		}
		for k := 0; k < n && err == nil; k++ {
			_, err = single.ExecContext(ctx, args[k*len(t.columns):(k+1)*len(t.columns)]...)
		}
		batch.Close()
		single.Close()
		if err != nil {
			return fmt.Errorf("insert %s: %w", t.name, err)
		}
	}
	return tx.Commit()
}

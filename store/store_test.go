package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/app"
	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/store"
)

func open(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, store.Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func allIDs(sets ...[]store.Migration) []string {
	var ids []string
	for _, set := range sets {
		for _, m := range set {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func recorded(t *testing.T, db *store.DB) []string {
	t.Helper()
	var ids []string
	if err := db.Raw("SELECT id FROM schema_migrations ORDER BY id").Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	return ids
}

var testSet = []store.Migration{
	{ID: "test/0001_things", SQL: `
CREATE TABLE things (
	id TEXT PRIMARY KEY,
	blob_col BLOB,
	at TIMESTAMP NOT NULL
);
CREATE INDEX things_at ON things (at);
`},
	{ID: "test/0002_more", SQL: `ALTER TABLE things ADD COLUMN note TEXT`},
}

func TestMigrationsAreIdempotent(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		ctx := context.Background()
		db := open(t, apptest.DatabaseURL(t, b))
		if want := store.Dialect(b); db.Dialect != want {
			t.Fatalf("dialect %q, want %q", db.Dialect, want)
		}
		pending, err := db.Pending(ctx, app.Migrations()...)
		if err != nil || len(pending) != len(allIDs(app.Migrations()...)) {
			t.Fatalf("pending on an empty database: %v %v", pending, err)
		}
		applied, err := db.Migrate(ctx, app.Migrations()...)
		if err != nil {
			t.Fatalf("first migrate: %v", err)
		}
		if strings.Join(applied, ",") != strings.Join(allIDs(app.Migrations()...), ",") {
			t.Fatalf("applied %v, want every migration in order", applied)
		}
		for i := 0; i < 2; i++ {
			again, err := db.Migrate(ctx, app.Migrations()...)
			if err != nil || len(again) != 0 {
				t.Fatalf("migrate again: applied %v, err %v", again, err)
			}
		}
		if pending, _ := db.Pending(ctx, app.Migrations()...); len(pending) != 0 {
			t.Fatalf("pending after migrate: %v", pending)
		}

		// A later release adds a set: only the new steps run, once.
		applied, err = db.Migrate(ctx, append(app.Migrations(), testSet)...)
		if err != nil || strings.Join(applied, ",") != "test/0001_things,test/0002_more" {
			t.Fatalf("migrate with a new set: %v %v", applied, err)
		}
		want := allIDs(append(app.Migrations(), testSet)...)
		sort.Strings(want)
		if got := recorded(t, db); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("schema_migrations %v, want %v", got, want)
		}
		// Portable DDL: BLOB and TIMESTAMP work on both engines.
		if err := db.Exec("INSERT INTO things (id, blob_col, at, note) VALUES (?, ?, CURRENT_TIMESTAMP, ?)", "a", []byte{0, 1, 2, 255}, "n").Error; err != nil {
			t.Fatal(err)
		}
		var row struct{ BlobCol []byte }
		if err := db.Raw("SELECT blob_col FROM things WHERE id = ?", "a").Scan(&row).Error; err != nil || string(row.BlobCol) != "\x00\x01\x02\xff" {
			t.Fatalf("blob round trip: %v %v", row.BlobCol, err)
		}
		// Unique violations are recognised on both engines.
		err = db.Exec("INSERT INTO things (id, at) VALUES (?, CURRENT_TIMESTAMP)", "a").Error
		if !store.IsUniqueViolation(err) {
			t.Fatalf("IsUniqueViolation(%v) = false", err)
		}
		if store.IsUniqueViolation(nil) || store.IsUniqueViolation(errors.New("other")) {
			t.Fatal("IsUniqueViolation of a non-violation")
		}
	})
}

// A failing step applies nothing: neither its earlier statements nor the
// steps before it in the same run.
func TestFailedMigrationAppliesNothing(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		ctx := context.Background()
		db := open(t, apptest.DatabaseURL(t, b))
		broken := []store.Migration{
			{ID: "test/0001_ok", SQL: `CREATE TABLE ok_table (id TEXT PRIMARY KEY)`},
			{ID: "test/0002_broken", SQL: "CREATE TABLE half (id TEXT);\nTHIS IS NOT SQL"},
		}
		if _, err := db.Migrate(ctx, broken); err == nil || !strings.Contains(err.Error(), "test/0002_broken") {
			t.Fatalf("broken migration: err %v, want one naming the step", err)
		}
		if pending, _ := db.Pending(ctx, broken); len(pending) != 2 {
			t.Fatalf("pending after a failed run: %v", pending)
		}
		var n int64
		if err := db.Raw("SELECT COUNT(*) FROM ok_table").Scan(&n).Error; err == nil {
			t.Fatal("ok_table exists although the run failed")
		}
		if _, err := db.Migrate(ctx, broken[:1]); err != nil {
			t.Fatalf("the good step alone: %v", err)
		}
		if _, err := db.Migrate(ctx, []store.Migration{{ID: "x"}}, []store.Migration{{ID: "x"}}); err == nil {
			t.Fatal("duplicate migration ids accepted")
		}
	})
}

// A migration's Go data step runs after its SQL, in the same transaction:
// its writes are kept with the step, and its failure applies nothing.
func TestMigrationDataStep(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		ctx := context.Background()
		db := open(t, apptest.DatabaseURL(t, b))
		fill := func(tx *gorm.DB) error { return tx.Exec("INSERT INTO filled (id) VALUES ('from go')").Error }
		failing := []store.Migration{{ID: "test/0001_filled", SQL: `CREATE TABLE filled (id TEXT PRIMARY KEY)`,
			Run: func(tx *gorm.DB) error {
				if err := fill(tx); err != nil {
					return err
				}
				return errors.New("data step failed")
			}}}
		if _, err := db.Migrate(ctx, failing); err == nil || !strings.Contains(err.Error(), "data step failed") {
			t.Fatalf("failing data step: err %v", err)
		}
		var n int64
		if err := db.Raw("SELECT COUNT(*) FROM filled").Scan(&n).Error; err == nil {
			t.Fatal("the step's table exists although its data step failed")
		}
		if _, err := db.Migrate(ctx, []store.Migration{{ID: "test/0001_filled", SQL: failing[0].SQL, Run: fill}}); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		if err := db.Raw("SELECT COUNT(*) FROM filled").Scan(&n).Error; err != nil || n != 1 {
			t.Fatalf("rows from the data step: %d %v", n, err)
		}
	})
}

// Several processes starting at once on one fresh database (one PostgreSQL
// schema, one SQLite file) all succeed and apply each migration exactly once.
func TestConcurrentMigrate(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		ctx := context.Background()
		url := apptest.DatabaseURL(t, b)
		const n = 4
		dbs := make([]*store.DB, n)
		for i := range dbs {
			dbs[i] = open(t, url) // separate pools, like separate processes
		}
		sets := append(app.Migrations(), testSet)
		applied := make([][]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range dbs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				applied[i], errs[i] = dbs[i].Migrate(ctx, sets...)
			}(i)
		}
		close(start)
		wg.Wait()
		count := map[string]int{}
		for i := range dbs {
			if errs[i] != nil {
				t.Fatalf("migrate %d: %v", i, errs[i])
			}
			for _, id := range applied[i] {
				count[id]++
			}
		}
		for _, id := range allIDs(sets...) {
			if count[id] != 1 {
				t.Errorf("migration %s applied %d times", id, count[id])
			}
		}
		if got := recorded(t, dbs[0]); len(got) != len(allIDs(sets...)) {
			t.Fatalf("schema_migrations has %d rows, want %d: %v", len(got), len(allIDs(sets...)), got)
		}
	})
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// The SQLite file's directory is created.
	db := open(t, "sqlite://"+filepath.Join(dir, "a", "b", "latch.db"))
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var mode string
	db.Raw("PRAGMA journal_mode").Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
	for _, bad := range []string{"mysql://x", "sqlite://", ""} {
		if _, err := store.Open(ctx, bad, store.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	// Tx commits on nil and rolls back on error.
	if err := db.Exec("CREATE TABLE t (id TEXT PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := db.Tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("INSERT INTO t (id) VALUES ('rolled back')").Error; err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx error %v", err)
	}
	if err := db.Tx(ctx, func(tx *gorm.DB) error { return tx.Exec("INSERT INTO t (id) VALUES ('kept')").Error }); err != nil {
		t.Fatal(err)
	}
	var ids []string
	db.Raw("SELECT id FROM t").Scan(&ids)
	if strings.Join(ids, ",") != "kept" {
		t.Fatalf("rows after Tx: %v", ids)
	}
}

func TestOpenUnreachablePostgresFails(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", store.Options{})
	if err == nil {
		t.Fatal("open of an unreachable PostgreSQL succeeded")
	}
}

// A statement run inside transactions is prepared once per connection and
// stays prepared (pgx's statement cache), not prepared and deallocated
// again in every transaction: that cost every sign-in two extra round
// trips per statement on PostgreSQL.
func TestStatementsInTransactionsStayPrepared(t *testing.T) {
	if os.Getenv(apptest.PostgresEnv) == "" {
		t.Skip(apptest.PostgresEnv + " is not set; a PostgreSQL test")
	}
	db, err := store.Open(context.Background(), apptest.DatabaseURL(t, apptest.Postgres), store.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.Exec("CREATE TABLE stmt_probe (n INTEGER)").Error; err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := db.Tx(ctx, func(tx *gorm.DB) error { return tx.Exec("INSERT INTO stmt_probe (n) VALUES (?)", i).Error }); err != nil {
			t.Fatal(err)
		}
	}
	// One connection: the query below sees the prepared statements of the
	// connection the transactions ran on.
	var n int
	if err := db.Raw("SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO stmt_probe%'").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d prepared INSERTs on the connection after three transactions, want 1 kept from the first", n)
	}
}

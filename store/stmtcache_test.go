package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
)

// openCachedSQLite opens a SQLite database through Open and returns one of
// its connections, whose statement cache the tests look into.
func openCachedSQLite(t *testing.T) (*sql.Conn, *cachingConn) {
	t.Helper()
	db, err := Open(context.Background(), "sqlite://"+t.TempDir()+"/cache.db", Options{MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	// A failed test may leave rows open, on which closing would wait.
	t.Cleanup(func() {
		if !t.Failed() {
			db.Close()
		}
	})
	sqlDB, err := db.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sqlDB.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			conn.Close()
		}
	})
	var cc *cachingConn
	if err := conn.Raw(func(dc any) error {
		var ok bool
		if cc, ok = dc.(*cachingConn); !ok {
			return fmt.Errorf("driver connection is %T, not a caching one", dc)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
	for i := 1; i <= 3; i++ {
		mustExec(t, conn, "INSERT INTO items (id, name) VALUES (?, ?)", i, fmt.Sprintf("item-%d", i))
	}
	return conn, cc
}

func mustExec(t *testing.T, conn *sql.Conn, query string, args ...any) {
	t.Helper()
	if _, err := conn.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// cached returns the statement the connection keeps for query (nil: none).
func (c *cachingConn) cached(query string) *cachedStmt {
	if el, ok := c.byQuery[query]; ok {
		return el.Value.(*cachedStmt)
	}
	return nil
}

func names(t *testing.T, rows *sql.Rows) []string {
	t.Helper()
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A statement is compiled once per connection and reused by every later
// execution, in and out of transactions, with its new arguments each time.
func TestSQLiteStatementReuse(t *testing.T) {
	ctx := context.Background()
	conn, cc := openCachedSQLite(t)
	const q = "SELECT name FROM items WHERE id = ?"
	first := ""
	if err := conn.QueryRowContext(ctx, q, 1).Scan(&first); err != nil || first != "item-1" {
		t.Fatalf("first run: %q, %v", first, err)
	}
	compiled := cc.cached(q)
	if compiled == nil {
		t.Fatal("the statement was not kept")
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{2, 3} {
		var name string
		if err := tx.QueryRowContext(ctx, q, id).Scan(&name); err != nil || name != fmt.Sprintf("item-%d", id) {
			t.Fatalf("id %d in a transaction: %q, %v", id, name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE items SET name = ? WHERE id = ?", "renamed", 3); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := conn.QueryRowContext(ctx, q, 3).Scan(&name); err != nil || name != "item-3" {
		t.Fatalf("after the rollback: %q, %v (the update must be gone)", name, err)
	}
	if cc.cached(q) != compiled {
		t.Error("the statement was compiled again instead of reused")
	}
}

// A query run again while the rows of its previous run are still open
// must not reset them: it runs uncached, and both give their own rows.
func TestSQLiteStatementRunWhileItsRowsAreOpen(t *testing.T) {
	ctx := context.Background()
	conn, cc := openCachedSQLite(t)
	const q = "SELECT name FROM items WHERE id >= ? ORDER BY id"
	outer, err := conn.QueryContext(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The connection cannot close while rows are open: fail only after
	// closing them.
	var got []string
	var failure error
	for failure == nil && outer.Next() {
		var s string
		if failure = outer.Scan(&s); failure != nil {
			break
		}
		var inner *sql.Rows
		if inner, failure = conn.QueryContext(ctx, q, 3); failure != nil {
			break
		}
		got = append(got, s+"/"+fmt.Sprint(names(t, inner)))
		if len(got) > 3 {
			failure = fmt.Errorf("the outer rows restart after each inner run: %v", got)
		}
	}
	if err := outer.Close(); err != nil && failure == nil {
		failure = err
	}
	if failure != nil {
		t.Fatal(failure)
	}
	want := "[item-1/[item-3] item-2/[item-3] item-3/[item-3]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("nested runs of one statement: %v, want %v", got, want)
	}
	if s := cc.cached(q); s == nil || s.busy {
		t.Fatalf("after its rows closed the statement must be cached and free: %+v", s)
	}
	if got := names(t, mustQuery(t, conn, q, 2)); fmt.Sprint(got) != "[item-2 item-3]" {
		t.Fatalf("reused after the nested runs: %v", got)
	}
}

func mustQuery(t *testing.T, conn *sql.Conn, query string, args ...any) *sql.Rows {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A statement that fails (a constraint, a cancelled context) is dropped
// and compiled afresh; the next run succeeds.
func TestSQLiteFailedStatementIsRecompiled(t *testing.T) {
	ctx := context.Background()
	conn, cc := openCachedSQLite(t)
	const ins = "INSERT INTO items (id, name) VALUES (?, ?)"
	_, err := conn.ExecContext(ctx, ins, 10, "item-1")
	if err == nil || !IsUniqueViolation(err) {
		t.Fatalf("a duplicate name: %v, want a unique violation", err)
	}
	if cc.cached(ins) != nil {
		t.Error("a failed statement stayed cached")
	}
	mustExec(t, conn, ins, 10, "item-10")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := conn.QueryContext(cancelled, "SELECT name FROM items WHERE id = ?", 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled query: %v", err)
	}
	var name string
	if err := conn.QueryRowContext(ctx, "SELECT name FROM items WHERE id = ?", 10).Scan(&name); err != nil || name != "item-10" {
		t.Fatalf("after the cancelled run: %q, %v", name, err)
	}
}

// The cache is bounded: the least recently used statement leaves it, and
// one whose rows are open when it leaves is closed only once they close.
func TestSQLiteStatementCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	conn, cc := openCachedSQLite(t)
	const open = "SELECT name FROM items ORDER BY id"
	rows, err := conn.QueryContext(ctx, open)
	if err != nil {
		t.Fatal(err)
	}
	held := cc.cached(open)
	for i := 0; i < stmtCacheSize+5; i++ {
		var n int
		if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT %d + count(*) FROM items", i)).Scan(&n); err != nil || n != i+3 {
			t.Fatalf("query %d: %d, %v", i, n, err)
		}
	}
	if n := cc.lru.Len(); n != stmtCacheSize || len(cc.byQuery) != stmtCacheSize {
		t.Fatalf("cache holds %d statements (%d by query), want %d", n, len(cc.byQuery), stmtCacheSize)
	}
	if cc.cached(open) != nil || !held.evicted {
		t.Fatal("the least recently used statement is still cached")
	}
	if got := names(t, rows); fmt.Sprint(got) != "[item-1 item-2 item-3]" {
		t.Fatalf("rows of an evicted statement: %v", got)
	}
	if got := names(t, mustQuery(t, conn, open)); fmt.Sprint(got) != "[item-1 item-2 item-3]" {
		t.Fatalf("the evicted statement compiled again: %v", got)
	}
}

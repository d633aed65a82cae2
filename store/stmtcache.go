package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
)

// stmtCacheSize is how many compiled statements each SQLite connection
// keeps. The service runs a few dozen distinct statements; migrations and
// rare administrative queries pass through and are evicted.
const stmtCacheSize = 128

// cachingConnector opens SQLite connections that keep their compiled
// statements (see cachingConn).
type cachingConnector struct {
	dsn    string
	driver driver.Driver
}

func (c cachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

func (c cachingConnector) Driver() driver.Driver { return c.driver }

// cachingConn is a SQLite driver connection that compiles each distinct
// statement once and then reuses it. Without it every execution parses and
// plans its SQL again: database/sql calls the connection's ExecContext and
// QueryContext, which the driver implements by preparing, running and
// finalizing a statement, and gorm's own statement cache prepares each
// statement of a transaction anew on that transaction. That parsing was a
// sixth of the server's CPU per password sign-in on SQLite.
//
// The driver's statements keep their compiled form across executions
// (modernc.org/sqlite resets a cached statement when its rows close), so
// reuse is safe as long as one statement is not run again while its rows
// are still open: such a query runs uncached. database/sql never uses a
// connection from two goroutines at once, so the cache needs no lock.
type cachingConn struct {
	driver.Conn
	execer   driver.ExecerContext
	queryer  driver.QueryerContext
	preparer driver.ConnPrepareContext
	lru      *list.List // of *cachedStmt, most recently used first
	byQuery  map[string]*list.Element
}

// cachedStmt is one compiled statement of a connection.
type cachedStmt struct {
	query   string
	stmt    driver.Stmt
	busy    bool // its rows are open
	evicted bool // left the cache while busy: close when the rows do
}

func newCachingConn(conn driver.Conn) (driver.Conn, error) {
	execer, ok1 := conn.(driver.ExecerContext)
	queryer, ok2 := conn.(driver.QueryerContext)
	preparer, ok3 := conn.(driver.ConnPrepareContext)
	_, ok4 := conn.(driver.ConnBeginTx)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		conn.Close()
		return nil, errors.New("store: the SQLite driver lacks context-aware statements")
	}
	return &cachingConn{Conn: conn, execer: execer, queryer: queryer, preparer: preparer,
		lru: list.New(), byQuery: map[string]*list.Element{}}, nil
}

// statement returns the connection's compiled statement for query, or nil
// when it is running (its rows are open): the caller then runs the query
// uncached.
func (c *cachingConn) statement(ctx context.Context, query string) (*cachedStmt, error) {
	if el, ok := c.byQuery[query]; ok {
		s := el.Value.(*cachedStmt)
		if s.busy {
			return nil, nil
		}
		c.lru.MoveToFront(el)
		return s, nil
	}
	ds, err := c.preparer.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s := &cachedStmt{query: query, stmt: ds}
	c.byQuery[query] = c.lru.PushFront(s)
	for c.lru.Len() > stmtCacheSize {
		c.evict(c.lru.Back())
	}
	return s, nil
}

// evict takes a statement out of the cache and closes it, or marks it to be
// closed when its rows are.
func (c *cachingConn) evict(el *list.Element) {
	s := c.lru.Remove(el).(*cachedStmt)
	delete(c.byQuery, s.query)
	if s.busy {
		s.evicted = true
		return
	}
	s.stmt.Close()
}

// forget drops a statement that failed: whatever state the failure left
// it in, the next execution compiles the SQL afresh.
func (c *cachingConn) forget(s *cachedStmt) {
	if el, ok := c.byQuery[s.query]; ok && el.Value == s {
		c.evict(el)
	}
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.execer.ExecContext(ctx, query, args)
	}
	res, err := s.stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	if err != nil {
		c.forget(s)
	}
	return res, err
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.queryer.QueryContext(ctx, query, args)
	}
	rows, err := s.stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.forget(s)
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, conn: c, stmt: s}, nil
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.preparer.PrepareContext(ctx, query)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	for el := c.lru.Front(); el != nil; el = el.Next() {
		el.Value.(*cachedStmt).stmt.Close()
	}
	c.lru.Init()
	clear(c.byQuery)
	return c.Conn.Close()
}

// cachedRows are the rows of a cached statement: closing them makes the
// statement free to run again. The column-type methods pass through, as
// database/sql only sees the optional interfaces of the value it holds.
type cachedRows struct {
	driver.Rows
	conn *cachingConn
	stmt *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.stmt.busy = false
	if r.stmt.evicted {
		r.stmt.stmt.Close()
	} else if err != nil {
		r.conn.forget(r.stmt)
	}
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(index int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(index)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(index int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(index)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(index int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(index)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(index int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(index)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(index int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(index)
	}
	return reflect.TypeFor[any]()
}

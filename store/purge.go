package store

import (
	"context"
	"fmt"
)

// PurgeBatch is how many rows one DELETE of a purge removes: small enough
// that no statement holds its locks for long (PostgreSQL) or blocks the
// single writer (SQLite) while requests wait, large enough to keep up.
const PurgeBatch = 500

// DeleteBatches deletes the rows of table that match where (positional
// arguments args), batch rows at a time (PurgeBatch when <= 0), each batch
// its own statement, until no match is left or ctx ends; it returns how
// many rows went. key is the table's primary key column. The subquery form
// (DELETE … WHERE key IN (SELECT key … LIMIT n)) works alike on SQLite and
// PostgreSQL, which has no DELETE … LIMIT; an index on where's column
// should serve it. where is repeated outside the subquery: on PostgreSQL a
// row that a concurrent transaction changed after the subquery chose it is
// checked again (READ COMMITTED re-evaluates the outer condition on the new
// version, never the subquery), so a row that came back to life stays.
// table, key and where are code, never user input.
func (db *DB) DeleteBatches(ctx context.Context, table, key, where string, batch int, args ...any) (int64, error) {
	if batch <= 0 {
		batch = PurgeBatch
	}
	q := fmt.Sprintf("DELETE FROM %s WHERE %s IN (SELECT %s FROM %s WHERE %s LIMIT ?) AND (%s)", table, key, key, table, where, where)
	all := make([]any, 0, 2*len(args)+1)
	all = append(append(append(all, args...), batch), args...)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res := db.WithContext(ctx).Exec(q, all...)
		if res.Error != nil {
			return total, fmt.Errorf("purge %s: %w", table, res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}

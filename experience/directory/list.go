package directory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/latch-dev/latch/store"
)

// UserFilter narrows a user listing; zero fields do not filter, and the
// fields that are set must all match.
type UserFilter struct {
	// Username, Email and Phone match a normalized identifier exactly.
	Username, Email, Phone string
	// Query matches a substring of the username, e-mail, phone or name,
	// ignoring case. It cannot use an index: meant for operators, not for
	// sign-in paths.
	Query        string
	Suspended    *bool
	CreatedAfter time.Time
	// After continues a listing after the last user of the previous page.
	After *store.Cursor
	Limit int
}

// likeEscaper escapes LIKE's wildcards (with ESCAPE '\').
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// List returns users oldest first (ties by id, so pages never skip or
// repeat a user) and the cursor of the next page ("" on the last).
func (s *Users) List(ctx context.Context, f UserFilter) ([]*User, string, error) {
	q := s.db.WithContext(ctx).Order("created_at, id")
	for col, v := range map[string]string{"username_key": f.Username, "primary_email": f.Email, "primary_phone": f.Phone} {
		if v != "" {
			q = q.Where(col+" = ?", v)
		}
	}
	if f.Query != "" {
		like := "%" + likeEscaper.Replace(strings.ToLower(f.Query)) + "%"
		q = q.Where(`(LOWER(username) LIKE @q ESCAPE '\' OR LOWER(primary_email) LIKE @q ESCAPE '\' OR primary_phone LIKE @q ESCAPE '\' OR LOWER(name) LIKE @q ESCAPE '\')`,
			map[string]any{"q": like})
	}
	if f.Suspended != nil {
		q = q.Where("suspended = ?", *f.Suspended)
	}
	if !f.CreatedAfter.IsZero() {
		q = q.Where("created_at > ?", f.CreatedAfter.UTC())
	}
	if f.After != nil {
		q = q.Where("(created_at > ? OR (created_at = ? AND id > ?))", f.After.At, f.After.At, f.After.ID)
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 50
	}
	var rows []Row
	// One row more than asked tells whether there is a next page.
	if err := q.Limit(f.Limit + 1).Find(&rows).Error; err != nil {
		return nil, "", fmt.Errorf("directory: list users: %w", err)
	}
	next := ""
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		last := rows[len(rows)-1]
		next = store.Cursor{At: last.CreatedAt, ID: last.ID}.String()
	}
	out := make([]*User, 0, len(rows))
	for i := range rows {
		out = append(out, rows[i].User())
	}
	return out, next, nil
}

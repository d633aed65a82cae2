package store

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Cursor is a position in a listing ordered by (time, id): keyset
// pagination, which stays correct while rows are added and costs the same
// on every page. Its text form is opaque to clients.
type Cursor struct {
	At time.Time
	ID string
}

// String encodes the cursor.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At.UnixNano(), 10) + "." + c.ID))
}

// ParseCursor decodes a cursor from String; ok is false for anything else.
func ParseCursor(s string) (c Cursor, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, false
	}
	at, id, found := strings.Cut(string(raw), ".")
	ns, err := strconv.ParseInt(at, 10, 64)
	if !found || err != nil || id == "" || len(id) > 64 {
		return Cursor{}, false
	}
	return Cursor{At: time.Unix(0, ns).UTC(), ID: id}, true
}

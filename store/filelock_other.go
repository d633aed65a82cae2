//go:build !unix

package store

import "context"

// lockFile is a no-op where flock is unavailable: there, concurrent first
// starts on one SQLite file rely on SQLite's own locking alone.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	return func() {}, nil
}

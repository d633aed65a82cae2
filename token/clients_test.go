package token

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latch-dev/latch/store"
)

// A revoking secret rotation refuses the tokens of its own second (iat has
// whole seconds, so they may predate it) and returns only after that second,
// so tokens minted with the new secret are never refused.
func TestRotateSecretRevokesByIssuedAt(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		c := newTestClient(t, s)
		if !c.AcceptsIssuedAt(nil) {
			t.Fatal("a client that never revoked tokens refuses one")
		}
		plain, _, err := s.Clients.RotateSecret(ctx, c.ID, false)
		if err != nil || plain.TokensValidAfter != nil {
			t.Fatalf("a plain rotation revoked tokens: %+v, %v", plain, err)
		}
		rotated, _, err := s.Clients.RotateSecret(ctx, c.ID, true)
		if err != nil || rotated.TokensValidAfter == nil {
			t.Fatalf("RotateSecret(revoke) = %+v, %v", rotated, err)
		}
		at := rotated.TokensValidAfter.Truncate(time.Second)
		for _, tc := range []struct {
			iat  *jwt.NumericDate
			want bool
		}{
			{nil, false},
			{jwt.NewNumericDate(at.Add(-time.Hour)), false},
			{jwt.NewNumericDate(at), false},
			{jwt.NewNumericDate(at.Add(999 * time.Millisecond)), false},
			{jwt.NewNumericDate(at.Add(time.Second)), true},
		} {
			if got := rotated.AcceptsIssuedAt(tc.iat); got != tc.want {
				t.Errorf("AcceptsIssuedAt(%v) = %v, want %v", tc.iat, got, tc.want)
			}
		}
		if now := time.Now(); now.Unix() <= at.Unix() {
			t.Fatalf("RotateSecret returned at %v, within the refused second %v", now, at)
		}
		// Stored and read back alike on every database.
		got, err := s.Clients.Get(ctx, c.ID)
		if err != nil || got.TokensValidAfter == nil || got.TokensValidAfter.Unix() != at.Unix() {
			t.Fatalf("stored tokens_valid_after = %+v, %v", got, err)
		}
		if _, _, err := s.Clients.RotateSecret(ctx, "nope", true); err == nil {
			t.Fatal("rotating an unknown client succeeded")
		}
	})
}

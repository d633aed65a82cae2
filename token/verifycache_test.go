package token

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func cacheClaims(jti string, exp time.Time) *AccessClaims {
	return &AccessClaims{RegisteredClaims: jwt.RegisteredClaims{ID: jti, ExpiresAt: jwt.NewNumericDate(exp)}}
}

// The verify cache holds tokens by jti: revoking one evicts every string
// that verified to it, and a verification racing the revocation cannot put
// it back for the cache's TTL.
func TestVerifyCacheGoesByJTI(t *testing.T) {
	now := time.Now()
	c := newVerifyCache(5*time.Second, 100)
	claims := cacheClaims("j1", now.Add(time.Hour))
	c.put("raw", claims, now)
	c.put("twin", claims, now)
	if c.get("raw", now) != claims || c.get("twin", now) != claims {
		t.Fatal("verified strings are not cached")
	}
	if c.get("other", now) != nil {
		t.Fatal("an unknown string hit")
	}
	c.forget("j1", now)
	if c.get("raw", now) != nil || c.get("twin", now) != nil {
		t.Fatal("a revoked token's twin is still cached")
	}
	c.put("twin", claims, now.Add(time.Second))
	if c.get("twin", now.Add(time.Second)) != nil {
		t.Fatal("a token revoked here was cached again within the TTL")
	}
	// Past the tombstone, a (re)verified token may be cached: verification
	// itself consults the revocation table.
	later := now.Add(6 * time.Second)
	c.put("twin", claims, later)
	if c.get("twin", later) != claims {
		t.Fatal("the tombstone outlived the TTL")
	}
	// Entries never outlive the token's exp nor the TTL.
	short := cacheClaims("j2", now.Add(time.Second))
	c.put("short", short, now)
	if c.get("short", now.Add(2*time.Second)) != nil || c.get("twin", later.Add(5*time.Second)) != nil {
		t.Fatal("an entry outlived exp or the TTL")
	}
}

func TestVerifyCacheIsBounded(t *testing.T) {
	now := time.Now()
	c := newVerifyCache(time.Minute, 8)
	c.forget("revoked", now)
	for i := 0; i < 50; i++ {
		c.put(fmt.Sprint("raw", i), cacheClaims(fmt.Sprint("j", i), now.Add(time.Hour)), now)
		if len(c.raws) > 8 || len(c.tokens) > 9 {
			t.Fatalf("cache grew to %d strings, %d tokens", len(c.raws), len(c.tokens))
		}
	}
	if c.get("raw49", now) == nil {
		t.Fatal("the newest entry is missing")
	}
	c.put("r", cacheClaims("revoked", now.Add(time.Hour)), now)
	if c.get("r", now) != nil {
		t.Fatal("a reset dropped a live tombstone")
	}
}

package token

import (
	"crypto/sha256"
	"sync"
	"time"
)

// verifyCache remembers access tokens that verified, for a short time.
//
// A backend reuses its ClientAccessToken for its whole hour, on every call:
// re-checking the signature (an ECDSA verify) and the revocation table (a
// query) each time is most of the cost of a cheap endpoint. A hit is only
// trusted for ttl (and never past the token's exp); revoking a token on this
// replica evicts it at once, on other replicas within ttl — the short-TTL
// cache DESIGN §1 allows. Entries are keyed by a digest of the raw token, so
// the cache never holds bearer tokens themselves, and it is bounded.
type verifyCache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[[32]byte]cachedClaims
}

type cachedClaims struct {
	claims *AccessClaims
	until  time.Time
}

func newVerifyCache(ttl time.Duration, max int) *verifyCache {
	return &verifyCache{ttl: ttl, max: max, entries: map[[32]byte]cachedClaims{}}
}

func (c *verifyCache) key(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }

// get returns the claims of a recently verified token, or nil.
func (c *verifyCache) get(raw string, now time.Time) *AccessClaims {
	if c == nil || c.ttl <= 0 {
		return nil
	}
	k := c.key(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil
	}
	if !now.Before(e.until) {
		delete(c.entries, k)
		return nil
	}
	return e.claims
}

// put remembers verified claims until min(now+ttl, exp).
func (c *verifyCache) put(raw string, claims *AccessClaims, now time.Time) {
	if c == nil || c.ttl <= 0 || claims.ExpiresAt == nil {
		return
	}
	until := now.Add(c.ttl)
	if exp := claims.ExpiresAt.Time; exp.Before(until) {
		until = exp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Drop expired entries; if still full, start over rather than grow.
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			c.entries = map[[32]byte]cachedClaims{}
		}
	}
	c.entries[c.key(raw)] = cachedClaims{claims: claims, until: until}
}

// forget evicts a token (after revocation on this replica).
func (c *verifyCache) forget(raw string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.entries, c.key(raw))
	c.mu.Unlock()
}

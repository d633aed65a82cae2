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
// cache DESIGN §1 allows.
//
// Entries are held per token identity (jti), not per string: one token can
// travel as several different strings that all verify — an ECDSA signature
// (r, s) is equally valid as (r, n−s) — so a cache keyed only on the raw
// string would let a twin cached before a revocation outlive it. Each raw
// string that verified maps (by digest: the cache never holds bearer tokens)
// to its jti, and a hit needs the jti's entry, which forget removes for
// every twin at once. forget also leaves a tombstone for ttl, so a
// verification that was in flight during the revocation cannot put the
// token back. Both maps are bounded.
type verifyCache struct {
	ttl time.Duration
	max int

	mu     sync.Mutex
	raws   map[[32]byte]string     // digest of a verified raw token -> its jti
	tokens map[string]cachedClaims // jti -> claims (nil: revoked here, a tombstone)
}

type cachedClaims struct {
	claims *AccessClaims
	until  time.Time
}

func newVerifyCache(ttl time.Duration, max int) *verifyCache {
	return &verifyCache{ttl: ttl, max: max, raws: map[[32]byte]string{}, tokens: map[string]cachedClaims{}}
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
	jti, ok := c.raws[k]
	if !ok {
		return nil
	}
	e, ok := c.tokens[jti]
	if !ok || e.claims == nil || !now.Before(e.until) {
		delete(c.raws, k)
		return nil
	}
	return e.claims
}

// put remembers verified claims until min(now+ttl, exp), unless the token
// was revoked here within ttl.
func (c *verifyCache) put(raw string, claims *AccessClaims, now time.Time) {
	if c == nil || c.ttl <= 0 || claims.ExpiresAt == nil || claims.ID == "" {
		return
	}
	until := now.Add(c.ttl)
	if exp := claims.ExpiresAt.Time; exp.Before(until) {
		until = exp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.tokens[claims.ID]; ok && e.claims == nil && now.Before(e.until) {
		return
	}
	if len(c.raws) >= c.max || len(c.tokens) >= c.max {
		c.prune(now)
	}
	c.raws[c.key(raw)] = claims.ID
	c.tokens[claims.ID] = cachedClaims{claims: claims, until: until}
}

// prune drops expired entries; if the cache is still full it starts over
// rather than grow, keeping only live tombstones.
func (c *verifyCache) prune(now time.Time) {
	for jti, e := range c.tokens {
		if !now.Before(e.until) {
			delete(c.tokens, jti)
		}
	}
	for k, jti := range c.raws {
		if e, ok := c.tokens[jti]; !ok || e.claims == nil {
			delete(c.raws, k)
		}
	}
	if len(c.raws) < c.max && len(c.tokens) < c.max {
		return
	}
	c.raws = map[[32]byte]string{}
	tombs := map[string]cachedClaims{}
	for jti, e := range c.tokens {
		if e.claims == nil && len(tombs) < c.max/2 {
			tombs[jti] = e
		}
	}
	c.tokens = tombs
}

// forget evicts a token, in whatever encoding it was presented, after its
// revocation on this replica.
func (c *verifyCache) forget(jti string, now time.Time) {
	if c == nil || c.ttl <= 0 || jti == "" {
		return
	}
	c.mu.Lock()
	c.tokens[jti] = cachedClaims{until: now.Add(c.ttl)}
	c.mu.Unlock()
}

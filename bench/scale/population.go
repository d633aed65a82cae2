package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/latch-dev/latch/credentials"
)

// population describes the bulk-loaded data: user i, its live session (of
// the benchmark's client), that session's refresh family with one unused
// refresh token, and for one user in ten a sentinel counter of recent
// failures. Every value is derived from i and a per-run seed, so the
// benchmark can sign in as any user, re-authenticate any session and
// refresh any token without keeping a million of them in memory.
type population struct {
	seed     [16]byte
	hash     string // one real argon2id hash of password, shared by every user
	clientID string
	// audience, scope and idClaims are copied from a family a real sign-in
	// made, so the loaded families are ones the server could have made.
	audience, scope, idClaims string
	now                       time.Time
}

// password is every loaded user's password.
const password = "scale benchmark password"

func newPopulation(ctx context.Context, clientID, audience, scope, idClaims string) (*population, error) {
	p := &population{clientID: clientID, audience: audience, scope: scope, idClaims: idClaims, now: time.Now().UTC()}
	_, _ = rand.Read(p.seed[:])
	// The server's own parameters (the defaults), so no sign-in rehashes.
	h, err := credentials.NewHasher(credentials.DefaultArgon2Params(), nil).Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	p.hash = h
	return p, nil
}

// derive is a digest of (seed, kind, i): the source of every id.
func (p *population) derive(kind string, i int) [32]byte {
	h := sha256.New()
	h.Write(p.seed[:])
	h.Write([]byte(kind))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(i))
	h.Write(n[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// id is an n-character lower-case base-36 id, like credentials.RandomID.
func (p *population) id(kind string, i, n int) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	d := p.derive(kind, i)
	out := make([]byte, n)
	for k := range out {
		out[k] = alphabet[int(d[k])%len(alphabet)]
	}
	return string(out)
}

func (p *population) userID(i int) string    { return p.id("user", i, 20) }
func (p *population) sessionID(i int) string { return p.id("session", i, 24) }
func (p *population) familyID(i int) string  { return p.id("family", i, 24) }
func (p *population) tokenID(i int) string   { return p.id("token", i, 24) }

// refreshToken is user i's refresh token as a client holds it: 32 random
// bytes, base64url, like credentials.RandomToken(32).
func (p *population) refreshToken(i int) string {
	d := p.derive("refresh", i)
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// username is distinct for every i below 2^32: an odd multiplier is a
// bijection modulo 2^32, and it scatters neighbours across the index.
func username(i int) string { return fmt.Sprintf("scale%08x", uint32(i)*2654435761) }

func email(i int) string { return username(i) + "@example.com" }

// phone is distinct for every i below 10^7 (7919 is prime to 10^7), in E.164.
func phone(i int) string { return fmt.Sprintf("+1415%07d", (i*7919)%10_000_000) }

// maxUsers is the most users phone numbers stay distinct for.
const maxUsers = 10_000_000

// Column lists of the loaded tables, as the migrations define them
// (experience/migrations.go, token/migrations.go).
var (
	userColumns = []string{"id", "username", "username_key", "username_skeleton", "primary_email", "primary_phone",
		"email_verified", "phone_verified", "name", "custom_data", "password_hash", "password_updated_at",
		"password_expired", "password_temporary", "suspended", "mfa_skipped", "created_at", "updated_at", "last_sign_in_at"}
	sessionColumns = []string{"id", "user_id", "client_id", "org_id", "state", "amr", "auth_time", "created_at",
		"updated_at", "expires_at", "revoked_at", "ip_address", "user_agent"}
	familyColumns = []string{"id", "client_id", "user_id", "session_id", "audience", "scope", "org_id", "id_claims",
		"created_at", "expires_at", "rotated_at", "rotations", "revoked_at"}
	tokenColumns    = []string{"id", "digest", "family_id", "created_at", "expires_at", "used_at"}
	sentinelColumns = []string{"key", "failures", "window_start", "locked_until", "updated_at"}
)

// table is one loaded table: its name, columns and the row of user i (nil:
// user i has no row in it).
type table struct {
	name    string
	columns []string
	row     func(i int) []any
}

func (p *population) tables() []table {
	expires := p.now.Add(14 * 24 * time.Hour)
	created := func(i int) time.Time { return p.now.Add(-time.Duration(i%365*24+1) * time.Hour) }
	return append([]table{
		{"users", userColumns, func(i int) []any {
			u, at := username(i), created(i)
			return []any{p.userID(i), u, u, u, email(i), phone(i), true, true, fmt.Sprintf("Scale User %d", i), "{}",
				p.hash, at, false, false, false, false, at, at, nil}
		}},
		{"sessions", sessionColumns, func(i int) []any {
			return []any{p.sessionID(i), p.userID(i), p.clientID, "", "active", "pwd", p.now, p.now, p.now, expires, nil, "", ""}
		}},
		{"refresh_families", familyColumns, func(i int) []any {
			return []any{p.familyID(i), p.clientID, p.userID(i), p.sessionID(i), p.audience, p.scope, "", p.idClaims,
				p.now, expires, nil, 0, nil}
		}},
		{"refresh_tokens", tokenColumns, func(i int) []any {
			return []any{p.tokenID(i), credentials.Digest(p.refreshToken(i)), p.familyID(i), p.now, expires, nil}
		}},
		{"sentinel_counters", sentinelColumns, func(i int) []any {
			if i%10 != 0 {
				return nil
			}
			return []any{"user:" + p.userID(i) + ":account", 1 + i%3, p.now.Add(-time.Minute), nil, p.now}
		}},
	}, p.orgTables()...)
}

// Package credentials holds the secrets Latch verifies: password hashing and
// policy, one-time codes, TOTP, backup codes, WebAuthn credentials, random
// identifiers and the encryption of secrets at rest.
package credentials

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"math/big"
)

// RandomToken returns n random bytes encoded as unpadded base64url.
func RandomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("credentials: crypto/rand failed: " + err.Error()) // the OS RNG never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

const idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// RandomID returns an identifier of n characters from [0-9a-z], for ids that
// appear in URLs and logs (users, clients, sessions).
func RandomID(n int) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(idAlphabet)))
	for i := range out {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("credentials: crypto/rand failed: " + err.Error())
		}
		out[i] = idAlphabet[v.Int64()]
	}
	return string(out)
}

// Digest returns the hex SHA-256 of a high-entropy secret (client secrets,
// refresh tokens). It is a lookup key, not a password hash: the secrets it is
// used for carry 256 bits of entropy, so a fast hash is safe and keeps the
// token endpoint fast.
func Digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// DigestEqual compares a secret with a stored digest in constant time.
func DigestEqual(secret, digest string) bool {
	got := Digest(secret)
	return subtle.ConstantTimeCompare([]byte(got), []byte(digest)) == 1
}

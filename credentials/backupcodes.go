package credentials

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"
)

// Backup code format: BackupCodeCount codes of BackupCodeLength lowercase
// hex characters (40 bits each), shown to the user once and stored only as
// BackupCodeDigest values, each usable once.
const (
	BackupCodeCount  = 10
	BackupCodeLength = 10
)

// maxBackupCodeInput bounds what NormalizeBackupCode looks at, so that a
// megabyte of dashes costs nothing.
const maxBackupCodeInput = 64

// NewBackupCodes returns BackupCodeCount distinct random codes of
// BackupCodeLength lowercase hex characters from crypto/rand. The set is
// distinct so that each stored digest identifies exactly one code.
func NewBackupCodes() []string {
	codes := make([]string, 0, BackupCodeCount)
	seen := make(map[string]bool, BackupCodeCount)
	buf := make([]byte, BackupCodeLength/2)
	for len(codes) < BackupCodeCount {
		if _, err := rand.Read(buf); err != nil {
			panic("credentials: crypto/rand failed: " + err.Error()) // the OS RNG never fails on supported platforms
		}
		code := hex.EncodeToString(buf)
		if seen[code] {
			continue // one chance in 10^11 per pair; draw again
		}
		seen[code] = true
		codes = append(codes, code)
	}
	return codes
}

// BackupCodePepper derives the backup code pepper from the deployment's
// secret key (LATCH_SECRET_KEY, the Sealer key) with HKDF-SHA256 under a
// purpose label of its own, so the pepper is never the encryption key
// itself and a digest reveals nothing about it.
func BackupCodePepper(secretKey []byte) ([]byte, error) {
	if len(secretKey) < 16 {
		return nil, fmt.Errorf("credentials: secret key too short for a pepper: %d bytes", len(secretKey))
	}
	return hkdf.Key(sha256.New, secretKey, nil, "latch backup-code pepper v1", sha256.Size)
}

// BackupCodeDigest keys a code with a server pepper (HMAC-SHA256, hex).
// Codes carry only 40 bits, so a plain hash in a leaked table would be
// brute-forced offline in minutes; the pepper (derived from the deployment
// secret, see BackupCodePepper) prevents that as long as it does not leak
// with the table, while keeping verification O(1): the caller looks the
// digest up (and marks it used atomically) instead of running one slow hash
// per stored code. Pass the code through NormalizeBackupCode first.
func BackupCodeDigest(pepper []byte, code string) string {
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(code))
	return hex.EncodeToString(mac.Sum(nil))
}

// NormalizeBackupCode returns the canonical form of a typed backup code:
// spaces and dashes removed (wherever they are, as users copy codes in
// groups), lower-cased. ok is false unless the result is exactly
// BackupCodeLength hex characters, so malformed input is refused before
// any lookup.
func NormalizeBackupCode(s string) (string, bool) {
	if len(s) > maxBackupCodeInput {
		return "", false
	}
	var b strings.Builder
	b.Grow(BackupCodeLength)
	for _, r := range s {
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case r >= '0' && r <= '9' || r >= 'a' && r <= 'f':
			b.WriteRune(r)
		case r >= 'A' && r <= 'F':
			b.WriteRune(r + ('a' - 'A'))
		default:
			return "", false
		}
	}
	if b.Len() != BackupCodeLength {
		return "", false
	}
	return b.String(), true
}

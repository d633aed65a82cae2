package credentials

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238 with the values every authenticator app
// supports): a 160-bit secret (the HMAC-SHA1 block-size recommendation of
// RFC 4226), 30-second steps and 6-digit codes.
const (
	TOTPSecretSize = 20
	TOTPPeriod     = 30
	TOTPDigits     = 6
	// TOTPSkew is how many steps either side of the current one a code
	// may come from: one step tolerates a clock drift and a code typed
	// just before it rolled over, without widening the guessing window
	// beyond three codes per attempt.
	TOTPSkew = 1
)

// Bounds on the decoded size of a TOTP secret accepted by ValidTOTPSecret.
// 80 bits is the smallest secret widely deployed (16 base32 characters);
// 64 bytes is the HMAC-SHA1 block size, beyond which keys are hashed first
// and carry no more strength.
const (
	minTOTPSecretBytes = 10
	maxTOTPSecretBytes = 64
)

// totpQRCodeSize is the side, in pixels, of the QR code image: large enough
// to scan from a screen, small enough to keep the data URL around 1-2 KB.
const totpQRCodeSize = 256

// TOTPKey is a freshly generated TOTP secret and the two ways of handing it
// to an authenticator app. Only Secret is stored (sealed, see Sealer); URI
// and QRCodePNG are shown once during enrolment.
type TOTPKey struct {
	// Secret is the RFC 4648 base32 encoding of the 20-byte secret, upper
	// case, without padding (the form authenticator apps accept when typed).
	Secret string
	// URI is the otpauth://totp/... key URI the QR code encodes.
	URI string
	// QRCodePNG is "data:image/png;base64,..." of a QR code of URI, for an
	// <img src> in the enrolment page.
	QRCodePNG string
}

// NewTOTP generates a random TOTP secret for account at issuer (the
// application or tenant name shown in authenticator apps). Neither may be
// empty, and issuer may not contain ':' (the key URI label separator).
func NewTOTP(issuer, account string) (*TOTPKey, error) {
	if issuer == "" || account == "" {
		return nil, errors.New("credentials: TOTP issuer and account must not be empty")
	}
	if strings.Contains(issuer, ":") {
		return nil, errors.New("credentials: TOTP issuer must not contain ':'")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      TOTPPeriod,
		SecretSize:  TOTPSecretSize,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("credentials: generating TOTP secret: %w", err)
	}
	img, err := key.Image(totpQRCodeSize, totpQRCodeSize)
	if err != nil {
		return nil, fmt.Errorf("credentials: rendering TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("credentials: encoding TOTP QR code: %w", err)
	}
	return &TOTPKey{
		Secret:    key.Secret(),
		URI:       key.URL(),
		QRCodePNG: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()),
	}, nil
}

// decodeTOTPSecret decodes a base32 secret the way authenticator apps read
// one: case-insensitive, padding optional (but correct when present). It
// returns nil for anything else, including whitespace and line breaks,
// which encoding/base32 would otherwise skip silently.
func decodeTOTPSecret(secret string) []byte {
	if secret == "" || len(secret) > 2*base32.StdEncoding.EncodedLen(maxTOTPSecretBytes) {
		return nil
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '2' && c <= '7' || c == '=') {
			return nil
		}
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	if strings.Contains(secret, "=") {
		enc = base32.StdEncoding
	}
	b, err := enc.DecodeString(strings.ToUpper(secret))
	if err != nil {
		return nil
	}
	return b
}

// ValidTOTPSecret reports whether secret is a usable TOTP secret: base32
// (case-insensitive, padding optional, no spaces) of 10 to 64 bytes. It is
// meant for secrets that did not come from NewTOTP (imports, the management
// API), so a bad one is refused when it is stored rather than silently
// never matching at sign-in.
func ValidTOTPSecret(secret string) bool {
	b := decodeTOTPSecret(secret)
	return len(b) >= minTOTPSecretBytes && len(b) <= maxTOTPSecretBytes
}

// validTOTPCode reports whether code is exactly TOTPDigits ASCII digits.
func validTOTPCode(code string) bool {
	if len(code) != TOTPDigits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// TOTPStep returns the RFC 6238 time step (unix seconds / 30) of t.
func TOTPStep(t time.Time) int64 {
	u := t.Unix()
	step := u / TOTPPeriod
	if u < 0 && u%TOTPPeriod != 0 {
		step-- // floor, not truncation, before 1970
	}
	return step
}

// VerifyTOTP accepts the code for the step at now, one step before or one
// after (±1), and returns the matched time step (unix/30) so the caller can
// refuse a step already used. Replay protection is the caller's, stored
// atomically as the "last used step": a code whose step is ≤ the last used
// step must be refused (e.g. UPDATE ... SET last_step = ? WHERE last_step < ?
// and check one row changed), otherwise a code seen over a shoulder or in a
// proxy log could be replayed within its 90-second window.
//
// Input that is not exactly six ASCII digits (surrounding spaces are
// trimmed) and an invalid secret are refused without computing anything.
// The three candidate codes are always all computed and compared in
// constant time, so timing tells nothing about how close a guess came. If
// the code happens to match several steps (two steps sharing a 6-digit code
// happen once in a million), the latest one is returned, so that accepting
// it also burns the earlier ones.
func VerifyTOTP(secret, code string, now time.Time) (step int64, ok bool) {
	code = strings.TrimSpace(code)
	if !validTOTPCode(code) || !ValidTOTPSecret(secret) {
		return 0, false
	}
	current := TOTPStep(now)
	opts := hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
	for s := current - TOTPSkew; s <= current+TOTPSkew; s++ {
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(s), opts)
		if err != nil {
			return 0, false // cannot happen: the secret was validated above
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			step, ok = s, true
		}
	}
	return step, ok
}

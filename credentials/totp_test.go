package credentials

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpCodeAt computes the code an authenticator app shows at t.
func totpCodeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{
		Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func TestNewTOTP(t *testing.T) {
	key, err := NewTOTP("Latch", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(key.Secret, "=") || strings.ToUpper(key.Secret) != key.Secret {
		t.Errorf("secret %q: want upper-case base32 without padding", key.Secret)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(key.Secret)
	if err != nil || len(raw) != 20 {
		t.Fatalf("secret decodes to %d bytes (%v), want 20", len(raw), err)
	}
	if !ValidTOTPSecret(key.Secret) {
		t.Error("generated secret is not ValidTOTPSecret")
	}

	u, err := url.Parse(key.URI)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Latch:alice@example.com" {
		t.Errorf("URI %q: wrong scheme/type/label", key.URI)
	}
	for k, want := range map[string]string{"secret": key.Secret, "issuer": "Latch", "algorithm": "SHA1", "digits": "6", "period": "30"} {
		if got := q.Get(k); got != want {
			t.Errorf("URI %s = %q, want %q", k, got, want)
		}
	}

	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(key.QRCodePNG, prefix) {
		t.Fatalf("QR code %.40q...: not a PNG data URL", key.QRCodePNG)
	}
	pngBytes, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(key.QRCodePNG, prefix))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		t.Fatalf("QR code is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
		t.Errorf("QR code is %v, want 256x256", b)
	}

	// The app computes codes from the URI's secret that VerifyTOTP accepts.
	now := time.Now()
	if _, ok := VerifyTOTP(key.Secret, totpCodeAt(t, q.Get("secret"), now), now); !ok {
		t.Error("code computed from the URI secret refused")
	}

	other, err := NewTOTP("Latch", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if other.Secret == key.Secret {
		t.Error("two enrolments produced the same secret")
	}
}

func TestNewTOTPRejects(t *testing.T) {
	for _, tc := range []struct{ issuer, account string }{
		{"", "alice"}, {"Latch", ""}, {"La:tch", "alice"},
	} {
		if _, err := NewTOTP(tc.issuer, tc.account); err == nil {
			t.Errorf("NewTOTP(%q, %q): want error", tc.issuer, tc.account)
		}
	}
}

func TestVerifyTOTP(t *testing.T) {
	key, err := NewTOTP("Latch", "alice")
	if err != nil {
		t.Fatal(err)
	}
	secret := key.Secret
	// A fixed instant in the middle of a step, and the step boundaries.
	now := time.Unix(1_700_000_015, 0)
	step := now.Unix() / 30

	cases := []struct {
		name     string
		code     string
		ok       bool
		wantStep int64
	}{
		{"current step", totpCodeAt(t, secret, now), true, step},
		{"previous step", totpCodeAt(t, secret, now.Add(-30*time.Second)), true, step - 1},
		{"next step", totpCodeAt(t, secret, now.Add(30*time.Second)), true, step + 1},
		{"two steps back", totpCodeAt(t, secret, now.Add(-60*time.Second)), false, 0},
		{"two steps ahead", totpCodeAt(t, secret, now.Add(60*time.Second)), false, 0},
		{"surrounding spaces", " " + totpCodeAt(t, secret, now) + " ", true, step},
		{"empty", "", false, 0},
		{"five digits", "12345", false, 0},
		{"seven digits", "1234567", false, 0},
		{"letters", "12a456", false, 0},
		{"inner space", "123 456", false, 0},
		{"non-ASCII digits", "１２３４５６", false, 0},
		{"sign", "+12345", false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gotStep, ok := VerifyTOTP(secret, tc.code, now)
			// Codes of other steps can collide with the window's codes
			// (one in a million); skip rather than flake.
			if !tc.ok && ok && validTOTPCode(strings.TrimSpace(tc.code)) {
				t.Skipf("code %s collides with a code of the window", tc.code)
			}
			if ok != tc.ok || (ok && gotStep != tc.wantStep) {
				t.Errorf("VerifyTOTP(%q) = (%d, %v), want (%d, %v)", tc.code, gotStep, ok, tc.wantStep, tc.ok)
			}
		})
	}

	// The window is relative to now, to the second: a code for step s is
	// accepted from the first second of s-1 to the last second of s+1.
	code := totpCodeAt(t, secret, now)
	start := time.Unix(step*30, 0)
	for _, tc := range []struct {
		at time.Time
		ok bool
	}{
		{start.Add(-30 * time.Second), true},
		{start.Add(-30*time.Second - time.Second), false},
		{start.Add(59 * time.Second), true},
		{start.Add(60 * time.Second), false},
	} {
		if _, ok := VerifyTOTP(secret, code, tc.at); ok != tc.ok {
			if !tc.ok {
				continue // collision, see above
			}
			t.Errorf("code of step %d at %v: ok=%v, want %v", step, tc.at.Unix(), ok, tc.ok)
		}
	}

	// A lower-case secret (as some apps export) verifies the same codes.
	if s, ok := VerifyTOTP(strings.ToLower(secret), code, now); !ok || s != step {
		t.Errorf("lower-case secret: (%d, %v)", s, ok)
	}
	// A wrong or malformed secret never verifies.
	for _, bad := range []string{"", "not base32!", "ABC", other32(secret)} {
		if _, ok := VerifyTOTP(bad, code, now); ok {
			t.Errorf("secret %q verified the code", bad)
		}
	}
}

// other32 returns a different valid secret of the same length.
func other32(secret string) string {
	if secret[0] == 'A' {
		return "B" + secret[1:]
	}
	return "A" + secret[1:]
}

// TestVerifyTOTPRFC6238 checks the RFC 6238 appendix B SHA-1 vectors
// (truncated to 6 digits) at the exact instants of the RFC.
func TestVerifyTOTPRFC6238(t *testing.T) {
	secret := base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))
	for _, tc := range []struct {
		unix int64
		code string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1111111111, "050471"},
		{1234567890, "005924"},
		{2000000000, "279037"},
	} {
		step, ok := VerifyTOTP(secret, tc.code, time.Unix(tc.unix, 0))
		if !ok || step != tc.unix/30 {
			t.Errorf("t=%d code %s: (%d, %v), want (%d, true)", tc.unix, tc.code, step, ok, tc.unix/30)
		}
	}
}

func TestTOTPStep(t *testing.T) {
	for _, tc := range []struct{ unix, step int64 }{
		{0, 0}, {29, 0}, {30, 1}, {1_700_000_015, 56_666_667}, {-1, -1}, {-30, -1}, {-31, -2},
	} {
		if got := TOTPStep(time.Unix(tc.unix, 0)); got != tc.step {
			t.Errorf("TOTPStep(%d) = %d, want %d", tc.unix, got, tc.step)
		}
	}
}

func TestValidTOTPSecret(t *testing.T) {
	for _, tc := range []struct {
		secret string
		ok     bool
	}{
		{"JBSWY3DPEHPK3PXP", true},                         // 10 bytes, the classic example
		{"jbswy3dpehpk3pxp", true},                         // lower case
		{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", true},         // 20 bytes
		{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGE", true},       // 21 bytes, no padding
		{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGE======", true}, // same, padded
		{"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGE==", false},    // wrong padding
		{"", false},
		{"JBSWY3DPEHPK3PX", false},  // 15 chars: not a whole number of bytes
		{"JBSWY3DP", false},         // 5 bytes: too short
		{"JBSWY3DPEHPK3PX1", false}, // '1' is not base32
		{"JBSW Y3DP EHPK 3PXP", false},
		{"JBSWY3DP\nEHPK3PXP", false},
		{strings.Repeat("A", 104), false}, // 65 bytes: too long
	} {
		if got := ValidTOTPSecret(tc.secret); got != tc.ok {
			t.Errorf("ValidTOTPSecret(%q) = %v, want %v", tc.secret, got, tc.ok)
		}
	}
}

package credentials

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

func TestNewBackupCodes(t *testing.T) {
	format := regexp.MustCompile(`^[0-9a-f]{10}$`)
	all := map[string]bool{}
	for range 50 {
		codes := NewBackupCodes()
		if len(codes) != 10 {
			t.Fatalf("got %d codes, want 10", len(codes))
		}
		set := map[string]bool{}
		for _, c := range codes {
			if !format.MatchString(c) {
				t.Errorf("code %q is not 10 lowercase hex characters", c)
			}
			if set[c] {
				t.Errorf("duplicate code %q in one set", c)
			}
			set[c] = true
			if n, ok := NormalizeBackupCode(c); !ok || n != c {
				t.Errorf("NormalizeBackupCode(%q) = (%q, %v), want itself", c, n, ok)
			}
			all[c] = true
		}
	}
	// 500 draws of 40 bits: a repeat across sets would mean a broken RNG.
	if len(all) != 500 {
		t.Errorf("%d distinct codes in 50 sets, want 500", len(all))
	}
}

func TestBackupCodeDigest(t *testing.T) {
	pepper := []byte("0123456789abcdef0123456789abcdef")
	code := "a1b2c3d4e5"

	d := BackupCodeDigest(pepper, code)
	if d != BackupCodeDigest(pepper, code) {
		t.Error("digest is not stable")
	}
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(code))
	if want := hex.EncodeToString(mac.Sum(nil)); d != want {
		t.Errorf("digest %s, want HMAC-SHA256 %s", d, want)
	}
	if len(d) != 64 || strings.ToLower(d) != d {
		t.Errorf("digest %q: want 64 lowercase hex characters", d)
	}
	if BackupCodeDigest([]byte("another pepper, another table!!!"), code) == d {
		t.Error("digest does not depend on the pepper")
	}
	if BackupCodeDigest(pepper, "a1b2c3d4e6") == d {
		t.Error("digest does not depend on the code")
	}
	// Not a plain hash: a leaked table cannot be searched without the pepper.
	plain := sha256.Sum256([]byte(code))
	if d == hex.EncodeToString(plain[:]) {
		t.Error("digest is a plain SHA-256")
	}
	// Normalized variants of a typed code share the stored digest.
	typed, ok := NormalizeBackupCode(" A1B2C-3D4E5 ")
	if !ok || BackupCodeDigest(pepper, typed) != d {
		t.Error("normalized typed code does not match the stored digest")
	}
}

func TestBackupCodePepper(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p1, err := BackupCodePepper(key)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := BackupCodePepper(key)
	if len(p1) != 32 || string(p1) != string(p2) {
		t.Errorf("pepper: %d bytes, stable=%v", len(p1), string(p1) == string(p2))
	}
	if string(p1) == string(key) {
		t.Error("pepper equals the secret key")
	}
	other, _ := BackupCodePepper([]byte("fedcba9876543210fedcba9876543210"))
	if string(other) == string(p1) {
		t.Error("pepper does not depend on the secret key")
	}
	if _, err := BackupCodePepper([]byte("short")); err == nil {
		t.Error("short secret key accepted")
	}
}

func TestNormalizeBackupCode(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"a1b2c3d4e5", "a1b2c3d4e5", true},
		{"A1B2C3D4E5", "a1b2c3d4e5", true},
		{"  a1b2c3d4e5\n", "a1b2c3d4e5", true},
		{"a1b2c-3d4e5", "a1b2c3d4e5", true},
		{"a1b2c 3d4e5", "a1b2c3d4e5", true},
		{"a1-b2-c3-d4-e5", "a1b2c3d4e5", true},
		{"\ta1b2c\u00a03d4e5", "a1b2c3d4e5", true}, // non-breaking space from a copy
		{"", "", false},
		{"a1b2c3d4e", "", false},                             // 9
		{"a1b2c3d4e5f", "", false},                           // 11
		{"a1b2c3d4eg", "", false},                            // not hex
		{"a1b2c3d4e_", "", false},                            // underscore is not a separator
		{"ａ1b2c3d4e5", "", false},                            // full-width letter
		{"----------", "", false},                            // nothing left
		{strings.Repeat("-", 100) + "a1b2c3d4e5", "", false}, // oversized input
	} {
		got, ok := NormalizeBackupCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeBackupCode(%q) = (%q, %v), want (%q, %v)", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

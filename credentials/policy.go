package credentials

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/latch-dev/latch/fault"
)

// Password policy limits.
const (
	// PasswordHardMaxLength caps every policy: beyond it hashing cost and
	// storage stop being predictable, and no human types more.
	PasswordHardMaxLength = 256
	// MaxPasswordHistorySize bounds how many old hashes a password change
	// must verify against (each one a full hash through the gate).
	MaxPasswordHistorySize = 24
	// minUserInfoFragment is the shortest piece of user info looked for in a
	// password: shorter ones ("Al", "jo") would reject countless unrelated
	// passwords.
	minUserInfoFragment = 3
)

// Violation codes of PasswordPolicy.Check (Logto's vocabulary).
const (
	CodePasswordTooShort              = "password_rejected.too_short"
	CodePasswordTooLong               = "password_rejected.too_long"
	CodePasswordCharacterTypes        = "password_rejected.character_types"
	CodePasswordUnsupportedCharacters = "password_rejected.unsupported_characters"
	CodePasswordPwned                 = "password_rejected.pwned"
	CodePasswordUserInfo              = "password_rejected.restricted.user_info"
)

// PasswordPolicy is the configurable password policy, part of the stored
// sign-in experience settings.
type PasswordPolicy struct {
	MinLength         int  `json:"min_length"`          // default 8
	MaxLength         int  `json:"max_length"`          // default 256, at most PasswordHardMaxLength
	MinCharacterTypes int  `json:"min_character_types"` // 1..4 of lower/upper/digit/symbol, default 1
	RejectCommon      bool `json:"reject_common"`       // default true: offline common-password blocklist
	RejectUserInfo    bool `json:"reject_user_info"`    // default true
	HistorySize       int  `json:"history_size"`        // default 0; enforced by callers, validated here (0..24)
}

// DefaultPasswordPolicy returns the DESIGN §5 defaults: 8–256 characters, one
// character type, common passwords and user info rejected, no history.
func DefaultPasswordPolicy() PasswordPolicy {
	return PasswordPolicy{
		MinLength:         8,
		MaxLength:         PasswordHardMaxLength,
		MinCharacterTypes: 1,
		RejectCommon:      true,
		RejectUserInfo:    true,
		HistorySize:       0,
	}
}

// Validate checks a policy given in settings and returns a guard.invalid_input
// *fault.Error listing every bad field by its JSON name, or nil.
func (p PasswordPolicy) Validate() error {
	var details []fault.Detail
	bad := func(field, format string, args ...any) {
		details = append(details, fault.Detail{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if p.MinLength < 1 || p.MinLength > PasswordHardMaxLength {
		bad("min_length", "must be between 1 and %d (got %d)", PasswordHardMaxLength, p.MinLength)
	}
	if p.MaxLength < 1 || p.MaxLength > PasswordHardMaxLength {
		bad("max_length", "must be between 1 and %d (got %d)", PasswordHardMaxLength, p.MaxLength)
	} else if p.MinLength >= 1 && p.MinLength <= PasswordHardMaxLength && p.MaxLength < p.MinLength {
		bad("max_length", "must not be less than min_length (%d < %d)", p.MaxLength, p.MinLength)
	}
	if p.MinCharacterTypes < 1 || p.MinCharacterTypes > 4 {
		bad("min_character_types", "must be between 1 and 4 (got %d)", p.MinCharacterTypes)
	}
	if p.HistorySize < 0 || p.HistorySize > MaxPasswordHistorySize {
		bad("history_size", "must be between 0 and %d (got %d)", MaxPasswordHistorySize, p.HistorySize)
	}
	if len(details) > 0 {
		return fault.Invalid(details...)
	}
	return nil
}

// UserInfo is what a password must not contain when RejectUserInfo is set.
type UserInfo struct{ Username, Email, Phone, Name string }

// Violation is one rule a password breaks.
type Violation struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

// Check returns every rule password violates, in a fixed order (empty, not
// nil, when it is fine), so a user can fix everything in one go. It applies
// p as given (a zero MaxLength means the hard cap; callers validate
// settings with Validate). Lengths count Unicode code points.
//
// Character types: lower-case letters, upper-case letters, digits, and
// symbols, where a symbol is any other printable character (punctuation,
// space, emoji, letters of scripts without case). Control characters and
// invalid UTF-8 are unsupported. The blocklist match is case-insensitive
// on the whole password. The user-info rule looks, case-insensitively, for
// the username, the e-mail address and its local part, the phone number (as
// given and digits only) and the name (whole, without spaces, and each
// word) inside the password, ignoring pieces shorter than three characters.
func (p PasswordPolicy) Check(password string, info UserInfo) []Violation {
	out := []Violation{}
	length := utf8.RuneCountInString(password)
	maxLength := p.MaxLength
	if maxLength <= 0 || maxLength > PasswordHardMaxLength {
		maxLength = PasswordHardMaxLength
	}
	if p.MinLength > 0 && length < p.MinLength {
		out = append(out, Violation{Code: CodePasswordTooShort,
			Message: fmt.Sprintf("The password must be at least %d characters long.", p.MinLength),
			Data:    map[string]any{"min": p.MinLength}})
	}
	if length > maxLength {
		out = append(out, Violation{Code: CodePasswordTooLong,
			Message: fmt.Sprintf("The password must be at most %d characters long.", maxLength),
			Data:    map[string]any{"max": maxLength}})
	}
	types, unsupported := characterTypes(password)
	if types < p.MinCharacterTypes {
		out = append(out, Violation{Code: CodePasswordCharacterTypes,
			Message: fmt.Sprintf("The password must contain at least %d of these character types: lower-case letters, upper-case letters, digits, symbols.", p.MinCharacterTypes),
			Data:    map[string]any{"min": p.MinCharacterTypes}})
	}
	if unsupported {
		out = append(out, Violation{Code: CodePasswordUnsupportedCharacters,
			Message: "The password contains unsupported characters (control characters or invalid text)."})
	}
	if p.RejectCommon && IsCommonPassword(password) {
		out = append(out, Violation{Code: CodePasswordPwned,
			Message: "The password is too common; choose a less predictable one."})
	}
	if p.RejectUserInfo && containsUserInfo(password, info) {
		out = append(out, Violation{Code: CodePasswordUserInfo,
			Message: "The password must not contain your personal information (username, e-mail, phone number or name)."})
	}
	return out
}

// characterTypes counts the character types present and reports whether any
// character is unsupported.
func characterTypes(s string) (types int, unsupported bool) {
	var lower, upper, digit, symbol bool
	for i, r := range s {
		switch {
		case r == utf8.RuneError && isInvalidAt(s, i):
			unsupported = true
		case unicode.IsControl(r):
			unsupported = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		default:
			symbol = true
		}
	}
	for _, present := range []bool{lower, upper, digit, symbol} {
		if present {
			types++
		}
	}
	return types, unsupported
}

// isInvalidAt tells an invalid byte (decoded as RuneError, width 1) from a
// literal U+FFFD in the text.
func isInvalidAt(s string, i int) bool {
	_, width := utf8.DecodeRuneInString(s[i:])
	return width == 1
}

func containsUserInfo(password string, info UserInfo) bool {
	pw := strings.ToLower(password)
	var fragments []string
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if utf8.RuneCountInString(s) >= minUserInfoFragment {
			fragments = append(fragments, s)
		}
	}
	add(info.Username)
	if info.Email != "" {
		add(info.Email)
		if at := strings.LastIndexByte(info.Email, '@'); at > 0 {
			add(info.Email[:at])
		}
	}
	if info.Phone != "" {
		add(info.Phone)
		add(strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, info.Phone))
	}
	if info.Name != "" {
		add(info.Name)
		words := strings.Fields(info.Name)
		add(strings.Join(words, ""))
		for _, w := range words {
			add(w)
		}
	}
	for _, f := range fragments {
		if strings.Contains(pw, f) {
			return true
		}
	}
	return false
}

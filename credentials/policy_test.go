package credentials

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/latch-dev/latch/fault"
)

func TestDefaultPasswordPolicy(t *testing.T) {
	want := PasswordPolicy{MinLength: 8, MaxLength: 256, MinCharacterTypes: 1, RejectCommon: true, RejectUserInfo: true, HistorySize: 0}
	p := DefaultPasswordPolicy()
	if p != want {
		t.Fatalf("DefaultPasswordPolicy() = %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	b, _ := json.Marshal(p)
	const wantJSON = `{"min_length":8,"max_length":256,"min_character_types":1,"reject_common":true,"reject_user_info":true,"history_size":0}`
	if string(b) != wantJSON {
		t.Fatalf("JSON = %s, want %s", b, wantJSON)
	}
}

func TestPasswordPolicyValidate(t *testing.T) {
	with := func(f func(*PasswordPolicy)) PasswordPolicy {
		p := DefaultPasswordPolicy()
		f(&p)
		return p
	}
	tests := []struct {
		name   string
		policy PasswordPolicy
		fields []string // bad fields, in order; nil = valid
		msg    string   // substring of the first message
	}{
		{"defaults", DefaultPasswordPolicy(), nil, ""},
		{"strict", with(func(p *PasswordPolicy) { p.MinLength, p.MaxLength, p.MinCharacterTypes, p.HistorySize = 12, 64, 4, 24 }), nil, ""},
		{"min equals max", with(func(p *PasswordPolicy) { p.MinLength, p.MaxLength = 16, 16 }), nil, ""},
		{"min 1", with(func(p *PasswordPolicy) { p.MinLength = 1 }), nil, ""},
		{"min 0", with(func(p *PasswordPolicy) { p.MinLength = 0 }), []string{"min_length"}, "between 1 and 256 (got 0)"},
		{"min above hard cap", with(func(p *PasswordPolicy) { p.MinLength = 257 }), []string{"min_length"}, "got 257"},
		{"max above hard cap", with(func(p *PasswordPolicy) { p.MaxLength = 1000 }), []string{"max_length"}, "between 1 and 256 (got 1000)"},
		{"max 0", with(func(p *PasswordPolicy) { p.MaxLength = 0 }), []string{"max_length"}, "got 0"},
		{"max below min", with(func(p *PasswordPolicy) { p.MinLength, p.MaxLength = 20, 10 }), []string{"max_length"}, "not be less than min_length"},
		{"character types 0", with(func(p *PasswordPolicy) { p.MinCharacterTypes = 0 }), []string{"min_character_types"}, "between 1 and 4"},
		{"character types 5", with(func(p *PasswordPolicy) { p.MinCharacterTypes = 5 }), []string{"min_character_types"}, "got 5"},
		{"history negative", with(func(p *PasswordPolicy) { p.HistorySize = -1 }), []string{"history_size"}, "between 0 and 24"},
		{"history 25", with(func(p *PasswordPolicy) { p.HistorySize = 25 }), []string{"history_size"}, "got 25"},
		{"every field bad", PasswordPolicy{MinLength: -1, MaxLength: 300, MinCharacterTypes: 9, HistorySize: 99},
			[]string{"min_length", "max_length", "min_character_types", "history_size"}, "min_length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Code != fault.CodeInvalidInput {
				t.Fatalf("Validate() = %v, want guard.invalid_input", err)
			}
			var fields []string
			for _, d := range fe.Details {
				fields = append(fields, d.Field)
			}
			if !reflect.DeepEqual(fields, tt.fields) {
				t.Fatalf("bad fields = %v, want %v", fields, tt.fields)
			}
			if !strings.Contains(fe.Message, tt.msg) || !strings.HasPrefix(fe.Message, tt.fields[0]) {
				t.Fatalf("message %q should name %s and contain %q", fe.Message, tt.fields[0], tt.msg)
			}
		})
	}
}

func codes(vs []Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Code)
	}
	return out
}

func TestPasswordPolicyCheck(t *testing.T) {
	def := DefaultPasswordPolicy()
	with := func(f func(*PasswordPolicy)) PasswordPolicy {
		p := DefaultPasswordPolicy()
		f(&p)
		return p
	}
	types3 := with(func(p *PasswordPolicy) { p.MinCharacterTypes = 3 })
	types4 := with(func(p *PasswordPolicy) { p.MinCharacterTypes = 4 })
	user := UserInfo{Username: "jdoe_admin", Email: "Jane.Doe@Example.com", Phone: "+1 (415) 555-0123", Name: "Jane Q Doe"}
	const (
		short   = CodePasswordTooShort
		long    = CodePasswordTooLong
		types   = CodePasswordCharacterTypes
		unsupp  = CodePasswordUnsupportedCharacters
		pwned   = CodePasswordPwned
		usrinfo = CodePasswordUserInfo
	)
	tests := []struct {
		name     string
		policy   PasswordPolicy
		password string
		info     UserInfo
		want     []string
	}{
		// length, in code points
		{"fine", def, "vq7-Kettle-Parade", user, []string{}},
		{"empty has no character type either", def, "", UserInfo{}, []string{short, types}},
		{"7 chars", def, "xkq7mzv", UserInfo{}, []string{short}},
		{"8 chars", def, "xkq7mzvb", UserInfo{}, []string{}},
		{"7 accented code points are 14 bytes but too short", def, "ééééééé", UserInfo{}, []string{short}},
		{"8 emoji are 32 bytes and long enough", def, "🔑🔑🔑🔑🔑🔑🔑🔑", UserInfo{}, []string{}},
		{"256 chars", def, strings.Repeat("qx", 128), UserInfo{}, []string{}},
		{"257 chars", def, strings.Repeat("q", 257), UserInfo{}, []string{long}},
		{"256 emoji (1024 bytes) are within 256", def, strings.Repeat("🙂", 256), UserInfo{}, []string{}},
		{"custom max", with(func(p *PasswordPolicy) { p.MaxLength = 12 }), "xkq7mzvbxkq7m", UserInfo{}, []string{long}},
		{"zero max means the hard cap", PasswordPolicy{MinLength: 1}, strings.Repeat("q", 257), UserInfo{}, []string{long}},
		{"custom min", with(func(p *PasswordPolicy) { p.MinLength = 12 }), "xkq7mzvbxkq", UserInfo{}, []string{short}},
		// character types
		{"3 types: lower+upper+digit", types3, "xkqMZV778", UserInfo{}, []string{}},
		{"3 types: lower+digit+symbol", types3, "xkq-zv778", UserInfo{}, []string{}},
		{"3 types: only 2", types3, "xkqmzv778", UserInfo{}, []string{types}},
		{"3 types: space is a symbol", types3, "xkq mzv 778", UserInfo{}, []string{}},
		{"4 types: all", types4, "xkQ7-mzvb", UserInfo{}, []string{}},
		{"4 types: unicode cases count", types4, "ßÄöÉ7-ŋŋ", UserInfo{}, []string{}},
		{"4 types: caseless script is a symbol", types4, "密码Ab1密码x", UserInfo{}, []string{}},
		{"4 types: missing upper", types4, "xkq7-mzvb", UserInfo{}, []string{types}},
		// unsupported characters
		{"NUL", def, "xkq7mzvb\x00", UserInfo{}, []string{unsupp}},
		{"tab", def, "xkq7\tmzvb", UserInfo{}, []string{unsupp}},
		{"newline", def, "xkq7mzvb\n", UserInfo{}, []string{unsupp}},
		{"DEL", def, "xkq7mzvb\x7f", UserInfo{}, []string{unsupp}},
		{"C1 control", def, "xkq7mzvb\u0085", UserInfo{}, []string{unsupp}},
		{"invalid UTF-8", def, "xkq7mzvb\xff", UserInfo{}, []string{unsupp}},
		{"literal U+FFFD is fine", def, "xkq7mzvb\uFFFD", UserInfo{}, []string{}},
		// common passwords
		{"common", def, "password", UserInfo{}, []string{pwned}},
		{"common, any case", def, "PaSsWoRd", UserInfo{}, []string{pwned}},
		{"common with digits", def, "qwerty123", UserInfo{}, []string{pwned}},
		{"common symbol variant", def, "P@ssw0rd", UserInfo{}, []string{pwned}},
		{"common, short too", def, "monkey", UserInfo{}, []string{short, pwned}},
		{"substring of common is not common", def, "passwordxq7z", UserInfo{}, []string{}},
		{"common allowed when disabled", with(func(p *PasswordPolicy) { p.RejectCommon = false }), "password", UserInfo{}, []string{}},
		// user info
		{"username", def, "xx-JDOE_ADMIN-xx", user, []string{usrinfo}},
		{"full email", def, "jane.doe@example.com!", user, []string{usrinfo}},
		{"email local part", def, "zz_jane.doe_zz", user, []string{usrinfo}},
		{"phone as given", def, "+1 (415) 555-0123", user, []string{usrinfo}},
		{"phone digits", def, "call14155550123", user, []string{usrinfo}},
		{"name joined", def, "janeqdoe-rulez", user, []string{usrinfo}},
		{"name word", def, "xkq7-doe-mzvb", user, []string{usrinfo}},
		{"short name parts ignored", def, "xkq7-q-mzvb", user, []string{}},
		{"short username ignored", def, "ab-xkq7mzvb", UserInfo{Username: "ab"}, []string{}},
		{"user info allowed when disabled", with(func(p *PasswordPolicy) { p.RejectUserInfo = false }), "xx-jdoe_admin-xx", user, []string{}},
		{"empty user info", def, "xkq7mzvb", UserInfo{}, []string{}},
		// every rule at once
		{"every rule", with(func(p *PasswordPolicy) { p.MinCharacterTypes = 2; p.MinLength = 10 }), "smith", UserInfo{Name: "Will Smith"}, []string{short, types, pwned, usrinfo}},
		{"too long, controls and user info", types4, strings.Repeat("\x01", 250) + "jdoe_admin", user, []string{long, types, unsupp, usrinfo}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Check(tt.password, tt.info)
			if got == nil {
				t.Fatal("Check returned nil, want an empty slice")
			}
			if !reflect.DeepEqual(codes(got), tt.want) {
				t.Fatalf("Check(%q) = %v, want %v", tt.password, codes(got), tt.want)
			}
			for _, v := range got {
				if v.Message == "" {
					t.Fatalf("violation %s has no message", v.Code)
				}
				if len(tt.password) >= 10 && strings.Contains(v.Message, tt.password) {
					t.Fatalf("violation %s echoes the password", v.Code)
				}
			}
		})
	}
}

func TestViolationData(t *testing.T) {
	p := PasswordPolicy{MinLength: 10, MaxLength: 12, MinCharacterTypes: 3}
	tests := []struct {
		password, code string
		data           map[string]any
	}{
		{"abc", CodePasswordTooShort, map[string]any{"min": 10}},
		{"abcdefghijklm", CodePasswordTooLong, map[string]any{"max": 12}},
		{"abcdefghijk", CodePasswordCharacterTypes, map[string]any{"min": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			for _, v := range p.Check(tt.password, UserInfo{}) {
				if v.Code == tt.code {
					if !reflect.DeepEqual(v.Data, tt.data) {
						t.Fatalf("data = %v, want %v", v.Data, tt.data)
					}
					return
				}
			}
			t.Fatalf("no %s violation", tt.code)
		})
	}
	t.Run("json", func(t *testing.T) {
		vs := DefaultPasswordPolicy().Check("password", UserInfo{})
		b, err := json.Marshal(vs)
		if err != nil {
			t.Fatal(err)
		}
		want := `[{"code":"password_rejected.pwned","message":"` + vs[0].Message + `"}]`
		if string(b) != want {
			t.Fatalf("JSON = %s, want %s (data omitted when empty)", b, want)
		}
	})
}

func TestBlocklistLoaded(t *testing.T) {
	n := CommonPasswordCount()
	if n < 10000 {
		t.Fatalf("blocklist has %d entries, want ≥ 10,000", n)
	}
	for line := range strings.SplitSeq(commonPasswordsData, "\n") {
		if line != strings.ToLower(line) || line != strings.TrimSpace(line) || !utf8.ValidString(line) {
			t.Fatalf("blocklist entry %q is not a trimmed lower-case line", line)
		}
	}
	tests := []struct {
		password string
		want     bool
	}{
		{"123456", true},
		{"password", true},
		{"PASSWORD", true},
		{"Iloveyou", true},
		{"trustno1", true},
		{"sunshine1", true},
		{"#name?", true}, // a literal entry of the list, not a comment
		{"", false},
		{"correct horse battery staple", false},
		{"vq7-Kettle-Parade", false},
	}
	for _, tt := range tests {
		if got := IsCommonPassword(tt.password); got != tt.want {
			t.Errorf("IsCommonPassword(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}
}

func BenchmarkPasswordPolicyCheck(b *testing.B) {
	p := DefaultPasswordPolicy()
	info := UserInfo{Username: "jdoe", Email: "jane@example.com", Phone: "+14155550123", Name: "Jane Doe"}
	CommonPasswordCount() // load outside the timing
	b.ReportAllocs()
	for b.Loop() {
		p.Check("vq7-Kettle-Parade", info)
	}
}

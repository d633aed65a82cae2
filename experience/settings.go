package experience

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Settings is the stored "sign-in experience": the policies every sign-in
// follows. Later capabilities add fields; absent fields take defaults.
type Settings struct {
	PasswordPolicy credentials.PasswordPolicy `json:"password_policy"`
	Lockout        LockoutPolicy              `json:"lockout"`
	PasswordExpiry ExpiryPolicy               `json:"password_expiry"`
	MFA            MFASettings                `json:"mfa"`

	// SignInMode says which interactions are open: SignIn, Register or
	// SignInAndRegister. ForgotPassword is governed by ForgotPassword.
	SignInMode     string               `json:"sign_in_mode"`
	SignIn         SignInMethods        `json:"sign_in"`
	SignUp         SignUpRequirements   `json:"sign_up"`
	ForgotPassword ForgotPasswordMethod `json:"forgot_password"`
	Code           CodePolicy           `json:"verification_code"`
	Password       PasswordChange       `json:"password"`
	Branding       Branding             `json:"branding"`
}

// Branding is how the hosted sign-in pages present the deployment.
type Branding struct {
	DisplayName string `json:"display_name"`
	// LogoURL is an https URL (or empty: no logo).
	LogoURL string `json:"logo_url"`
	// PrimaryColor is a #rrggbb colour for buttons and links.
	PrimaryColor string `json:"primary_color"`
}

// PasswordChange governs what a password change does beyond the hash.
type PasswordChange struct {
	// RevokeSessionsOnChange ends the user's other sessions (and so their
	// refresh tokens) when the password is changed or reset.
	RevokeSessionsOnChange bool `json:"revoke_sessions_on_change"`
}

// Sign-in modes.
const (
	ModeSignIn            = "SignIn"
	ModeRegister          = "Register"
	ModeSignInAndRegister = "SignInAndRegister"
)

// SignInMethods lists how each identifier may sign in.
type SignInMethods struct {
	Methods []SignInMethod `json:"methods"`
}

// SignInMethod enables password and/or code sign-in for one identifier.
type SignInMethod struct {
	Identifier       string `json:"identifier"` // username, email or phone
	Password         bool   `json:"password"`
	VerificationCode bool   `json:"verification_code"`
}

// allows reports whether identifier may sign in with password (or code).
func (m SignInMethods) allows(identifier string, code bool) bool {
	for _, x := range m.Methods {
		if x.Identifier == identifier {
			if code {
				return x.VerificationCode
			}
			return x.Password
		}
	}
	return false
}

// SignUpRequirements say what a new account must have.
type SignUpRequirements struct {
	// Identifiers are required, in this order of preference: at least one
	// of them must be present (e.g. ["username"] or ["email","phone"]).
	Identifiers []string `json:"identifiers"`
	Password    bool     `json:"password"`
	// Verify requires email/phone identifiers to be proven with a code.
	Verify bool `json:"verify"`
}

// ForgotPasswordMethod enables password recovery by email or phone code.
type ForgotPasswordMethod struct {
	Email bool `json:"email"`
	Phone bool `json:"phone"`
}

// ExpiryPolicy governs password expiry and temporary passwords.
type ExpiryPolicy struct {
	// Enabled turns on expiry after ValidDays since the password was set.
	Enabled   bool `json:"enabled"`
	ValidDays int  `json:"valid_days"`
	// TemporaryValidHours is how long a temporary password (set by an
	// administrator) can be used to reach the change-password step.
	TemporaryValidHours int `json:"temporary_valid_hours"`
}

// MFASettings govern multi-factor authentication at sign-in.
type MFASettings struct {
	// Enforce: a user with an enrolled factor must complete MFA before
	// tokens are issued.
	Enforce bool `json:"enforce"`
	// Factors are the factor types users may enroll and use.
	Factors []string `json:"factors"`
	// Policy says when users without a factor are asked to enroll one:
	// Mandatory, PromptAtSignInAndSignUp, PromptOnlyAtSignIn or NoPrompt.
	Policy string `json:"policy"`
	// OrganizationRequiredPolicy is Logto's organizationRequiredMfaPolicy:
	// Mandatory puts members of an organization that requires MFA under
	// the Mandatory policy in the Experience API; NoPrompt leaves the
	// tenant-wide policy alone there. (Sign-ins in an organization's
	// context through /v1 always require its MFA.)
	OrganizationRequiredPolicy string `json:"organization_required_mfa_policy"`
}

// MFA policies.
const (
	PolicyMandatory               = "Mandatory"
	PolicyPromptAtSignInAndSignUp = "PromptAtSignInAndSignUp"
	PolicyPromptOnlyAtSignIn      = "PromptOnlyAtSignIn"
	PolicyNoPrompt                = "NoPrompt"
)

// factorEnabled reports whether settings allow a factor type.
func (m MFASettings) factorEnabled(t string) bool { return contains(m.Factors, t) }

// DefaultSettings are the settings of a new deployment.
func DefaultSettings() Settings {
	return Settings{
		PasswordPolicy: credentials.DefaultPasswordPolicy(),
		Lockout:        DefaultLockoutPolicy(),
		PasswordExpiry: ExpiryPolicy{Enabled: false, ValidDays: 90, TemporaryValidHours: 72},
		MFA: MFASettings{Enforce: true, Policy: PolicyNoPrompt, OrganizationRequiredPolicy: PolicyNoPrompt,
			Factors: []string{FactorTOTP, FactorBackupCode, FactorWebAuthn, FactorEmailCode, FactorPhoneCode}},
		SignInMode: ModeSignInAndRegister,
		SignIn: SignInMethods{Methods: []SignInMethod{
			{Identifier: IdentifierUsername, Password: true},
			{Identifier: IdentifierEmail, Password: true, VerificationCode: true},
			{Identifier: IdentifierPhone, Password: true, VerificationCode: true},
		}},
		SignUp:         SignUpRequirements{Identifiers: []string{IdentifierUsername}, Password: true, Verify: true},
		ForgotPassword: ForgotPasswordMethod{Email: true, Phone: true},
		Code:           DefaultCodePolicy(),
		Password:       PasswordChange{RevokeSessionsOnChange: true},
		Branding:       Branding{DisplayName: "Latch", PrimaryColor: "#3558d4"},
	}
}

// Validate checks every field and names the first bad one.
func (s Settings) Validate() error {
	bad := func(field, msg string) error {
		return fault.New(CodeSettingsInvalid, http.StatusBadRequest, "%s: %s", field, msg).
			With("field", field)
	}
	if err := s.PasswordPolicy.Validate(); err != nil {
		return bad("password_policy", err.Error())
	}
	l := s.Lockout
	if l.MaxFailures < 1 || l.MaxFailures > 1000 {
		return bad("lockout.max_failures", "must be between 1 and 1000")
	}
	if l.WindowSeconds < 1 || l.WindowSeconds > 86400*30 {
		return bad("lockout.window_seconds", "must be between 1 and 2592000")
	}
	if l.LockoutSeconds < 1 || l.LockoutSeconds > 86400*30 {
		return bad("lockout.lockout_seconds", "must be between 1 and 2592000")
	}
	if s.PasswordExpiry.ValidDays < 1 || s.PasswordExpiry.ValidDays > 3650 {
		return bad("password_expiry.valid_days", "must be between 1 and 3650")
	}
	if s.PasswordExpiry.TemporaryValidHours < 1 || s.PasswordExpiry.TemporaryValidHours > 24*90 {
		return bad("password_expiry.temporary_valid_hours", "must be between 1 and 2160")
	}
	switch s.MFA.Policy {
	case PolicyMandatory, PolicyPromptAtSignInAndSignUp, PolicyPromptOnlyAtSignIn, PolicyNoPrompt:
	default:
		return bad("mfa.policy", "must be Mandatory, PromptAtSignInAndSignUp, PromptOnlyAtSignIn or NoPrompt")
	}
	for i, f := range s.MFA.Factors {
		switch f {
		case FactorTOTP, FactorBackupCode, FactorWebAuthn, FactorEmailCode, FactorPhoneCode:
		default:
			return bad(fmt.Sprintf("mfa.factors[%d]", i), "must be totp, backup_code, webauthn, email_code or phone_code")
		}
	}
	if s.MFA.Policy == PolicyMandatory && len(s.MFA.Factors) == 0 {
		return bad("mfa.factors", "a Mandatory policy needs at least one factor")
	}
	switch s.MFA.OrganizationRequiredPolicy {
	case PolicyMandatory, PolicyNoPrompt:
	default:
		return bad("mfa.organization_required_mfa_policy", "must be Mandatory or NoPrompt")
	}
	if s.MFA.OrganizationRequiredPolicy == PolicyMandatory && len(s.MFA.Factors) == 0 {
		return bad("mfa.factors", "a Mandatory organization policy needs at least one factor")
	}
	switch s.SignInMode {
	case ModeSignIn, ModeRegister, ModeSignInAndRegister:
	default:
		return bad("sign_in_mode", "must be SignIn, Register or SignInAndRegister")
	}
	seen := map[string]bool{}
	for i, m := range s.SignIn.Methods {
		field := fmt.Sprintf("sign_in.methods[%d]", i)
		if !validIdentifierType(m.Identifier) {
			return bad(field+".identifier", "must be username, email or phone")
		}
		if seen[m.Identifier] {
			return bad(field+".identifier", "is listed twice")
		}
		seen[m.Identifier] = true
		if m.Identifier == IdentifierUsername && m.VerificationCode {
			return bad(field+".verification_code", "a username cannot receive codes")
		}
	}
	if len(s.SignUp.Identifiers) == 0 && s.SignInMode != ModeSignIn {
		return bad("sign_up.identifiers", "must name at least one identifier while registration is open")
	}
	for i, id := range s.SignUp.Identifiers {
		if !validIdentifierType(id) {
			return bad(fmt.Sprintf("sign_up.identifiers[%d]", i), "must be username, email or phone")
		}
	}
	if b := s.Branding; len(b.DisplayName) > 100 {
		return bad("branding.display_name", "must be at most 100 characters")
	} else if b.LogoURL != "" && (!strings.HasPrefix(b.LogoURL, "https://") || len(b.LogoURL) > 1024 || strings.ContainsAny(b.LogoURL, " \"'<>")) {
		return bad("branding.logo_url", "must be an https URL")
	} else if !validColor(b.PrimaryColor) {
		return bad("branding.primary_color", "must be a colour like #3558d4")
	}
	c := s.Code
	if c.ExpirySeconds < 60 || c.ExpirySeconds > 3600 {
		return bad("verification_code.expiry_seconds", "must be between 60 and 3600")
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		return bad("verification_code.max_attempts", "must be between 1 and 100")
	}
	if c.SendLimit < 1 || c.SendLimit > 1000 {
		return bad("verification_code.send_limit", "must be between 1 and 1000")
	}
	if c.SendWindowSeconds < 1 || c.SendWindowSeconds > 86400 {
		return bad("verification_code.send_window_seconds", "must be between 1 and 86400")
	}
	return nil
}

// validColor accepts #rrggbb only: the value is written into the pages'
// style sheet, so nothing but hex digits may pass.
func validColor(c string) bool {
	if len(c) != 7 || c[0] != '#' {
		return false
	}
	for _, r := range c[1:] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F') {
			return false
		}
	}
	return true
}

func validIdentifierType(t string) bool {
	return t == IdentifierUsername || t == IdentifierEmail || t == IdentifierPhone
}

const settingsID = "sign_in_experience"

type settingsRow struct {
	ID        string `gorm:"primaryKey"`
	Data      string
	UpdatedAt time.Time
}

func (settingsRow) TableName() string { return "settings" }

// SettingsStore loads and changes the settings. Reads are cached for a
// short TTL (every sign-in needs them); a change is visible at once on the
// replica that made it and within the TTL on the others.
type SettingsStore struct {
	db  *store.DB
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	cached   *Settings
	loadedAt time.Time
}

// Get returns the current settings.
func (s *SettingsStore) Get(ctx context.Context) (Settings, error) {
	s.mu.Lock()
	if s.cached != nil && s.now().Sub(s.loadedAt) < s.ttl {
		out := *s.cached
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	var row settingsRow
	err := s.db.WithContext(ctx).Where("id = ?", settingsID).Take(&row).Error
	settings := DefaultSettings()
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
	case err != nil:
		return Settings{}, fmt.Errorf("experience: load settings: %w", err)
	default:
		if err := json.Unmarshal([]byte(row.Data), &settings); err != nil {
			return Settings{}, fmt.Errorf("experience: stored settings are corrupt: %w", err)
		}
	}
	s.mu.Lock()
	s.cached, s.loadedAt = &settings, s.now()
	s.mu.Unlock()
	return settings, nil
}

// Patch applies a JSON merge patch (RFC 7396) to the settings, validates
// the result and stores it. Unknown fields are refused.
func (s *SettingsStore) Patch(ctx context.Context, patch []byte) (Settings, error) {
	var patchObj map[string]any
	if err := json.Unmarshal(patch, &patchObj); err != nil || patchObj == nil {
		return Settings{}, fault.New(CodeSettingsInvalid, http.StatusBadRequest, "the patch must be a JSON object")
	}
	var out Settings
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		if s.db.Dialect == store.Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.latch_settings'))").Error; err != nil {
				return err
			}
		}
		current := DefaultSettings()
		var row settingsRow
		err := tx.Where("id = ?", settingsID).Take(&row).Error
		if err == nil {
			if err := json.Unmarshal([]byte(row.Data), &current); err != nil {
				return err
			}
		} else if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		raw, _ := json.Marshal(current)
		var base map[string]any
		_ = json.Unmarshal(raw, &base)
		// encoding/json decodes a JSON array element into the slice element
		// already at that index, so decoding onto DefaultSettings() would let
		// a patched list element inherit the default element's fields (a
		// patched sign-in method without "verification_code" kept the
		// default's true). Fill absent fields from the defaults at the JSON
		// level instead (lists replace wholesale), then decode onto zero.
		rawDefaults, _ := json.Marshal(DefaultSettings())
		var defaults map[string]any
		_ = json.Unmarshal(rawDefaults, &defaults)
		merged, _ := json.Marshal(mergePatch(defaults, mergePatch(base, patchObj)))
		dec := json.NewDecoder(bytes.NewReader(merged))
		dec.DisallowUnknownFields()
		var next Settings
		if err := dec.Decode(&next); err != nil {
			return fault.New(CodeSettingsInvalid, http.StatusBadRequest, "%s", describeJSONError(err))
		}
		if err := next.Validate(); err != nil {
			return err
		}
		data, _ := json.Marshal(next)
		if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).
			Create(&settingsRow{ID: settingsID, Data: string(data), UpdatedAt: s.now()}).Error; err != nil {
			return err
		}
		out = next
		return nil
	})
	if err != nil {
		if _, ok := fault.As(err); ok {
			return Settings{}, err
		}
		return Settings{}, fmt.Errorf("experience: save settings: %w", err)
	}
	s.mu.Lock()
	s.cached, s.loadedAt = &out, s.now()
	s.mu.Unlock()
	return out, nil
}

// mergePatch applies an RFC 7396 merge patch.
func mergePatch(target, patch map[string]any) map[string]any {
	if target == nil {
		target = map[string]any{}
	}
	for k, v := range patch {
		if v == nil {
			delete(target, k)
			continue
		}
		if pv, ok := v.(map[string]any); ok {
			tv, _ := target[k].(map[string]any)
			target[k] = mergePatch(tv, pv)
			continue
		}
		target[k] = v
	}
	return target
}

// describeJSONError turns a decoding error into a message naming the field.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: must be %s", te.Field, jsonKind(te.Type.Kind().String()))
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
	}
	return "invalid JSON: " + msg
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint8", "uint32", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	default:
		return "an object"
	}
}

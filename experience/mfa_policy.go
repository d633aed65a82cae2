package experience

import (
	"context"
	"net/http"

	"github.com/latch-dev/latch/fault"
)

// MFA error codes (Logto's).
const (
	CodeRequireMFA            = "session.mfa.require_mfa_verification"
	CodeFactorNotEnabled      = "session.mfa.mfa_factor_not_enabled"
	CodePendingInfoNotFound   = "session.mfa.pending_info_not_found"
	CodeWebAuthnFailed        = "session.mfa.webauthn_verification_failed"
	CodeInvalidTOTP           = "session.mfa.invalid_totp_code"
	CodeInvalidBackupCode     = "session.mfa.invalid_backup_code"
	CodeBackupCodeAlone       = "session.mfa.backup_code_can_not_be_alone"
	CodePolicyNotUserControl  = "session.mfa.mfa_policy_not_user_controlled"
	CodeTOTPInUse             = "user.totp_already_in_use"
	CodeMissingMFA            = "user.missing_mfa"
	CodeSuggestMFA            = "user.suggest_mfa"
	CodeMFAFactorsExist       = "session.mfa.mfa_factors_exist"
	CodeFactorNotEnrolled     = "session.mfa.factor_not_enrolled"
	CodeMFAIdentifierNotBound = "session.mfa.identifier_not_bound"
	CodeMFAFactorBound        = "user.mfa_factor_already_bound"
)

// amrOfFactor maps factor types to authentication method references.
var amrOfFactor = map[string]string{
	FactorTOTP: AMRTOTP, FactorBackupCode: AMRBackupCode, FactorWebAuthn: AMRWebAuthn,
	FactorEmailCode: AMROTP, FactorPhoneCode: AMROTP,
}

// factorKey is the per-user sentinel pool of one factor type: MFA failures
// lock that factor, never password sign-in.
func factorKey(userID, factor string) string { return userKey(userID) + ":" + factor }

// identifiedInteraction loads an interaction and its identified user (or
// 404 identifier_not_found): the precondition of every MFA step.
func (e *Engine) identifiedInteraction(ctx context.Context, handle, clientID string) (*Interaction, *User, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return nil, nil, err
	}
	user, err := e.identifiedUser(ctx, in)
	if err != nil {
		return nil, nil, err
	}
	return in, user, nil
}

// identifiedUser loads the interaction's user, or 404 identifier_not_found.
func (e *Engine) identifiedUser(ctx context.Context, in *Interaction) (*User, error) {
	if in.UserID == "" {
		return nil, errNotIdentified()
	}
	return e.Users.Get(ctx, in.UserID)
}

// experienceFactorNames are seed 004's names of the factor types, which the
// Experience API speaks (availableFactors, POST /profile/mfa); /v1 keeps the
// snake_case forms.
var experienceFactorNames = map[string]string{
	FactorTOTP: RecordTOTP, FactorBackupCode: RecordBackupCode, FactorWebAuthn: RecordWebAuthn,
	FactorEmailCode: RecordEmailCode, FactorPhoneCode: RecordPhoneCode,
}

func seedFactorNames(types []string) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		if n, ok := experienceFactorNames[t]; ok {
			out = append(out, n)
		}
	}
	return out
}

// enrollableFactors lists the enabled factor types a user without factors
// can actually bind now: a code factor needs the address and a connector,
// WebAuthn a configured relying party; backup codes can never be the first
// factor. Nothing is offered that cannot be completed.
func (e *Engine) enrollableFactors(user *User, settings Settings) []string {
	var out []string
	for _, f := range settings.MFA.Factors {
		switch f {
		case FactorBackupCode:
			continue
		case FactorWebAuthn:
			if e.webauthn == nil {
				continue
			}
		case FactorEmailCode, FactorPhoneCode:
			idType := IdentifierEmail
			if f == FactorPhoneCode {
				idType = IdentifierPhone
			}
			if _, err := mfaCodeIdentifier(user, idType); err != nil {
				continue
			}
			if _, err := e.sender(idType); err != nil {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// requireInteractionMFA applies the MFA rules at submit: a user with
// factors must have proven one (SignIn), and the policy may require or
// suggest enrolling one.
func (e *Engine) requireInteractionMFA(ctx context.Context, in *Interaction, user *User, settings Settings) error {
	// An enterprise provider that did MFA itself satisfies every MFA rule
	// here: the user proved a second factor, only not to Latch.
	if upstreamMFAProven(in) {
		return nil
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if len(factors) > 0 {
		if in.Event == EventSignInFlow && settings.MFA.Enforce && !mfaProven(in) {
			return fault.New(CodeRequireMFA, http.StatusForbidden, "Multi-factor authentication is required.").
				With("availableFactors", seedFactorNames(factorTypes(factors)))
		}
		return nil
	}
	enabled := seedFactorNames(e.enrollableFactors(user, settings))
	switch settings.MFA.Policy {
	case PolicyMandatory:
		return fault.New(CodeMissingMFA, http.StatusUnprocessableEntity, "An MFA factor must be bound before continuing.").
			With("availableFactors", enabled)
	case PolicyPromptAtSignInAndSignUp, PolicyPromptOnlyAtSignIn:
		if settings.MFA.Policy == PolicyPromptOnlyAtSignIn && in.Event != EventSignInFlow {
			return nil
		}
		if !in.MFASkipped && !user.MFASkipped {
			return fault.New(CodeSuggestMFA, http.StatusUnprocessableEntity, "Bind an MFA factor, or skip it.").
				With("availableFactors", enabled).With("skippable", true)
		}
	}
	return nil
}

// requireMFAForChange refuses a change to the account (profile data, a new
// factor) in a SignIn whose user has MFA but has not proven it in this
// interaction: the first factor alone may not rewrite where the second one
// is delivered.
func (e *Engine) requireMFAForChange(ctx context.Context, in *Interaction, user *User) error {
	if in.Event != EventSignInFlow || mfaProven(in) {
		return nil
	}
	factors, err := e.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	if len(factors) > 0 {
		return fault.New(CodeRequireMFA, http.StatusForbidden, "Verify multi-factor authentication before changing the profile.").
			With("availableFactors", seedFactorNames(factorTypes(factors)))
	}
	return nil
}

// mfaProven reports whether the interaction proved a second factor: one
// whose method differs from the first factor's. A code sent to the inbox
// (or phone) that already signed the user in proves nothing more, so a
// user who signed in with a verification code must use another factor.
func mfaProven(in *Interaction) bool {
	if upstreamMFAProven(in) {
		return true
	}
	first := firstFactors(in)
	for factor := range in.MFA {
		if m, ok := amrOfFactor[factor]; ok && !first[m] {
			return true
		}
	}
	return false
}

// firstFactors are the methods of the interaction's verified first-factor
// records (a password, a code to an identifier).
func firstFactors(in *Interaction) map[string]bool {
	first := map[string]bool{}
	for _, r := range in.Records {
		if p := r.Proof(); r.Verified() && p.FirstFactor && p.Method != "" {
			first[p.Method] = true
		}
	}
	return first
}

func factorTypes(factors []Factor) []string {
	types := []string{}
	seen := map[string]bool{}
	for _, f := range factors {
		if !seen[f.Type] {
			seen[f.Type] = true
			types = append(types, f.Type)
		}
	}
	return types
}

package app

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// MFA over the Experience API (seed 004) and the backend completion of
// pending sessions (/v1, DESIGN §2.3).

// totpSecret is POST /api/experience/verification/totp/secret.
func (a *App) totpSecret(x step) (any, error) {
	return a.engine.CreateTOTPSecret(x.ctx, x.handle, x.client)
}

type totpVerifyRequest struct {
	Code           string `json:"code"`
	VerificationID string `json:"verificationId"`
}

func (r *totpVerifyRequest) validate() []fault.Detail {
	var f fields
	f.required("code", r.Code)
	f.maxLen("code", r.Code, 16)
	f.maxLen("verificationId", r.VerificationID, 64)
	return f
}

// totpVerify is POST /api/experience/verification/totp/verify.
func (a *App) totpVerify(x step, req *totpVerifyRequest) (any, error) {
	return recordOf(a.engine.VerifyTOTP(x.ctx, x.handle, x.client, req.VerificationID, req.Code))
}

// backupCodesGenerate is POST /api/experience/verification/backup-code/generate.
func (a *App) backupCodesGenerate(x step) (any, error) {
	return a.engine.GenerateBackupCodes(x.ctx, x.handle, x.client)
}

type codeOnlyRequest struct {
	Code string `json:"code"`
}

func (r *codeOnlyRequest) validate() []fault.Detail {
	var f fields
	f.required("code", r.Code)
	f.maxLen("code", r.Code, 64)
	return f
}

// backupCodeVerify is POST /api/experience/verification/backup-code/verify.
func (a *App) backupCodeVerify(x step, req *codeOnlyRequest) (any, error) {
	return recordOf(a.engine.VerifyBackupCode(x.ctx, x.handle, x.client, req.Code))
}

// identifierTypes are the spellings seed 001 accepts.
var identifierTypes = map[string]bool{"email": true, "phone": true, "Email": true, "Phone": true}

type mfaCodeRequest struct {
	IdentifierType string `json:"identifierType"`
	VerificationID string `json:"verificationId"`
	Code           string `json:"code"`
	verify         bool
}

func (r *mfaCodeRequest) validate() []fault.Detail {
	var f fields
	if !identifierTypes[r.IdentifierType] {
		f.add("identifierType", "must be email, phone, Email or Phone")
	}
	if r.verify {
		f.required("verificationId", r.VerificationID)
		f.required("code", r.Code)
	}
	f.maxLen("verificationId", r.VerificationID, 64)
	f.maxLen("code", r.Code, 16)
	return f
}

// mfaCodeSend is POST /api/experience/verification/mfa-verification-code.
func (a *App) mfaCodeSend(x step, req *mfaCodeRequest) (any, error) {
	return recordOf(a.engine.SendMFACode(x.ctx, x.handle, x.client, req.IdentifierType))
}

// mfaCodeVerify is POST /api/experience/verification/mfa-verification-code/verify.
func (a *App) mfaCodeVerify(x step, req *mfaCodeRequest) (any, error) {
	return recordOf(a.engine.VerifyMFACode(x.ctx, x.handle, x.client, req.VerificationID, req.IdentifierType, req.Code))
}

// webAuthnStart serves the registration and authentication option routes.
func (a *App) webAuthnStart(register bool) func(step) (any, error) {
	return func(x step) (any, error) {
		out, err := a.engine.StartWebAuthn(x.ctx, x.handle, x.client, register)
		if err != nil {
			return nil, err
		}
		key := "authenticationOptions"
		if register {
			key = "registrationOptions"
		}
		return map[string]any{"verificationId": out.VerificationID, key: out.Options}, nil
	}
}

type webAuthnVerifyRequest struct {
	VerificationID string          `json:"verificationId"`
	Payload        json.RawMessage `json:"payload"`
}

func (r *webAuthnVerifyRequest) validate() []fault.Detail {
	var f fields
	f.required("verificationId", r.VerificationID)
	f.maxLen("verificationId", r.VerificationID, 64)
	if len(r.Payload) == 0 || string(r.Payload) == "null" {
		f.add("payload", "is required")
	}
	return f
}

// webAuthnVerify serves the registration and authentication verify routes.
func (a *App) webAuthnVerify(register bool) func(step, *webAuthnVerifyRequest) (any, error) {
	return func(x step, req *webAuthnVerifyRequest) (any, error) {
		return recordOf(a.engine.FinishWebAuthn(x.ctx, x.handle, x.client, req.VerificationID, register, req.Payload))
	}
}

type bindMFARequest struct {
	Type           string `json:"type"`
	VerificationID string `json:"verificationId"`
}

func (r *bindMFARequest) validate() []fault.Detail {
	var f fields
	switch strings.ToLower(r.Type) {
	case "totp", "backupcode", "backup_code", "webauthn", "emailverificationcode", "email_code", "phoneverificationcode", "phone_code":
	default:
		f.add("type", "must be Totp, BackupCode, WebAuthn, EmailVerificationCode or PhoneVerificationCode")
	}
	f.required("verificationId", r.VerificationID)
	f.maxLen("verificationId", r.VerificationID, 64)
	return f
}

// bindMFA is POST /api/experience/profile/mfa.
func (a *App) bindMFA(x step, req *bindMFARequest) (any, error) {
	return nil, a.engine.BindMFA(x.ctx, x.handle, x.client, req.Type, req.VerificationID)
}

// skipMFA is POST /api/experience/profile/mfa/mfa-skipped.
func (a *App) skipMFA(x step) (any, error) {
	return nil, a.engine.SkipMFA(x.ctx, x.handle, x.client)
}

// mfaAuthenticateRequest is the body of the /v1 MFA completion routes.
type mfaAuthenticateRequest struct {
	tokenRequest
	SessionID string `json:"session_id"`
	Code      string `json:"code"`
	Passcode  string `json:"passcode"`
	factor    string
}

func (r *mfaAuthenticateRequest) validate() []fault.Detail {
	var f fields
	f.required("session_id", r.SessionID)
	f.maxLen("session_id", r.SessionID, 64)
	if r.factor == "otp" {
		f.required("passcode", r.Passcode)
		f.maxLen("passcode", r.Passcode, 16)
		if r.Code != "" {
			f.add("code", "is not a field of this route (use passcode)")
		}
	} else {
		f.required("code", r.Code)
		f.maxLen("code", r.Code, 64)
		if r.Passcode != "" {
			f.add("passcode", "is not a field of this route (use code)")
		}
	}
	r.validateTokenRequest(&f)
	return f
}

// mfaAuthenticate decides /v1/auth/{totp,backup-code,otp}/authenticate: a
// second factor completes a pending session (or steps up an active one).
func (a *App) mfaAuthenticate(c echo.Context, client *token.Client, req *mfaAuthenticateRequest, _ *signInTokens) (*experience.SignIn, error) {
	code := req.Code
	if req.factor == "otp" {
		code = req.Passcode
	}
	return a.engine.CompleteMFA(c.Request().Context(), experience.MFAChallenge{
		SessionID: req.SessionID, Factor: req.factor, Code: code, Meta: req.meta(c, client),
	})
}

type otpSendRequest struct {
	SessionID string `json:"session_id"`
	Channel   string `json:"channel"`
}

func (r *otpSendRequest) validate() []fault.Detail {
	var f fields
	f.required("session_id", r.SessionID)
	f.maxLen("session_id", r.SessionID, 64)
	if r.Channel != "email" && r.Channel != "sms" {
		f.add("channel", "must be email or sms")
	}
	return f
}

// otpSend is POST /v1/auth/otp/send.
func (a *App) otpSend(c echo.Context) error {
	var req otpSendRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := a.engine.SendSessionOTP(c.Request().Context(), req.SessionID, req.Channel,
		experience.SessionMeta{ClientID: clientToken(c).ClientID}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

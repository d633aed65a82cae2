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
func (a *App) totpSecret(c echo.Context) error {
	out, err := a.engine.CreateTOTPSecret(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
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
func (a *App) totpVerify(c echo.Context) error {
	var req totpVerifyRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	id, err := a.engine.VerifyTOTP(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID, req.VerificationID, req.Code)
	if err != nil {
		return err
	}
	return verificationID(c, id)
}

// backupCodesGenerate is POST /api/experience/verification/backup-code/generate.
func (a *App) backupCodesGenerate(c echo.Context) error {
	out, err := a.engine.GenerateBackupCodes(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
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
func (a *App) backupCodeVerify(c echo.Context) error {
	var req codeOnlyRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	id, err := a.engine.VerifyBackupCode(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID, req.Code)
	if err != nil {
		return err
	}
	return verificationID(c, id)
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
func (a *App) mfaCodeSend(c echo.Context) error {
	var req mfaCodeRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	id, err := a.engine.SendMFACode(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID, req.IdentifierType)
	if err != nil {
		return err
	}
	return verificationID(c, id)
}

// mfaCodeVerify is POST /api/experience/verification/mfa-verification-code/verify.
func (a *App) mfaCodeVerify(c echo.Context) error {
	req := mfaCodeRequest{verify: true}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	id, err := a.engine.VerifyMFACode(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID,
		req.VerificationID, req.IdentifierType, req.Code)
	if err != nil {
		return err
	}
	return verificationID(c, id)
}

// webAuthnStart serves the registration and authentication option routes.
func (a *App) webAuthnStart(register bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		out, err := a.engine.StartWebAuthn(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID, register)
		if err != nil {
			return err
		}
		key := "authenticationOptions"
		if register {
			key = "registrationOptions"
		}
		return c.JSON(http.StatusOK, map[string]any{"verificationId": out.VerificationID, key: out.Options})
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
func (a *App) webAuthnVerify(register bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		var req webAuthnVerifyRequest
		if err := bindJSON(c, &req); err != nil {
			return err
		}
		id, err := a.engine.FinishWebAuthn(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID,
			req.VerificationID, register, req.Payload)
		if err != nil {
			return err
		}
		return verificationID(c, id)
	}
}

type bindMFARequest struct {
	Type           string `json:"type"`
	VerificationID string `json:"verificationId"`
}

func (r *bindMFARequest) validate() []fault.Detail {
	var f fields
	switch strings.ToLower(r.Type) {
	case "totp", "backupcode", "backup_code", "webauthn":
	default:
		f.add("type", "must be Totp, BackupCode or WebAuthn")
	}
	f.required("verificationId", r.VerificationID)
	f.maxLen("verificationId", r.VerificationID, 64)
	return f
}

// bindMFA is POST /api/experience/profile/mfa.
func (a *App) bindMFA(c echo.Context) error {
	var req bindMFARequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := a.engine.BindMFA(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID, req.Type, req.VerificationID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// skipMFA is POST /api/experience/profile/mfa/mfa-skipped.
func (a *App) skipMFA(c echo.Context) error {
	if err := a.engine.SkipMFA(c.Request().Context(), interactionHandle(c), clientToken(c).ClientID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
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
func (a *App) mfaAuthenticate(c echo.Context, _ *token.Client, req *mfaAuthenticateRequest) (*experience.SignIn, error) {
	code := req.Code
	if req.factor == "otp" {
		code = req.Passcode
	}
	return a.engine.CompleteMFA(c.Request().Context(), experience.MFAChallenge{
		SessionID: req.SessionID, Factor: req.factor, Code: code, Meta: req.meta(c),
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

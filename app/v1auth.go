package app

import (
	"encoding/json"
	"net"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// clientAttributes describe the end user's device, as seen by the backend.
type clientAttributes struct {
	IPAddress string `json:"ip_address"`
	UserAgent string `json:"user_agent"`
}

// tokenRequest is what every token-issuing /v1 call may say about the
// tokens it wants.
type tokenRequest struct {
	Resource         string            `json:"resource"`
	Claims           json.RawMessage   `json:"claims"`
	OrgID            string            `json:"org_id"`
	ClientAttributes *clientAttributes `json:"client_attributes"`
}

func (r *tokenRequest) validateTokenRequest(f *fields) {
	f.maxLen("resource", r.Resource, 512)
	f.maxLen("org_id", r.OrgID, 64)
	if a := r.ClientAttributes; a != nil {
		if a.IPAddress != "" && net.ParseIP(a.IPAddress) == nil {
			f.add("client_attributes.ip_address", "must be an IPv4 or IPv6 address")
		}
		f.maxLen("client_attributes.user_agent", a.UserAgent, 512)
	}
}

// meta builds the session metadata from the request and its calling client.
func (r *tokenRequest) meta(c echo.Context, client *token.Client) experience.SessionMeta {
	m := experience.SessionMeta{ClientID: client.ID, OrgID: r.OrgID, SSO: client.SSO}
	if r.ClientAttributes != nil {
		m.IPAddress, m.UserAgent = r.ClientAttributes.IPAddress, r.ClientAttributes.UserAgent
	}
	return m
}

type passwordAuthenticateRequest struct {
	tokenRequest
	Username     string `json:"username"`
	Password     string `json:"password"`
	UsernameType string `json:"username_type"`
	SessionID    string `json:"session_id"`
}

// usernameTypes maps the /v1 username_type to the engine's identifier type.
var usernameTypes = map[string]string{
	"username":     experience.IdentifierUsername,
	"email":        experience.IdentifierEmail,
	"phone_number": experience.IdentifierPhone,
}

func (r *passwordAuthenticateRequest) validate() []fault.Detail {
	var f fields
	f.required("username", r.Username)
	f.maxLen("username", r.Username, 320)
	f.required("password", r.Password)
	f.maxLen("password", r.Password, 1024)
	if r.UsernameType == "" {
		r.UsernameType = "username"
	}
	if _, ok := usernameTypes[r.UsernameType]; !ok {
		f.add("username_type", "must be username, email or phone_number")
	}
	f.maxLen("session_id", r.SessionID, 64)
	r.validateTokenRequest(&f)
	return f
}

// passwordAuthenticate is POST /v1/auth/password/authenticate.
func (a *App) passwordAuthenticate(c echo.Context, client *token.Client, req *passwordAuthenticateRequest, t *signInTokens) (*experience.SignIn, error) {
	return a.engine.SignInWithPassword(c.Request().Context(), experience.PasswordSignIn{
		Identifier: experience.Identifier{Type: usernameTypes[req.UsernameType], Value: req.Username},
		Password:   req.Password,
		SessionID:  req.SessionID,
		Meta:       req.meta(c, client),
		EnforceMFA: client.EnforceMFA,
		InTx:       a.storeRefresh(t),
	})
}

type sessionAuthenticateRequest struct {
	tokenRequest
	SessionID string `json:"session_id"`
}

func (r *sessionAuthenticateRequest) validate() []fault.Detail {
	var f fields
	f.required("session_id", r.SessionID)
	f.maxLen("session_id", r.SessionID, 64)
	r.validateTokenRequest(&f)
	return f
}

// sessionAuthenticate is POST /v1/auth/session/authenticate: new tokens for
// a live session, without the user (silent authentication).
func (a *App) sessionAuthenticate(c echo.Context, client *token.Client, req *sessionAuthenticateRequest, _ *signInTokens) (*experience.SignIn, error) {
	return a.engine.ReauthenticateSession(c.Request().Context(), req.SessionID, req.meta(c, client), client.EnforceMFA)
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (r *refreshRequest) validate() []fault.Detail {
	var f fields
	f.required("refresh_token", r.RefreshToken)
	f.maxLen("refresh_token", r.RefreshToken, 256)
	return f
}

// tokenRefresh is POST /v1/auth/token/refresh.
func (a *App) tokenRefresh(c echo.Context) error {
	var req refreshRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	client, err := a.callingClient(c)
	if err != nil {
		return err
	}
	resp, err := a.refresh(c.Request().Context(), client, req.RefreshToken, "")
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, resp)
}

type logoutRequest struct {
	SessionID string `json:"session_id"`
}

func (r *logoutRequest) validate() []fault.Detail {
	var f fields
	f.required("session_id", r.SessionID)
	f.maxLen("session_id", r.SessionID, 64)
	return f
}

// sessionLogout is POST /v1/auth/session/logout.
func (a *App) sessionLogout(c echo.Context) error {
	var req logoutRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := a.engine.EndSession(ctx, req.SessionID, experience.SessionMeta{ClientID: clientToken(c).ClientID}); err != nil {
		return err
	}
	if err := a.tokens.RevokeSessionTokens(ctx, req.SessionID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// userSessions is GET /v1/auth/users/:user_id/sessions (users:read).
func (a *App) userSessions(c echo.Context) error {
	client, err := a.callingClient(c)
	if err != nil {
		return err
	}
	sessions, err := a.engine.ListUserSessions(c.Request().Context(), c.Param("user_id"),
		experience.SessionMeta{ClientID: client.ID, SSO: client.SSO})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"sessions": sessions})
}

// revokeUserSessions is DELETE /v1/auth/users/:user_id/sessions.
func (a *App) revokeUserSessions(c echo.Context) error {
	ctx := c.Request().Context()
	user, err := a.engine.Users.Get(ctx, c.Param("user_id"))
	if err != nil {
		return err
	}
	if _, err := a.engine.Sessions.RevokeUser(ctx, user.ID); err != nil {
		return err
	}
	if err := a.tokens.RevokeUserTokens(ctx, user.ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type passwordResetRequest struct {
	tokenRequest
	ResetToken  string `json:"reset_token"`
	NewPassword string `json:"new_password"`
}

func (r *passwordResetRequest) validate() []fault.Detail {
	var f fields
	f.required("reset_token", r.ResetToken)
	f.maxLen("reset_token", r.ResetToken, 256)
	f.required("new_password", r.NewPassword)
	f.maxLen("new_password", r.NewPassword, 1024)
	r.validateTokenRequest(&f)
	return f
}

// passwordReset is POST /v1/auth/password/reset: change an expired or
// temporary password with the reset token, and sign in.
func (a *App) passwordReset(c echo.Context, client *token.Client, req *passwordResetRequest, _ *signInTokens) (*experience.SignIn, error) {
	return a.engine.ResetPassword(c.Request().Context(), experience.PasswordReset{
		ResetToken: req.ResetToken, NewPassword: req.NewPassword, Meta: req.meta(c, client), EnforceMFA: client.EnforceMFA,
	})
}

type passwordValidateRequest struct {
	Password string `json:"password"`
	Username string `json:"username"`
}

func (r *passwordValidateRequest) validate() []fault.Detail {
	var f fields
	f.required("password", r.Password)
	f.maxLen("password", r.Password, 4096)
	f.maxLen("username", r.Username, 320)
	return f
}

// passwordValidate is POST /v1/auth/password/validate.
func (a *App) passwordValidate(c echo.Context) error {
	var req passwordValidateRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	violations, err := a.engine.ValidatePassword(c.Request().Context(), req.Password,
		credentials.UserInfo{Username: req.Username}, nil)
	if err != nil {
		return err
	}
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	errs := make([]item, 0, len(violations))
	for _, v := range violations {
		errs = append(errs, item{Code: v.Code, Message: v.Message})
	}
	return c.JSON(http.StatusOK, map[string]any{"valid_password": len(errs) == 0, "errors": errs})
}

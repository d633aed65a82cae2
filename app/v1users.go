package app

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
)

// userView is a user as the Users API shows it.
type userView struct {
	*experience.User
	LockedSeconds int64 `json:"locked_seconds"`
}

func (a *App) renderUser(c echo.Context, status int, u *experience.User) error {
	locked, err := a.engine.LockStatus(c.Request().Context(), u)
	if err != nil {
		return err
	}
	return c.JSON(status, userView{User: u, LockedSeconds: locked})
}

// profileRequest is the profile part of user create and update. Absent
// fields stay unchanged; an empty string clears an identifier.
//
// The fields are spelled as the user object answers them (primary_email,
// primary_phone, email_verified, phone_verified), so what a client reads it
// can send back; the earlier request spelling (email, phone_number,
// phone_number_verified) stays accepted. Both spellings of one field in one
// request must agree.
type profileRequest struct {
	Username      *string         `json:"username"`
	PrimaryEmail  *string         `json:"primary_email"`
	PrimaryPhone  *string         `json:"primary_phone"`
	EmailVerified *bool           `json:"email_verified"`
	PhoneVerified *bool           `json:"phone_verified"`
	Name          *string         `json:"name"`
	CustomData    json.RawMessage `json:"custom_data"`

	// Deprecated spellings.
	Email               *string `json:"email"`
	PhoneNumber         *string `json:"phone_number"`
	PhoneNumberVerified *bool   `json:"phone_number_verified"`
}

func (r *profileRequest) profile() experience.Profile {
	p := experience.Profile{Username: r.Username, Email: either(r.PrimaryEmail, r.Email), Phone: either(r.PrimaryPhone, r.PhoneNumber),
		Name: r.Name, EmailVerified: r.EmailVerified, PhoneVerified: either(r.PhoneVerified, r.PhoneNumberVerified)}
	if len(r.CustomData) > 0 && string(r.CustomData) != "null" {
		p.CustomData = r.CustomData
	}
	return p
}

// either is the field sent under the current spelling, else the old one.
func either[T any](current, old *T) *T {
	if current != nil {
		return current
	}
	return old
}

func (r *profileRequest) check(f *fields) {
	for name, v := range map[string]*string{"username": r.Username, "primary_email": r.PrimaryEmail, "email": r.Email,
		"primary_phone": r.PrimaryPhone, "phone_number": r.PhoneNumber, "name": r.Name} {
		if v != nil {
			f.maxLen(name, *v, 320)
		}
	}
	if r.PrimaryEmail != nil && r.Email != nil && *r.PrimaryEmail != *r.Email {
		f.add("email", "differs from primary_email (send one of them)")
	}
	if r.PrimaryPhone != nil && r.PhoneNumber != nil && *r.PrimaryPhone != *r.PhoneNumber {
		f.add("phone_number", "differs from primary_phone (send one of them)")
	}
	if r.PhoneVerified != nil && r.PhoneNumberVerified != nil && *r.PhoneVerified != *r.PhoneNumberVerified {
		f.add("phone_number_verified", "differs from phone_verified (send one of them)")
	}
}

type passwordCredentials struct {
	Password     string `json:"password"`
	ForceReplace *bool  `json:"force_replace"`
}

type createUserRequest struct {
	profileRequest
	Credentials       *passwordCredentials `json:"credentials"`
	PasswordDigest    string               `json:"password_digest"`
	PasswordAlgorithm string               `json:"password_algorithm"`
}

func (r *createUserRequest) validate() []fault.Detail {
	var f fields
	r.check(&f)
	if r.Credentials != nil {
		f.required("credentials.password", r.Credentials.Password)
	}
	if (r.PasswordDigest == "") != (r.PasswordAlgorithm == "") {
		f.add("password_digest", "password_digest and password_algorithm go together")
	}
	f.maxLen("password_digest", r.PasswordDigest, 1024)
	return f
}

// createUser is POST /v1/users.
func (a *App) createUser(c echo.Context) error {
	var req createUserRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	in := experience.NewUser{Profile: req.profile(), PasswordDigest: req.PasswordDigest, PasswordAlgorithm: req.PasswordAlgorithm,
		Meta: experience.SessionMeta{ClientID: clientToken(c).ClientID}}
	if req.Credentials != nil {
		in.Password = req.Credentials.Password
		// Creating a user with a password: it is theirs unless the caller
		// says it must be replaced.
		in.Temporary = req.Credentials.ForceReplace != nil && *req.Credentials.ForceReplace
	}
	user, err := a.engine.CreateUser(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return a.renderUser(c, http.StatusCreated, user)
}

// getUser is GET /v1/users/:user_id.
func (a *App) getUser(c echo.Context) error {
	user, err := a.engine.Users.Get(c.Request().Context(), c.Param("user_id"))
	if err != nil {
		return err
	}
	return a.renderUser(c, http.StatusOK, user)
}

type updateUserRequest struct{ profileRequest }

func (r *updateUserRequest) validate() []fault.Detail {
	var f fields
	r.check(&f)
	return f
}

// updateUser is PATCH /v1/users/:user_id.
func (a *App) updateUser(c echo.Context) error {
	var req updateUserRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	user, err := a.engine.UpdateUser(c.Request().Context(), c.Param("user_id"), req.profile(), experience.SessionMeta{ClientID: clientToken(c).ClientID})
	if err != nil {
		return err
	}
	return a.renderUser(c, http.StatusOK, user)
}

// deleteUser is DELETE /v1/users/:user_id.
func (a *App) deleteUser(c echo.Context) error {
	ctx := c.Request().Context()
	userID := c.Param("user_id")
	if _, err := a.engine.DeleteUser(ctx, userID, experience.SessionMeta{ClientID: clientToken(c).ClientID}); err != nil {
		return err
	}
	if err := a.tokens.RevokeUserTokens(ctx, userID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type setPasswordRequest struct {
	Password     string `json:"password"`
	ForceReplace *bool  `json:"force_replace"`
}

func (r *setPasswordRequest) validate() []fault.Detail {
	var f fields
	f.required("password", r.Password)
	f.maxLen("password", r.Password, 1024)
	return f
}

// registerPassword is POST /v1/users/:user_id/password: the first password.
// force_replace defaults to true: a password someone else chose is
// temporary until the user changes it.
func (a *App) registerPassword(c echo.Context) error {
	return a.setPassword(c, true, true)
}

// replacePassword is PUT /v1/users/:user_id/password.
func (a *App) replacePassword(c echo.Context) error {
	return a.setPassword(c, false, false)
}

func (a *App) setPassword(c echo.Context, first, defaultTemporary bool) error {
	var req setPasswordRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	temporary := defaultTemporary
	if req.ForceReplace != nil {
		temporary = *req.ForceReplace
	}
	user, err := a.engine.SetPassword(c.Request().Context(), c.Param("user_id"), req.Password, experience.SetPasswordOptions{
		Temporary: temporary, MustNotExist: first, Meta: experience.SessionMeta{ClientID: clientToken(c).ClientID},
	})
	if err != nil {
		return err
	}
	return a.renderUser(c, http.StatusOK, user)
}

// suspendUser is POST /v1/users/:user_id/suspend (and unsuspend).
func (a *App) suspendUser(suspend bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		user, ended, err := a.engine.SetSuspended(ctx, c.Param("user_id"), suspend, experience.SessionMeta{ClientID: clientToken(c).ClientID})
		if err != nil {
			return err
		}
		for _, id := range ended {
			if err := a.tokens.RevokeSessionTokens(ctx, id); err != nil {
				return err
			}
		}
		return a.renderUser(c, http.StatusOK, user)
	}
}

type expirationRequest struct {
	Expired *bool `json:"expired"`
}

func (r *expirationRequest) validate() []fault.Detail {
	var f fields
	if r.Expired == nil {
		f.add("expired", "is required")
	}
	return f
}

// setPasswordExpiration is PATCH /v1/users/:user_id/password/expiration.
func (a *App) setPasswordExpiration(c echo.Context) error {
	var req expirationRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	user, err := a.engine.SetPasswordExpired(c.Request().Context(), c.Param("user_id"), *req.Expired)
	if err != nil {
		return err
	}
	return a.renderUser(c, http.StatusOK, user)
}

// unlockUser is POST /v1/users/:user_id/unlock.
func (a *App) unlockUser(c echo.Context) error {
	if err := a.engine.Unlock(c.Request().Context(), c.Param("user_id"), experience.SessionMeta{ClientID: clientToken(c).ClientID}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listFactors is GET /v1/users/:user_id/mfa-factors.
func (a *App) listFactors(c echo.Context) error {
	ctx := c.Request().Context()
	user, err := a.engine.Users.Get(ctx, c.Param("user_id"))
	if err != nil {
		return err
	}
	factors, err := a.engine.Factors.List(ctx, user.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"factors": factors})
}

// deleteFactor is DELETE /v1/users/:user_id/mfa-factors/:factor_id.
func (a *App) deleteFactor(c echo.Context) error {
	if err := a.engine.RemoveFactor(c.Request().Context(), c.Param("user_id"), c.Param("factor_id"),
		experience.SessionMeta{ClientID: clientToken(c).ClientID}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

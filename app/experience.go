package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
)

// The Experience API (seed 004) binds calls to an interaction through the
// latch_interaction cookie or, for backends that do not keep cookies, the
// Latch-Interaction header.
const (
	interactionCookie = "latch_interaction"
	interactionHeader = "Latch-Interaction"
)

// interactionHandle returns the handle a request carries (header first).
func interactionHandle(c echo.Context) string {
	if h := strings.TrimSpace(c.Request().Header.Get(interactionHeader)); h != "" {
		return h
	}
	if ck, err := c.Cookie(interactionCookie); err == nil {
		return ck.Value
	}
	return ""
}

// experienceMeta is the session metadata of an Experience API call.
func experienceMeta(c echo.Context) experience.SessionMeta {
	return experience.SessionMeta{ClientID: interactionClient(c), IPAddress: c.RealIP(), UserAgent: c.Request().UserAgent()}
}

// step is what every Experience API call acts on: the request's context,
// its interaction handle, the calling client and where the request came from.
type step struct {
	ctx    context.Context
	handle string
	client string
	meta   experience.SessionMeta
}

func stepOf(c echo.Context) step {
	return step{ctx: c.Request().Context(), handle: interactionHandle(c), client: interactionClient(c), meta: experienceMeta(c)}
}

// recordID is a step's answer that is a verification record's id.
type recordID string

// recordOf adapts an engine call that returns a record id.
func recordOf(id string, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return recordID(id), nil
}

// body allocates a request body of type T for expRoute.
func body[T any, P interface {
	*T
	validator
}]() P {
	return P(new(T))
}

// expRoute builds an Experience API handler for a step with a JSON body:
// bind and validate it, run the engine step, render its answer.
func expRoute[R validator](newReq func() R, run func(step, R) (any, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := newReq()
		if err := bindJSON(c, req); err != nil {
			return err
		}
		out, err := run(stepOf(c), req)
		return renderStep(c, out, err)
	}
}

// expCall is expRoute for steps without a body.
func expCall(run func(step) (any, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		out, err := run(stepOf(c))
		return renderStep(c, out, err)
	}
}

// renderStep answers a record id as {"verificationId": …}, another value
// as JSON, and nothing as 204.
func renderStep(c echo.Context, out any, err error) error {
	if err != nil {
		return err
	}
	switch v := out.(type) {
	case nil:
		return c.NoContent(http.StatusNoContent)
	case recordID:
		return c.JSON(http.StatusOK, map[string]string{"verificationId": string(v)})
	default:
		return c.JSON(http.StatusOK, v)
	}
}

type identifierBody struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func (i *identifierBody) check(f *fields, types ...string) {
	if i == nil {
		f.add("identifier", "is required")
		return
	}
	ok := false
	for _, t := range types {
		ok = ok || i.Type == t
	}
	if !ok {
		f.add("identifier.type", "must be one of %s", strings.Join(types, ", "))
	}
	f.required("identifier.value", i.Value)
	f.maxLen("identifier.value", i.Value, 320)
}

func (i *identifierBody) identifier() experience.Identifier {
	return experience.Identifier{Type: i.Type, Value: i.Value}
}

type eventRequest struct {
	InteractionEvent string `json:"interactionEvent"`
}

func (r *eventRequest) validate() []fault.Detail {
	var f fields
	switch r.InteractionEvent {
	case experience.EventSignInFlow, experience.EventRegisterFlow, experience.EventForgotPasswordFlow:
	default:
		f.add("interactionEvent", "must be SignIn, Register or ForgotPassword")
	}
	return f
}

// initInteraction is PUT /api/experience.
func (a *App) initInteraction(c echo.Context) error {
	var req eventRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	handle, err := a.engine.StartInteraction(c.Request().Context(), clientToken(c).ClientID, req.InteractionEvent)
	if err != nil {
		return err
	}
	// "Any existing interaction data will be cleared" (seed 004).
	if old := interactionHandle(c); old != "" {
		if err := a.engine.EndInteraction(c.Request().Context(), old, clientToken(c).ClientID); err != nil {
			return err
		}
	}
	c.SetCookie(&http.Cookie{Name: interactionCookie, Value: handle, Path: "/api/experience", MaxAge: 3600,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(a.cfg.Issuer, "https://")})
	c.Response().Header().Set(interactionHeader, handle)
	return c.NoContent(http.StatusNoContent)
}

// updateInteractionEvent is PUT /api/experience/interaction-event.
func (a *App) updateInteractionEvent(x step, req *eventRequest) (any, error) {
	return nil, a.engine.SetInteractionEvent(x.ctx, x.handle, x.client, req.InteractionEvent)
}

// getInteraction is GET /api/experience/interaction.
func (a *App) getInteraction(x step) (any, error) {
	return a.engine.Interaction(x.ctx, x.handle, x.client)
}

type passwordVerificationRequest struct {
	Identifier *identifierBody `json:"identifier"`
	Password   string          `json:"password"`
}

func (r *passwordVerificationRequest) validate() []fault.Detail {
	var f fields
	r.Identifier.check(&f, experience.IdentifierUsername, experience.IdentifierEmail, experience.IdentifierPhone)
	f.required("password", r.Password)
	f.maxLen("password", r.Password, 1024)
	return f
}

// passwordVerification is POST /api/experience/verification/password.
func (a *App) passwordVerification(x step, req *passwordVerificationRequest) (any, error) {
	return recordOf(a.engine.AddPasswordVerification(x.ctx, x.handle, x.client, req.Identifier.identifier(), req.Password, x.meta))
}

type sendCodeRequest struct {
	Identifier       *identifierBody `json:"identifier"`
	InteractionEvent string          `json:"interactionEvent"`
}

func (r *sendCodeRequest) validate() []fault.Detail {
	var f fields
	r.Identifier.check(&f, experience.IdentifierEmail, experience.IdentifierPhone)
	switch r.InteractionEvent {
	case "", experience.EventSignInFlow, experience.EventRegisterFlow, experience.EventForgotPasswordFlow:
	default:
		f.add("interactionEvent", "must be SignIn, Register or ForgotPassword")
	}
	return f
}

// sendCode is POST /api/experience/verification/verification-code.
func (a *App) sendCode(x step, req *sendCodeRequest) (any, error) {
	return recordOf(a.engine.SendVerificationCode(x.ctx, x.handle, x.client, req.Identifier.identifier(), req.InteractionEvent))
}

type verifyCodeRequest struct {
	Identifier     *identifierBody `json:"identifier"`
	VerificationID string          `json:"verificationId"`
	Code           string          `json:"code"`
}

func (r *verifyCodeRequest) validate() []fault.Detail {
	var f fields
	r.Identifier.check(&f, experience.IdentifierEmail, experience.IdentifierPhone)
	f.required("verificationId", r.VerificationID)
	f.maxLen("verificationId", r.VerificationID, 64)
	f.required("code", r.Code)
	f.maxLen("code", r.Code, 16)
	return f
}

// verifyCode is POST /api/experience/verification/verification-code/verify.
func (a *App) verifyCode(x step, req *verifyCodeRequest) (any, error) {
	return recordOf(a.engine.VerifyVerificationCode(x.ctx, x.handle, x.client, req.VerificationID, req.Identifier.identifier(), req.Code))
}

type newPasswordIdentityRequest struct {
	Identifier *identifierBody `json:"identifier"`
	Password   string          `json:"password"`
}

func (r *newPasswordIdentityRequest) validate() []fault.Detail {
	var f fields
	r.Identifier.check(&f, experience.IdentifierUsername)
	f.required("password", r.Password)
	f.maxLen("password", r.Password, 1024)
	return f
}

// newPasswordIdentity is POST /api/experience/verification/new-password-identity.
func (a *App) newPasswordIdentity(x step, req *newPasswordIdentityRequest) (any, error) {
	return recordOf(a.engine.AddNewPasswordIdentity(x.ctx, x.handle, x.client, req.Identifier.identifier(), req.Password))
}

type identificationRequest struct {
	VerificationID     string `json:"verificationId"`
	LinkSocialIdentity bool   `json:"linkSocialIdentity"`
}

func (r *identificationRequest) validate() []fault.Detail {
	var f fields
	f.maxLen("verificationId", r.VerificationID, 64)
	return f
}

// identify is POST /api/experience/identification.
func (a *App) identify(c echo.Context) error {
	var req identificationRequest
	// The body is optional (Register may identify from the profile alone),
	// also when it arrives chunked with no Content-Length.
	if hasBody(c) {
		if err := bindJSON(c, &req); err != nil {
			return err
		}
	}
	created, err := a.engine.IdentifyWith(c.Request().Context(), interactionHandle(c), interactionClient(c), req.VerificationID,
		req.LinkSocialIdentity, experienceMeta(c))
	if err != nil {
		return err
	}
	if created {
		return c.NoContent(http.StatusCreated)
	}
	return c.NoContent(http.StatusNoContent)
}

type profileBody struct {
	Type           string `json:"type"`
	Value          string `json:"value"`
	VerificationID string `json:"verificationId"`
	Values         *struct {
		Name       *string         `json:"name"`
		CustomData json.RawMessage `json:"customData"`
	} `json:"values"`
}

func (r *profileBody) validate() []fault.Detail {
	var f fields
	switch r.Type {
	case "username", "password":
		f.required("value", r.Value)
	case experience.IdentifierEmail, experience.IdentifierPhone:
		f.required("verificationId", r.VerificationID)
	case "extraProfile":
		if r.Values == nil {
			f.add("values", "is required for extraProfile")
		}
	default:
		f.add("type", "must be username, password, email, phone or extraProfile")
	}
	f.maxLen("value", r.Value, 1024)
	f.maxLen("verificationId", r.VerificationID, 64)
	return f
}

// addProfile is POST /api/experience/profile.
func (a *App) addProfile(x step, req *profileBody) (any, error) {
	in := experience.ProfileInput{Type: req.Type, Value: req.Value, VerificationID: req.VerificationID}
	if req.Values != nil {
		in.Name, in.CustomData = req.Values.Name, req.Values.CustomData
	}
	return nil, a.engine.AddProfile(x.ctx, x.handle, x.client, in)
}

type resetPasswordBody struct {
	Password string `json:"password"`
}

func (r *resetPasswordBody) validate() []fault.Detail {
	var f fields
	f.required("password", r.Password)
	f.maxLen("password", r.Password, 1024)
	return f
}

// resetProfilePassword is PUT /api/experience/profile/password.
func (a *App) resetProfilePassword(x step, req *resetPasswordBody) (any, error) {
	return nil, a.engine.ResetPasswordInInteraction(x.ctx, x.handle, x.client, req.Password)
}

// submitInteraction is POST /api/experience/submit.
func (a *App) submitInteraction(c echo.Context) error {
	// The tokens go to the interaction's client, whoever holds the handle.
	client, err := a.tokens.Clients.Lookup(c.Request().Context(), interactionClient(c))
	if err != nil {
		return err
	}
	if client == nil {
		return experience.ErrInteractionNotFound()
	}
	ctx := c.Request().Context()
	// An interaction that an authorization request started ends in a
	// redirect back to it, not in tokens.
	ar, err := a.tokens.AuthRequestForInteraction(ctx, interactionHandle(c))
	if err != nil {
		return err
	}
	if ar == nil {
		// A hosted page's interaction whose request is gone (expired,
		// answered, or restarted in another interaction while this handle
		// was kept) must not fall through to the token answer below: that
		// would hand the authorizing client's tokens to the browser,
		// without PKCE, consent or the request's organization_id.
		hosted, err := a.engine.HostedInteraction(ctx, interactionHandle(c), client.ID)
		if err != nil {
			return err
		}
		if hosted {
			return experience.ErrInteractionNotFound()
		}
	}
	meta := experienceMeta(c)
	if ar != nil {
		meta.OrgID = ar.OrgID
	}
	res, err := a.engine.SubmitInteraction(ctx, interactionHandle(c), client.ID, meta)
	if ar != nil && fault.Is(err, experience.CodeOrgMembershipRequired) {
		// The person proved who they are but may not enter the
		// organization: the page sends them back to the application with
		// access_denied (redirectTo in the error's data); nothing was
		// written, so they may still sign in as someone else.
		fe, _ := fault.As(err)
		return fe.With("redirectTo", a.errorRedirectURL(ar.RedirectURI, ar.State, orgDenied))
	}
	if err != nil {
		return err
	}
	// The interaction is over: drop the cookie.
	c.SetCookie(&http.Cookie{Name: interactionCookie, Value: "", Path: "/api/experience", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(a.cfg.Issuer, "https://")})
	if ar != nil {
		to, err := a.completePageSubmit(c, ar, res.SignIn)
		if err != nil {
			return err
		}
		noStore(c)
		return c.JSON(http.StatusOK, map[string]string{"redirectTo": to})
	}
	if res.SignIn == nil {
		return c.JSON(http.StatusOK, map[string]any{})
	}
	return a.respondTokens(c, &signInTokens{client: client}, res.SignIn)
}

// ssoConnectors is GET /api/experience/sso-connectors?email=: the enterprise
// SSO connectors owning the address's domain.
func (a *App) ssoConnectors(c echo.Context) error {
	email, err := experience.NormalizeEmail(c.QueryParam("email"))
	if err != nil {
		return fault.Invalid(fault.Detail{Field: "email", Message: "must be a valid email address"})
	}
	refs, err := a.engine.SSOConnectorsForEmail(c.Request().Context(), email)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(refs))
	for _, r := range refs {
		ids = append(ids, r.ID)
	}
	return c.JSON(http.StatusOK, map[string]any{"connectorIds": ids})
}

type managementCodeRequest struct {
	Email            string `json:"email"`
	Phone            string `json:"phone"`
	VerificationCode string `json:"verificationCode"`
	verify           bool
}

func (r *managementCodeRequest) validate() []fault.Detail {
	var f fields
	if (r.Email == "") == (r.Phone == "") {
		f.add("email", "give exactly one of email or phone")
	}
	if r.verify {
		f.required("verificationCode", r.VerificationCode)
		f.maxLen("verificationCode", r.VerificationCode, 16)
	} else if r.VerificationCode != "" {
		f.add("verificationCode", "is not expected when sending a code")
	}
	f.maxLen("email", r.Email, 320)
	f.maxLen("phone", r.Phone, 32)
	return f
}

func (r *managementCodeRequest) identifier() experience.Identifier {
	if r.Email != "" {
		return experience.Identifier{Type: experience.IdentifierEmail, Value: r.Email}
	}
	return experience.Identifier{Type: experience.IdentifierPhone, Value: r.Phone}
}

// sendManagementCode is POST /api/verification-codes.
func (a *App) sendManagementCode(c echo.Context) error {
	var req managementCodeRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := a.engine.SendGenericCode(c.Request().Context(), req.identifier(), clientToken(c).ClientID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// verifyManagementCode is POST /api/verification-codes/verify.
func (a *App) verifyManagementCode(c echo.Context) error {
	req := managementCodeRequest{verify: true}
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if err := a.engine.VerifyGenericCode(c.Request().Context(), req.identifier(), req.VerificationCode); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

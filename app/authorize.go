package app

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// The browser session cookie: an HttpOnly secret standing for the Latch
// session a person opened on the hosted pages, so that the next
// authorization request of this browser skips the sign-in page. It is sent
// only to /oidc (authorization, consent, logout).
const (
	browserSessionCookie = "latch_session"
	browserSessionPath   = "/oidc"
)

// supportedScopes are the scope values the authorization endpoint grants;
// others are ignored (OIDC Core §3.1.2.1).
var supportedScopes = func() map[string]bool {
	out := map[string]bool{token.ScopeOpenID: true}
	for _, s := range token.CodeFlowScopes {
		out[s] = true
	}
	return out
}()

// authError is an error of the authorization endpoint once the client and
// its redirect URI are trusted: it goes back to the client (RFC 6749
// §4.1.2.1).
type authError struct{ code, description string }

// authorize is GET /oidc/auth (OIDC Core §3.1.2, RFC 6749 §4.1.1, RFC 7636).
func (a *App) authorize(c echo.Context) error {
	q := c.QueryParams()
	for k, v := range q {
		if len(v) > 1 {
			return a.errorPage(c, http.StatusBadRequest, "invalid_request", "The parameter "+k+" is repeated.")
		}
	}
	ctx := c.Request().Context()
	// Until the client and its redirect URI are known, nothing is redirected
	// anywhere: an attacker must not turn Latch into an open redirector.
	client, err := a.tokens.Clients.Lookup(ctx, q.Get("client_id"))
	if err != nil {
		return err
	}
	if client == nil || q.Get("client_id") == "" {
		return a.errorPage(c, http.StatusBadRequest, "invalid_client", "The application is unknown.")
	}
	if client.Type == token.ClientBackend {
		return a.errorPage(c, http.StatusBadRequest, "unauthorized_client", "This application cannot sign people in through the browser.")
	}
	redirect := q.Get("redirect_uri")
	if !client.HasRedirectURI(redirect) {
		return a.errorPage(c, http.StatusBadRequest, "invalid_request", "The redirect_uri is not registered for this application.")
	}
	req, aerr := parseAuthRequest(client, q)
	if aerr != nil {
		return a.redirectError(c, redirect, q.Get("state"), aerr)
	}
	if req.OrgID != "" {
		// An unknown organization is refused up front, before anyone signs
		// in: it says nothing about any user.
		org, err := a.engine.Orgs.Head(ctx, req.OrgID)
		if err != nil {
			return err
		}
		if org == nil {
			return a.redirectError(c, redirect, q.Get("state"), &authError{"invalid_request", "organization_id names no organization"})
		}
	}
	ar, err := a.tokens.CreateAuthRequest(ctx, *req)
	if err != nil {
		return err
	}
	return a.continueAuth(c, client, ar)
}

// parseAuthRequest validates the parameters of a trusted request.
func parseAuthRequest(client *token.Client, q url.Values) (*token.AuthRequest, *authError) {
	if q.Has("request") {
		return nil, &authError{"request_not_supported", "request objects are not supported"}
	}
	if q.Has("request_uri") {
		return nil, &authError{"request_uri_not_supported", "request_uri is not supported"}
	}
	if q.Get("response_type") != "code" {
		return nil, &authError{"unsupported_response_type", "response_type must be code"}
	}
	if m := q.Get("response_mode"); m != "" && m != "query" {
		return nil, &authError{"invalid_request", "response_mode must be query"}
	}
	if !client.HasGrant(token.GrantAuthorizationCode) {
		return nil, &authError{"unauthorized_client", "the client may not use the authorization code grant"}
	}
	var scopes []string
	openid := false
	for _, s := range strings.Fields(q.Get("scope")) {
		openid = openid || s == "openid"
		if supportedScopes[s] && !contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	if !openid {
		return nil, &authError{"invalid_scope", "the openid scope is required"}
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return nil, &authError{"invalid_request", "code_challenge_method without code_challenge"}
	case challenge == "" && client.Public():
		return nil, &authError{"invalid_request", "PKCE (code_challenge with S256) is required for this client"}
	case challenge != "" && method != "S256":
		return nil, &authError{"invalid_request", "code_challenge_method must be S256 (plain is not supported)"}
	case challenge != "" && !token.ValidCodeChallenge(challenge):
		return nil, &authError{"invalid_request", "code_challenge is not an S256 challenge"}
	}
	prompt := strings.Fields(q.Get("prompt"))
	for _, p := range prompt {
		if p != "none" && p != "login" && p != "consent" {
			return nil, &authError{"invalid_request", "prompt " + p + " is not supported"}
		}
	}
	if contains(prompt, "none") && len(prompt) > 1 {
		return nil, &authError{"invalid_request", "prompt none cannot be combined with other values"}
	}
	maxAge := -1
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, &authError{"invalid_request", "max_age must be a non-negative integer"}
		}
		maxAge = n
	}
	for name, limit := range map[string]int{"state": 1024, "nonce": 512, "login_hint": 320, "organization_id": 64} {
		if len(q.Get(name)) > limit {
			return nil, &authError{"invalid_request", name + " is too long"}
		}
	}
	return &token.AuthRequest{ClientID: client.ID, RedirectURI: q.Get("redirect_uri"), Scope: strings.Join(scopes, " "),
		State: q.Get("state"), Nonce: q.Get("nonce"), CodeChallenge: challenge, Prompt: strings.Join(prompt, " "),
		MaxAge: maxAge, LoginHint: q.Get("login_hint"), OrgID: q.Get("organization_id")}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// continueAuth answers a stored authorization request: with this browser's
// live session when it may be used, else with the sign-in page (or, with
// prompt=none, login_required).
func (a *App) continueAuth(c echo.Context, client *token.Client, ar *token.AuthRequest) error {
	ctx := c.Request().Context()
	if !ar.HasPrompt("login") {
		signIn, err := a.browserSignIn(c, client, ar)
		if fault.Is(err, experience.CodeOrgMembershipRequired) {
			return a.redirectError(c, ar.RedirectURI, ar.State, orgDenied)
		}
		if err != nil {
			return err
		}
		if signIn != nil {
			if err := a.tokens.CompleteAuthRequest(ctx, ar.ID, signIn.Session.ID); err != nil {
				return err
			}
			ar.SessionID = signIn.Session.ID
			return a.finishAuth(c, client, ar, signIn)
		}
	}
	if ar.HasPrompt("none") {
		return a.redirectError(c, ar.RedirectURI, ar.State, &authError{"login_required", "the user must sign in"})
	}
	return a.startPageInteraction(c, ar)
}

// startPageInteraction starts the Experience interaction of the hosted
// pages for ar — owned by the authorizing client, so no ClientAccessToken
// is involved — and sends the browser to the sign-in page.
func (a *App) startPageInteraction(c echo.Context, ar *token.AuthRequest) error {
	err := a.startInteractionFor(c, ar, experience.EventSignInFlow, "/ui/sign-in")
	if fe, ok := fault.As(err); ok && fe.Code == experience.CodeEventNotEnabled {
		// Sign-in is closed (register-only mode): offer what is open.
		return a.startInteractionFor(c, ar, experience.EventRegisterFlow, "/ui/register")
	}
	return err
}

// startInteractionFor starts an interaction of event for ar and sends the
// browser to page.
func (a *App) startInteractionFor(c echo.Context, ar *token.AuthRequest, event, page string) error {
	ctx := c.Request().Context()
	handle, err := a.engine.StartHostedInteraction(ctx, ar.ClientID, event)
	if err != nil {
		return err
	}
	if old := interactionHandle(c); old != "" {
		if err := a.engine.EndInteraction(ctx, old, ar.ClientID); err != nil {
			return err
		}
	}
	if err := a.tokens.LinkInteraction(ctx, ar.ID, handle); err != nil {
		return err
	}
	a.setInteractionCookie(c, handle)
	return c.Redirect(http.StatusSeeOther, page+"?request="+url.QueryEscape(ar.ID))
}

// orgDenied answers a request in the context of an organization the
// signed-in user is not a member of.
var orgDenied = &authError{"access_denied", "the user is not a member of the organization"}

// browserSignIn returns the sign-in of this browser's live session when the
// request may use it: the session is the client's own or an SSO peer's,
// MFA rules are met (the organization's too), and max_age is respected.
// Otherwise nil — or, when the request names an organization the session's
// user is not a member of, the org_membership_required fault.
func (a *App) browserSignIn(c echo.Context, client *token.Client, ar *token.AuthRequest) (*experience.SignIn, error) {
	ck, err := c.Cookie(browserSessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	ctx := c.Request().Context()
	sid, err := a.tokens.BrowserSession(ctx, ck.Value)
	if err != nil || sid == "" {
		return nil, err
	}
	signIn, err := a.engine.ActiveSession(ctx, sid)
	if err != nil {
		if _, ok := fault.As(err); ok {
			return nil, nil
		}
		return nil, err
	}
	if ar.MaxAge >= 0 && time.Since(signIn.Session.AuthTime) > time.Duration(ar.MaxAge)*time.Second {
		return nil, nil
	}
	signIn, err = a.engine.ReauthenticateSession(ctx, sid, experience.SessionMeta{ClientID: client.ID, SSO: client.SSO,
		OrgID: ar.OrgID, IPAddress: c.RealIP(), UserAgent: c.Request().UserAgent()}, client.EnforceMFA)
	if err != nil {
		if fault.Is(err, experience.CodeOrgMembershipRequired) {
			return nil, err
		}
		if _, ok := fault.As(err); ok {
			return nil, nil // another client's session, or MFA due: sign in on the page
		}
		return nil, err
	}
	return signIn, nil
}

// resumeAuth is GET /oidc/auth/resume, the redirectTo of a submit: the
// sign-in of this browser (its session cookie) finishes the request.
func (a *App) resumeAuth(c echo.Context) error {
	ctx := c.Request().Context()
	ar, client, err := a.liveAuthRequest(ctx, c.QueryParam("request"))
	if err != nil || ar == nil {
		return orPage(a, c, err)
	}
	signIn, err := a.requestSignIn(c, ar)
	if err != nil || signIn == nil {
		return orPage(a, c, err)
	}
	return a.finishAuth(c, client, ar, signIn)
}

// requestSignIn is the sign-in that completed ar, if this browser holds it.
func (a *App) requestSignIn(c echo.Context, ar *token.AuthRequest) (*experience.SignIn, error) {
	if ar.SessionID == "" {
		return nil, nil
	}
	ck, err := c.Cookie(browserSessionCookie)
	if err != nil {
		return nil, nil
	}
	ctx := c.Request().Context()
	sid, err := a.tokens.BrowserSession(ctx, ck.Value)
	if err != nil || sid != ar.SessionID {
		return nil, err
	}
	signIn, err := a.engine.ActiveSession(ctx, sid)
	if _, ok := fault.As(err); ok {
		return nil, nil
	}
	return signIn, err
}

// orPage renders the error page of an authorization request that cannot go
// on (unknown, expired, finished, or not this browser's).
func orPage(a *App, c echo.Context, err error) error {
	if err != nil {
		return err
	}
	return a.errorPage(c, http.StatusBadRequest, "invalid_request",
		"This sign-in request has expired or was already used. Go back to the application and try again.")
}

// liveAuthRequest loads a live request and its client (nil, nil, nil when
// there is none).
func (a *App) liveAuthRequest(ctx context.Context, id string) (*token.AuthRequest, *token.Client, error) {
	ar, err := a.tokens.AuthRequest(ctx, id)
	if err == token.ErrAuthRequestNotFound {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	client, err := a.tokens.Clients.Lookup(ctx, ar.ClientID)
	if err != nil || client == nil {
		return nil, nil, err
	}
	return ar, client, nil
}

// finishAuth issues the authorization code once consent is settled.
func (a *App) finishAuth(c echo.Context, client *token.Client, ar *token.AuthRequest, signIn *experience.SignIn) error {
	ctx := c.Request().Context()
	if !client.FirstParty {
		ok, err := a.tokens.HasConsent(ctx, signIn.User.ID, client.ID, ar.Scopes())
		if err != nil {
			return err
		}
		if !ok || ar.HasPrompt("consent") {
			if ar.HasPrompt("none") {
				return a.redirectError(c, ar.RedirectURI, ar.State, &authError{"consent_required", "the user must consent"})
			}
			return a.consentPage(c, client, ar)
		}
	}
	code, err := a.tokens.IssueCode(ctx, ar, signIn.User.ID)
	if err == token.ErrAuthRequestNotFound {
		return orPage(a, c, nil)
	}
	if err != nil {
		return err
	}
	return a.redirectBack(c, ar.RedirectURI, url.Values{"code": {code}}, ar.State)
}

// consentDecision is POST /oidc/auth/consent: the consent page's form.
// The form is same-origin only (its Origin is checked) and acts for this
// browser's own sign-in only.
func (a *App) consentDecision(c echo.Context) error {
	if o := c.Request().Header.Get(echo.HeaderOrigin); o == "" || !sameOrigin(o, a.cfg.Issuer) {
		return a.errorPage(c, http.StatusBadRequest, "invalid_request", "This form can only be sent from Latch's own page.")
	}
	ctx := c.Request().Context()
	ar, client, err := a.liveAuthRequest(ctx, c.FormValue("request"))
	if err != nil || ar == nil {
		return orPage(a, c, err)
	}
	signIn, err := a.requestSignIn(c, ar)
	if err != nil || signIn == nil {
		return orPage(a, c, err)
	}
	if c.FormValue("decision") != "allow" {
		return a.redirectError(c, ar.RedirectURI, ar.State, &authError{"access_denied", "the user declined"})
	}
	if err := a.tokens.GrantConsent(ctx, signIn.User.ID, client.ID, ar.Scopes()); err != nil {
		return err
	}
	ar.Prompt = strings.TrimSpace(strings.ReplaceAll(ar.Prompt, "consent", ""))
	return a.finishAuth(c, client, ar, signIn)
}

// restartAuth is GET /oidc/auth/restart?request=…&event=…: a fresh
// interaction for the same authorization request — ForgotPassword from the
// sign-in page (an interaction cannot switch into or out of it, seed 004),
// and SignIn again after it (the redirectTo of its submit).
func (a *App) restartAuth(c echo.Context) error {
	ar, _, err := a.liveAuthRequest(c.Request().Context(), c.QueryParam("request"))
	if err != nil || ar == nil || ar.SessionID != "" {
		return orPage(a, c, err)
	}
	if c.QueryParam("event") == experience.EventForgotPasswordFlow {
		return a.startInteractionFor(c, ar, experience.EventForgotPasswordFlow, "/ui/forgot-password")
	}
	return a.startPageInteraction(c, ar)
}

// redirectError sends an authorization error back to the client.
func (a *App) redirectError(c echo.Context, redirect, state string, e *authError) error {
	return c.Redirect(http.StatusSeeOther, a.errorRedirectURL(redirect, state, e))
}

// errorRedirectURL is the authorization error response's URL.
func (a *App) errorRedirectURL(redirect, state string, e *authError) string {
	return a.responseURL(redirect, url.Values{"error": {e.code}, "error_description": {e.description}}, state)
}

// redirectBack redirects to a registered redirect URI with params, state
// and iss.
func (a *App) redirectBack(c echo.Context, redirect string, params url.Values, state string) error {
	return c.Redirect(http.StatusSeeOther, a.responseURL(redirect, params, state))
}

// responseURL is a registered redirect URI with params, state and iss (RFC
// 9207), keeping the URI's own query. The URI was validated at
// registration, so it parses.
func (a *App) responseURL(redirect string, params url.Values, state string) string {
	u, _ := url.Parse(redirect)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", a.cfg.Issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// setInteractionCookie sets the Experience API's interaction cookie.
func (a *App) setInteractionCookie(c echo.Context, handle string) {
	c.SetCookie(&http.Cookie{Name: interactionCookie, Value: handle, Path: "/api/experience", MaxAge: 3600,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.secureCookies()})
}

func (a *App) secureCookies() bool { return strings.HasPrefix(a.cfg.Issuer, "https://") }

// completePageSubmit finishes a submit of an interaction that an
// authorization request started: the browser gets its session cookie and
// redirectTo (seed 004) — never tokens, which go to the client through the
// code. nil redirect: the interaction is an integrator's own.
func (a *App) completePageSubmit(c echo.Context, ar *token.AuthRequest, signIn *experience.SignIn) (string, error) {
	ctx := c.Request().Context()
	if signIn == nil {
		// A ForgotPassword submit: sign in afresh with the new password.
		return a.cfg.Issuer + "/oidc/auth/restart?request=" + url.QueryEscape(ar.ID), nil
	}
	if err := a.tokens.CompleteAuthRequest(ctx, ar.ID, signIn.Session.ID); err != nil {
		return "", err
	}
	raw, err := a.tokens.StartBrowserSession(ctx, signIn.Session.ID, signIn.User.ID, signIn.Session.ExpiresAt)
	if err != nil {
		return "", err
	}
	c.SetCookie(&http.Cookie{Name: browserSessionCookie, Value: raw, Path: browserSessionPath, Expires: signIn.Session.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.secureCookies()})
	return a.cfg.Issuer + "/oidc/auth/resume?request=" + url.QueryEscape(ar.ID), nil
}

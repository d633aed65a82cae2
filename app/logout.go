package app

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/token"
)

// endSession is GET (and, from its own confirmation page, POST)
// /oidc/session/end: OpenID Connect RP-Initiated Logout 1.0. It ends this
// browser's session — the Latch session and its refresh tokens — and sends
// the browser back to a registered post_logout_redirect_uri, or shows that
// the person is signed out. A redirect URI is only ever followed when it is
// registered for the client the request names (by id_token_hint or
// client_id): anything else is shown as an error, never redirected.
//
// A GET without a valid id_token_hint could come from any site (logout
// CSRF), so it asks the person to confirm; the confirmation is a POST that
// must come from Latch's own origin.
func (a *App) endSession(c echo.Context) error {
	ctx := c.Request().Context()
	params := c.QueryParams()
	if c.Request().Method == http.MethodPost {
		if o := c.Request().Header.Get(echo.HeaderOrigin); o == "" || !sameOrigin(o, a.cfg.Issuer) {
			return a.errorPage(c, http.StatusBadRequest, "invalid_request", "This form can only be sent from Latch's own page.")
		}
		if err := c.Request().ParseForm(); err != nil {
			return a.errorPage(c, http.StatusBadRequest, "invalid_request", "The form could not be read.")
		}
		params = c.Request().PostForm
	}
	for k, v := range params {
		if len(v) > 1 {
			return a.errorPage(c, http.StatusBadRequest, "invalid_request", "The parameter "+k+" is repeated.")
		}
	}
	var hint *token.IDTokenHint
	if raw := params.Get("id_token_hint"); raw != "" {
		h, err := a.tokens.VerifyIDTokenHint(ctx, raw)
		if err != nil {
			return a.errorPage(c, http.StatusBadRequest, "invalid_request", "The id_token_hint is not a valid ID token of this server.")
		}
		hint = h
	}
	clientID := params.Get("client_id")
	if hint != nil {
		if clientID != "" && clientID != hint.ClientID {
			return a.errorPage(c, http.StatusBadRequest, "invalid_request", "client_id does not match the id_token_hint.")
		}
		clientID = hint.ClientID
	}
	redirect := params.Get("post_logout_redirect_uri")
	if redirect != "" {
		client, err := a.tokens.Clients.Lookup(ctx, clientID)
		if err != nil {
			return err
		}
		if clientID == "" || client == nil || !client.HasPostLogoutRedirectURI(redirect) {
			return a.errorPage(c, http.StatusBadRequest, "invalid_request",
				"The post_logout_redirect_uri is not registered for this application.")
		}
	}

	// The browser's own session, if it still has one.
	sid := ""
	if ck, err := c.Cookie(browserSessionCookie); err == nil {
		s, err := a.tokens.BrowserSession(ctx, ck.Value)
		if err != nil {
			return err
		}
		sid = s
	}
	confirmed := c.Request().Method == http.MethodPost || (hint != nil && (sid == "" || hint.SessionID == sid))
	if !confirmed && sid != "" {
		return a.logoutConfirmPage(c, params)
	}
	for _, id := range []string{sid, sessionOf(hint)} {
		if id == "" {
			continue
		}
		if err := a.endSessions(ctx, "logout", id); err != nil {
			return err
		}
		if err := a.tokens.EndBrowserSessions(ctx, id); err != nil {
			return err
		}
	}
	c.SetCookie(&http.Cookie{Name: browserSessionCookie, Value: "", Path: browserSessionPath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.secureCookies()})
	if redirect == "" {
		return a.signedOutPage(c)
	}
	u, err := url.Parse(redirect)
	if err != nil {
		return err
	}
	if state := params.Get("state"); state != "" {
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
	}
	return c.Redirect(http.StatusSeeOther, u.String())
}

// sessionOf is the session an id_token_hint names ("" without one). Only a
// confirmed logout ends it: the hint names the session the client's user
// signed in with.
func sessionOf(h *token.IDTokenHint) string {
	if h == nil {
		return ""
	}
	return h.SessionID
}

package app

import (
	"errors"
	"mime"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// oauthForm parses an application/x-www-form-urlencoded body and refuses
// repeated parameters (RFC 6749 §3.2), except the listed repeatable ones.
func oauthForm(c echo.Context, repeatable ...string) (url.Values, error) {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if ct != "application/x-www-form-urlencoded" {
		return nil, token.OAuthError(token.CodeInvalidRequest, "the body must be application/x-www-form-urlencoded")
	}
	if err := c.Request().ParseForm(); err != nil {
		// A body without Content-Length hits the size limit while being
		// read: keep it a 413, not a malformed form.
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
			return nil, err
		}
		return nil, token.OAuthError(token.CodeInvalidRequest, "the body is not a valid form")
	}
	form := c.Request().PostForm
	ok := map[string]bool{}
	for _, r := range repeatable {
		ok[r] = true
	}
	for k, v := range form {
		if len(v) > 1 && !ok[k] {
			return nil, token.OAuthError(token.CodeInvalidRequest, "parameter "+k+" is repeated")
		}
	}
	return form, nil
}

// authenticateClient authenticates the calling client by client_secret_basic
// or client_secret_post (RFC 6749 §2.3.1); using both is refused.
func (a *App) authenticateClient(c echo.Context, form url.Values) (*token.Client, error) {
	return a.authenticateClientOrPublic(c, form, false)
}

// authenticateClientOrPublic also accepts, with allowPublic, a public
// client (spa, native) that names itself by client_id alone
// (token_endpoint_auth_method none): it has no secret to present, and the
// grants it may use are bound by PKCE or by refresh-token rotation. A
// confidential client can never authenticate that way.
func (a *App) authenticateClientOrPublic(c echo.Context, form url.Values, allowPublic bool) (client *token.Client, err error) {
	defer func() {
		if client != nil {
			c.Set(ctxClient, client) // for the request log line
		}
	}()
	if id := form.Get("client_id"); allowPublic && id != "" && form.Get("client_secret") == "" &&
		c.Request().Header.Get(echo.HeaderAuthorization) == "" {
		found, err := a.tokens.Clients.Lookup(c.Request().Context(), id)
		if err != nil {
			return nil, err
		}
		if found == nil || !found.Public() {
			return nil, token.OAuthError(token.CodeInvalidClient, "client authentication failed")
		}
		return found, nil
	}
	header := c.Request().Header.Get(echo.HeaderAuthorization)
	basicID, basicSecret, hasBasic := c.Request().BasicAuth()
	postID, postSecret := form.Get("client_id"), form.Get("client_secret")
	switch {
	case hasBasic && postSecret != "":
		return nil, token.OAuthError(token.CodeInvalidRequest, "use one client authentication method, not both")
	case hasBasic:
		// The credentials are form-urlencoded inside Basic (RFC 6749 §2.3.1).
		id, err1 := url.QueryUnescape(basicID)
		secret, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, token.OAuthError(token.CodeInvalidClient, "malformed client credentials")
		}
		if postID != "" && postID != id {
			return nil, token.OAuthError(token.CodeInvalidRequest, "client_id does not match the Authorization header")
		}
		return a.tokens.Clients.Authenticate(c.Request().Context(), id, secret)
	case header != "":
		return nil, token.OAuthError(token.CodeInvalidClient, "unsupported client authentication scheme")
	case postID != "" && postSecret != "":
		return a.tokens.Clients.Authenticate(c.Request().Context(), postID, postSecret)
	default:
		return nil, token.OAuthError(token.CodeInvalidClient, "client authentication is required")
	}
}

// noStore marks a response as carrying credentials (RFC 6749 §5.1).
func noStore(c echo.Context) {
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set("Pragma", "no-cache")
}

// tokenEndpoint is POST /oidc/token.
func (a *App) tokenEndpoint(c echo.Context) error {
	noStore(c)
	form, err := oauthForm(c, "resource")
	if err != nil {
		return err
	}
	grant := form.Get("grant_type")
	if grant == "" {
		return token.OAuthError(token.CodeInvalidRequest, "grant_type is required")
	}
	client, err := a.authenticateClientOrPublic(c, form, true)
	if err != nil {
		return err
	}
	grantHandler, ok := a.grants[grant]
	if !ok {
		return token.OAuthError(token.CodeUnsupportedGrantType, "grant_type "+grant+" is not supported")
	}
	resp, err := grantHandler(c, client, form)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, resp)
}

// grantHandler serves one grant type of the token endpoint.
type grantHandler func(c echo.Context, client *token.Client, form url.Values) (any, error)

func (a *App) clientCredentialsGrant(c echo.Context, client *token.Client, form url.Values) (any, error) {
	return a.tokens.ClientCredentials(c.Request().Context(), client, form.Get("scope"), form["resource"])
}

// introspect is POST /oidc/token/introspection (RFC 7662).
func (a *App) introspect(c echo.Context) error {
	noStore(c)
	form, err := oauthForm(c)
	if err != nil {
		return err
	}
	client, err := a.authenticateClient(c, form)
	if err != nil {
		return err
	}
	raw := form.Get("token")
	if raw == "" {
		return token.OAuthError(token.CodeInvalidRequest, "token is required")
	}
	ctx := c.Request().Context()
	res, err := a.tokens.Introspect(ctx, client, raw, form.Get("token_type_hint"))
	if err != nil {
		return err
	}
	// A user's token is active only while its session is (the check
	// userinfo makes); anything else says no more than RFC 7662 §2.2 asks.
	if res.Active && res.SessionID != "" {
		if _, err := a.tokenSession(ctx, res.SessionID, res.Sub); err != nil {
			if _, ok := fault.As(err); !ok {
				return err
			}
			res = &token.Introspection{Active: false}
		}
	}
	return c.JSON(http.StatusOK, res)
}

// revoke is POST /oidc/token/revocation (RFC 7009).
func (a *App) revoke(c echo.Context) error {
	noStore(c)
	form, err := oauthForm(c)
	if err != nil {
		return err
	}
	client, err := a.authenticateClient(c, form)
	if err != nil {
		return err
	}
	raw := form.Get("token")
	if raw == "" {
		return token.OAuthError(token.CodeInvalidRequest, "token is required")
	}
	if err := a.tokens.Revoke(c.Request().Context(), client, raw, form.Get("token_type_hint")); err != nil {
		return err
	}
	return c.NoContent(http.StatusOK)
}

func (a *App) jwks(c echo.Context) error {
	raw, err := a.tokens.Keys.JWKS(c.Request().Context())
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=60")
	return c.Blob(http.StatusOK, "application/jwk-set+json", raw)
}

func (a *App) discovery(c echo.Context) error {
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=300")
	return c.JSON(http.StatusOK, a.tokens.Discovery(c.Request().Context()))
}

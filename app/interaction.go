package app

import (
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/fault"
)

// ctxInteractionClient holds the client an Experience API call acts for:
// the one stored with its interaction.
const ctxInteractionClient = "latch.interaction_client"

// Browser-safety refusals of cookie-authorised calls (/api dialect).
const (
	codeCookieNeedsJSON = "guard.content_type_not_allowed"
	codeOriginForbidden = "guard.origin_not_allowed"
)

// interactionAccess authorises every Experience API call after init by its
// interaction handle alone (seed 004: "No authorization required"): the
// latch_interaction cookie or the Latch-Interaction header. A request that
// also sends a Bearer token must send a valid one (else 401) of the owning
// client (else 404, as for an unknown interaction).
//
// Since the cookie is a credential a browser attaches by itself, a
// state-changing call that carries only the cookie must be one a cross-site
// page cannot forge: Content-Type application/json (an HTML form cannot send
// it without a CORS preflight) and, when the browser names its Origin, an
// origin allowed for the client (the issuer's own, or --allowed-origin). The
// header needs no such check: a page can only set it through CORS.
func (a *App) interactionAccess() echo.MiddlewareFunc {
	bearer := a.requireClientToken()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		authorize := func(c echo.Context) error {
			ctx := c.Request().Context()
			claimed := ""
			if claims := clientToken(c); claims != nil {
				claimed = claims.ClientID
			}
			owner, err := a.engine.InteractionClient(ctx, interactionHandle(c), claimed)
			if err != nil {
				return err
			}
			if claimed == "" && handleFromCookie(c) && unsafeMethod(c.Request().Method) {
				if err := a.checkBrowserCall(c, owner); err != nil {
					return err
				}
			}
			c.Set(ctxInteractionClient, owner)
			return next(c)
		}
		return func(c echo.Context) error {
			if c.Request().Header.Get(echo.HeaderAuthorization) != "" {
				return bearer(authorize)(c)
			}
			return authorize(c)
		}
	}
}

// checkBrowserCall applies the cookie-only rules of interactionAccess.
func (a *App) checkBrowserCall(c echo.Context, clientID string) error {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if ct != echo.MIMEApplicationJSON {
		return fault.New(codeCookieNeedsJSON, http.StatusUnsupportedMediaType,
			"Calls authorised by the interaction cookie must send Content-Type: application/json.")
	}
	origin := c.Request().Header.Get(echo.HeaderOrigin)
	if origin == "" || sameOrigin(origin, a.cfg.Issuer) {
		return nil
	}
	client, err := a.tokens.Clients.Lookup(c.Request().Context(), clientID)
	if err != nil {
		return err
	}
	if client == nil || !client.AllowsOrigin(origin) {
		return fault.New(codeOriginForbidden, http.StatusForbidden, "The origin %q may not use this interaction.", origin)
	}
	return nil
}

// interactionClient is the client an Experience API call acts for.
func interactionClient(c echo.Context) string {
	id, _ := c.Get(ctxInteractionClient).(string)
	return id
}

// handleFromCookie reports whether the handle came from the cookie (no
// Latch-Interaction header).
func handleFromCookie(c echo.Context) bool {
	return strings.TrimSpace(c.Request().Header.Get(interactionHeader)) == ""
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sameOrigin compares an Origin header with the issuer's origin.
func sameOrigin(origin, issuer string) bool {
	u, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	return strings.EqualFold(origin, u.Scheme+"://"+u.Host)
}

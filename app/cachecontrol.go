package app

import "github.com/labstack/echo/v4"

// cacheable are the only responses a cache may keep: public documents that
// carry no secret and no personal data, and that verifiers fetch often.
var cacheable = map[string]bool{
	"/.well-known/openid-configuration": true,
	"/oidc/jwks":                        true,
	"/openapi.yaml":                     true,
}

// noStoreByDefault marks every other response — errors included — as not to
// be stored by any cache (Cache-Control: no-store, RFC 9111 §5.2.2.5; Pragma:
// no-cache for HTTP/1.0 caches, as RFC 6749 §5.1 asks of the token
// endpoint). The /v1 and /api families carry reset tokens, pending session
// ids, TOTP secrets, backup codes, interaction handles, session lists and
// users; /oidc/token, introspection and /oidc/me carry tokens and claims.
// Opting out route by route, rather than in, means a new route is safe
// before anyone thinks about it.
func noStoreByDefault(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !cacheable[c.Request().URL.Path] {
			noStore(c)
		}
		return next(c)
	}
}

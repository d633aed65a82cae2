package app

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// headAsGet answers HEAD on every GET route (RFC 9110 §9.3.2: the same
// status and headers, no body). Echo routes HEAD only where it is
// registered, so the request is routed as a GET and the body discarded. It
// runs before routing (Echo's Pre), so a route without GET still answers
// 405.
func headAsGet(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Method != http.MethodHead {
			return next(c)
		}
		req.Method = http.MethodGet
		res := c.Response()
		res.Writer = headWriter{res.Writer}
		return next(c)
	}
}

// headWriter drops the body of a HEAD response; net/http would too, but it
// no longer knows the request is a HEAD.
type headWriter struct{ http.ResponseWriter }

func (w headWriter) Write(p []byte) (int, error) { return len(p), nil }

// Unwrap lets http.ResponseController reach the connection's writer.
func (w headWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

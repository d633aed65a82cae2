package app

import (
	_ "embed"
	"net/http"
	"sort"

	"github.com/labstack/echo/v4"
)

// openAPISpec is the OpenAPI document of every route registered in routes().
// Tests keep it true: they compare its operations with the server's routes
// and validate real responses against it.
//
//go:embed openapi.yaml
var openAPISpec []byte

// openapi is GET /openapi.yaml.
func (a *App) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openAPISpec)
}

// RouteInfo is one registered route: its method and Echo path pattern
// (":param" placeholders).
type RouteInfo struct {
	Method string
	Path   string
}

// Routes lists the routes the server registers, sorted by path and method.
func (a *App) Routes() []RouteInfo {
	var out []RouteInfo
	for _, r := range a.echo.Routes() {
		out = append(out, RouteInfo{Method: r.Method, Path: r.Path})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

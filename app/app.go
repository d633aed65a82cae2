// Package app is Latch's HTTP layer: the Echo server, routes, middleware,
// handlers and the rendering of errors in each route family's dialect. It
// composes the domain packages and holds no business rules.
package app

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/store"
	"github.com/latch-dev/latch/token"
)

// App is a configured Latch server.
type App struct {
	cfg     config.Config
	log     *slog.Logger
	db      *store.DB
	tokens  *token.Service
	engine  *experience.Engine
	echo    *echo.Echo
	metrics *metrics
	reg     *prometheus.Registry
	grants  map[string]grantHandler
}

// Deps are the collaborators an App is built from.
type Deps struct {
	Config config.Config
	Logger *slog.Logger
	DB     *store.DB
	Tokens *token.Service
	Engine *experience.Engine
}

// New builds the HTTP server around already constructed services.
func New(d Deps) *App {
	a := &App{cfg: d.Config, log: d.Logger, db: d.DB, tokens: d.Tokens, engine: d.Engine, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = newMetrics(a.reg)
	a.grants = map[string]grantHandler{
		token.GrantClientCredentials: a.clientCredentialsGrant,
		token.GrantRefreshToken:      a.refreshTokenGrant,
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	if d.Config.TrustProxy {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	e.Use(withRequestID, a.observe, a.recoverPanics, middleware.BodyLimit(d.Config.BodyLimit))
	a.echo = e
	a.routes()
	return a
}

func (a *App) routes() {
	e := a.echo
	e.GET("/healthz", a.healthz)
	e.GET("/readyz", a.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})))

	e.GET("/.well-known/openid-configuration", a.discovery)
	e.GET("/oidc/jwks", a.jwks)
	e.POST("/oidc/token", a.tokenEndpoint)
	e.POST("/oidc/token/introspection", a.introspect)
	e.POST("/oidc/token/revocation", a.revoke)

	e.GET("/oidc/me", a.userinfo)

	v1 := e.Group("/v1")
	auth := v1.Group("/auth", a.rateLimitByIP())
	auth.GET("/whoami", a.whoami, a.requireClientToken())
	execute := auth.Group("", a.requireClientToken(token.ScopeAuthExecute))
	execute.POST("/password/authenticate", a.passwordAuthenticate)
	execute.POST("/password/reset", a.passwordReset)
	execute.POST("/password/validate", a.passwordValidate)
	execute.POST("/session/authenticate", a.sessionAuthenticate)
	execute.POST("/session/logout", a.sessionLogout)
	execute.POST("/token/refresh", a.tokenRefresh)
	execute.GET("/users/:user_id/sessions", a.userSessions)
	execute.DELETE("/users/:user_id/sessions", a.revokeUserSessions)

	read := v1.Group("", a.requireClientToken(token.ScopeUsersRead))
	write := v1.Group("", a.requireClientToken(token.ScopeUsersWrite))
	read.GET("/users", a.findUser)
	read.GET("/users/:user_id", a.getUser)
	read.GET("/users/:user_id/mfa-factors", a.listFactors)
	write.POST("/users", a.createUser)
	write.PATCH("/users/:user_id", a.updateUser)
	write.DELETE("/users/:user_id", a.deleteUser)
	write.POST("/users/:user_id/password", a.registerPassword)
	write.PUT("/users/:user_id/password", a.replacePassword)
	write.PATCH("/users/:user_id/password/expiration", a.setPasswordExpiration)
	write.POST("/users/:user_id/suspend", a.suspendUser(true))
	write.POST("/users/:user_id/unsuspend", a.suspendUser(false))
	write.POST("/users/:user_id/unlock", a.unlockUser)
	write.DELETE("/users/:user_id/mfa-factors/:factor_id", a.deleteFactor)
	v1.GET("/audit-events", a.auditEvents, a.requireClientToken(token.ScopeManagement))
}

// whoami is GET /v1/auth/whoami: what Latch sees in the caller's
// ClientAccessToken, so a backend can check its credentials and scopes.
func (a *App) whoami(c echo.Context) error {
	claims := clientToken(c)
	return c.JSON(http.StatusOK, map[string]any{
		"client_id":  claims.ClientID,
		"scopes":     claims.Scopes(),
		"audience":   claims.Audience,
		"expires_at": claims.ExpiresAt.Unix(),
	})
}

// Handler returns the HTTP handler (for tests and custom servers).
func (a *App) Handler() http.Handler { return a.echo }

// Serve listens on the configured address until ctx ends, then shuts down
// gracefully, letting in-flight requests finish within the shutdown timeout.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.echo,
		ReadTimeout:       a.cfg.ReadTimeout,
		ReadHeaderTimeout: a.cfg.ReadTimeout,
		WriteTimeout:      a.cfg.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", slog.Duration("timeout", a.cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *App) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (a *App) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := a.db.Ping(ctx); err != nil {
		a.log.Warn("readiness check failed", slog.String("error", err.Error()))
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "database": "ok"})
}

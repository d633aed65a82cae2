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
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latch-dev/latch/config"
	"github.com/latch-dev/latch/credentials"
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
	ops     *opsMetrics
	reg     *prometheus.Registry
	grants  map[string]grantHandler
	outage  *outageLog
	worker  *credentials.HashWorker // nil: hashes run in this process
	// inFlight counts requests being served, for the shutdown report.
	inFlight atomic.Int64
}

// Deps are the collaborators an App is built from.
type Deps struct {
	Config config.Config
	Logger *slog.Logger
	DB     *store.DB
	Tokens *token.Service
	Engine *experience.Engine
	// Gate is the hashing admission gate, exported in the metrics (nil:
	// none).
	Gate *credentials.Gate
	// HashWorker computes the hashes in a process of its own (nil: they
	// run here); /readyz and the metrics report on it.
	HashWorker *credentials.HashWorker
}

// New builds the HTTP server around already constructed services.
func New(d Deps) *App {
	a := &App{cfg: d.Config, log: d.Logger, db: d.DB, tokens: d.Tokens, engine: d.Engine, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = newMetrics(a.reg)
	a.outage = newOutageLog(d.Logger, a.reg, outageSummaryEvery)
	a.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "latch_http_requests_in_flight", Help: "HTTP requests being served.",
	}, func() float64 { return float64(a.inFlight.Load()) }))
	a.ops = newOpsMetrics(a)
	if d.Engine != nil {
		d.Engine.Observe(a.onAudit)
	}
	if w := d.HashWorker; w != nil {
		a.worker = w
		a.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "latch_hash_worker_starts_total", Help: "Hash worker processes started: more than one means one died and was replaced.",
		}, func() float64 { return float64(w.Starts()) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "latch_hash_worker_up", Help: "1 while a hash worker process is running, 0 while sign-ins answer 503 for want of one.",
		}, func() float64 {
			if w.PID() != 0 {
				return 1
			}
			return 0
		}))
	}
	if d.Gate != nil {
		a.reg.MustRegister(newGateCollector(d.Gate))
	}
	a.grants = map[string]grantHandler{
		token.GrantClientCredentials: a.clientCredentialsGrant,
		token.GrantRefreshToken:      a.refreshTokenGrant,
		token.GrantAuthorizationCode: a.authorizationCodeGrant,
	}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.errorHandler
	if d.Config.TrustProxy {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	e.Pre(headAsGet)
	e.Use(a.countInFlight, withRequestID, noStoreByDefault, a.observe, a.recoverPanics, a.withDeadline,
		middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{Limit: d.Config.BodyLimit, Skipper: carriesSAMLResponse}))
	a.echo = e
	a.routes()
	return a
}

func (a *App) routes() {
	e := a.echo
	e.GET("/healthz", a.healthz)
	e.GET("/readyz", a.readyz)
	if a.cfg.MetricsAddr == "" { // else served on its own listener (MetricsHandler)
		e.GET("/metrics", echo.WrapHandler(a.MetricsHandler()))
	}
	e.GET("/openapi.yaml", a.openapi)

	e.GET("/.well-known/openid-configuration", a.discovery)
	e.GET("/.well-known/oauth-authorization-server", a.discovery)
	e.GET("/oidc/jwks", a.jwks)
	e.POST("/oidc/token", a.tokenEndpoint)
	e.POST("/oidc/token/introspection", a.introspect)
	e.POST("/oidc/token/revocation", a.revoke)

	// OIDC Core §5.3.1: userinfo answers GET and POST.
	e.GET("/oidc/me", a.userinfo)
	e.POST("/oidc/me", a.userinfo)

	// Middleware is attached per route, not per group: an Echo group with
	// middleware also claims every unknown path under its prefix, which
	// would turn a 404 or 405 into an auth error.
	limit := a.rateLimitByIP()
	anyClient := []echo.MiddlewareFunc{limit, a.requireClientToken()}
	execute := []echo.MiddlewareFunc{limit, a.requireClientToken(token.ScopeAuthExecute)}
	read := a.requireClientToken(token.ScopeUsersRead)
	write := a.requireClientToken(token.ScopeUsersWrite)
	manage := a.requireClientToken(token.ScopeManagement)

	// OpenID Connect authorization code flow and the hosted pages.
	e.GET("/.well-known/oauth-authorization-server", a.discovery)
	e.GET("/oidc/auth", a.authorize, limit)
	e.GET("/oidc/auth/resume", a.resumeAuth, limit)
	e.GET("/oidc/auth/restart", a.restartAuth, limit)
	e.POST("/oidc/auth/consent", a.consentDecision, limit)
	e.GET("/oidc/session/end", a.endSession, limit)
	e.POST("/oidc/session/end", a.endSession, limit)
	for name := range pageTitles {
		e.GET("/ui/"+name, a.page(name), limit)
	}
	e.GET("/ui/callback", a.callbackPage, limit)
	e.GET("/ui/assets/:name", a.asset)

	e.GET("/v1/auth/whoami", a.whoami, anyClient...)
	e.POST("/v1/auth/password/authenticate", tokenRoute(a, func() *passwordAuthenticateRequest { return &passwordAuthenticateRequest{} }, a.passwordAuthenticate), execute...)
	e.POST("/v1/auth/password/reset", tokenRoute(a, func() *passwordResetRequest { return &passwordResetRequest{} }, a.passwordReset), execute...)
	e.POST("/v1/auth/password/validate", a.passwordValidate, execute...)
	e.POST("/v1/auth/session/authenticate", tokenRoute(a, func() *sessionAuthenticateRequest { return &sessionAuthenticateRequest{} }, a.sessionAuthenticate), execute...)
	e.POST("/v1/auth/session/logout", a.sessionLogout, execute...)
	e.POST("/v1/auth/token/refresh", a.tokenRefresh, execute...)
	e.GET("/v1/auth/users/:user_id/sessions", a.userSessions, limit, read)
	e.DELETE("/v1/auth/users/:user_id/sessions", a.revokeUserSessions, limit, write)
	mfaRoute := func(factor string) echo.HandlerFunc {
		return tokenRoute(a, func() *mfaAuthenticateRequest { return &mfaAuthenticateRequest{factor: factor} }, a.mfaAuthenticate)
	}
	e.POST("/v1/auth/totp/authenticate", mfaRoute(experience.FactorTOTP), execute...)
	e.POST("/v1/auth/backup-code/authenticate", mfaRoute(experience.FactorBackupCode), execute...)
	e.POST("/v1/auth/otp/send", a.otpSend, execute...)
	e.POST("/v1/auth/otp/authenticate", mfaRoute("otp"), execute...)

	e.GET("/v1/users", a.listUsers, read)
	e.GET("/v1/users/:user_id", a.getUser, read)
	e.GET("/v1/users/:user_id/mfa-factors", a.listFactors, read)
	e.POST("/v1/users", a.createUser, write)
	e.PATCH("/v1/users/:user_id", a.updateUser, write)
	e.DELETE("/v1/users/:user_id", a.deleteUser, write)
	e.POST("/v1/users/:user_id/password", a.registerPassword, write)
	e.PUT("/v1/users/:user_id/password", a.replacePassword, write)
	e.PATCH("/v1/users/:user_id/password/expiration", a.setPasswordExpiration, write)
	e.POST("/v1/users/:user_id/suspend", a.suspendUser(true), write)
	e.POST("/v1/users/:user_id/unsuspend", a.suspendUser(false), write)
	e.POST("/v1/users/:user_id/unlock", a.unlockUser, write)
	e.DELETE("/v1/users/:user_id/mfa-factors/:factor_id", a.deleteFactor, write)
	e.GET("/v1/audit-events", a.auditEvents, manage)

	// Management over HTTP: the operations of `latch client|keys|settings`.
	e.POST("/v1/clients", a.createClient, manage)
	e.GET("/v1/clients", a.listClients, manage)
	e.GET("/v1/clients/:client_id", a.getClient, manage)
	e.PATCH("/v1/clients/:client_id", a.updateClient, manage)
	e.DELETE("/v1/clients/:client_id", a.deleteClient, manage)
	e.POST("/v1/clients/:client_id/secret", a.rotateClientSecret, manage)
	e.GET("/v1/keys", a.listKeys, manage)
	e.POST("/v1/keys/rotate", a.rotateKeys, manage)
	e.GET("/v1/settings", a.getSettings, manage)
	e.PATCH("/v1/settings", a.patchSettings, manage)

	// Organizations (B2B): scope management to write, users:read to read.
	e.POST("/v1/organizations", a.createOrganization, manage)
	e.GET("/v1/organizations", a.listOrganizations, read)
	e.GET("/v1/organizations/:org_id", a.getOrganization, read)
	e.PATCH("/v1/organizations/:org_id", a.updateOrganization, manage)
	e.DELETE("/v1/organizations/:org_id", a.deleteOrganization, manage)
	e.POST("/v1/organizations/:org_id/members", a.addMember, manage)
	e.GET("/v1/organizations/:org_id/members", a.listMembers, read)
	e.PUT("/v1/organizations/:org_id/members/:user_id/roles", a.setMemberRoles, manage)
	e.DELETE("/v1/organizations/:org_id/members/:user_id", a.removeMember, manage)
	e.POST("/v1/organization-roles", a.createOrgRole, manage)
	e.GET("/v1/organization-roles", a.listOrgRoles, read)
	e.GET("/v1/organization-roles/:role_id", a.getOrgRole, read)
	e.PATCH("/v1/organization-roles/:role_id", a.updateOrgRole, manage)
	e.DELETE("/v1/organization-roles/:role_id", a.deleteOrgRole, manage)
	e.GET("/v1/users/:user_id/organizations", a.userOrganizations, read)

	const x = "/api/experience"
	e.PUT(x, a.initInteraction, execute...)
	// After init the handle alone authorises (seed 004).
	handle := []echo.MiddlewareFunc{limit, a.interactionAccess()}
	e.PUT(x+"/interaction-event", expRoute(body[eventRequest], a.updateInteractionEvent), handle...)
	e.GET(x+"/interaction", expCall(a.getInteraction), handle...)
	e.POST(x+"/identification", a.identify, handle...)
	e.POST(x+"/submit", a.submitInteraction, handle...)
	e.POST(x+"/profile", expRoute(body[profileBody], a.addProfile), handle...)
	e.PUT(x+"/profile/password", expRoute(body[resetPasswordBody], a.resetProfilePassword), handle...)
	e.GET(x+"/sso-connectors", a.ssoConnectors, limit)
	e.POST(x+"/verification/password", expRoute(body[passwordVerificationRequest], a.passwordVerification), handle...)
	e.POST(x+"/verification/verification-code", expRoute(body[sendCodeRequest], a.sendCode), handle...)
	e.POST(x+"/verification/verification-code/verify", expRoute(body[verifyCodeRequest], a.verifyCode), handle...)
	e.POST(x+"/verification/new-password-identity", expRoute(body[newPasswordIdentityRequest], a.newPasswordIdentity), handle...)
	e.POST(x+"/profile/mfa", expRoute(body[bindMFARequest], a.bindMFA), handle...)
	e.POST(x+"/profile/mfa/mfa-skipped", expCall(a.skipMFA), handle...)
	e.POST(x+"/verification/totp/secret", expCall(a.totpSecret), handle...)
	e.POST(x+"/verification/totp/verify", expRoute(body[totpVerifyRequest], a.totpVerify), handle...)
	e.POST(x+"/verification/backup-code/generate", expCall(a.backupCodesGenerate), handle...)
	e.POST(x+"/verification/backup-code/verify", expRoute(body[codeOnlyRequest], a.backupCodeVerify), handle...)
	e.POST(x+"/verification/mfa-verification-code", expRoute(body[mfaCodeRequest], a.mfaCodeSend), handle...)
	e.POST(x+"/verification/mfa-verification-code/verify", expRoute(func() *mfaCodeRequest { return &mfaCodeRequest{verify: true} }, a.mfaCodeVerify), handle...)
	e.POST(x+"/verification/web-authn/registration", expCall(a.webAuthnStart(true)), handle...)
	e.POST(x+"/verification/web-authn/registration/verify", expRoute(body[webAuthnVerifyRequest], a.webAuthnVerify(true)), handle...)
	e.POST(x+"/verification/web-authn/authentication", expCall(a.webAuthnStart(false)), handle...)
	e.POST(x+"/verification/web-authn/authentication/verify", expRoute(body[webAuthnVerifyRequest], a.webAuthnVerify(false)), handle...)
	// Social and enterprise SSO (issue 13).
	e.POST(x+"/verification/social/:connectorId/authorization-uri", a.upstreamStart(experience.FamilySocial), handle...)
	e.POST(x+"/verification/social/:connectorId/verify", a.upstreamVerify(experience.FamilySocial), handle...)
	e.POST(x+"/verification/sso/:connectorId/authorization-uri", a.upstreamStart(experience.FamilySSO), handle...)
	samlBody := middleware.BodyLimit(a.samlBodyLimit())
	e.POST(x+"/verification/sso/:connectorId/verify", a.upstreamVerify(experience.FamilySSO), append([]echo.MiddlewareFunc{samlBody}, handle...)...)
	// SAML's assertion consumer service and SP metadata: the IdP's post
	// carries no handle (its RelayState names the record).
	e.GET(samlPath+":connectorId/metadata", a.samlMetadata, limit)
	e.POST(samlPath+":connectorId", a.samlACS, samlBody, limit)
	e.POST("/v1/auth/sso/start", a.ssoStart, execute...)
	e.POST("/v1/auth/sso/authenticate", tokenRoute(a, func() *ssoAuthenticateRequest { return &ssoAuthenticateRequest{} }, a.ssoAuthenticate), append([]echo.MiddlewareFunc{samlBody}, execute...)...)
	a.connectorRoutes("/v1/sso-connectors", experience.FamilySSO, manage)
	a.connectorRoutes("/v1/social-connectors", experience.FamilySocial, manage)

	e.POST("/api/verification-codes", a.sendManagementCode, manage)
	e.POST("/api/verification-codes/verify", a.verifyManagementCode, manage)
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

// MetricsHandler serves the Prometheus metrics of this App.
func (a *App) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})
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
	a.log.Info("shutting down", slog.Float64("timeout_ms", float64(a.cfg.ShutdownTimeout.Milliseconds())),
		slog.Int64("requests_in_flight", a.inFlight.Load()))
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	began := time.Now()
	err := srv.Shutdown(sctx)
	drained := err == nil
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		// The drain timed out: say so, and how many requests lose their
		// answer, then cut them (their contexts end, so their database
		// calls stop too).
		a.log.Warn("shutdown drain timed out; cutting the remaining requests",
			slog.Float64("timeout_ms", float64(a.cfg.ShutdownTimeout.Milliseconds())), slog.Int64("requests_cut", a.inFlight.Load()))
		if err := srv.Close(); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	a.log.Info("shutdown complete", slog.Float64("drain_ms", float64(time.Since(began).Microseconds())/1000),
		slog.Bool("drained", drained))
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
	body := map[string]string{"status": "ok", "database": "ok"}
	if a.worker != nil {
		if err := a.worker.Ready(c.Request().Context()); err != nil {
			a.log.Warn("readiness check failed", slog.String("hash_worker", err.Error()))
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "ok", "hash_worker": "down"})
		}
		body["hash_worker"] = "ok"
	}
	return c.JSON(http.StatusOK, body)
}

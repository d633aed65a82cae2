package app

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/latch-dev/latch/buildinfo"
	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// opsMetrics are the operational metrics beyond HTTP traffic, registered on
// the App's own registry like the rest.
type opsMetrics struct {
	signIns      *prometheus.CounterVec
	tokensIssued *prometheus.CounterVec
	refreshReuse prometheus.Counter
	lockouts     prometheus.Counter
}

// signInRoutes are the routes that sign a user in, by method: their
// outcomes are counted by error code.
var signInRoutes = map[string]string{
	"/v1/auth/password/authenticate":        "password",
	"/v1/auth/session/authenticate":         "session",
	"/v1/auth/totp/authenticate":            "totp",
	"/v1/auth/backup-code/authenticate":     "backup_code",
	"/v1/auth/otp/authenticate":             "otp",
	"/v1/auth/password/reset":               "password_reset",
	"/api/experience/verification/password": "experience_password",
}

// tokenRoutes are the routes whose success issues tokens, by grant (the
// token endpoint's grant_type is read from the request).
var tokenRoutes = map[string]string{
	"/v1/auth/password/authenticate":    "password",
	"/v1/auth/session/authenticate":     "session",
	"/v1/auth/totp/authenticate":        "mfa",
	"/v1/auth/backup-code/authenticate": "mfa",
	"/v1/auth/otp/authenticate":         "mfa",
	"/v1/auth/password/reset":           "password_reset",
	"/v1/auth/token/refresh":            token.GrantRefreshToken,
}

func newOpsMetrics(a *App) *opsMetrics {
	m := &opsMetrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_sign_ins_total",
			Help: "Sign-in attempts by method and outcome: success, or the error code answered.",
		}, []string{"method", "outcome"}),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_tokens_issued_total", Help: "Token responses issued, by grant.",
		}, []string{"grant"}),
		refreshReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latch_refresh_token_reuse_total",
			Help: "Replays of an already rotated refresh token detected (each ended its family and session).",
		}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "latch_lockouts_total", Help: "Accounts locked after too many failed sign-ins.",
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "latch_build_info", Help: "Always 1; the labels say which Latch runs.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(buildinfo.Version(), runtime.Version()).Set(1)
	keyAge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "latch_signing_key_age_seconds",
		Help: "Age of the active signing key since it was activated (rotation is due every LATCH_KEY_ROTATION_INTERVAL).",
	}, a.activeKeyAge)
	a.reg.MustRegister(m.signIns, m.tokensIssued, m.refreshReuse, m.lockouts, build)
	if a.tokens != nil {
		a.reg.MustRegister(keyAge)
	}
	if a.db == nil { // an App over no database (unit tests of the HTTP layer)
		return m
	}
	if sqlDB, err := a.db.DB.DB(); err == nil {
		// go_sql_* series: open, in use and idle connections, waits.
		a.reg.MustRegister(collectors.NewDBStatsCollector(sqlDB, string(a.db.Dialect)))
	}
	return m
}

// keyAgeTimeout bounds the signing-key query of a scrape.
const keyAgeTimeout = 250 * time.Millisecond

// activeKeyAge is read at each scrape (one small query). It waits for the
// database at most keyAgeTimeout: during an outage /metrics must still
// answer at once (the gauge then says -1), not after the request deadline,
// which outlasts a scraper's patience (measured in bench/outage: a frozen
// database left every scrape of the freeze unanswered).
func (a *App) activeKeyAge() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), keyAgeTimeout)
	defer cancel()
	keys, err := a.tokens.Keys.List(ctx)
	if err != nil {
		return -1
	}
	for _, k := range keys {
		if k.State == token.KeyActive {
			since := k.CreatedAt
			if k.ActivatedAt != nil {
				since = *k.ActivatedAt
			}
			return time.Since(since).Seconds()
		}
	}
	return -1 // no active key yet
}

// countRequest counts a finished request's sign-in outcome and tokens.
// code is the error code answered, "" on success.
func (m *opsMetrics) countRequest(c echo.Context, route string, status int, code string) {
	if method, ok := signInRoutes[route]; ok && c.Request().Method == "POST" {
		outcome := code
		if status < 400 {
			outcome = "success"
		}
		m.signIns.WithLabelValues(method, outcome).Inc()
	}
	if status >= 300 {
		return
	}
	grant, ok := tokenRoutes[route]
	if route == "/oidc/token" {
		grant, ok = c.Request().PostFormValue("grant_type"), true
	}
	if ok && grant != "" {
		m.tokensIssued.WithLabelValues(grant).Inc()
	}
}

// onAudit hears the engine's audit events: lockouts and refresh-token
// reuse are counted and logged at WARN, for alerting (the audit log holds
// the details).
func (a *App) onAudit(ctx context.Context, ev experience.AuditEvent) {
	switch ev.Event {
	case experience.EventLockout:
		a.ops.lockouts.Inc()
		idType, _ := ev.Data["identifier_type"].(string)
		a.log.LogAttrs(ctx, slog.LevelWarn, "account locked after repeated failed sign-ins",
			slog.String("event", ev.Event), slog.String("user_id", ev.UserID), slog.String("client_id", ev.ClientID),
			slog.String("identifier_type", idType), slog.Any("lockout_seconds", ev.Data["lockout_seconds"]), slog.String("remote_ip", ev.IPAddress))
	case experience.EventRefreshReuse:
		a.ops.refreshReuse.Inc()
		a.log.LogAttrs(ctx, slog.LevelWarn, "refresh token reused: its family and session were revoked (possible token theft)",
			slog.String("event", ev.Event), slog.String("user_id", ev.UserID), slog.String("client_id", ev.ClientID))
	}
}

// wireCode is the error code as the route's dialect spells it.
func wireCode(c echo.Context, fe *fault.Error) string {
	switch dialectOf(c.Request().URL.Path) {
	case dialectV1:
		_, body := renderV1(fe) // pure: the body's code, nothing written
		code, _ := body["error_code"].(string)
		return code
	case dialectOAuth:
		return strings.TrimPrefix(fe.Code, token.OAuthPrefix)
	}
	return fe.Code
}

package app

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

const (
	headerRequestID = "X-Request-Id"
	ctxRequestID    = "latch.request_id"
	ctxClientToken  = "latch.client_token"
	ctxClient       = "latch.client"
)

// An incoming X-Request-Id is kept only if it is short and plain, so it can
// go into logs unescaped.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// withRequestID gives every request an id, echoed in X-Request-Id.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(headerRequestID)
		if !validRequestID.MatchString(id) {
			id = credentials.RandomToken(12)
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(headerRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// metrics are the HTTP metrics of one App (no global registry: two Apps in
// one process, as in tests, do not collide).
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "latch_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe logs and measures each request. It logs the route pattern, never
// the query string, headers or body, so secrets cannot reach the log.
func (a *App) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		var fe *fault.Error
		if err != nil {
			fe, _ = toFault(err)
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		elapsed := time.Since(start)
		a.metrics.requests.WithLabelValues(c.Request().Method, route, strconv.Itoa(status)).Inc()
		a.metrics.latency.WithLabelValues(c.Request().Method, route).Observe(elapsed.Seconds())
		code := ""
		if fe != nil {
			code = wireCode(c, fe)
		}
		a.ops.countRequest(c, route, status, code)
		level := slog.LevelInfo
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		ctx := c.Request().Context()
		if !a.log.Enabled(ctx, level) {
			return nil
		}
		attrs := []slog.Attr{
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Request().Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote_ip", c.RealIP()),
		}
		if client, _ := c.Get(ctxClient).(*token.Client); client != nil {
			attrs = append(attrs, slog.String("client_id", client.ID))
		}
		if code != "" {
			attrs = append(attrs, slog.String("error_code", code))
		}
		if a.log.Enabled(ctx, slog.LevelDebug) {
			// Debug says why a request failed (the message the caller got:
			// written for callers, it holds no secret) and its sizes.
			if fe != nil && fe.Status < 500 {
				attrs = append(attrs, slog.String("error_message", fe.Message))
			}
			attrs = append(attrs, slog.Int64("bytes_in", c.Request().ContentLength),
				slog.Int64("bytes_out", c.Response().Size), slog.String("user_agent", c.Request().UserAgent()))
		}
		a.log.LogAttrs(ctx, level, "request", attrs...)
		return nil
	}
}

// countInFlight counts the requests being served (for the shutdown report
// and the latch_http_requests_in_flight gauge).
func (a *App) countInFlight(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a.inFlight.Add(1)
		defer a.inFlight.Add(-1)
		return next(c)
	}
}

// withDeadline gives every request the configured deadline. It travels in
// the request context down to the database driver, so a database that
// stops answering costs a request LATCH_REQUEST_TIMEOUT at most: the call
// fails (pgx discards its connection), and the answer is a 503.
func (a *App) withDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	if a.cfg.RequestTimeout <= 0 {
		return next
	}
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), a.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

// recoverPanics turns a panic into a logged 500 in the route's dialect.
func (a *App) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

// requireClientToken guards Latch's own APIs: a Bearer ClientAccessToken for
// Latch's API audience, of a client that still exists and has not revoked
// it, carrying every listed scope.
func (a *App) requireClientToken(scopes ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			raw, ok := bearerToken(c)
			if !ok {
				return a.bearerRequired(c, token.ErrInvalidClientToken("a Bearer ClientAccessToken is required"))
			}
			claims, client, err := a.tokens.VerifyClientToken(c.Request().Context(), raw, a.tokens.Options().APIResource)
			if err != nil {
				return a.bearerChallenge(c, err)
			}
			for _, sc := range scopes {
				if !claims.HasScope(sc) {
					c.Response().Header().Set(echo.HeaderWWWAuthenticate,
						fmt.Sprintf(`Bearer realm="latch", error="insufficient_scope", scope="%s"`, strings.Join(scopes, " ")))
					return &fault.Error{Code: token.CodeInsufficientScope, Status: 403,
						Message: fmt.Sprintf("the client token lacks the %q scope", sc)}
				}
			}
			c.Set(ctxClientToken, claims)
			c.Set(ctxClient, client)
			return next(c)
		}
	}
}

// bearerChallenge sets the RFC 6750 challenge on a 401 for a token that
// was presented and is not valid.
func (a *App) bearerChallenge(c echo.Context, err error) error {
	if fe, ok := fault.As(err); ok && fe.Code == token.CodeInvalidClientToken {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate,
			fmt.Sprintf(`Bearer realm="latch", error="invalid_token", error_description=%q`, fe.Message))
	}
	return err
}

// bearerRequired sets the RFC 6750 challenge on a 401 for a request that
// carried no Bearer token at all (none, or another scheme): §3.1 says such
// a challenge holds no error code, since nothing was wrong with a token.
func (a *App) bearerRequired(c echo.Context, err error) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="latch"`)
	return err
}

// clientToken returns the verified ClientAccessToken of a guarded route.
func clientToken(c echo.Context) *token.AccessClaims {
	claims, _ := c.Get(ctxClientToken).(*token.AccessClaims)
	return claims
}

func bearerToken(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return "", false
	}
	raw := strings.TrimSpace(h[7:])
	return raw, raw != ""
}

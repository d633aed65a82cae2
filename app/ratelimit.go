package app

import (
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/latch-dev/latch/fault"
)

// ipLimiter is a per-IP token bucket, the second layer behind the sentinel:
// it slows credential stuffing across many identifiers from one address.
// Buckets live in this process, so with N replicas an address gets up to N
// times the rate; the sentinel's per-identifier limits are the exact ones.
type ipLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newIPLimiter(perSecond float64, burst int) *ipLimiter {
	return &ipLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, swept: time.Now()}
}

// allow takes a token for ip, or says how long to wait for one.
func (l *ipLimiter) allow(ip string) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		// Forget idle addresses so memory stays bounded by recent traffic.
		for k, b := range l.buckets {
			if now.Sub(b.seen) > 5*time.Minute {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[ip]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// rateLimitByIP guards a route group; a zero rate disables it.
func (a *App) rateLimitByIP() echo.MiddlewareFunc {
	if a.cfg.IPRateLimit <= 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	l := newIPLimiter(a.cfg.IPRateLimit, a.cfg.IPRateBurst)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if ok, wait := l.allow(c.RealIP()); !ok {
				return fault.New(fault.CodeRateLimited, http.StatusTooManyRequests, "Too many requests from this address; slow down.").
					Retry(wait)
			}
			return next(c)
		}
	}
}

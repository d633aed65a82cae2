package app

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// unavailableRetryAfter is the Retry-After of a 503 for an unavailable
// database: long enough that retrying clients do not pile onto a database
// that is coming back, short enough that a blip costs them little.
const unavailableRetryAfter = 2 * time.Second

// outageSummaryEvery is how often a continuing outage is summarised in the
// log.
const outageSummaryEvery = 10 * time.Second

// errUnavailable is the client-facing answer to a database that cannot
// serve the request right now. It names no internal detail.
func errUnavailable() *fault.Error {
	return fault.New(fault.CodeUnavailable, http.StatusServiceUnavailable,
		"The service is temporarily unavailable; retry later.").Retry(unavailableRetryAfter)
}

// outageLog reports database unavailability once per burst, not once per
// request: during an outage every request fails the same way, and a line
// per request would bury everything else (the per-request access log still
// records each 503 with its request id). The first failure of a burst is
// logged at once with its error; while failures continue, one summary per
// interval counts them; an interval without failures closes the burst.
type outageLog struct {
	log     *slog.Logger
	every   time.Duration
	counter *prometheus.CounterVec

	mu      sync.Mutex
	open    bool      // a burst is being reported
	started time.Time // when the burst began
	total   int       // failures in the burst
	since   int       // failures since the last line
	reasons map[string]int
	lastErr string
}

func newOutageLog(log *slog.Logger, reg prometheus.Registerer, every time.Duration) *outageLog {
	o := &outageLog{log: log, every: every, reasons: map[string]int{},
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latch_db_unavailable_total",
			Help: "Requests answered 503 because the database was unavailable, by reason (timeout, connection, shutdown, busy).",
		}, []string{"reason"})}
	for _, r := range []string{store.ReasonTimeout, store.ReasonConnection, store.ReasonShutdown, store.ReasonBusy} {
		o.counter.WithLabelValues(r)
	}
	reg.MustRegister(o.counter)
	return o
}

// note records one request that failed because the database is
// unavailable.
func (o *outageLog) note(ctx context.Context, reason, requestID, route string, err error) {
	o.counter.WithLabelValues(reason).Inc()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total++
	o.reasons[reason]++
	o.lastErr = err.Error()
	if o.open {
		o.since++
		return
	}
	o.open, o.started = true, time.Now()
	o.log.ErrorContext(ctx, "database unavailable",
		slog.String("reason", reason), slog.String("request_id", requestID), slog.String("route", route),
		slog.String("error", err.Error()),
		slog.String("note", "further failures are summarised every "+o.every.String()))
	time.AfterFunc(o.every, o.summarise)
}

// summarise writes the summary of the last interval, or closes the burst
// when the interval had no failure.
func (o *outageLog) summarise() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since == 0 {
		o.log.Info("database failures stopped",
			slog.Int("failures", o.total), slog.Duration("burst", time.Since(o.started).Round(time.Millisecond)),
			slog.Any("reasons", o.reasons))
		o.open, o.total, o.reasons = false, 0, map[string]int{}
		return
	}
	o.log.Error("database still unavailable",
		slog.Int("failures", o.since), slog.Duration("interval", o.every),
		slog.Int("failures_in_burst", o.total), slog.Any("reasons", o.reasons),
		slog.String("last_error", o.lastErr))
	o.since = 0
	time.AfterFunc(o.every, o.summarise)
}

package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latch-dev/latch/credentials"
)

// gateCollector exports the hashing admission gate's state and counters,
// read from the gate at scrape time (the gate keeps them; credentials
// stays free of Prometheus).
type gateCollector struct {
	gate *credentials.Gate

	limit, running, runningUnits, queued, queuedUnits *prometheus.Desc
	overloaded, meanHash, busy, admitted, cancelled   *prometheus.Desc
	refusals, wait                                    *prometheus.Desc
}

func newGateCollector(g *credentials.Gate) *gateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("latch_hash_gate_"+name, help, labels, nil)
	}
	return &gateCollector{
		gate:         g,
		limit:        d("limit_units", "Limits of the hashing gate, in units of one standard hash: concurrency (running at once) and queue (waiting).", "limit"),
		running:      d("running", "Password hashes running now (in flight)."),
		runningUnits: d("running_units", "Units of the budget held by running hashes."),
		queued:       d("queued", "Requests waiting for a hash slot now."),
		queuedUnits:  d("queued_units", "Units of the queue held by waiting requests."),
		overloaded:   d("overloaded", "1 while the gate is in overload mode (the queue overflowed within the last drain time): newest served first, stale waiters refused."),
		meanHash:     d("mean_hash_seconds", "Moving average of one hash's duration, which sizes the queue's drain time."),
		busy:         d("busy_unit_seconds_total", "Unit-seconds of the budget held by finished hashes; its rate over limit_units{limit=\"concurrency\"} is the share of the budget hashing."),
		admitted:     d("admitted_total", "Requests admitted to hash."),
		cancelled:    d("cancelled_total", "Requests whose context ended while waiting for a hash slot."),
		refusals:     d("refusals_total", "Requests refused with 503 server_busy by the hashing gate, by reason: queue_full (at once), overload (a stale waiter under overload), timeout (the wait bound passed).", "reason"),
		wait:         d("wait_seconds", "Time admitted requests waited for a hash slot."),
	}
}

func (c *gateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.limit, c.running, c.runningUnits, c.queued, c.queuedUnits,
		c.overloaded, c.meanHash, c.busy, c.admitted, c.cancelled, c.refusals, c.wait} {
		ch <- d
	}
}

func (c *gateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.gate.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.limit, float64(s.Concurrency), "concurrency")
	gauge(c.limit, float64(s.Queue), "queue")
	gauge(c.running, float64(s.Running))
	gauge(c.runningUnits, float64(s.RunningUnits))
	gauge(c.queued, float64(s.Waiting))
	gauge(c.queuedUnits, float64(s.WaitingUnits))
	overloaded := 0.0
	if s.Overloaded {
		overloaded = 1
	}
	gauge(c.overloaded, overloaded)
	gauge(c.meanHash, s.MeanRun.Seconds())
	ch <- prometheus.MustNewConstMetric(c.busy, prometheus.CounterValue, s.Busy)
	counter(c.admitted, s.Admitted)
	counter(c.cancelled, s.Cancelled)
	for reason, n := range s.Refused {
		counter(c.refusals, n, reason)
	}
	buckets := make(map[float64]uint64, len(credentials.GateWaitBuckets))
	var cum uint64
	for i, ub := range credentials.GateWaitBuckets {
		cum += s.WaitCounts[i]
		buckets[ub] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.wait, s.WaitCount, s.WaitSum, buckets)
}

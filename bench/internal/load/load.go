// Package load drives HTTP load for Latch's benchmark commands: closed loops
// (N workers back to back, to find saturation) and open loops (a fixed
// arrival rate, to measure latency at a given load without coordinated
// omission). Every run is bounded in time and stops by itself.
package load

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Outcome is one request's result.
type Outcome struct {
	Status  int
	Latency time.Duration
	Err     error
}

// Result aggregates a run.
type Result struct {
	Elapsed  time.Duration
	byStatus map[int][]time.Duration
	Errors   int
}

func newResult() *Result { return &Result{byStatus: map[int][]time.Duration{}} }

func (r *Result) add(o Outcome) {
	if o.Err != nil {
		r.Errors++
		return
	}
	r.byStatus[o.Status] = append(r.byStatus[o.Status], o.Latency)
}

// Count returns how many requests ended with status (0: all statuses).
func (r *Result) Count(status int) int {
	if status != 0 {
		return len(r.byStatus[status])
	}
	n := 0
	for _, l := range r.byStatus {
		n += len(l)
	}
	return n
}

// CountBelow returns how many requests ended with status within d.
func (r *Result) CountBelow(status int, d time.Duration) int {
	n := 0
	for _, l := range r.byStatus[status] {
		if l <= d {
			n++
		}
	}
	return n
}

// Rate returns requests per second that ended with status (0: all).
func (r *Result) Rate(status int) float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Count(status)) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile (0..100) latency of requests that
// ended with status (0: all).
func (r *Result) Percentile(status int, p float64) time.Duration {
	var l []time.Duration
	if status != 0 {
		l = append(l, r.byStatus[status]...)
	} else {
		for _, s := range r.byStatus {
			l = append(l, s...)
		}
	}
	if len(l) == 0 {
		return 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	idx := int(float64(len(l)-1) * p / 100)
	return l[idx]
}

// Statuses summarises the status counts, e.g. "200×1234 503×56".
func (r *Result) Statuses() string {
	keys := make([]int, 0, len(r.byStatus))
	for k := range r.byStatus {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%d×%d ", k, len(r.byStatus[k]))
	}
	if r.Errors > 0 {
		s += fmt.Sprintf("errors×%d", r.Errors)
	}
	return s
}

// Closed runs workers that each send requests back to back for d: no
// request starts after d, and those in flight then are waited for and
// counted, with Elapsed running until the last one ends — as a hashing loop
// that finishes its last hash is timed. Cutting them off instead would
// throw away the work already done on them and understate the rate of a
// short run by up to a request per worker.
func Closed(ctx context.Context, workers int, d time.Duration, do func(ctx context.Context, worker int) Outcome) *Result {
	res := newResult()
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				o := do(ctx, w)
				if ctx.Err() != nil && o.Err != nil {
					return // cut off by the caller: not a real error
				}
				mu.Lock()
				res.add(o)
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// Merge adds the requests and the elapsed time of o to r: one result of
// several runs of the same load.
func (r *Result) Merge(o *Result) {
	for status, l := range o.byStatus {
		r.byStatus[status] = append(r.byStatus[status], l...)
	}
	r.Errors += o.Errors
	r.Elapsed += o.Elapsed
}

// NewResult returns an empty result to Merge runs into.
func NewResult() *Result { return newResult() }

// Open sends requests at a fixed rate for d, each on its own goroutine, at
// most maxInFlight at once (beyond that, arrivals count as errors, which
// keeps the generator bounded). Latency is measured from the scheduled
// arrival time, so a slow server cannot hide queueing from the figures.
func Open(ctx context.Context, perSecond float64, d time.Duration, maxInFlight int, do func(ctx context.Context) Outcome) *Result {
	res := newResult()
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	interval := time.Duration(float64(time.Second) / perSecond)
	start := time.Now()
	n := int(d.Seconds() * perSecond)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		select {
		case sem <- struct{}{}:
		default:
			mu.Lock()
			res.Errors++
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(at time.Time) {
			defer wg.Done()
			defer func() { <-sem }()
			o := do(ctx)
			o.Latency = time.Since(at)
			mu.Lock()
			res.add(o)
			mu.Unlock()
		}(at)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

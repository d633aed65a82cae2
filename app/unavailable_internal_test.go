package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latch-dev/latch/store"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(b.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// A burst of failures is logged once at its start, then summarised per
// interval, then closed by a quiet interval; every failure is counted in
// the metric; a later failure starts a new burst.
func TestOutageLogOncePerBurst(t *testing.T) {
	var buf syncBuffer
	reg := prometheus.NewRegistry()
	o := newOutageLog(slog.New(slog.NewJSONHandler(&buf, nil)), reg, 50*time.Millisecond)
	cause := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	for i := 0; i < 5; i++ {
		o.note(context.Background(), store.ReasonConnection, "req", "/v1/users", cause)
	}
	if n := len(buf.lines("database unavailable")); n != 1 {
		t.Fatalf("%d lines for the burst's start, want 1", n)
	}
	if n := counterValue(t, reg, "latch_db_unavailable_total", store.ReasonConnection); n != 5 {
		t.Fatalf("counter = %v, want 5", n)
	}
	waitFor(t, func() bool { return len(buf.lines("database failures stopped")) == 1 })
	summarised := 0.0
	for _, l := range buf.lines("database still unavailable") {
		summarised += l["failures"].(float64)
		if !strings.Contains(l["last_error"].(string), "connection refused") {
			t.Errorf("summary without the last error: %v", l)
		}
	}
	if summarised != 4 {
		t.Errorf("summaries count %v failures after the first, want 4", summarised)
	}
	if end := buf.lines("database failures stopped")[0]; end["failures"] != float64(5) {
		t.Errorf("end of burst: %v, want failures 5", end)
	}

	o.note(context.Background(), store.ReasonTimeout, "req", "/v1/users", context.DeadlineExceeded)
	if n := len(buf.lines("database unavailable")); n != 2 {
		t.Fatalf("a failure after the burst ended: %d start lines, want 2", n)
	}
	waitFor(t, func() bool { return len(buf.lines("database failures stopped")) == 2 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
	}
}

// counterValue reads the series of a counter whose one label has value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

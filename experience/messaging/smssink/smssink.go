// Package smssink runs a real HTTP server (net/http/httptest) that receives
// Latch's SMS webhook and checks it the way a production receiver should:
// POST, JSON, a valid X-Latch-Signature over X-Latch-Timestamp and the raw
// body (messaging.VerifyWebhookSignature). Tests of the phone flows point
// LATCH_SMS_WEBHOOK_URL at it and read the code from what it received.
//
//	sink := smssink.Start(t, secret)
//	cfg.SMSWebhookURL, cfg.SMSWebhookSecret = sink.URL(), secret
//	... trigger a code ...
//	code := sink.WaitFor(t, "+14155550123", 5*time.Second).Code
//
// Requests that fail a check are answered 4xx and counted by Rejected, not
// recorded. The server stops when the test ends.
package smssink

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/latch-dev/latch/experience/messaging"
)

// SMS is one accepted webhook request.
type SMS struct {
	To        string
	Purpose   string
	Code      string
	Message   string
	ExpiresIn int64 // seconds
	// Delivery is the X-Latch-Delivery header (the same for every retry of
	// one message).
	Delivery string
	// Timestamp is the X-Latch-Timestamp header.
	Timestamp string
}

// Sink is a running webhook receiver.
type Sink struct {
	secret string
	srv    *httptest.Server

	mu       sync.Mutex
	msgs     []SMS
	consumed map[string]int
	arrived  chan struct{}
	rejected int
	failN    int
	failCode int
	requests int
}

// maxBody bounds a request body; a real SMS payload is a few hundred bytes.
const maxBody = 64 << 10

// Start runs a receiver that verifies requests with secret until t ends.
func Start(t testing.TB, secret string) *Sink {
	t.Helper()
	s := &Sink{secret: secret, consumed: map[string]int{}, arrived: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the LATCH_SMS_WEBHOOK_URL that reaches this sink.
func (s *Sink) URL() string { return s.srv.URL + "/sms" }

// FailNext makes the next n valid requests answer status (e.g. 503) without
// being recorded, to exercise the sender's retries.
func (s *Sink) FailNext(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, status
}

// WaitFor returns the next SMS to `to` (exact match) not yet returned by
// WaitFor, waiting up to timeout; it fails the test on timeout. One SMS per
// call, in arrival order. Call it from the test goroutine.
func (s *Sink) WaitFor(t testing.TB, to string, timeout time.Duration) SMS {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		n := 0
		for _, m := range s.msgs {
			if m.To != to {
				continue
			}
			if n == s.consumed[to] {
				s.consumed[to]++
				s.mu.Unlock()
				return m
			}
			n++
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-deadline.C:
			s.mu.Lock()
			total, rejected := len(s.msgs), s.rejected
			s.mu.Unlock()
			t.Fatalf("smssink: no new SMS to %s within %s (accepted %d in all, rejected %d)", to, timeout, total, rejected)
			return SMS{}
		}
	}
}

// Count is the number of SMS accepted for `to`, whether or not WaitFor
// returned them.
func (s *Sink) Count(to string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if m.To == to {
			n++
		}
	}
	return n
}

// Messages returns a copy of every accepted SMS, in arrival order.
func (s *Sink) Messages() []SMS {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMS(nil), s.msgs...)
}

// Rejected is the number of requests refused for a bad method, content
// type, signature or body.
func (s *Sink) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// Requests is the number of requests received, accepted or not.
func (s *Sink) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	// The injected failure is decided when the request is counted, under
	// one lock: a test that waits for a request and then arms FailNext for
	// the next one cannot change the fate of the request already in flight.
	s.mu.Lock()
	s.requests++
	injected := 0
	if s.failN > 0 {
		s.failN--
		injected = s.failCode
	}
	s.mu.Unlock()
	reject := func(status int, msg string) {
		s.mu.Lock()
		s.rejected++
		s.mu.Unlock()
		http.Error(w, msg, status)
	}
	if r.Method != http.MethodPost {
		reject(http.StatusMethodNotAllowed, "POST only")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reject(http.StatusUnsupportedMediaType, "application/json only")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		reject(http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	ts := r.Header.Get(messaging.HeaderTimestamp)
	if err := messaging.VerifyWebhookSignature(s.secret, ts, body, r.Header.Get(messaging.HeaderSignature),
		messaging.DefaultSignatureMaxAge, time.Now()); err != nil {
		reject(http.StatusUnauthorized, err.Error())
		return
	}
	var p messaging.WebhookPayload
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || dec.More() || p.To == "" || p.Purpose == "" || p.Code == "" || p.Message == "" || p.ExpiresIn <= 0 {
		reject(http.StatusBadRequest, "bad payload")
		return
	}

	if injected != 0 {
		http.Error(w, "injected failure", injected)
		return
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, SMS{
		To: p.To, Purpose: p.Purpose, Code: p.Code, Message: p.Message, ExpiresIn: p.ExpiresIn,
		Delivery: r.Header.Get(messaging.HeaderDelivery), Timestamp: ts,
	})
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

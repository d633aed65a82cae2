package messaging

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testSecret = "whsec-0123456789abcdef0123456789"

// newSMS builds the SMS connector for url with fast backoff.
func newSMS(t *testing.T, url string, mod ...func(*Config)) (*webhookSender, *logBuffer) {
	t.Helper()
	log, buf := newLogger()
	cfg := Config{Env: EnvProduction, SMSWebhookURL: url, SMSWebhookSecret: testSecret, Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s, ok := c.SMS.(*webhookSender)
	if !ok {
		t.Fatalf("sms connector = %v", c.Describe())
	}
	s.backoff = func(int) time.Duration { return 10 * time.Millisecond }
	return s, buf
}

// received is one request as a receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server that verifies every request like a
// production receiver and answers with status(n) for the n-th request.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []received
	status func(n int) int
}

func startReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{t: t, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, received{header: req.Header.Clone(), body: body})
		n := len(r.reqs)
		r.mu.Unlock()
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
		}
		if err := VerifyWebhookSignature(testSecret, req.Header.Get(HeaderTimestamp), body, req.Header.Get(HeaderSignature), time.Minute, time.Now()); err != nil {
			t.Errorf("request %d: %v", n, err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(r.status(n))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func TestWebhookDeliversSignedJSON(t *testing.T) {
	rc := startReceiver(t, func(int) int { return http.StatusOK })
	sms, logs := newSMS(t, rc.srv.URL+"/hooks/sms?tenant=acme")
	for _, purpose := range Purposes() {
		code := randomCode(t)
		if err := sms.Send(context.Background(), Message{To: "+14155550123", Purpose: purpose, Code: code, ExpiresIn: 10 * time.Minute}); err != nil {
			t.Fatalf("%s: %v", purpose, err)
		}
		reqs := rc.requests()
		req := reqs[len(reqs)-1]

		// Exactly the documented fields.
		var fields map[string]any
		if err := json.Unmarshal(req.body, &fields); err != nil {
			t.Fatal(err)
		}
		if len(fields) != 5 {
			t.Errorf("%s: fields %v", purpose, fields)
		}
		var p WebhookPayload
		if err := json.Unmarshal(req.body, &p); err != nil {
			t.Fatal(err)
		}
		tmpl := defaultTemplates[purpose].Text
		wantMsg := strings.NewReplacer("{{.Code}}", code, expiryPhrase, "It expires in 10 minutes.").Replace(tmpl)
		if p.To != "+14155550123" || p.Purpose != purpose || p.Code != code || p.ExpiresIn != 600 || p.Message != wantMsg {
			t.Errorf("%s: payload %+v, want message %q", purpose, p, wantMsg)
		}

		// The signature, recomputed independently of SignWebhook.
		ts := req.header.Get(HeaderTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Second {
			t.Errorf("%s: timestamp %q", purpose, ts)
		}
		mac := hmac.New(sha256.New, []byte(testSecret))
		mac.Write([]byte(ts + "." + string(req.body)))
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); req.header.Get(HeaderSignature) != want {
			t.Errorf("%s: signature %q, want %q", purpose, req.header.Get(HeaderSignature), want)
		}
		if req.header.Get(HeaderDelivery) == "" {
			t.Errorf("%s: no delivery id", purpose)
		}
		assertNoSecrets(t, logs.String(), code, testSecret)
	}
}

func TestWebhookRetries5xxThenDelivers(t *testing.T) {
	rc := startReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	sms, logs := newSMS(t, rc.srv.URL)
	code := randomCode(t)
	if err := sms.Send(context.Background(), Message{To: "+14155550123", Purpose: PurposeSignIn, Code: code, ExpiresIn: time.Minute}); err != nil {
		t.Fatalf("not delivered after retries: %v", err)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d attempts, want 3", len(reqs))
	}
	id := reqs[0].header.Get(HeaderDelivery)
	for i, r := range reqs {
		if r.header.Get(HeaderDelivery) != id || string(r.body) != string(reqs[0].body) {
			t.Errorf("attempt %d: delivery %q body %s differ from the first", i+1, r.header.Get(HeaderDelivery), r.body)
		}
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("retries not logged: %s", logs)
	}
	assertNoSecrets(t, logs.String(), code, testSecret)
}

func TestWebhookGivesUpAfterRetries(t *testing.T) {
	rc := startReceiver(t, func(int) int { return http.StatusBadGateway })
	sms, _ := newSMS(t, rc.srv.URL, func(c *Config) { c.Retries = 3 })
	err := sms.Send(context.Background(), Message{To: "+14155550123", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "502") || errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v", err)
	}
	if n := len(rc.requests()); n != 4 {
		t.Fatalf("%d attempts, want 1 + 3 retries", n)
	}
}

func TestWebhookRetriesDisabled(t *testing.T) {
	rc := startReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	sms, _ := newSMS(t, rc.srv.URL, func(c *Config) { c.Retries = -1 })
	if err := sms.Send(context.Background(), Message{To: "+1", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute}); err == nil {
		t.Fatal("no error")
	}
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

func TestWebhook4xxIsFinal(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusFound} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if status == http.StatusFound {
					http.Redirect(w, r, "/elsewhere", status)
					return
				}
				// A careless receiver echoing the request: must not reach the error.
				body, _ := io.ReadAll(r.Body)
				w.WriteHeader(status)
				_, _ = w.Write(body)
			}))
			t.Cleanup(srv.Close)
			sms, _ := newSMS(t, srv.URL)
			err := sms.Send(context.Background(), Message{To: "+14155550123", Purpose: PurposeSignIn, Code: "987654", ExpiresIn: time.Minute})
			if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), strconv.Itoa(status)) {
				t.Fatalf("err = %v, want ErrRejected with the status", err)
			}
			if strings.Contains(err.Error(), "987654") {
				t.Errorf("error contains the code: %v", err)
			}
			if n := hits.Load(); n != 1 {
				t.Fatalf("%d requests, want 1 (no retry, no redirect)", n)
			}
		})
	}
}

// hangingHTTP reads the request and never answers, until the client gives
// up or the test ends.
func hangingHTTP(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice a client hang-up
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first
	return srv, &hits
}

func TestWebhookTimeoutPerAttempt(t *testing.T) {
	srv, hits := hangingHTTP(t)
	sms, _ := newSMS(t, srv.URL, func(c *Config) { c.Timeout = 200 * time.Millisecond; c.Retries = 1 })
	start := time.Now()
	err := sms.Send(context.Background(), Message{To: "+14155550123", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if hits.Load() != 2 {
		t.Errorf("%d attempts, want 2 (timeouts are retried)", hits.Load())
	}
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("took %s for 2 attempts of 200ms", took)
	}
}

func TestWebhookRespectsContext(t *testing.T) {
	srv, hits := hangingHTTP(t)
	sms, _ := newSMS(t, srv.URL, func(c *Config) { c.Timeout = 30 * time.Second; c.Retries = 5 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := sms.Send(ctx, Message{To: "+14155550123", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s with a 300ms context", took)
	}
	if hits.Load() != 1 {
		t.Errorf("%d attempts after the context ended, want 1", hits.Load())
	}
}

func TestWebhookContextEndsBackoff(t *testing.T) {
	rc := startReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	sms, _ := newSMS(t, rc.srv.URL)
	sms.backoff = func(int) time.Duration { return time.Hour }
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := sms.Send(ctx, Message{To: "+14155550123", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestWebhookTransportErrorsAreRetried(t *testing.T) {
	addr := closedPort(t)
	sms, _ := newSMS(t, "http://user:basic-secret@"+addr+"/path?token=query-secret")
	err := sms.Send(context.Background(), Message{To: "+14155550123", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "attempt 3 of 3") {
		t.Fatalf("err = %v, want 3 attempts", err)
	}
	for _, s := range []string{"basic-secret", "query-secret", "/path", "123456"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
}

func TestWebhookInvalidMessage(t *testing.T) {
	rc := startReceiver(t, func(int) int { return http.StatusOK })
	sms, _ := newSMS(t, rc.srv.URL)
	for _, m := range []Message{
		{Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute},
		{To: "+1", Purpose: "Nope", Code: "123456", ExpiresIn: time.Minute},
		{To: "+1", Purpose: PurposeSignIn, ExpiresIn: time.Minute},
		{To: "+1", Purpose: PurposeSignIn, Code: "123456"},
	} {
		if err := sms.Send(context.Background(), m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%+v: err = %v", m, err)
		}
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestVerifyWebhookSignature(t *testing.T) {
	now := time.Unix(1_767_225_600, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"to":"+14155550123","purpose":"SignIn","code":"123456","message":"m","expires_in":600}`)
	// Computed independently: printf '%s' "$ts.$body" | openssl dgst -sha256 -hmac key
	mac := hmac.New(sha256.New, []byte("key"))
	mac.Write([]byte(ts + "." + string(body)))
	vector := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := SignWebhook("key", ts, body); got != vector {
		t.Fatalf("SignWebhook = %s, want %s", got, vector)
	}
	old := strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)
	future := strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10)
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-2] = '1'

	tests := []struct {
		name, secret, ts string
		body             []byte
		sig              string
		maxAge           time.Duration
		want             error
	}{
		{"valid", "key", ts, body, vector, time.Minute, nil},
		{"valid upper-case hex", "key", ts, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(vector, "sha256=")), time.Minute, nil},
		{"default max age", "key", ts, body, vector, 0, nil},
		{"wrong secret", "other", ts, body, vector, time.Minute, ErrInvalidSignature},
		{"empty secret", "", ts, body, vector, time.Minute, ErrInvalidSignature},
		{"tampered body", "key", ts, tampered, vector, time.Minute, ErrInvalidSignature},
		{"timestamp changed", "key", strconv.FormatInt(now.Unix()+1, 10), body, vector, time.Minute, ErrInvalidSignature},
		{"missing prefix", "key", ts, body, strings.TrimPrefix(vector, "sha256="), time.Minute, ErrInvalidSignature},
		{"other algorithm", "key", ts, body, "sha1=" + strings.TrimPrefix(vector, "sha256="), time.Minute, ErrInvalidSignature},
		{"not hex", "key", ts, body, "sha256=zz", time.Minute, ErrInvalidSignature},
		{"truncated", "key", ts, body, vector[:len(vector)-2], time.Minute, ErrInvalidSignature},
		{"empty signature", "key", ts, body, "", time.Minute, ErrInvalidSignature},
		{"empty timestamp", "key", "", body, vector, time.Minute, ErrInvalidSignature},
		{"signed timestamp", "key", "+" + ts, body, SignWebhook("key", "+"+ts, body), time.Minute, ErrInvalidSignature},
		{"non-numeric timestamp", "key", "yesterday", body, SignWebhook("key", "yesterday", body), time.Minute, ErrInvalidSignature},
		{"replayed (old)", "key", old, body, SignWebhook("key", old, body), 5 * time.Minute, ErrStaleSignature},
		{"from the future", "key", future, body, SignWebhook("key", future, body), 5 * time.Minute, ErrStaleSignature},
		{"old but within window", "key", old, body, SignWebhook("key", old, body), 15 * time.Minute, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyWebhookSignature(tc.secret, tc.ts, tc.body, tc.sig, tc.maxAge, now)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	b := exponentialBackoff(250*time.Millisecond, 5*time.Second)
	for n, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		got := b(n)
		if got < want || got > want+want/4 {
			t.Errorf("backoff(%d) = %s, want %s..%s", n, got, want, want+want/4)
		}
	}
	if got := b(200); got < 5*time.Second || got > 6250*time.Millisecond {
		t.Errorf("backoff(200) = %s", got)
	}
}

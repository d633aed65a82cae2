package messaging

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers.
const (
	HeaderTimestamp = "X-Latch-Timestamp"
	HeaderSignature = "X-Latch-Signature"
	HeaderDelivery  = "X-Latch-Delivery"
)

// DefaultSignatureMaxAge is the replay window VerifyWebhookSignature uses
// when called with maxAge <= 0.
const DefaultSignatureMaxAge = 5 * time.Minute

// signaturePrefix names the algorithm, so another one can be added later
// without ambiguity.
const signaturePrefix = "sha256="

// Errors returned by VerifyWebhookSignature.
var (
	// ErrInvalidSignature: missing or malformed headers, or a signature that
	// does not match the body and timestamp.
	ErrInvalidSignature = errors.New("messaging: invalid webhook signature")
	// ErrStaleSignature: the signature is authentic but its timestamp is
	// outside the allowed window (a replay, or a badly skewed clock).
	ErrStaleSignature = errors.New("messaging: webhook timestamp outside the allowed window")
)

// WebhookPayload is the JSON body of an SMS webhook request.
type WebhookPayload struct {
	To        string `json:"to"`
	Purpose   string `json:"purpose"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	ExpiresIn int64  `json:"expires_in"`
}

// SignWebhook returns the X-Latch-Signature value for body signed at
// timestamp (the X-Latch-Timestamp value): "sha256=" + hex(HMAC-SHA256(
// secret, timestamp + "." + body)).
func SignWebhook(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhookSignature checks a webhook request the way a receiver should:
// timestamp is the X-Latch-Timestamp header, signature the X-Latch-Signature
// header, body the raw request body. The request must have been signed
// within maxAge of now (either direction; maxAge <= 0 means
// DefaultSignatureMaxAge). It returns nil, or an error wrapping
// ErrInvalidSignature or ErrStaleSignature.
func VerifyWebhookSignature(secret string, timestamp string, body []byte, signature string, maxAge time.Duration, now time.Time) error {
	if secret == "" {
		return fmt.Errorf("%w: no secret configured", ErrInvalidSignature)
	}
	if maxAge <= 0 {
		maxAge = DefaultSignatureMaxAge
	}
	if timestamp == "" || len(timestamp) > 18 || strings.Trim(timestamp, "0123456789") != "" {
		return fmt.Errorf("%w: %s must be Unix seconds", ErrInvalidSignature, HeaderTimestamp)
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s must be Unix seconds", ErrInvalidSignature, HeaderTimestamp)
	}
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(signature), signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: %s must start with %q", ErrInvalidSignature, HeaderSignature, signaturePrefix)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not a hex SHA-256 HMAC", ErrInvalidSignature, HeaderSignature)
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(SignWebhook(secret, timestamp, body), signaturePrefix))
	if !hmac.Equal(got, want) {
		return fmt.Errorf("%w: signature mismatch", ErrInvalidSignature)
	}
	age := now.Sub(time.Unix(ts, 0))
	if age > maxAge || age < -maxAge {
		return fmt.Errorf("%w: signed %s ago, allowed %s", ErrStaleSignature, age.Round(time.Second), maxAge)
	}
	return nil
}

// maxResponseDrain bounds how much of a webhook response is read (and
// discarded) so the connection can be reused.
const maxResponseDrain = 64 << 10

// webhookSender posts signed JSON to LATCH_SMS_WEBHOOK_URL.
type webhookSender struct {
	endpoint  *url.URL
	secret    string
	templates templateSet
	timeout   time.Duration
	retries   int
	// backoff is the wait before retry n (0-based).
	backoff func(n int) time.Duration
	now     func() time.Time
	client  *http.Client
	log     *slog.Logger
}

func newWebhookSender(raw, secret string, templates templateSet, timeout time.Duration, retries int, log *slog.Logger) (*webhookSender, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("messaging: LATCH_SMS_WEBHOOK_URL: %s", fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error would repeat the URL, credentials included
		}
		return nil, bad("not a valid URL (%v)", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, bad("scheme must be http:// or https://, got %q", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, bad("missing host")
	}
	if u.Fragment != "" {
		return nil, bad("must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, bad("port must be 1-65535, got %q", p)
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	return &webhookSender{
		endpoint:  u,
		secret:    secret,
		templates: templates,
		timeout:   timeout,
		retries:   retries,
		backoff:   exponentialBackoff(250*time.Millisecond, 5*time.Second),
		now:       time.Now,
		client: &http.Client{
			Transport: transport,
			// A redirect would re-send the code to wherever the receiver
			// points; treat it as a final answer instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		log: log,
	}, nil
}

// exponentialBackoff waits base, 2·base, 4·base… capped at ceiling, plus up
// to 25% random jitter so many replicas retrying a recovering receiver do not
// arrive in lockstep.
func exponentialBackoff(base, ceiling time.Duration) func(n int) time.Duration {
	return func(n int) time.Duration {
		d := ceiling
		if n < bits.Len64(uint64(ceiling/base)) {
			d = min(base<<n, ceiling)
		}
		return d + time.Duration(mrand.Int64N(int64(d)/4+1))
	}
}

// Kind implements Sender.
func (s *webhookSender) Kind() string { return KindWebhook }

// describeEndpoint names the receiver in logs and errors without userinfo,
// path or query, any of which may carry a credential.
func (s *webhookSender) describeEndpoint() string {
	return s.endpoint.Scheme + "://" + s.endpoint.Host
}

// attemptError is one failed attempt and whether it is worth retrying.
type attemptError struct {
	err       error
	retryable bool
}

// Send posts m, retrying network errors, timeouts and 5xx answers with
// backoff. Each attempt is bounded by the configured timeout; ctx bounds
// the whole send, backoff waits included.
func (s *webhookSender) Send(ctx context.Context, m Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	_, text, err := s.templates.render(m)
	if err != nil {
		return fmt.Errorf("messaging: webhook: %s message: %w", m.Purpose, err)
	}
	expires := int64(m.ExpiresIn / time.Second)
	if expires < 1 {
		expires = 1
	}
	body, err := json.Marshal(WebhookPayload{To: m.To, Purpose: m.Purpose, Code: m.Code, Message: text, ExpiresIn: expires})
	if err != nil {
		return fmt.Errorf("messaging: webhook: encode %s message: %w", m.Purpose, err)
	}
	delivery := rand.Text()

	prefix := fmt.Sprintf("messaging: webhook: send %s message to %s", m.Purpose, s.describeEndpoint())
	attempts := s.retries + 1
	start := time.Now()
	for n := 0; ; n++ {
		ae := s.attempt(ctx, body, delivery)
		if ae == nil {
			s.log.DebugContext(ctx, "message sent", slog.String("connector", KindWebhook), slog.String("purpose", m.Purpose),
				slog.Int("attempt", n+1), slog.Float64("took_ms", float64(time.Since(start).Microseconds())/1000))
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(ae.err, cerr) {
				return fmt.Errorf("%s: attempt %d of %d: %w", prefix, n+1, attempts, ae.err)
			}
			return fmt.Errorf("%s: attempt %d of %d: %w: %w", prefix, n+1, attempts, cerr, ae.err)
		}
		if !ae.retryable || n+1 >= attempts {
			s.log.WarnContext(ctx, "message not sent", slog.String("connector", KindWebhook), slog.String("purpose", m.Purpose),
				slog.Int("attempt", n+1), slog.String("error", ae.err.Error()))
			return fmt.Errorf("%s: attempt %d of %d: %w", prefix, n+1, attempts, ae.err)
		}
		wait := s.backoff(n)
		s.log.WarnContext(ctx, "webhook attempt failed, retrying", slog.String("connector", KindWebhook), slog.String("purpose", m.Purpose),
			slog.Int("attempt", n+1), slog.Float64("retry_in_ms", float64(wait.Microseconds())/1000), slog.String("error", ae.err.Error()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: waiting to retry after attempt %d of %d (%v): %w", prefix, n+1, attempts, ae.err, ctx.Err())
		case <-t.C:
		}
	}
}

// attempt makes one signed POST. The response body is drained and dropped:
// a receiver's error page might echo the request, code included.
func (s *webhookSender) attempt(ctx context.Context, body []byte, delivery string) *attemptError {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return &attemptError{err: fmt.Errorf("build request: %w", err)}
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Latch-Webhook/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, SignWebhook(s.secret, ts, body))
	req.Header.Set(HeaderDelivery, delivery)

	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL: its userinfo, path or query may be secret
		}
		if cerr := actx.Err(); cerr != nil && !errors.Is(err, cerr) {
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %s: %w", s.timeout, err)
		}
		return &attemptError{err: err, retryable: true}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500:
		return &attemptError{err: fmt.Errorf("receiver answered %s", resp.Status), retryable: true}
	default:
		return &attemptError{err: fmt.Errorf("%w: receiver answered %s", ErrRejected, resp.Status)}
	}
}

// isLoopbackHost reports whether host names this machine.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

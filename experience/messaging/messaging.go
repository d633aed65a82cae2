// Package messaging delivers one-time verification codes to people, by email
// (SMTP) and by SMS (an HTTP webhook the operator points at their SMS
// provider), with a log-only development connector for machines that have
// neither.
//
// The Experience engine decides *whether* and *what* to send (it creates,
// throttles and verifies codes); this package only renders a message from a
// per-purpose template and hands it to the configured transport. It keeps no
// state between calls, so any number of Latch replicas can share one
// configuration.
//
// Secrets stay out of the logs: neither the code nor SMTP credentials nor the
// webhook secret ever appear in a log line or in an error returned by Send.
// The one deliberate exception is the development connector, whose whole
// purpose is to print the code for a developer; New refuses it in production.
//
// # SMS webhook protocol
//
// Latch does not speak any SMS provider's API. It POSTs each SMS to the
// operator's endpoint (LATCH_SMS_WEBHOOK_URL), which forwards it to the
// provider of their choice. One request per message:
//
//	POST <LATCH_SMS_WEBHOOK_URL>
//	Content-Type: application/json
//	X-Latch-Timestamp: 1767225600
//	X-Latch-Signature: sha256=5f1c...e9
//	X-Latch-Delivery: 5UJ7QKX2M4RZ3N6VQH2TL7W4YA
//
//	{"to":"+14155550123","purpose":"SignIn","code":"123456",
//	 "message":"Your sign-in code is 123456. It expires in 10 minutes. ...",
//	 "expires_in":600}
//
// "message" is the rendered text of the purpose's template (send it as is,
// or build your own from "code"); "expires_in" is in seconds.
//
// Verifying a request (VerifyWebhookSignature does all of this):
//  1. X-Latch-Timestamp is the Unix time, in seconds, when Latch signed the
//     request. Reject it if it is further than a few minutes (we suggest 5)
//     from your clock: this bounds how long a captured request can be
//     replayed.
//  2. X-Latch-Signature is "sha256=" followed by the lower-case hex
//     HMAC-SHA256, keyed with LATCH_SMS_WEBHOOK_SECRET, of the timestamp
//     header value, a ".", and the raw request body bytes exactly as
//     received (do not re-encode the JSON). Compare in constant time.
//  3. Answer 2xx once the SMS is accepted. A 5xx (or no answer within the
//     timeout) makes Latch retry with a fresh timestamp and signature; a
//     4xx or a redirect is final and reported as a failed send.
//
// X-Latch-Delivery is the same for every retry of one message, so a receiver
// can drop duplicates (a retry after a timeout may follow a request that did
// in fact succeed). It is not covered by the signature: use it only to
// deduplicate, never to authorise.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"
)

// Purposes of a message. Each purpose has its own template, so the person
// reading the message knows why they received a code.
const (
	PurposeSignIn          = "SignIn"
	PurposeRegister        = "Register"
	PurposeForgotPassword  = "ForgotPassword"
	PurposeGeneric         = "Generic"
	PurposeMfaVerification = "MfaVerification"
)

// Purposes lists every purpose, in a stable order.
func Purposes() []string {
	return []string{PurposeSignIn, PurposeRegister, PurposeForgotPassword, PurposeGeneric, PurposeMfaVerification}
}

// Environments, as in LATCH_ENV.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Connector kinds returned by Sender.Kind and shown by Connectors.Describe.
const (
	KindSMTP          = "smtp"
	KindWebhook       = "webhook"
	KindDev           = "dev"
	KindNotConfigured = "not configured"
)

// Defaults applied by New when the Config leaves a field at its zero value.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 2
)

// Errors returned (wrapped) by Send. Transport failures that may succeed on a
// later try (network errors, timeouts, 5xx after the retries) are returned
// wrapped with context but without a sentinel; errors.Is(err,
// context.DeadlineExceeded) and errors.Is(err, context.Canceled) hold when the
// context or the per-attempt timeout ended the send.
var (
	// ErrInvalidMessage means the Message itself is unusable (unknown
	// purpose, empty or malformed recipient, empty code, non-positive
	// expiry). It is a caller bug or bad input, never a transport problem.
	ErrInvalidMessage = errors.New("messaging: invalid message")
	// ErrRejected means the receiving side refused the message permanently
	// (an SMTP 5xx reply, a webhook 4xx or redirect): retrying the same
	// message will not help.
	ErrRejected = errors.New("messaging: message rejected by the receiver")
)

// Message is one code to deliver. To is an email address for the email
// connector and a phone number (E.164, e.g. +14155550123) for SMS.
type Message struct {
	To        string
	Purpose   string
	Code      string
	ExpiresIn time.Duration
}

// Sender delivers messages over one channel.
//
// Send must be safe for concurrent use. It honours ctx (cancellation and
// deadline) on top of its own per-attempt timeout, and its errors never
// contain the code.
type Sender interface {
	Send(ctx context.Context, m Message) error
	// Kind names the transport: "smtp", "webhook" or "dev".
	Kind() string
}

// Connectors holds the configured senders; nil Email or SMS means "not
// configured" (the engine answers 501 connector.not_found for that channel).
type Connectors struct {
	Email Sender
	SMS   Sender
}

// Config configures the connectors. The comments name the setting that
// fills each field; errors from New name the same setting.
type Config struct {
	// Env is LATCH_ENV: "development" or "production" ("" means development).
	Env string
	// SMTPURL is LATCH_SMTP_URL: smtp://[user:pass@]host[:port] (default
	// port 587; STARTTLS when the server offers it) or
	// smtps://[user:pass@]host[:port] (default port 465; implicit TLS).
	// Credentials in the URL enable SMTP AUTH; they are only ever sent over
	// TLS or to a loopback server. ?insecure=1 skips certificate
	// verification and is meant for local test sinks only.
	SMTPURL string
	// SMTPFrom is LATCH_SMTP_FROM: the From address ("Latch
	// <no-reply@example.com>" or a bare address), required with SMTPURL.
	SMTPFrom string
	// SMSWebhookURL is LATCH_SMS_WEBHOOK_URL: an http(s) endpoint receiving
	// one signed JSON POST per SMS (see "SMS webhook protocol" above).
	SMSWebhookURL string
	// SMSWebhookSecret is LATCH_SMS_WEBHOOK_SECRET: the HMAC-SHA256 key
	// signing each webhook request; required with SMSWebhookURL, at least
	// MinWebhookSecretLen bytes.
	SMSWebhookSecret string
	// DevConnector is LATCH_DEV_CONNECTOR: log messages (code included)
	// instead of sending them, for every channel that has no real connector.
	// Refused when Env is production.
	DevConnector bool
	// Templates optionally overrides the subject and/or text per purpose;
	// an empty field keeps the default.
	Templates map[string]Template
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration
	// Retries is how many times the webhook retries after a network error
	// or a 5xx, with exponential backoff (0 means the default 2; a negative
	// value disables retries). SMTP is not retried here: a mail server
	// queues and retries on its own, and a failed dial is reported at once.
	Retries int
}

// MinWebhookSecretLen is the shortest LATCH_SMS_WEBHOOK_SECRET accepted: a
// shorter HMAC key could be guessed offline from one signed request.
const MinWebhookSecretLen = 16

// New validates cfg and builds the connectors it describes. Each
// configuration error names the LATCH_* setting to fix. A nil log discards
// log output.
func New(cfg Config, log *slog.Logger) (*Connectors, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bad := func(setting, format string, args ...any) error {
		return fmt.Errorf("messaging: %s: %s", setting, fmt.Sprintf(format, args...))
	}

	switch cfg.Env {
	case "", EnvDevelopment, EnvProduction:
	default:
		return nil, bad("LATCH_ENV", "must be %q or %q, got %q", EnvDevelopment, EnvProduction, cfg.Env)
	}
	if cfg.DevConnector && cfg.Env == EnvProduction {
		return nil, bad("LATCH_DEV_CONNECTOR", "the dev connector writes codes to the log and is refused when LATCH_ENV=production; configure LATCH_SMTP_URL and/or LATCH_SMS_WEBHOOK_URL instead")
	}
	if cfg.Timeout < 0 {
		return nil, bad("timeout", "must not be negative, got %s", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}

	templates, err := compileTemplates(cfg.Templates)
	if err != nil {
		return nil, err
	}

	c := &Connectors{}
	if strings.TrimSpace(cfg.SMTPURL) != "" {
		if strings.TrimSpace(cfg.SMTPFrom) == "" {
			return nil, bad("LATCH_SMTP_FROM", "required when LATCH_SMTP_URL is set")
		}
		from, err := mail.ParseAddress(cfg.SMTPFrom)
		if err != nil {
			return nil, bad("LATCH_SMTP_FROM", "not a valid address (%v)", err)
		}
		s, err := newSMTPSender(cfg.SMTPURL, from, templates, cfg.Timeout, log)
		if err != nil {
			return nil, err
		}
		c.Email = s
	}
	if strings.TrimSpace(cfg.SMSWebhookURL) != "" {
		if cfg.SMSWebhookSecret == "" {
			return nil, bad("LATCH_SMS_WEBHOOK_SECRET", "required when LATCH_SMS_WEBHOOK_URL is set")
		}
		if len(cfg.SMSWebhookSecret) < MinWebhookSecretLen {
			return nil, bad("LATCH_SMS_WEBHOOK_SECRET", "must be at least %d bytes (generate one with: openssl rand -hex 32)", MinWebhookSecretLen)
		}
		s, err := newWebhookSender(cfg.SMSWebhookURL, cfg.SMSWebhookSecret, templates, cfg.Timeout, cfg.Retries, log)
		if err != nil {
			return nil, err
		}
		if s.endpoint.Scheme == "http" && cfg.Env == EnvProduction && !isLoopbackHost(s.endpoint.Hostname()) {
			log.Warn("LATCH_SMS_WEBHOOK_URL uses plain http: codes travel unencrypted to the webhook", slog.String("endpoint", s.describeEndpoint()))
		}
		c.SMS = s
	}
	if cfg.DevConnector {
		if c.Email == nil {
			c.Email = &devSender{channel: "email", templates: templates, log: log}
		}
		if c.SMS == nil {
			c.SMS = &devSender{channel: "sms", templates: templates, log: log}
		}
		log.Warn("dev message connector active: verification codes are written to the log", slog.String("email", kindOf(c.Email)), slog.String("sms", kindOf(c.SMS)))
	}
	return c, nil
}

// Describe reports which transport serves each channel, e.g.
// {"email": "smtp", "sms": "not configured"}, for `latch settings show`.
// It never reveals URLs or secrets.
func (c *Connectors) Describe() map[string]string {
	if c == nil {
		return map[string]string{"email": KindNotConfigured, "sms": KindNotConfigured}
	}
	return map[string]string{"email": kindOf(c.Email), "sms": kindOf(c.SMS)}
}

func kindOf(s Sender) string {
	if s == nil {
		return KindNotConfigured
	}
	return s.Kind()
}

// checkMessage validates what every transport needs and renders the text.
func checkMessage(m Message) error {
	if _, ok := defaultTemplates[m.Purpose]; !ok {
		return fmt.Errorf("%w: unknown purpose %q", ErrInvalidMessage, m.Purpose)
	}
	if strings.TrimSpace(m.To) == "" {
		return fmt.Errorf("%w: empty recipient", ErrInvalidMessage)
	}
	if strings.ContainsAny(m.To, "\r\n\x00") {
		return fmt.Errorf("%w: recipient contains control characters", ErrInvalidMessage)
	}
	if m.Code == "" {
		return fmt.Errorf("%w: empty code", ErrInvalidMessage)
	}
	if m.ExpiresIn <= 0 {
		return fmt.Errorf("%w: expiry must be positive", ErrInvalidMessage)
	}
	return nil
}

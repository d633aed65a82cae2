package messaging

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// smtpSender delivers email through an SMTP submission server with
// github.com/wneessen/go-mail. One connection per message: codes are rare
// enough that pooling would only add state (and stale connections) to every
// replica.
type smtpSender struct {
	host        string
	port        int
	implicitTLS bool // smtps://: TLS from the first byte
	tlsConfig   *tls.Config
	user, pass  string
	from        string
	templates   templateSet
	timeout     time.Duration
	log         *slog.Logger
}

// authMechanisms is the order of preference for SMTP AUTH. Challenge-response
// mechanisms come first; PLAIN and LOGIN are refused by the client library
// unless the connection is TLS (or the server is on the loopback), so
// credentials never cross the network in clear text.
var authMechanisms = []gomail.SMTPAuthType{
	gomail.SMTPAuthSCRAMSHA256PLUS, gomail.SMTPAuthSCRAMSHA256,
	gomail.SMTPAuthSCRAMSHA1PLUS, gomail.SMTPAuthSCRAMSHA1,
	gomail.SMTPAuthCramMD5, gomail.SMTPAuthPlain, gomail.SMTPAuthLogin,
}

// newSMTPSender parses LATCH_SMTP_URL. Errors never repeat the URL, which
// may hold a password.
func newSMTPSender(raw string, from *mail.Address, templates templateSet, timeout time.Duration, log *slog.Logger) (*smtpSender, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("messaging: LATCH_SMTP_URL: %s", fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the url.Error would repeat the URL, password included
		}
		return nil, bad("not a valid URL (%v); expected smtp://[user:pass@]host:port or smtps://...", err)
	}
	s := &smtpSender{from: from.String(), templates: templates, timeout: timeout, log: log}
	switch u.Scheme {
	case "smtp":
		s.port = 587
	case "smtps":
		s.port = 465
		s.implicitTLS = true
	default:
		return nil, bad("scheme must be smtp:// or smtps://, got %q", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, bad("missing host; expected %s://[user:pass@]host:port", u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, bad("must not have a path")
	}
	if u.Fragment != "" {
		return nil, bad("must not have a fragment")
	}
	s.host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("port must be 1-65535, got %q", p)
		}
		s.port = n
	}
	if u.User != nil {
		s.user = u.User.Username()
		pass, ok := u.User.Password()
		if s.user == "" || !ok || pass == "" {
			return nil, bad("credentials must be user:password (percent-encode special characters)")
		}
		s.pass = pass
	}
	insecure := false
	for key, values := range u.Query() {
		switch key {
		case "insecure":
			v := values[len(values)-1]
			switch v {
			case "1", "true":
				insecure = true
			case "0", "false", "":
			default:
				return nil, bad("insecure must be 1 or 0, got %q", v)
			}
		default:
			return nil, bad("unknown parameter %q (only insecure=1 is supported)", key)
		}
	}
	s.tlsConfig = &tls.Config{
		ServerName: s.host,
		MinVersion: tls.VersionTLS12,
		// Only for local test sinks with self-signed certificates; the
		// setting says so and New's caller documents it.
		InsecureSkipVerify: insecure, //nolint:gosec // opt-in, test sinks only
	}
	if insecure {
		log.Warn("LATCH_SMTP_URL has insecure=1: the SMTP server's certificate is not verified (use only with local test sinks)")
	}
	// Build one client now so option errors surface at startup.
	if _, err := s.client(s.dial); err != nil {
		return nil, bad("%v", err)
	}
	return s, nil
}

// Kind implements Sender.
func (s *smtpSender) Kind() string { return KindSMTP }

// Send renders m and submits it. The whole attempt (dial, TLS, AUTH,
// transfer) is bounded by the configured timeout and by ctx: cancelling ctx
// closes the connection at once.
func (s *smtpSender) Send(ctx context.Context, m Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return fmt.Errorf("%w: recipient is not an email address", ErrInvalidMessage)
	}
	subject, text, err := s.templates.render(m)
	if err != nil {
		return fmt.Errorf("messaging: smtp: %s message: %w", m.Purpose, err)
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(s.from); err != nil {
		return fmt.Errorf("messaging: smtp: from address: %w", err)
	}
	if err := msg.To(to.Address); err != nil {
		return fmt.Errorf("%w: recipient is not an email address", ErrInvalidMessage)
	}
	msg.Subject(subject)
	msg.SetDate()
	msg.SetMessageID()
	// RFC 3834: tells vacation responders and mailing lists not to answer.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, text)

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// The dialer ties the connection to ctx, so a cancelled request or the
	// attempt timeout interrupts a stalled server mid-conversation.
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	client, err := s.client(func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := s.dial(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		if stop != nil {
			stop()
		}
		stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
		return conn, nil
	})
	if err != nil {
		return fmt.Errorf("messaging: smtp: %w", err)
	}

	start := time.Now()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return s.sendError(ctx, m.Purpose, err)
	}
	s.log.DebugContext(ctx, "message sent", slog.String("connector", KindSMTP), slog.String("purpose", m.Purpose),
		slog.Float64("took_ms", float64(time.Since(start).Microseconds())/1000))
	return nil
}

// client builds a go-mail client for one message (a go-mail Client holds
// per-connection state, so it is not shared between concurrent sends).
func (s *smtpSender) client(dial gomail.DialContextFunc) (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithDialContextFunc(dial),
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tlsConfig.Clone()),
	}
	if s.implicitTLS {
		// The dialer already speaks TLS; STARTTLS inside TLS makes no sense.
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	} else {
		// Opportunistic: STARTTLS whenever the server offers it. Without
		// it, PLAIN/LOGIN AUTH is still refused (see authMechanisms).
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.user != "" {
		opts = append(opts,
			gomail.WithUsername(s.user),
			gomail.WithPassword(s.pass),
			gomail.WithOpportunisticSMTPAuth(authMechanisms...),
		)
	}
	return gomail.NewClient(s.host, opts...)
}

// dial opens the TCP connection and, for smtps://, completes the TLS
// handshake before the SMTP greeting.
func (s *smtpSender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if !s.implicitTLS {
		return conn, nil
	}
	tc := tls.Client(conn, s.tlsConfig.Clone())
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// sendError wraps a delivery failure: ErrRejected for a permanent (5xx)
// SMTP reply, the context's error when ctx or the timeout ended the attempt.
// go-mail's errors carry SMTP replies and addresses, never the body (so
// never the code).
func (s *smtpSender) sendError(ctx context.Context, purpose string, err error) error {
	s.log.WarnContext(ctx, "message not sent", slog.String("connector", KindSMTP), slog.String("purpose", purpose),
		slog.String("error", err.Error()))
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("messaging: smtp: send %s message: %w: %w", purpose, cerr, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection deadline (the same timeout) fired just before ctx's.
		return fmt.Errorf("messaging: smtp: send %s message: no answer within %s: %w: %w", purpose, s.timeout, context.DeadlineExceeded, err)
	}
	if permanentSMTP(err) {
		return fmt.Errorf("messaging: smtp: send %s message: %w: %w", purpose, ErrRejected, err)
	}
	return fmt.Errorf("messaging: smtp: send %s message: %w", purpose, err)
}

// permanentSMTP reports whether err carries a 5xx SMTP reply.
func permanentSMTP(err error) bool {
	var se *gomail.SendError
	if errors.As(err, &se) {
		if c := se.ErrorCode(); c >= 500 && c < 600 {
			return true
		}
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return true
	}
	return false
}

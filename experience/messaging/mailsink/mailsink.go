// Package mailsink runs a real SMTP server (github.com/emersion/go-smtp)
// inside a test process, so tests of the email flows exercise Latch's real
// SMTP connector end to end and read the code from the received message
// instead of stubbing the connector.
//
//	sink := mailsink.Start(t)                       // plain SMTP on 127.0.0.1
//	cfg.SMTPURL, cfg.SMTPFrom = sink.URL(), "Latch <no-reply@latch.test>"
//	... trigger a code ...
//	code := sink.WaitFor(t, "ada@example.com", 5*time.Second).Code
//
// Options add STARTTLS or implicit TLS (a self-signed certificate generated
// per sink; URL() then carries ?insecure=1) and AUTH PLAIN with credentials
// that URL() embeds. The server stops when the test ends.
package mailsink

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one received message, as delivered to one recipient.
type Mail struct {
	// From is the address of the From header ("no-reply@latch.test").
	From string
	// FromName is the display name of the From header, if any.
	FromName string
	// EnvelopeFrom is the MAIL FROM address.
	EnvelopeFrom string
	// To is the envelope recipient (RCPT TO) this copy was delivered to.
	To string
	// HeaderTo is the To header as sent.
	HeaderTo string
	// Subject is the decoded Subject header.
	Subject string
	// Body is the decoded text/plain body, with \n line endings, trimmed.
	Body string
	// Code is the first 6-digit number in Body (or, failing that, in
	// Subject); "" if there is none.
	Code string
	// Header holds every header of the message.
	Header mail.Header
	// TLS reports whether the message travelled over TLS (implicit or
	// STARTTLS).
	TLS bool
	// AuthUser is the user that authenticated the session ("" if none).
	AuthUser string
	// Raw is the message exactly as received.
	Raw []byte
}

// Option configures a sink.
type Option func(*options)

type options struct {
	startTLS    bool
	implicitTLS bool
	user, pass  string
}

// WithStartTLS makes the server offer STARTTLS with a self-signed
// certificate; URL() adds ?insecure=1.
func WithStartTLS() Option { return func(o *options) { o.startTLS = true } }

// WithImplicitTLS makes the server speak TLS from the first byte (smtps://)
// with a self-signed certificate; URL() is smtps://…?insecure=1.
func WithImplicitTLS() Option { return func(o *options) { o.implicitTLS = true } }

// WithAuth requires AUTH PLAIN with these credentials before MAIL FROM;
// URL() embeds them. Without TLS the server still offers AUTH (the client
// only sends PLAIN in clear text to a loopback server, which this is).
func WithAuth(user, pass string) Option {
	return func(o *options) { o.user, o.pass = user, pass }
}

// Sink is a running SMTP server that keeps every message it receives.
type Sink struct {
	opts options
	url  string

	mu       sync.Mutex
	mails    []Mail
	consumed map[string]int // per lower-cased recipient: mails returned by WaitFor
	arrived  chan struct{}  // closed and replaced on every arrival
	authFail int
}

// codeRE finds a verification code.
var codeRE = regexp.MustCompile(`\b\d{6}\b`)

// Start runs a sink on 127.0.0.1 with a free port until t ends.
func Start(t testing.TB, opts ...Option) *Sink {
	t.Helper()
	s := &Sink{consumed: map[string]int{}, arrived: make(chan struct{})}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.startTLS && s.opts.implicitTLS {
		t.Fatalf("mailsink: WithStartTLS and WithImplicitTLS are exclusive")
	}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{sink: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 50
	srv.ErrorLog = quietLogger{}
	// AUTH over plain TCP only when nothing else is possible.
	srv.AllowInsecureAuth = !s.opts.startTLS && !s.opts.implicitTLS

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailsink: listen: %v", err)
	}
	scheme := "smtp"
	query := ""
	if s.opts.startTLS || s.opts.implicitTLS {
		cfg, err := selfSignedTLS()
		if err != nil {
			_ = ln.Close()
			t.Fatalf("mailsink: certificate: %v", err)
		}
		srv.TLSConfig = cfg
		query = "?insecure=1"
		if s.opts.implicitTLS {
			ln = tls.NewListener(ln, cfg)
			scheme = "smtps"
		}
	}
	u := url.URL{Scheme: scheme, Host: ln.Addr().String()}
	if s.opts.user != "" {
		u.User = url.UserPassword(s.opts.user, s.opts.pass)
	}
	s.url = u.String() + query

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		// Close the listener ourselves too: srv.Close only knows the
		// listeners Serve has registered, which it may not have done yet.
		_ = srv.Close()
		_ = ln.Close()
		<-done
	})
	return s
}

// URL is the LATCH_SMTP_URL that reaches this sink, e.g.
// smtp://127.0.0.1:40123 (or smtps://…, with user:pass@ and ?insecure=1 as
// the options require).
func (s *Sink) URL() string { return s.url }

// WaitFor returns the next message to `to` (case-insensitive) not yet
// returned by WaitFor, waiting up to timeout for it to arrive; it fails the
// test on timeout. Messages are returned in arrival order, one per call: a
// test that triggers two sends reads two messages. Call it from the test
// goroutine.
func (s *Sink) WaitFor(t testing.TB, to string, timeout time.Duration) Mail {
	t.Helper()
	key := strings.ToLower(strings.TrimSpace(to))
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		n := 0
		for _, m := range s.mails {
			if strings.ToLower(m.To) != key {
				continue
			}
			if n == s.consumed[key] {
				s.consumed[key]++
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
			t.Fatalf("mailsink: no new message to %s within %s (received so far: %s)", to, timeout, s.summary())
			return Mail{}
		}
	}
}

// Count is the number of messages received for `to` (case-insensitive),
// whether or not WaitFor returned them.
func (s *Sink) Count(to string) int {
	key := strings.ToLower(strings.TrimSpace(to))
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.mails {
		if strings.ToLower(m.To) == key {
			n++
		}
	}
	return n
}

// Messages returns a copy of every message received, in arrival order.
func (s *Sink) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// AuthFailures is the number of rejected AUTH attempts.
func (s *Sink) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFail
}

func (s *Sink) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.mails) == 0 {
		return "nothing"
	}
	counts := map[string]int{}
	var order []string
	for _, m := range s.mails {
		k := strings.ToLower(m.To)
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	parts := make([]string, 0, len(order))
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s×%d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

func (s *Sink) deliver(ms []Mail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mails = append(s.mails, ms...)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// session is one SMTP conversation.
type session struct {
	sink     *Sink
	conn     *smtp.Conn
	authUser string
	from     string
	rcpts    []string
}

var _ smtp.AuthSession = (*session)(nil)

func (x *session) AuthMechanisms() []string {
	if x.sink.opts.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (x *session) Auth(mech string) (sasl.Server, error) {
	if x.sink.opts.user == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if (identity != "" && identity != username) || username != x.sink.opts.user || password != x.sink.opts.pass {
			x.sink.mu.Lock()
			x.sink.authFail++
			x.sink.mu.Unlock()
			return errors.New("invalid credentials")
		}
		x.authUser = username
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.sink.opts.user != "" && x.authUser == "" {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.rcpts = append(x.rcpts, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	base, err := parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "mailsink: unparseable message: " + err.Error()}
	}
	_, base.TLS = x.conn.TLSConnectionState()
	base.AuthUser = x.authUser
	base.EnvelopeFrom = x.from
	ms := make([]Mail, 0, len(x.rcpts))
	for _, rc := range x.rcpts {
		m := base
		m.To = rc
		ms = append(ms, m)
	}
	x.sink.deliver(ms)
	return nil
}

func (x *session) Reset() {
	x.from = ""
	x.rcpts = nil
}

func (x *session) Logout() error { return nil }

// parse decodes the headers and the text/plain body of raw.
func parse(raw []byte) (Mail, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Mail{}, err
	}
	m := Mail{Header: msg.Header, Raw: raw, HeaderTo: msg.Header.Get("To")}
	dec := new(mime.WordDecoder)
	if subj, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		m.Subject = subj
	} else {
		m.Subject = msg.Header.Get("Subject")
	}
	if from, err := msg.Header.AddressList("From"); err == nil && len(from) > 0 {
		m.From, m.FromName = from[0].Address, from[0].Name
	}
	body, err := textBody(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	if err != nil {
		return Mail{}, err
	}
	m.Body = strings.TrimSpace(strings.ReplaceAll(body, "\r\n", "\n"))
	if c := codeRE.FindString(m.Body); c != "" {
		m.Code = c
	} else {
		m.Code = codeRE.FindString(m.Subject)
	}
	return m, nil
}

// textBody returns the first text/plain part (or the whole single-part
// body), transfer-decoded.
func textBody(contentType, encoding string, r io.Reader) (string, error) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if contentType == "" || err != nil {
		mediaType = "text/plain"
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return "", errors.New("no text/plain part")
			}
			if err != nil {
				return "", err
			}
			pt := p.Header.Get("Content-Type")
			pmt, _, _ := mime.ParseMediaType(pt)
			if pt == "" || pmt == "text/plain" || strings.HasPrefix(pmt, "multipart/") {
				return textBody(pt, p.Header.Get("Content-Transfer-Encoding"), p)
			}
		}
	}
	var dr io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		dr = quotedprintable.NewReader(r)
	case "base64":
		dr = base64.NewDecoder(base64.StdEncoding, newlineStripper{r})
	default:
		dr = r
	}
	b, err := io.ReadAll(dr)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// newlineStripper drops CR and LF so base64 bodies with line breaks decode.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// selfSignedTLS makes a throwaway certificate for 127.0.0.1 and localhost.
func selfSignedTLS() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "mailsink"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// quietLogger drops go-smtp's internal error log (clients hanging up
// mid-conversation are normal in tests).
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
func (quietLogger) Println(...any)        {}

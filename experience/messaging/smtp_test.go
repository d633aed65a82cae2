package messaging

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/experience/messaging/mailsink"
)

const testFrom = "Latch <no-reply@latch.test>"

// newEmail builds the email connector for url.
func newEmail(t *testing.T, url string, mod ...func(*Config)) (Sender, *logBuffer) {
	t.Helper()
	log, buf := newLogger()
	cfg := Config{Env: EnvProduction, SMTPURL: url, SMTPFrom: testFrom, Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c.Email == nil || c.Email.Kind() != KindSMTP {
		t.Fatalf("email connector = %v", c.Describe())
	}
	return c.Email, buf
}

// sendEveryPurpose sends one message per purpose through the sink and checks
// what arrived.
func sendEveryPurpose(t *testing.T, sink *mailsink.Sink, email Sender, wantTLS bool, wantUser string) []string {
	t.Helper()
	ctx := context.Background()
	var codes []string
	for _, purpose := range Purposes() {
		to := strings.ToLower(purpose) + "@example.com"
		code := randomCode(t)
		codes = append(codes, code)
		if err := email.Send(ctx, Message{To: to, Purpose: purpose, Code: code, ExpiresIn: 10 * time.Minute}); err != nil {
			t.Fatalf("%s: Send: %v", purpose, err)
		}
		m := sink.WaitFor(t, to, 5*time.Second)
		if m.Code != code {
			t.Errorf("%s: code in mail = %q, want %q (body %q)", purpose, m.Code, code, m.Body)
		}
		if m.From != "no-reply@latch.test" || m.FromName != "Latch" {
			t.Errorf("%s: From = %q <%s>", purpose, m.FromName, m.From)
		}
		if m.EnvelopeFrom != "no-reply@latch.test" {
			t.Errorf("%s: MAIL FROM = %q", purpose, m.EnvelopeFrom)
		}
		if m.To != to || !strings.Contains(m.HeaderTo, to) {
			t.Errorf("%s: To = %q, header %q", purpose, m.To, m.HeaderTo)
		}
		if want := defaultTemplates[purpose].Subject; m.Subject != want {
			t.Errorf("%s: Subject = %q, want %q", purpose, m.Subject, want)
		}
		if !strings.Contains(m.Body, "It expires in 10 minutes.") {
			t.Errorf("%s: body %q lacks the expiry", purpose, m.Body)
		}
		if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: Content-Type = %q, want text/plain", purpose, ct)
		}
		if m.Header.Get("Auto-Submitted") != "auto-generated" || m.Header.Get("Message-Id") == "" || m.Header.Get("Date") == "" {
			t.Errorf("%s: headers %v", purpose, m.Header)
		}
		if m.TLS != wantTLS {
			t.Errorf("%s: TLS = %v, want %v", purpose, m.TLS, wantTLS)
		}
		if m.AuthUser != wantUser {
			t.Errorf("%s: AUTH user = %q, want %q", purpose, m.AuthUser, wantUser)
		}
		if n := sink.Count(to); n != 1 {
			t.Errorf("%s: %d messages, want 1", purpose, n)
		}
	}
	return codes
}

// assertNoSecrets fails if any secret shows up in the log.
func assertNoSecrets(t *testing.T, log string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("log contains secret %q:\n%s", s, log)
		}
	}
}

func TestSMTPPlain(t *testing.T) {
	sink := mailsink.Start(t)
	email, logs := newEmail(t, sink.URL())
	codes := sendEveryPurpose(t, sink, email, false, "")
	assertNoSecrets(t, logs.String(), codes...)
}

func TestSMTPStartTLS(t *testing.T) {
	sink := mailsink.Start(t, mailsink.WithStartTLS())
	if !strings.Contains(sink.URL(), "insecure=1") {
		t.Fatalf("URL %q", sink.URL())
	}
	email, logs := newEmail(t, sink.URL())
	codes := sendEveryPurpose(t, sink, email, true, "")
	assertNoSecrets(t, logs.String(), codes...)
}

func TestSMTPStartTLSWithAuthPlain(t *testing.T) {
	const pass = "p@ss w:rd/é%"
	sink := mailsink.Start(t, mailsink.WithStartTLS(), mailsink.WithAuth("latch-mailer", pass))
	email, logs := newEmail(t, sink.URL())
	codes := sendEveryPurpose(t, sink, email, true, "latch-mailer")
	assertNoSecrets(t, logs.String(), append(codes, pass, "p%40ss")...)
	if sink.AuthFailures() != 0 {
		t.Errorf("auth failures: %d", sink.AuthFailures())
	}
}

func TestSMTPWrongPasswordFailsWithoutLeaking(t *testing.T) {
	sink := mailsink.Start(t, mailsink.WithStartTLS(), mailsink.WithAuth("latch-mailer", "right-password"))
	url := strings.Replace(sink.URL(), "right-password", "wrong-password", 1)
	email, logs := newEmail(t, url)
	code := randomCode(t)
	err := email.Send(context.Background(), Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: code, ExpiresIn: time.Minute})
	if err == nil {
		t.Fatal("sent with a wrong password")
	}
	for _, s := range []string{code, "wrong-password"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
	assertNoSecrets(t, logs.String(), code, "wrong-password")
	if sink.AuthFailures() != 1 || sink.Count("ada@example.com") != 0 {
		t.Errorf("auth failures %d, delivered %d", sink.AuthFailures(), sink.Count("ada@example.com"))
	}
}

func TestSMTPAuthOnLoopbackWithoutTLS(t *testing.T) {
	sink := mailsink.Start(t, mailsink.WithAuth("relay", "relay-secret"))
	email, _ := newEmail(t, sink.URL())
	sendEveryPurpose(t, sink, email, false, "relay")
}

func TestSMTPServerRequiresAuthButURLHasNone(t *testing.T) {
	sink := mailsink.Start(t, mailsink.WithStartTLS(), mailsink.WithAuth("u", "p"))
	url := strings.Replace(sink.URL(), "u:p@", "", 1)
	email, _ := newEmail(t, url)
	err := email.Send(context.Background(), Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("err = %v, want ErrRejected (530 from MAIL FROM)", err)
	}
	if strings.Contains(err.Error(), "123456") {
		t.Errorf("error contains the code: %v", err)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	sink := mailsink.Start(t, mailsink.WithImplicitTLS(), mailsink.WithAuth("latch", "tls-only-secret"))
	if !strings.HasPrefix(sink.URL(), "smtps://") {
		t.Fatalf("URL %q", sink.URL())
	}
	email, logs := newEmail(t, sink.URL())
	codes := sendEveryPurpose(t, sink, email, true, "latch")
	assertNoSecrets(t, logs.String(), append(codes, "tls-only-secret")...)
}

func TestSMTPVerifiesCertificatesByDefault(t *testing.T) {
	for name, opt := range map[string]mailsink.Option{"starttls": mailsink.WithStartTLS(), "smtps": mailsink.WithImplicitTLS()} {
		t.Run(name, func(t *testing.T) {
			sink := mailsink.Start(t, opt)
			url := strings.TrimSuffix(sink.URL(), "?insecure=1")
			email, _ := newEmail(t, url)
			err := email.Send(context.Background(), Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
			if err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("self-signed certificate accepted without insecure=1: %v", err)
			}
			if sink.Count("ada@example.com") != 0 {
				t.Fatal("delivered over an unverified connection")
			}
		})
	}
}

func TestSMTPSmtpsAgainstPlainServerFails(t *testing.T) {
	sink := mailsink.Start(t)
	url := strings.Replace(sink.URL(), "smtp://", "smtps://", 1) + "?insecure=1"
	email, _ := newEmail(t, url, func(c *Config) { c.Timeout = 2 * time.Second })
	start := time.Now()
	err := email.Send(context.Background(), Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if err == nil {
		t.Fatal("smtps:// to a plain server succeeded")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("took %s", time.Since(start))
	}
}

func TestSMTPHangingServerTimesOut(t *testing.T) {
	addr := hangingTCP(t)
	email, _ := newEmail(t, "smtp://"+addr, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	start := time.Now()
	err := email.Send(context.Background(), Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s with a 300ms timeout", took)
	}
}

func TestSMTPRespectsContext(t *testing.T) {
	addr := hangingTCP(t)
	email, _ := newEmail(t, "smtp://"+addr, func(c *Config) { c.Timeout = 30 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := email.Send(ctx, Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s after cancel at 200ms", took)
	}
}

func TestSMTPConnectionRefused(t *testing.T) {
	email, _ := newEmail(t, "smtp://"+closedPort(t))
	err := email.Send(context.Background(), Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute})
	if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("err = %v, want a plain transport error", err)
	}
}

func TestSMTPTemplateOverride(t *testing.T) {
	sink := mailsink.Start(t)
	email, _ := newEmail(t, sink.URL(), func(c *Config) {
		c.Templates = map[string]Template{
			PurposeRegister: {Subject: "Welcome to Acme — code {{.Code}}", Text: "Acme code: {{.Code}}\nValid {{.ExpiresInMinutes}} min."},
			PurposeSignIn:   {Text: "Sign in with {{.Code}}."}, // subject stays the default
		}
	})
	ctx := context.Background()
	if err := email.Send(ctx, Message{To: "new@example.com", Purpose: PurposeRegister, Code: "424242", ExpiresIn: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	m := sink.WaitFor(t, "new@example.com", 5*time.Second)
	if m.Subject != "Welcome to Acme — code 424242" || m.Body != "Acme code: 424242\nValid 5 min." || m.Code != "424242" {
		t.Errorf("override: subject %q body %q code %q", m.Subject, m.Body, m.Code)
	}
	if err := email.Send(ctx, Message{To: "old@example.com", Purpose: PurposeSignIn, Code: "131313", ExpiresIn: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	m = sink.WaitFor(t, "OLD@example.com", 5*time.Second)
	if m.Subject != "Your sign-in code" || m.Body != "Sign in with 131313." {
		t.Errorf("partial override: subject %q body %q", m.Subject, m.Body)
	}
}

func TestSMTPInvalidMessages(t *testing.T) {
	sink := mailsink.Start(t)
	email, _ := newEmail(t, sink.URL())
	for name, m := range map[string]Message{
		"unknown purpose": {To: "a@example.com", Purpose: "Spam", Code: "123456", ExpiresIn: time.Minute},
		"empty purpose":   {To: "a@example.com", Code: "123456", ExpiresIn: time.Minute},
		"empty to":        {Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute},
		"not an address":  {To: "not-an-address", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute},
		"header inject":   {To: "a@example.com\r\nBcc: evil@example.com", Purpose: PurposeSignIn, Code: "123456", ExpiresIn: time.Minute},
		"empty code":      {To: "a@example.com", Purpose: PurposeSignIn, ExpiresIn: time.Minute},
		"no expiry":       {To: "a@example.com", Purpose: PurposeSignIn, Code: "123456"},
	} {
		err := email.Send(context.Background(), m)
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err = %v, want ErrInvalidMessage", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "123456") {
			t.Errorf("%s: error contains the code: %v", name, err)
		}
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("%d messages delivered", n)
	}
}

func TestSMTPConcurrentSends(t *testing.T) {
	sink := mailsink.Start(t, mailsink.WithStartTLS())
	email, _ := newEmail(t, sink.URL())
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- email.Send(context.Background(), Message{To: "many@example.com", Purpose: PurposeGeneric, Code: "55555" + string(rune('0'+i)), ExpiresIn: time.Minute})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range n {
		seen[sink.WaitFor(t, "many@example.com", 5*time.Second).Code] = true
	}
	if len(seen) != n {
		t.Fatalf("codes received: %v", seen)
	}
}

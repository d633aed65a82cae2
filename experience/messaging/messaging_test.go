package messaging

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsBadConfig(t *testing.T) {
	const secret = "0123456789abcdef0123"
	tests := []struct {
		name    string
		cfg     Config
		setting string // the LATCH_* setting the error must name
		never   string // must not appear in the error
	}{
		{"unknown env", Config{Env: "staging"}, "LATCH_ENV", ""},
		{"dev connector in production", Config{Env: EnvProduction, DevConnector: true}, "LATCH_DEV_CONNECTOR", ""},
		{"dev connector in production even with smtp", Config{Env: EnvProduction, DevConnector: true, SMTPURL: "smtp://mail.example.com:587", SMTPFrom: "a@example.com"}, "LATCH_DEV_CONNECTOR", ""},
		{"smtp url not a url", Config{SMTPURL: "smtp://user:hunter2-secret@mail.example.com:notaport", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", "hunter2-secret"},
		{"smtp url wrong scheme", Config{SMTPURL: "http://mail.example.com", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp url without scheme", Config{SMTPURL: "mail.example.com:587", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp url without host", Config{SMTPURL: "smtp://", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp url port zero", Config{SMTPURL: "smtp://mail.example.com:0", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp url port too big", Config{SMTPURL: "smtp://mail.example.com:70000", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp url with path", Config{SMTPURL: "smtp://mail.example.com:587/inbox", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp url unknown parameter", Config{SMTPURL: "smtp://u:topsecret-pw@mail.example.com:587?tls=off", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", "topsecret-pw"},
		{"smtp url bad insecure", Config{SMTPURL: "smtp://mail.example.com:587?insecure=yes", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp user without password", Config{SMTPURL: "smtp://user@mail.example.com:587", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp empty password", Config{SMTPURL: "smtp://user:@mail.example.com:587", SMTPFrom: "a@example.com"}, "LATCH_SMTP_URL", ""},
		{"smtp from missing", Config{SMTPURL: "smtp://mail.example.com:587"}, "LATCH_SMTP_FROM", ""},
		{"smtp from invalid", Config{SMTPURL: "smtp://mail.example.com:587", SMTPFrom: "not an address"}, "LATCH_SMTP_FROM", ""},
		{"webhook url wrong scheme", Config{SMSWebhookURL: "ftp://sms.example.com", SMSWebhookSecret: secret}, "LATCH_SMS_WEBHOOK_URL", ""},
		{"webhook url without host", Config{SMSWebhookURL: "https://", SMSWebhookSecret: secret}, "LATCH_SMS_WEBHOOK_URL", ""},
		{"webhook url not a url", Config{SMSWebhookURL: "https://u:pw-in-url@sms.example.com:x/", SMSWebhookSecret: secret}, "LATCH_SMS_WEBHOOK_URL", "pw-in-url"},
		{"webhook secret missing", Config{SMSWebhookURL: "https://sms.example.com/hook"}, "LATCH_SMS_WEBHOOK_SECRET", ""},
		{"webhook secret too short", Config{SMSWebhookURL: "https://sms.example.com/hook", SMSWebhookSecret: "short-secret"}, "LATCH_SMS_WEBHOOK_SECRET", "short-secret"},
		{"unknown template purpose", Config{Templates: map[string]Template{"Welcome": {Text: "hi"}}}, "templates", ""},
		{"template syntax", Config{Templates: map[string]Template{PurposeSignIn: {Text: "{{.Code"}}}, "templates", ""},
		{"template unknown field", Config{Templates: map[string]Template{PurposeRegister: {Subject: "{{.User}}"}}}, "templates", ""},
		{"negative timeout", Config{Timeout: -time.Second}, "timeout", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg, nil)
			if err == nil {
				t.Fatalf("accepted: %v", c.Describe())
			}
			if !strings.Contains(err.Error(), tc.setting) {
				t.Errorf("error %q does not name %s", err, tc.setting)
			}
			if tc.never != "" && strings.Contains(err.Error(), tc.never) {
				t.Errorf("error %q leaks %q", err, tc.never)
			}
		})
	}
}

func TestNewAcceptsAndDescribes(t *testing.T) {
	const secret = "0123456789abcdef0123"
	tests := []struct {
		name string
		cfg  Config
		want map[string]string
	}{
		{"nothing", Config{}, map[string]string{"email": "not configured", "sms": "not configured"}},
		{"nothing in production", Config{Env: EnvProduction}, map[string]string{"email": "not configured", "sms": "not configured"}},
		{"smtp", Config{SMTPURL: "smtp://mail.example.com", SMTPFrom: "no-reply@example.com"}, map[string]string{"email": "smtp", "sms": "not configured"}},
		{"smtps with credentials", Config{SMTPURL: "smtps://u%40x:p%2Fw@mail.example.com:465", SMTPFrom: "Latch <no-reply@example.com>"}, map[string]string{"email": "smtp", "sms": "not configured"}},
		{"webhook", Config{Env: EnvProduction, SMSWebhookURL: "https://sms.example.com/hook", SMSWebhookSecret: secret}, map[string]string{"email": "not configured", "sms": "webhook"}},
		{"both", Config{Env: EnvProduction, SMTPURL: "smtp://mail.example.com:2525", SMTPFrom: "a@example.com", SMSWebhookURL: "http://127.0.0.1:9000/sms", SMSWebhookSecret: secret}, map[string]string{"email": "smtp", "sms": "webhook"}},
		{"dev only", Config{Env: EnvDevelopment, DevConnector: true}, map[string]string{"email": "dev", "sms": "dev"}},
		{"dev fills the gap", Config{DevConnector: true, SMTPURL: "smtp://mail.example.com", SMTPFrom: "a@example.com"}, map[string]string{"email": "smtp", "sms": "dev"}},
		{"dev fills the other gap", Config{DevConnector: true, SMSWebhookURL: "https://sms.example.com", SMSWebhookSecret: secret}, map[string]string{"email": "dev", "sms": "webhook"}},
		{"from without url is ignored", Config{SMTPFrom: "a@example.com", SMSWebhookSecret: secret}, map[string]string{"email": "not configured", "sms": "not configured"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Describe(); !maps.Equal(got, tc.want) {
				t.Errorf("Describe() = %v, want %v", got, tc.want)
			}
			if (c.Email == nil) != (tc.want["email"] == KindNotConfigured) || (c.SMS == nil) != (tc.want["sms"] == KindNotConfigured) {
				t.Errorf("nil senders do not match Describe: %+v", c)
			}
		})
	}
	var nilConnectors *Connectors
	if got := nilConnectors.Describe(); got["email"] != KindNotConfigured || got["sms"] != KindNotConfigured {
		t.Errorf("nil Describe() = %v", got)
	}
}

func TestNewDefaultsAndParsing(t *testing.T) {
	c, err := New(Config{
		SMTPURL:       "smtps://mailer%40example.com:p%2Fss%3Aword@mail.example.com?insecure=0",
		SMTPFrom:      "Latch <no-reply@example.com>",
		SMSWebhookURL: "https://sms.example.com/hook", SMSWebhookSecret: "0123456789abcdef0123",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Email.(*smtpSender)
	if s.host != "mail.example.com" || s.port != 465 || !s.implicitTLS || s.user != "mailer@example.com" || s.pass != "p/ss:word" ||
		s.tlsConfig.InsecureSkipVerify || s.timeout != DefaultTimeout {
		t.Errorf("smtps parsed as %+v", s)
	}
	w := c.SMS.(*webhookSender)
	if w.timeout != DefaultTimeout || w.retries != DefaultRetries {
		t.Errorf("webhook timeout %s retries %d", w.timeout, w.retries)
	}

	c, err = New(Config{SMTPURL: "smtp://mail.example.com?insecure=1", SMTPFrom: "a@example.com", Timeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s = c.Email.(*smtpSender)
	if s.port != 587 || s.implicitTLS || !s.tlsConfig.InsecureSkipVerify || s.timeout != time.Second || s.user != "" {
		t.Errorf("smtp parsed as %+v", s)
	}
}

// logRecords parses JSON log lines.
func logRecords(t *testing.T, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestDevConnectorLogsTheCode(t *testing.T) {
	log, buf := newLogger()
	c, err := New(Config{Env: EnvDevelopment, DevConnector: true}, log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "dev message connector active") {
		t.Errorf("no startup warning: %s", buf)
	}
	ctx := context.Background()
	if err := c.Email.Send(ctx, Message{To: "ada@example.com", Purpose: PurposeSignIn, Code: "314159", ExpiresIn: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := c.SMS.Send(ctx, Message{To: "+14155550123", Purpose: PurposeMfaVerification, Code: "271828", ExpiresIn: 5 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	var sent []map[string]any
	for _, r := range logRecords(t, buf.String()) {
		if r["msg"] == "message (dev connector)" {
			sent = append(sent, r)
		}
	}
	if len(sent) != 2 {
		t.Fatalf("dev records: %v", sent)
	}
	want := []map[string]any{
		{"level": "INFO", "channel": "email", "to": "ada@example.com", "purpose": PurposeSignIn, "code": "314159"},
		{"level": "INFO", "channel": "sms", "to": "+14155550123", "purpose": PurposeMfaVerification, "code": "271828"},
	}
	for i, w := range want {
		for k, v := range w {
			if sent[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v", i, k, sent[i][k], v)
			}
		}
	}
	if !strings.Contains(sent[0]["text"].(string), "314159") || sent[0]["subject"] != "Your sign-in code" {
		t.Errorf("email record %v", sent[0])
	}

	if err := c.Email.Send(ctx, Message{To: "ada@example.com", Purpose: "Bogus", Code: "1", ExpiresIn: time.Minute}); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("bogus purpose: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.SMS.Send(cancelled, Message{To: "+1", Purpose: PurposeSignIn, Code: "1", ExpiresIn: time.Minute}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestDefaultTexts(t *testing.T) {
	set, err := compileTemplates(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		purpose string
		expires time.Duration
		subject string
		text    string
	}{
		{PurposeSignIn, 10 * time.Minute, "Your sign-in code", "Your sign-in code is 123456. It expires in 10 minutes. If you did not request it, ignore this message."},
		{PurposeRegister, 10 * time.Minute, "Your registration code", "Your registration code is 123456. It expires in 10 minutes. If you did not request it, ignore this message."},
		{PurposeForgotPassword, 15 * time.Minute, "Your password reset code", "Your password reset code is 123456. It expires in 15 minutes. If you did not request it, ignore this message."},
		{PurposeGeneric, time.Minute, "Your verification code", "Your verification code is 123456. It expires in 1 minute. If you did not request it, ignore this message."},
		{PurposeMfaVerification, 90 * time.Second, "Your two-step verification code", "Your two-step verification code is 123456. It expires in 1 minute. If you did not request it, ignore this message."},
		{PurposeSignIn, 30 * time.Second, "Your sign-in code", "Your sign-in code is 123456. It expires in 1 minute. If you did not request it, ignore this message."},
		{PurposeSignIn, 10*time.Minute - time.Second, "Your sign-in code", "Your sign-in code is 123456. It expires in 9 minutes. If you did not request it, ignore this message."},
	}
	for _, tc := range tests {
		subject, text, err := set.render(Message{To: "x", Purpose: tc.purpose, Code: "123456", ExpiresIn: tc.expires})
		if err != nil {
			t.Fatal(err)
		}
		if subject != tc.subject || text != tc.text {
			t.Errorf("%s %s: %q / %q", tc.purpose, tc.expires, subject, text)
		}
		if len(text) > 160 {
			t.Errorf("%s: %d characters, more than one SMS", tc.purpose, len(text))
		}
	}
	if len(defaultTemplates) != len(Purposes()) {
		t.Errorf("purposes and templates disagree")
	}
}

func TestTemplateSubjectIsOneLine(t *testing.T) {
	set, err := compileTemplates(map[string]Template{PurposeGeneric: {Subject: "Code\r\n{{.Code}}\nBcc: x@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	subject, _, err := set.render(Message{Purpose: PurposeGeneric, Code: "123456", ExpiresIn: time.Minute})
	if err != nil || subject != "Code 123456 Bcc: x@example.com" {
		t.Errorf("subject %q, %v", subject, err)
	}
}

// Compile-time checks that every connector is a Sender.
var (
	_ Sender = (*smtpSender)(nil)
	_ Sender = (*webhookSender)(nil)
	_ Sender = (*devSender)(nil)
)

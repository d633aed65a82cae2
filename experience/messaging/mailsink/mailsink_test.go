package mailsink

import (
	"crypto/tls"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// send submits raw with go-smtp's client, as any SMTP client would.
func send(t *testing.T, sink *Sink, auth sasl.Client, from string, to []string, raw string) error {
	t.Helper()
	u, err := url.Parse(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	var c *smtp.Client
	switch {
	case u.Scheme == "smtps":
		c, err = smtp.DialTLS(u.Host, &tls.Config{InsecureSkipVerify: true})
	case sink.opts.startTLS:
		c, err = smtp.DialStartTLS(u.Host, &tls.Config{InsecureSkipVerify: true})
	default:
		c, err = smtp.Dial(u.Host)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, to, strings.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

func TestDecodesBodiesAndFindsTheCode(t *testing.T) {
	sink := Start(t)
	if !strings.HasPrefix(sink.URL(), "smtp://127.0.0.1:") {
		t.Fatalf("URL %q", sink.URL())
	}
	msgs := map[string]string{
		"qp@example.com": "From: \"Latch\" <no-reply@latch.test>\r\nTo: qp@example.com\r\nSubject: =?UTF-8?q?Your_code_=E2=80=94_sign_in?=\r\n" +
			"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			"Your sign-in code is 123456. It expires in 10 minutes. A long line that is =\r\nsoft-wrapped.\r\n",
		"b64@example.com": "From: no-reply@latch.test\r\nTo: b64@example.com\r\nSubject: Code\r\n" +
			"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			"WW91ciBjb2RlIGlz\r\nIDY1NDMyMS4=\r\n",
		"multi@example.com": "From: no-reply@latch.test\r\nTo: multi@example.com\r\nSubject: Code\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: multipart/alternative; boundary=b1\r\n\r\n" +
			"--b1\r\nContent-Type: text/html\r\n\r\n<p>000000</p>\r\n" +
			"--b1\r\nContent-Type: text/plain\r\n\r\nCode: 777888 (phone 2025550123 is not a code)\r\n--b1--\r\n",
		"subject@example.com": "From: no-reply@latch.test\r\nTo: subject@example.com\r\nSubject: 424242 is your code\r\n\r\nSee subject.\r\n",
	}
	want := map[string][3]string{ // subject, body, code
		"qp@example.com":      {"Your code — sign in", "Your sign-in code is 123456. It expires in 10 minutes. A long line that is soft-wrapped.", "123456"},
		"b64@example.com":     {"Code", "Your code is 654321.", "654321"},
		"multi@example.com":   {"Code", "Code: 777888 (phone 2025550123 is not a code)", "777888"},
		"subject@example.com": {"424242 is your code", "See subject.", "424242"},
	}
	for to, raw := range msgs {
		if err := send(t, sink, nil, "bounce@latch.test", []string{to}, raw); err != nil {
			t.Fatalf("%s: %v", to, err)
		}
	}
	for to, w := range want {
		m := sink.WaitFor(t, strings.ToUpper(to), 5*time.Second)
		if m.Subject != w[0] || m.Body != w[1] || m.Code != w[2] {
			t.Errorf("%s: subject %q body %q code %q", to, m.Subject, m.Body, m.Code)
		}
		if m.From != "no-reply@latch.test" || m.EnvelopeFrom != "bounce@latch.test" || m.To != to || m.TLS {
			t.Errorf("%s: %+v", to, m)
		}
	}
	for _, m := range sink.Messages() {
		if want := map[bool]string{true: "Latch"}[m.To == "qp@example.com"]; m.FromName != want {
			t.Errorf("%s: FromName %q, want %q", m.To, m.FromName, want)
		}
	}
}

func TestWaitForReturnsEachMessageOnceInOrder(t *testing.T) {
	sink := Start(t)
	for _, code := range []string{"111111", "222222"} {
		raw := "From: a@latch.test\r\nTo: x@example.com\r\nSubject: c\r\n\r\ncode " + code + "\r\n"
		if err := send(t, sink, nil, "a@latch.test", []string{"x@example.com", "y@example.com"}, raw); err != nil {
			t.Fatal(err)
		}
	}
	if sink.Count("X@example.com") != 2 || sink.Count("y@example.com") != 2 || sink.Count("z@example.com") != 0 {
		t.Fatalf("counts %d %d", sink.Count("x@example.com"), sink.Count("y@example.com"))
	}
	if c := sink.WaitFor(t, "x@example.com", time.Second).Code; c != "111111" {
		t.Errorf("first %s", c)
	}
	if c := sink.WaitFor(t, "x@example.com", time.Second).Code; c != "222222" {
		t.Errorf("second %s", c)
	}
	if c := sink.WaitFor(t, "y@example.com", time.Second).Code; c != "111111" {
		t.Errorf("y first %s", c)
	}

	// A message that arrives while WaitFor waits.
	sent := make(chan error, 1)
	time.AfterFunc(50*time.Millisecond, func() {
		c, err := smtp.Dial(strings.TrimPrefix(sink.URL(), "smtp://"))
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		sent <- c.SendMail("a@latch.test", []string{"x@example.com"}, strings.NewReader("Subject: c\r\n\r\ncode 333333\r\n"))
	})
	if m := sink.WaitFor(t, "x@example.com", 5*time.Second); m.Code != "333333" {
		t.Errorf("waited-for code %s", m.Code)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if sink.Count("x@example.com") != 3 {
		t.Errorf("count %d", sink.Count("x@example.com"))
	}
}

func TestAuthIsRequired(t *testing.T) {
	for name, opts := range map[string][]Option{
		"plain":    {WithAuth("user", "pa:ss@word")},
		"starttls": {WithStartTLS(), WithAuth("user", "pa:ss@word")},
		"smtps":    {WithImplicitTLS(), WithAuth("user", "pa:ss@word")},
	} {
		t.Run(name, func(t *testing.T) {
			sink := Start(t, opts...)
			u, _ := url.Parse(sink.URL())
			if p, _ := u.User.Password(); u.User.Username() != "user" || p != "pa:ss@word" {
				t.Fatalf("URL %q does not carry the credentials", sink.URL())
			}
			raw := "From: a@latch.test\r\nTo: x@example.com\r\nSubject: c\r\n\r\ncode 123456\r\n"
			if err := send(t, sink, nil, "a@latch.test", []string{"x@example.com"}, raw); err == nil {
				t.Fatal("accepted without AUTH")
			}
			if err := send(t, sink, sasl.NewPlainClient("", "user", "wrong"), "a@latch.test", []string{"x@example.com"}, raw); err == nil {
				t.Fatal("accepted a wrong password")
			}
			if err := send(t, sink, sasl.NewPlainClient("", "user", "pa:ss@word"), "a@latch.test", []string{"x@example.com"}, raw); err != nil {
				t.Fatal(err)
			}
			m := sink.WaitFor(t, "x@example.com", time.Second)
			if m.AuthUser != "user" || m.TLS != (name != "plain") || sink.AuthFailures() != 1 || sink.Count("x@example.com") != 1 {
				t.Errorf("mail %+v, auth failures %d", m, sink.AuthFailures())
			}
		})
	}
}

package messaging

import (
	"context"
	"log/slog"
)

// devSender is the development connector: it "delivers" a message by
// logging it, code included, so a developer can sign in without an SMTP
// server or SMS provider. New refuses it in production, because there the
// log would hand every code to whoever can read the logs.
type devSender struct {
	channel   string // "email" or "sms"
	templates templateSet
	log       *slog.Logger
}

// Kind implements Sender.
func (d *devSender) Kind() string { return KindDev }

// Send logs m at INFO as "message (dev connector)".
func (d *devSender) Send(ctx context.Context, m Message) error {
	if err := checkMessage(m); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	subject, text, err := d.templates.render(m)
	if err != nil {
		return err
	}
	attrs := []slog.Attr{
		slog.String("connector", KindDev),
		slog.String("channel", d.channel),
		slog.String("to", m.To),
		slog.String("purpose", m.Purpose),
		slog.String("code", m.Code),
		slog.Float64("expires_in_ms", float64(m.ExpiresIn.Milliseconds())),
	}
	if d.channel == "email" {
		attrs = append(attrs, slog.String("subject", subject))
	}
	attrs = append(attrs, slog.String("text", text))
	d.log.LogAttrs(ctx, slog.LevelInfo, "message (dev connector)", attrs...)
	return nil
}

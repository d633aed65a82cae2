package messaging

import (
	"fmt"
	"strings"
	"text/template"
	"time"
)

// Template is the wording of one purpose's message, as text/template
// sources with two fields: {{.Code}} and {{.ExpiresInMinutes}} (an int,
// rounded down, at least 1). Subject is the email subject (one line); Text is
// the email body (plain text) and the SMS text.
type Template struct{ Subject, Text string }

// TemplateData is what a template is executed with.
type TemplateData struct {
	Code             string
	ExpiresInMinutes int
}

// expiryPhrase keeps the defaults grammatical for 1 minute.
const expiryPhrase = `It expires in {{.ExpiresInMinutes}} minute{{if ne .ExpiresInMinutes 1}}s{{end}}.`

// ignoreLine tells a person who did not ask for the code what to do; it keeps
// the default texts short enough for one SMS segment.
const ignoreLine = ` If you did not request it, ignore this message.`

// defaultTemplates is the wording used when Config.Templates does not
// override a purpose. It also defines the set of known purposes.
var defaultTemplates = map[string]Template{
	PurposeSignIn: {
		Subject: "Your sign-in code",
		Text:    "Your sign-in code is {{.Code}}. " + expiryPhrase + ignoreLine,
	},
	PurposeRegister: {
		Subject: "Your registration code",
		Text:    "Your registration code is {{.Code}}. " + expiryPhrase + ignoreLine,
	},
	PurposeForgotPassword: {
		Subject: "Your password reset code",
		Text:    "Your password reset code is {{.Code}}. " + expiryPhrase + ignoreLine,
	},
	PurposeGeneric: {
		Subject: "Your verification code",
		Text:    "Your verification code is {{.Code}}. " + expiryPhrase + ignoreLine,
	},
	PurposeMfaVerification: {
		Subject: "Your two-step verification code",
		Text:    "Your two-step verification code is {{.Code}}. " + expiryPhrase + ignoreLine,
	},
}

// compiled is one purpose's parsed templates.
type compiled struct{ subject, text *template.Template }

// templateSet maps a purpose to its compiled templates.
type templateSet map[string]compiled

// compileTemplates merges the overrides over the defaults, parses them and
// executes each once with sample data, so a broken template fails at startup
// rather than on the first sign-in.
func compileTemplates(overrides map[string]Template) (templateSet, error) {
	for purpose := range overrides {
		if _, ok := defaultTemplates[purpose]; !ok {
			return nil, fmt.Errorf("messaging: templates: unknown purpose %q (known: %s)", purpose, strings.Join(Purposes(), ", "))
		}
	}
	set := templateSet{}
	for purpose, def := range defaultTemplates {
		src := def
		if o, ok := overrides[purpose]; ok {
			if strings.TrimSpace(o.Subject) != "" {
				src.Subject = o.Subject
			}
			if strings.TrimSpace(o.Text) != "" {
				src.Text = o.Text
			}
		}
		subject, err := template.New(purpose + ".subject").Option("missingkey=error").Parse(src.Subject)
		if err != nil {
			return nil, fmt.Errorf("messaging: templates: %s subject: %w", purpose, err)
		}
		text, err := template.New(purpose + ".text").Option("missingkey=error").Parse(src.Text)
		if err != nil {
			return nil, fmt.Errorf("messaging: templates: %s text: %w", purpose, err)
		}
		c := compiled{subject: subject, text: text}
		if _, _, err := c.render(TemplateData{Code: "000000", ExpiresInMinutes: 10}); err != nil {
			return nil, fmt.Errorf("messaging: templates: %s: %w", purpose, err)
		}
		set[purpose] = c
	}
	return set, nil
}

// render executes both templates. The subject is folded onto one line.
func (c compiled) render(data TemplateData) (subject, text string, err error) {
	var b strings.Builder
	if err := c.subject.Execute(&b, data); err != nil {
		return "", "", fmt.Errorf("render subject: %w", err)
	}
	subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := c.text.Execute(&b, data); err != nil {
		return "", "", fmt.Errorf("render text: %w", err)
	}
	return subject, strings.TrimSpace(b.String()), nil
}

// render renders m with its purpose's templates; m must have passed
// checkMessage. The error never contains the code.
func (s templateSet) render(m Message) (subject, text string, err error) {
	c, ok := s[m.Purpose]
	if !ok {
		return "", "", fmt.Errorf("%w: unknown purpose %q", ErrInvalidMessage, m.Purpose)
	}
	return c.render(TemplateData{Code: m.Code, ExpiresInMinutes: expiresInMinutes(m.ExpiresIn)})
}

// expiresInMinutes rounds down, so a code is not announced as living longer
// than it does (a person who waits the announced time still succeeds), but
// never shows "0 minutes".
func expiresInMinutes(d time.Duration) int {
	m := int(d / time.Minute)
	if m < 1 {
		m = 1
	}
	return m
}

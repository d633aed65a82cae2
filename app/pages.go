package app

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/token"
)

// The hosted sign-in pages: HTML templates and static assets embedded in
// the binary (no CDN). The pages drive the Experience API from the browser
// with the interaction cookie, exactly as an integrator's own UI would.
//
//go:embed ui/*.html ui/assets/*
var uiFiles embed.FS

// pageTemplates are parsed once: the layout with each page's body.
var pageTemplates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	names, err := fs.Glob(uiFiles, "ui/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		page := strings.TrimSuffix(path.Base(n), ".html")
		if page == "layout" {
			continue
		}
		out[page] = template.Must(template.ParseFS(uiFiles, "ui/layout.html", n))
	}
	return out
}()

// pageData is what every page template gets.
type pageData struct {
	Page, Title, Request, ClientName, LoginHint string
	Brand                                       experience.Branding
	Color                                       template.CSS
	Nonce                                       string

	PasswordSignIn, CodeSignIn, RegisterOpen, ForgotOpen     bool
	SignUpUsername, SignUpEmail, SignUpPhone, SignUpPassword bool
	MinLength                                                int

	// Social are the social connectors' buttons; SSO says whether any
	// enterprise SSO connector exists (the page then asks
	// /sso-connectors for an e-mail's domain); Callback is the hosted
	// callback page the providers return to.
	Social   []connectorButton
	SSO      bool
	Callback string

	Scopes      []string
	Code        string
	Message     string
	Hidden      map[string]string
	formTargets []string
}

// pageTitles are the pages the browser may open by URL, with their titles.
var pageTitles = map[string]string{
	"sign-in":         "Sign in",
	"register":        "Create your account",
	"forgot-password": "Reset your password",
	"mfa":             "Verify it's you",
	"mfa-enroll":      "Add a second factor",
}

// page serves GET /ui/<name>?request=…: a hosted page for a live
// authorization request.
func (a *App) page(name string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		ar, client, err := a.liveAuthRequest(ctx, c.QueryParam("request"))
		if err != nil || ar == nil {
			return orPage(a, c, err)
		}
		settings, err := a.engine.Settings.Get(ctx)
		if err != nil {
			return err
		}
		d := pageData{Page: name, Title: pageTitles[name], Request: ar.ID, ClientName: client.Name, LoginHint: ar.LoginHint}
		for _, m := range settings.SignIn.Methods {
			d.PasswordSignIn = d.PasswordSignIn || m.Password
			d.CodeSignIn = d.CodeSignIn || m.VerificationCode
		}
		d.RegisterOpen = settings.SignInMode != experience.ModeSignIn
		d.ForgotOpen = settings.ForgotPassword.Email || settings.ForgotPassword.Phone
		for _, id := range settings.SignUp.Identifiers {
			switch id {
			case experience.IdentifierUsername:
				d.SignUpUsername = true
			case experience.IdentifierEmail:
				d.SignUpEmail = true
			case experience.IdentifierPhone:
				d.SignUpPhone = true
			}
		}
		d.SignUpPassword = settings.SignUp.Password
		d.MinLength = settings.PasswordPolicy.MinLength
		if name == "sign-in" {
			if err := a.upstreamButtons(c, &d); err != nil {
				return err
			}
		}
		return a.renderPage(c, http.StatusOK, name, d)
	}
}

// connectorButton is a "Continue with …" button of the sign-in page.
type connectorButton struct{ ID, Name string }

// upstreamButtons fills the sign-in page's social buttons (every social
// connector) and its SSO switch (any SSO connector: which one is found by
// the e-mail's domain).
func (a *App) upstreamButtons(c echo.Context, d *pageData) error {
	ctx := c.Request().Context()
	social, err := a.engine.Connectors.List(ctx, experience.FamilySocial)
	if err != nil {
		return err
	}
	for _, conn := range social {
		d.Social = append(d.Social, connectorButton{ID: conn.ID, Name: conn.Name})
	}
	sso, err := a.engine.Connectors.List(ctx, experience.FamilySSO)
	if err != nil {
		return err
	}
	d.SSO = len(sso) > 0
	d.Callback = a.hostedCallback()
	return nil
}

// hostedCallback is the page social and SSO providers send the browser
// back to after a sign-in started on the hosted pages. Register it at the
// provider; clients do not (see upstreamStart).
func (a *App) hostedCallback() string { return a.cfg.Issuer + "/ui/callback" }

// callbackPage is GET /ui/callback: its script finishes the upstream
// sign-in the sign-in page started (verify, identification, submit) with
// the interaction cookie; the page itself holds nothing.
func (a *App) callbackPage(c echo.Context) error {
	return a.renderPage(c, http.StatusOK, "callback", pageData{Title: "Signing you in", Callback: a.hostedCallback()})
}

// renderPage renders a page with the security headers of every hosted
// page: a strict Content-Security-Policy (scripts and styles from Latch
// only, the branding colour through a per-response nonce), no framing
// (clickjacking), no referrer to other sites (the URL carries the request
// id), no caching.
func (a *App) renderPage(c echo.Context, status int, name string, d pageData) error {
	ctx := c.Request().Context()
	settings, err := a.engine.Settings.Get(ctx)
	if err != nil {
		return err
	}
	d.Brand = settings.Branding
	if d.Brand.DisplayName == "" {
		d.Brand.DisplayName = "Latch"
	}
	d.Color = template.CSS(experience.DefaultSettings().Branding.PrimaryColor)
	if c := settings.Branding.PrimaryColor; c != "" {
		d.Color = template.CSS(c) // Validate admits #rrggbb only
	}
	d.Nonce = credentials.RandomToken(18)
	if d.Page == "" {
		d.Page = name
	}
	var buf bytes.Buffer
	if err := pageTemplates[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		return err
	}
	img := "'self' data:"
	if settings.Branding.LogoURL != "" {
		img += " https:"
	}
	formAction := append([]string{"'self'"}, d.formTargets...)
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-"+d.Nonce+"'; img-src "+img+
		"; connect-src 'self'; form-action "+strings.Join(formAction, " ")+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin: the request id in page URLs never leaves Latch, and
	// the pages' own form posts keep their Origin (no-referrer would send
	// "Origin: null", which the CSRF check refuses).
	h.Set("Referrer-Policy", "same-origin")
	h.Set(echo.HeaderCacheControl, "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

// errorPage shows an error of a browser-facing endpoint that must not be
// redirected (OIDC Core §3.1.2.6: no trusted redirect URI yet).
func (a *App) errorPage(c echo.Context, status int, code, message string) error {
	return a.renderPage(c, status, "error", pageData{Title: "Something went wrong", Code: code, Message: message})
}

// scopeDescriptions say in words what each scope shares.
var scopeDescriptions = map[string]string{
	"openid":                     "Know who you are (your account id)",
	"profile":                    "See your name and username",
	"email":                      "See your e-mail address",
	"phone":                      "See your phone number",
	token.ScopeOfflineAccess:     "Stay signed in when you are not using it",
	token.ScopeOrganizations:     "See which organizations you belong to",
	token.ScopeOrganizationRoles: "See your roles in your organizations",
}

// consentPage asks the person to grant a third-party client its scopes.
func (a *App) consentPage(c echo.Context, client *token.Client, ar *token.AuthRequest) error {
	d := pageData{Title: "Allow access?", Request: ar.ID, ClientName: client.Name, formTargets: []string{originOf(ar.RedirectURI)}}
	for _, s := range ar.Scopes() {
		d.Scopes = append(d.Scopes, scopeDescriptions[s])
	}
	return a.renderPage(c, http.StatusOK, "consent", d)
}

// logoutConfirmPage asks whether to sign out (a logout without a valid
// id_token_hint for this browser's session).
func (a *App) logoutConfirmPage(c echo.Context, params url.Values) error {
	d := pageData{Title: "Sign out", Hidden: map[string]string{}}
	for _, k := range []string{"id_token_hint", "post_logout_redirect_uri", "state", "client_id"} {
		if v := params.Get(k); v != "" {
			d.Hidden[k] = v
		}
	}
	if r := params.Get("post_logout_redirect_uri"); r != "" {
		d.formTargets = []string{originOf(r)}
	}
	return a.renderPage(c, http.StatusOK, "logout", d)
}

func (a *App) signedOutPage(c echo.Context) error {
	return a.renderPage(c, http.StatusOK, "signed-out", pageData{Title: "Signed out"})
}

// originOf is a URI's origin for a CSP source list (registered URIs only).
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// asset serves GET /ui/assets/:name, the pages' script and style sheet.
func (a *App) asset(c echo.Context) error {
	name := c.Param("name")
	if strings.ContainsAny(name, "/\\") {
		return echo.ErrNotFound
	}
	raw, err := uiFiles.ReadFile("ui/assets/" + name)
	if err != nil {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(echo.HeaderCacheControl, "public, max-age=300")
	return c.Blob(http.StatusOK, mime.TypeByExtension(path.Ext(name)), raw)
}

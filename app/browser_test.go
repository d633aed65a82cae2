package app_test

// Issue 15: a real headless Chromium (Debian's chromium, driven with
// chromedp) walks the hosted pages against a real relying party built from
// golang.org/x/oauth2 + coreos/go-oidc. Each page is kept as a screenshot
// under $LATCH_TEST_ARTIFACTS (default app/testdata/artifacts, ignored by
// git). Without Chromium the test is skipped — and fails under CI=true.

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// chromiumPath finds Chromium, or skips (fails under CI).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("LATCH_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is required in CI (.ci/run installs Debian's chromium)")
	}
	t.Skip("Chromium is not installed (apt-get install chromium); browser tests skipped")
	return ""
}

// artifacts is where screenshots go.
func artifacts(t *testing.T) string {
	dir := os.Getenv("LATCH_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// webRP is a relying party web app: /login starts the authorization code
// flow with PKCE, state and nonce; /callback redeems the code and verifies
// the ID token; /logout starts RP-Initiated Logout; /bye is its landing.
type webRP struct {
	srv     *httptest.Server
	client  *token.Client
	config  oauth2.Config
	mu      sync.Mutex
	pending map[string][2]string // state -> verifier, nonce
	idToken string
	subject string
}

func (f *expFix) startWebRP(t *testing.T, nc token.NewClient) *webRP {
	t.Helper()
	r := &webRP{pending: map[string][2]string{}}
	r.srv = httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(r.srv.Close)
	nc.Type = token.ClientWeb
	nc.RedirectURIs = []string{r.srv.URL + "/callback"}
	nc.PostLogoutRedirectURIs = []string{r.srv.URL + "/bye"}
	if nc.Name == "" {
		nc.Name = "Acme Notes"
	}
	c, secret, err := f.Services.Tokens.Clients.Create(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	r.client = c
	provider, err := oidc.NewProvider(oidc.ClientContext(context.Background(), f.HTTP), f.Config.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	r.config = oauth2.Config{ClientID: c.ID, ClientSecret: secret, Endpoint: provider.Endpoint(),
		RedirectURL: nc.RedirectURIs[0], Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	verifier := provider.Verifier(&oidc.Config{ClientID: c.ID})
	ctx := oidc.ClientContext(context.Background(), f.HTTP)
	r.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/login":
			state, nonce, v := oauth2.GenerateVerifier()[:16], oauth2.GenerateVerifier()[:16], oauth2.GenerateVerifier()
			r.mu.Lock()
			r.pending[state] = [2]string{v, nonce}
			r.mu.Unlock()
			opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(v), oidc.Nonce(nonce)}
			if org := req.URL.Query().Get("org"); org != "" {
				opts = append(opts, oauth2.SetAuthURLParam("organization_id", org))
			}
			http.Redirect(w, req, r.config.AuthCodeURL(state, opts...), http.StatusFound)
		case "/callback":
			q := req.URL.Query()
			r.mu.Lock()
			p, ok := r.pending[q.Get("state")]
			delete(r.pending, q.Get("state"))
			r.mu.Unlock()
			if ok && q.Get("error") != "" {
				fmt.Fprintf(w, `<!doctype html><title>Acme</title><p id="denied">%s</p>`, html.EscapeString(q.Get("error")))
				return
			}
			if !ok || q.Get("code") == "" {
				http.Error(w, "bad callback: "+req.URL.RawQuery, http.StatusBadRequest)
				return
			}
			tok, err := r.config.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p[0]))
			if err != nil {
				http.Error(w, "exchange: "+err.Error(), http.StatusBadGateway)
				return
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := verifier.Verify(ctx, raw)
			if err != nil || idt.Nonce != p[1] || idt.VerifyAccessToken(tok.AccessToken) != nil {
				http.Error(w, fmt.Sprintf("id token: %v", err), http.StatusBadGateway)
				return
			}
			r.mu.Lock()
			r.idToken, r.subject = raw, idt.Subject
			r.mu.Unlock()
			fmt.Fprintf(w, `<!doctype html><title>Acme</title><p id="who">signed in as %s</p>`, idt.Subject)
		case "/logout":
			r.mu.Lock()
			hint := r.idToken
			r.mu.Unlock()
			http.Redirect(w, req, f.Config.Issuer+"/oidc/session/end?id_token_hint="+hint+"&post_logout_redirect_uri="+r.srv.URL+"/bye&state=bye", http.StatusFound)
		case "/bye":
			fmt.Fprintf(w, `<!doctype html><title>Acme</title><p id="bye">signed out, state %s</p>`, req.URL.Query().Get("state"))
		default:
			http.NotFound(w, req)
		}
	})
	return r
}

// tab is one browser tab with its own cookie jar (browser context).
type tab struct {
	t   *testing.T
	ctx context.Context
	dir string
	// shot numbers the screenshots of a test, across its tabs.
	shot *int
}

// step is one browser action.
type step = chromedp.Action[chromedp.Void]

func (tb *tab) run(what string, steps ...step) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.screenshot("failed-" + what)
		loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
		tb.t.Fatalf("%s: %v (at %s)", what, err, loc)
	}
}

// screenshot keeps the current page as an artifact.
func (tb *tab) screenshot(name string) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	*tb.shot++
	file := filepath.Join(tb.dir, fmt.Sprintf("%s-%02d-%s.png", strings.ReplaceAll(tb.t.Name(), "/", "_"), *tb.shot, name))
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
	}
}

// at waits for a page element and keeps a screenshot of the page.
func (tb *tab) at(name, selector string) {
	tb.t.Helper()
	tb.run("wait for "+name, chromedp.WaitVisible(chromedp.CSS(selector)))
	tb.screenshot(name)
}

func (tb *tab) text(selector string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		tb.t.Fatalf("read %s: %v", selector, err)
	}
	return s
}

func (tb *tab) signedIn(r *webRP, userID string) {
	tb.t.Helper()
	tb.at("relying-party", "#who")
	if got := tb.text("#who"); got != "signed in as "+userID {
		tb.t.Fatalf("relying party: %q, want signed in as %s", got, userID)
	}
}

func (tb *tab) fill(selector, value string) step {
	return chromedp.SendKeys(chromedp.CSS(selector), value)
}

func click(selector string) step { return chromedp.Click(chromedp.CSS(selector)) }

func TestBrowserHostedPages(t *testing.T) {
	chromium := chromiumPath(t)
	// WebAuthn needs a secure context and a domain as RP id: the issuer is
	// http://localhost:<port> (a potentially trustworthy origin).
	f := expStart(t, apptest.SQLite, func(env map[string]string) {
		_, port, _ := net.SplitHostPort(env["LATCH_ADDR"])
		env["LATCH_ISSUER"] = "http://localhost:" + port
	})
	f.settings(t, `{"branding":{"display_name":"Acme Identity","primary_color":"#0f766e"}}`)
	dir := artifacts(t)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(900, 1000))
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	shots := map[string]*int{}
	newTab := func(t *testing.T) *tab {
		ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		// The tab lives as long as the context of its first action: open
		// it without a timeout (each later step has one).
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("open a tab: %v", err)
		}
		if shots[t.Name()] == nil {
			shots[t.Name()] = new(int)
		}
		return &tab{t: t, ctx: ctx, dir: dir, shot: shots[t.Name()]}
	}
	r := f.startWebRP(t, token.NewClient{})

	signIn := func(tb *tab, ident, password string) {
		tb.t.Helper()
		tb.run("open the app", chromedp.Navigate(r.srv.URL+"/login"))
		tb.at("sign-in", "#password-form")
		tb.run("sign in", tb.fill("#identifier", ident), tb.fill("#password", password), click(`#password-form button[type=submit]`))
	}

	t.Run("PasswordSignInWrongThenRight", func(t *testing.T) {
		u := f.user(t)
		tb := newTab(t)
		signIn(tb, u.Username, "not the password")
		tb.at("sign-in-error", "#error")
		if msg := tb.text("#error"); msg != "The username or password is incorrect." {
			t.Fatalf("error message %q", msg)
		}
		if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`(document.getElementById("password").value = "") === ""`)); err != nil {
			t.Fatal(err)
		}
		tb.run("retry", tb.fill("#password", u.Password),
			click(`#password-form button[type=submit]`))
		tb.signedIn(r, u.ID)
	})

	t.Run("SignInWithEmailCode", func(t *testing.T) {
		u := f.user(t)
		tb := newTab(t)
		tb.run("open the app", chromedp.Navigate(r.srv.URL+"/login"))
		tb.at("sign-in", "#password-form")
		tb.run("ask for a code", tb.fill("#identifier", u.Email), click("#code-start"))
		tb.at("sign-in-code", "#code-form")
		mail := f.mail.WaitFor(t, u.Email, expWait)
		tb.run("enter the code", tb.fill("#code", mail.Code), click(`#code-form button[type=submit]`))
		tb.signedIn(r, u.ID)
	})

	t.Run("Register", func(t *testing.T) {
		tb := newTab(t)
		tb.run("open the app", chromedp.Navigate(r.srv.URL+"/login"))
		tb.at("sign-in", "#password-form")
		tb.run("to register", click(`a[href^="/ui/register"]`))
		tb.at("register", "#register-form")
		name := v1Name("browser")
		tb.run("register", tb.fill("#username", name), tb.fill("#password", v1Password()), click(`#register-form button[type=submit]`))
		tb.at("relying-party", "#who")
		var id string
		f.Services.DB.Raw("SELECT id FROM users WHERE username = ?", name).Scan(&id)
		if id == "" || tb.text("#who") != "signed in as "+id {
			t.Fatalf("registered user %q, page %q", id, tb.text("#who"))
		}
	})

	t.Run("ForgotPassword", func(t *testing.T) {
		u := f.user(t)
		tb := newTab(t)
		tb.run("open the app", chromedp.Navigate(r.srv.URL+"/login"))
		tb.at("sign-in", "#password-form")
		tb.run("to forgot", click(`a[href*="ForgotPassword"]`))
		tb.at("forgot-password", "#forgot-form")
		tb.run("send code", tb.fill("#identifier", u.Email), click(`#forgot-form button[type=submit]`))
		tb.at("reset-password", "#reset-form")
		mail := f.mail.WaitFor(t, u.Email, expWait)
		fresh := v1Password()
		tb.run("reset", tb.fill("#code", mail.Code), tb.fill("#password", fresh), click(`#reset-form button[type=submit]`))
		// Back on the sign-in page of the same authorization request.
		tb.at("sign-in-after-reset", "#password-form")
		tb.run("sign in", tb.fill("#identifier", u.Email), tb.fill("#password", fresh), click(`#password-form button[type=submit]`))
		tb.signedIn(r, u.ID)
	})

	t.Run("TOTPVerification", func(t *testing.T) {
		u := f.user(t)
		secret, _ := f.enrol(t, u, true)
		tb := newTab(t)
		signIn(tb, u.Username, u.Password)
		tb.at("mfa", `[data-factor="Totp"]`)
		tb.run("choose totp", click(`[data-factor="Totp"]`))
		tb.at("mfa-totp", "#mfa-form")
		tb.run("totp", tb.fill("#mfa-code", totpNext(t, secret)), click(`#mfa-form button[type=submit]`))
		tb.signedIn(r, u.ID)
	})

	t.Run("BackupCodeVerification", func(t *testing.T) {
		u := f.user(t)
		_, codes := f.enrol(t, u, true)
		tb := newTab(t)
		signIn(tb, u.Username, u.Password)
		tb.at("mfa", `[data-factor="BackupCode"]`)
		tb.run("choose backup code", click(`[data-factor="BackupCode"]`))
		tb.at("mfa-backup-code", "#mfa-form")
		tb.run("backup code", tb.fill("#mfa-code", codes[0]), click(`#mfa-form button[type=submit]`))
		tb.signedIn(r, u.ID)
	})

	t.Run("ConsentAndLogout", func(t *testing.T) {
		third := false
		rp3 := f.startWebRP(t, token.NewClient{Name: "Third Party Calendar", FirstParty: &third})
		u := f.user(t)
		tb := newTab(t)
		tb.run("open the app", chromedp.Navigate(rp3.srv.URL+"/login"))
		tb.at("sign-in", "#password-form")
		tb.run("sign in", tb.fill("#identifier", u.Username), tb.fill("#password", u.Password), click(`#password-form button[type=submit]`))
		tb.at("consent", `button[value="allow"]`)
		tb.run("allow", click(`button[value="allow"]`))
		tb.signedIn(rp3, u.ID)
		// The browser session skips the page next time (consent remembered).
		tb.run("again", chromedp.Navigate(rp3.srv.URL+"/login"))
		tb.signedIn(rp3, u.ID)
		tb.run("logout", chromedp.Navigate(rp3.srv.URL+"/logout"))
		tb.at("signed-out-at-rp", "#bye")
		if got := tb.text("#bye"); got != "signed out, state bye" {
			t.Fatalf("after logout: %q", got)
		}
		tb.run("after logout", chromedp.Navigate(rp3.srv.URL+"/login"))
		tb.at("sign-in-after-logout", "#password-form")
	})

	// A code by e-mail or SMS as the second factor: the hosted MFA page
	// sends it, the code is read from the real SMTP / SMS sink.
	t.Run("EmailAndSMSCodeVerification", func(t *testing.T) {
		u := f.user(t)
		f.codesEnrolled(t, u)
		for _, ch := range []struct{ factor, typ, to string }{
			{"EmailVerificationCode", "email", u.Email}, {"PhoneVerificationCode", "phone", u.Phone},
		} {
			tb := newTab(t)
			signIn(tb, u.Username, u.Password)
			tb.at("mfa-codes", `[data-factor="`+ch.factor+`"]`)
			tb.run("choose "+ch.typ, click(`[data-factor="`+ch.factor+`"]`))
			tb.at("mfa-"+ch.typ+"-code", "#notice")
			code := f.deliveredCode(t, ch.typ, ch.to)
			tb.run(ch.typ+" code", tb.fill("#mfa-code", code), click(`#mfa-form button[type=submit]`))
			tb.signedIn(r, u.ID)
		}
	})

	// "Skip for now" when the MFA policy only suggests a factor (seed 004:
	// POST /profile/mfa/mfa-skipped): the sign-in completes without one,
	// and the next sign-in does not ask again.
	t.Run("SkipMFA", func(t *testing.T) {
		f.settings(t, `{"mfa":{"policy":"PromptAtSignInAndSignUp"}}`)
		defer f.settings(t, `{"mfa":{"policy":"NoPrompt"}}`)
		u := f.user(t)
		tb := newTab(t)
		signIn(tb, u.Username, u.Password)
		tb.at("mfa-suggested", "#mfa-skip")
		tb.run("skip", click("#mfa-skip"))
		tb.signedIn(r, u.ID)
		again := newTab(t)
		signIn(again, u.Username, u.Password)
		again.signedIn(r, u.ID)
	})

	// Social and SSO buttons: the round trip to a real OpenID provider
	// (zitadel's op, in this process) through Latch's own callback page,
	// ending with a code at the relying party.
	t.Run("SocialAndSSO", func(t *testing.T) {
		op := startOP(t, f.Config.Issuer+"/ui/callback")
		up := &upFix{expFix: f, op: op}
		up.connector(t, "social", map[string]any{"name": "Upstream ID", "provider": "oidc", "config": op.oidcConfig()})
		domain := orgDomain()
		up.connector(t, "sso", map[string]any{"name": "Acme SSO", "provider": "oidc", "domains": []string{domain}, "config": op.oidcConfig()})
		upstreamLogin := func(tb *tab, u *storage.User) {
			tb.t.Helper()
			tb.at("provider-login", "#username")
			tb.run("provider login", tb.fill("#username", u.Username), tb.fill("#password", u.Password), click(`button[type=submit]`))
		}
		userOf := func(tb *tab, email string) string {
			tb.t.Helper()
			tb.at("relying-party", "#who")
			var id string
			f.Services.DB.Raw("SELECT id FROM users WHERE primary_email = ?", email).Scan(&id)
			if id == "" {
				t.Fatalf("no account for %s", email)
			}
			return id
		}

		// A new identity registers; the next sign-in finds the account.
		social := op.user(expEmail("social"), true)
		tb := newTab(t)
		tb.run("open the app", chromedp.Navigate(r.srv.URL+"/login"))
		tb.at("sign-in-with-social", `[data-social]`)
		tb.run("continue with the provider", click(`[data-social]`))
		upstreamLogin(tb, social)
		tb.signedIn(r, userOf(tb, social.Email))
		again := newTab(t)
		again.run("open the app", chromedp.Navigate(r.srv.URL+"/login"))
		again.at("sign-in-with-social", `[data-social]`)
		again.run("continue with the provider", click(`[data-social]`))
		upstreamLogin(again, social)
		again.signedIn(r, userOf(again, social.Email))

		// An e-mail of the SSO connector's domain goes to single sign-on.
		worker := op.user("pat"+strings.ToLower(v1Name("w"))+"@"+domain, true)
		sso := newTab(t)
		sso.run("open the app", chromedp.Navigate(r.srv.URL+"/login"))
		sso.at("sign-in", "#password-form")
		sso.run("sso e-mail", sso.fill("#identifier", worker.Email), click(`#password-form button[type=submit]`))
		upstreamLogin(sso, worker)
		sso.signedIn(r, userOf(sso, worker.Email))

		// A callback this tab did not start (forged state) finishes
		// nothing and says so.
		forged := newTab(t)
		forged.run("forged callback", chromedp.Navigate(f.Config.Issuer+"/ui/callback?code=stolen&state=forged"))
		forged.at("callback-refused", "#error")
		if msg := forged.text("#error"); !strings.Contains(msg, "could not be completed") {
			t.Fatalf("forged callback: %q", msg)
		}
	})

	// organization_id: a non-member is sent back to the application with
	// access_denied (the page follows the refusal's redirectTo); a member
	// signs in.
	t.Run("OrganizationMembership", func(t *testing.T) {
		org := f.newOrg(t, nil).Str("id")
		member, stranger := f.user(t), f.user(t)
		f.addMember(t, org, member.ID)
		tb := newTab(t)
		tb.run("open the app", chromedp.Navigate(r.srv.URL+"/login?org="+org))
		tb.at("sign-in-org", "#password-form")
		tb.run("sign in", tb.fill("#identifier", stranger.Username), tb.fill("#password", stranger.Password), click(`#password-form button[type=submit]`))
		tb.at("relying-party-denied", "#denied")
		if got := tb.text("#denied"); got != "access_denied" {
			t.Fatalf("non-member at the relying party: %q", got)
		}
		ok := newTab(t)
		ok.run("open the app", chromedp.Navigate(r.srv.URL+"/login?org="+org))
		ok.at("sign-in-org", "#password-form")
		ok.run("sign in", ok.fill("#identifier", member.Username), ok.fill("#password", member.Password), click(`#password-form button[type=submit]`))
		ok.signedIn(r, member.ID)
	})

	// Last: a Mandatory MFA policy changes every sign-in after it.
	t.Run("EnrolTOTPAndPasskeyThenSignInWithPasskey", func(t *testing.T) {
		f.settings(t, `{"mfa":{"policy":"Mandatory"}}`)
		u := f.user(t)
		tb := newTab(t)
		signIn(tb, u.Username, u.Password)
		tb.at("mfa-enroll", `[data-enroll="Totp"]`)
		tb.run("choose totp", click(`[data-enroll="Totp"]`))
		tb.at("mfa-enroll-totp-qr", "#totp-qr")
		secret := tb.text("#totp-secret")
		tb.run("totp code", tb.fill("#totp-code", totpNow(t, secret)), click(`#totp-form button[type=submit]`))
		tb.at("backup-codes", "#backup-done")
		codes, err := chromedp.Run(tb.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#backup-list li").length`))
		if err != nil || codes != 10 {
			t.Fatalf("%d backup codes shown", codes)
		}
		tb.run("saved", click("#backup-done"))
		tb.signedIn(r, u.ID)

		// A passkey, with the DevTools virtual authenticator.
		v := f.user(t)
		pk := newTab(t)
		if _, err := chromedp.Call(pk.ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			t.Fatalf("WebAuthn.enable: %v", err)
		}
		if _, err := chromedp.Call(pk.ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}}); err != nil {
			t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
		}
		signIn(pk, v.Username, v.Password)
		pk.at("mfa-enroll", `[data-enroll="WebAuthn"]`)
		pk.run("choose passkey", click(`[data-enroll="WebAuthn"]`))
		pk.at("backup-codes-after-passkey", "#backup-done")
		pk.run("saved", click("#backup-done"))
		pk.signedIn(r, v.ID)
		pk.run("logout", chromedp.Navigate(r.srv.URL+"/logout"))
		pk.at("signed-out", "#bye")
		signIn(pk, v.Username, v.Password)
		pk.at("mfa-passkey", `[data-factor="WebAuthn"]`)
		pk.run("use passkey", click(`[data-factor="WebAuthn"]`))
		pk.signedIn(r, v.ID)
	})
}

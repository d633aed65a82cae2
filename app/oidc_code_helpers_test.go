package app_test

// Helpers of the authorization code flow tests: a relying party built from
// golang.org/x/oauth2 and coreos/go-oidc, and a scripted browser — a cookie
// jar that follows Latch's redirects but stops at the relying party's
// redirect URI — that signs in through the Experience API exactly as the
// hosted page's script does.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/token"
)

// rpRedirect is the relying party's redirect URI. Nothing listens there:
// the scripted browser stops when it is sent to it.
const rpRedirect = "http://127.0.0.1:9/callback"

// rp is a relying party registered at Latch.
type rp struct {
	f        *expFix
	client   *token.Client
	secret   string
	provider *oidc.Provider
	config   oauth2.Config
}

// newRP registers a client of type typ and discovers Latch with go-oidc.
func (f *expFix) newRP(t testing.TB, nc token.NewClient) *rp {
	t.Helper()
	if nc.Name == "" {
		nc.Name = "Relying Party"
	}
	if nc.RedirectURIs == nil {
		nc.RedirectURIs = []string{rpRedirect}
	}
	c, secret, err := f.Services.Tokens.Clients.Create(context.Background(), nc)
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	ctx := oidc.ClientContext(context.Background(), f.HTTP)
	provider, err := oidc.NewProvider(ctx, f.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	return &rp{f: f, client: c, secret: secret, provider: provider, config: oauth2.Config{
		ClientID: c.ID, ClientSecret: secret, Endpoint: provider.Endpoint(), RedirectURL: nc.RedirectURIs[0],
		Scopes: []string{oidc.ScopeOpenID, "profile", "email"},
	}}
}

func (r *rp) ctx() context.Context { return oidc.ClientContext(context.Background(), r.f.HTTP) }

// browser is a scripted browser: a cookie jar that follows redirects
// within Latch and stops at any other host (the relying party).
type browser struct {
	t  testing.TB
	f  *expFix
	hc *http.Client
}

func (f *expFix) browser(t testing.TB) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	latch, _ := url.Parse(f.URL)
	hc := &http.Client{Transport: f.HTTP.Transport, Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != latch.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return &browser{t: t, f: f, hc: hc}
}

// page is where a browser navigation ended.
type page struct {
	Status   int
	URL      *url.URL // the last URL fetched from Latch
	Location *url.URL // a redirect out of Latch, if it ended in one
	Body     string
	Header   http.Header
}

// get navigates to raw.
func (b *browser) get(raw string) *page {
	b.t.Helper()
	res, err := b.hc.Get(raw)
	if err != nil {
		b.t.Fatalf("GET %s: %v", raw, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	p := &page{Status: res.StatusCode, URL: res.Request.URL, Body: string(body), Header: res.Header}
	if loc := res.Header.Get("Location"); loc != "" && res.StatusCode/100 == 3 {
		p.Location, _ = url.Parse(loc)
	}
	return p
}

// api calls the Experience API as the hosted page's script does: JSON,
// with the interaction cookie only.
func (b *browser) api(method, path string, body any) (int, map[string]any) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = strings.NewReader(string(raw))
	}
	req, _ := http.NewRequest(method, b.f.URL+"/api/experience"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// signInOnPage signs in with a password on the interaction the sign-in page
// belongs to and returns the submit's answer.
func (b *browser) signInOnPage(ident, password string) (int, map[string]any) {
	b.t.Helper()
	typ := "username"
	if strings.Contains(ident, "@") {
		typ = "email"
	}
	st, rec := b.api(http.MethodPost, "/verification/password", map[string]any{
		"identifier": map[string]any{"type": typ, "value": ident}, "password": password})
	if st != http.StatusOK {
		b.t.Fatalf("password verification: %d %v", st, rec)
	}
	if st, out := b.api(http.MethodPost, "/identification", map[string]any{"verificationId": rec["verificationId"]}); st != http.StatusNoContent {
		b.t.Fatalf("identification: %d %v", st, out)
	}
	return b.api(http.MethodPost, "/submit", nil)
}

// authorize runs the front channel: the authorization request, the sign-in
// page and the password sign-in, and returns where Latch sent the browser
// back to (the redirect URI with code and state).
func (b *browser) authorize(authURL, ident, password string) *url.URL {
	b.t.Helper()
	p := b.get(authURL)
	if p.Location != nil {
		return p.Location // a live session skipped the page
	}
	if p.Status != http.StatusOK || p.URL.Path != "/ui/sign-in" {
		b.t.Fatalf("authorization request ended at %s (%d): %.300s", p.URL, p.Status, p.Body)
	}
	st, out := b.signInOnPage(ident, password)
	to, _ := out["redirectTo"].(string)
	if st != http.StatusOK || to == "" || out["access_token"] != nil {
		b.t.Fatalf("submit: %d %v, want only redirectTo", st, out)
	}
	back := b.get(to)
	if back.Location == nil {
		b.t.Fatalf("redirectTo %s did not redirect to the client: %d %.300s", to, back.Status, back.Body)
	}
	return back.Location
}

// pkce is a verifier with its S256 challenge option.
func pkce() (string, oauth2.AuthCodeOption) {
	v := oauth2.GenerateVerifier()
	return v, oauth2.S256ChallengeOption(v)
}

// codeOf requires a successful authorization response with state.
func codeOf(t testing.TB, back *url.URL, state string) string {
	t.Helper()
	q := back.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("authorization response %s: no code", back)
	}
	if q.Get("state") != state {
		t.Fatalf("state %q, want %q", q.Get("state"), state)
	}
	if !strings.HasPrefix(back.String(), rpRedirect+"?") {
		t.Fatalf("redirected to %s, want %s", back, rpRedirect)
	}
	return q.Get("code")
}

// exchange redeems a code through oauth2 and verifies the ID token with
// go-oidc (signature, iss, aud, exp, nonce, at_hash).
func (r *rp) exchange(t testing.TB, code, verifier, nonce string) (*oauth2.Token, *oidc.IDToken, map[string]any) {
	t.Helper()
	tok, err := r.config.Exchange(r.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.client.ID}).Verify(r.ctx(), raw)
	if err != nil {
		t.Fatalf("go-oidc verify: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return tok, idt, claims
}

// tokenForm posts a raw form to the token endpoint (basic auth when secret
// is set).
func (f *expFix) tokenForm(t testing.TB, clientID, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.URL+"/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	} else {
		form.Set("client_id", clientID)
		req.Body = io.NopCloser(strings.NewReader(form.Encode()))
		req.ContentLength = int64(len(form.Encode()))
	}
	res, err := f.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

package app_test

// Helpers of the SAML tests: crewjam/saml's IdentityProvider running in
// the test process (its metadata, its SSO endpoint, its signed responses),
// which reads Latch's SP metadata over HTTP like a real IdP, and a driver
// for the whole dance — Latch's AuthnRequest URL, the IdP's auto-post
// form, the post to Latch's assertion consumer service.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"html"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/latch-dev/latch/app/apptest"
)

// samlUser is who signs in at the IdP next.
type samlUser struct {
	NameID, Email, Name string
	// ClassRef is the AuthnContextClassRef asserted ("": password).
	ClassRef string
}

// samlIdP is a running SAML identity provider.
type samlIdP struct {
	URL  string
	idp  *saml.IdentityProvider
	cert *x509.Certificate
	mu   sync.Mutex
	next samlUser
	// tweak changes the assertion before the IdP signs it.
	tweak func(*saml.Assertion)
	// plain: the IdP does not encrypt assertions (it ignores the SP's
	// encryption key), so a test can read and tamper with them.
	plain bool
}

func startIdP(t testing.TB) *samlIdP {
	t.Helper()
	key, cert := samlKeyPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	meta, _ := url.Parse(base + "/metadata")
	sso, _ := url.Parse(base + "/sso")
	p := &samlIdP{URL: base, cert: cert}
	p.idp = &saml.IdentityProvider{Key: key, Signer: key, Certificate: cert, MetadataURL: *meta, SSOURL: *sso,
		ServiceProviderProvider: spFetcher{p}, SessionProvider: p, AssertionMaker: p, Logger: log.New(io.Discard, "", 0)}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: p.idp.Handler()}}
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

func samlKeyPair(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test IdP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// spFetcher reads a service provider's metadata from its entity id, which
// for Latch is its metadata URL.
type spFetcher struct{ p *samlIdP }

func (sf spFetcher) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	res, err := http.Get(id)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, os.ErrNotExist
	}
	raw, _ := io.ReadAll(res.Body)
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		return nil, err
	}
	sf.p.mu.Lock()
	defer sf.p.mu.Unlock()
	if sf.p.plain {
		for i := range ed.SPSSODescriptors {
			d := &ed.SPSSODescriptors[i]
			d.KeyDescriptors = slices.DeleteFunc(d.KeyDescriptors, func(k saml.KeyDescriptor) bool { return k.Use != "signing" })
		}
	}
	return &ed, nil
}

// GetSession signs the next user in without a form.
func (p *samlIdP) GetSession(_ http.ResponseWriter, _ *http.Request, _ *saml.IdpAuthnRequest) *saml.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.next
	return &saml.Session{ID: v1Name("sess"), CreateTime: time.Now(), ExpireTime: time.Now().Add(time.Hour), Index: v1Name("idx"),
		NameID: u.NameID, UserEmail: u.Email, UserCommonName: u.Name, AuthnContextClassRef: u.ClassRef}
}

func (p *samlIdP) MakeAssertion(req *saml.IdpAuthnRequest, s *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, s); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tweak != nil {
		p.tweak(req.Assertion)
	}
	return nil
}

func (p *samlIdP) setTweak(fn func(*saml.Assertion)) {
	p.mu.Lock()
	p.tweak = fn
	p.mu.Unlock()
}

// user makes a user of the IdP with an address.
func (p *samlIdP) user(email string) samlUser {
	return samlUser{NameID: "saml-" + strings.ToLower(v1Name("n")), Email: email, Name: "Ada Lovelace"}
}

// config is a Latch connector configuration reading the IdP's metadata.
func (p *samlIdP) config() map[string]any { return map[string]any{"metadata_url": p.URL + "/metadata"} }

var samlFormInput = regexp.MustCompile(`name="(SAMLResponse|RelayState)" value="([^"]*)"`)

// login follows Latch's authorization URL to the IdP as u and returns the
// form the IdP would have the browser post: SAMLResponse and RelayState.
func (p *samlIdP) login(t testing.TB, authURL string, u samlUser) (string, string) {
	t.Helper()
	if !strings.HasPrefix(authURL, p.URL+"/sso?") {
		t.Fatalf("authorization URL %s is not the IdP's SSO endpoint", authURL)
	}
	p.mu.Lock()
	p.next = u
	p.mu.Unlock()
	res, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	form := map[string]string{}
	for _, m := range samlFormInput.FindAllStringSubmatch(string(body), -1) {
		form[m[1]] = html.UnescapeString(m[2])
	}
	if res.StatusCode != http.StatusOK || form["SAMLResponse"] == "" {
		t.Fatalf("IdP answered %d without a response form: %s", res.StatusCode, body)
	}
	return form["SAMLResponse"], form["RelayState"]
}

// acs posts a response to Latch's assertion consumer service like the
// browser would (no cookie, no redirect followed).
func samlACS(t testing.TB, env *apptest.Env, connectorID, response, relay string) *apptest.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, env.URL+"/api/authn/saml/"+connectorID,
		strings.NewReader(url.Values{"SAMLResponse": {response}, "RelayState": {relay}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := &apptest.Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.JSON)
	return out
}

// samlStart is authorization-uri of a SAML connector: the record and the
// IdP URL.
func (x *expTx) samlStart(t testing.TB, connectorID, state string) (string, string) {
	t.Helper()
	res := expMust(t, x.post(t, "/verification/sso/"+connectorID+"/authorization-uri",
		map[string]any{"state": state, "redirectUri": upCallback}), http.StatusOK, "authorization-uri")
	return res.Str("verificationId"), res.Str("authorizationUri")
}

// saml runs authorization-uri, the IdP, the ACS and verify, and returns
// the verify answer and the record id.
func (x *expTx) saml(t testing.TB, f *upFix, p *samlIdP, connectorID string, u samlUser) (*apptest.Response, string) {
	t.Helper()
	state := "st-" + v1Name("s")
	vid, uri := x.samlStart(t, connectorID, state)
	resp, relay := p.login(t, uri, u)
	acs := samlACS(t, f.Env, connectorID, resp, relay)
	if acs.Status != http.StatusSeeOther {
		return acs, vid
	}
	if loc := acs.Header.Get("Location"); loc != upCallback+"?state="+url.QueryEscape(state) {
		t.Fatalf("ACS redirected to %q", loc)
	}
	return x.post(t, "/verification/sso/"+connectorID+"/verify", map[string]any{"verificationId": vid, "connectorData": map[string]any{}}), vid
}

// samlEdit decodes a SAMLResponse, lets fn change its XML and encodes it.
func samlEdit(t testing.TB, response string, fn func(doc *etree.Document)) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(response)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	fn(doc)
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

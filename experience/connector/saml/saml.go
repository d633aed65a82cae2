// Package saml is the SAML 2.0 enterprise connector: Latch is the service
// provider, the customer's IdP (Okta, Entra, ADFS…) signs assertions.
// crewjam/saml does the protocol: the AuthnRequest (HTTP-Redirect binding,
// signed when sign_requests is set), and the response verified as a whole
// — XML signature by the IdP's certificate on the response or on the
// assertion (one of them is required), issuer, audience (our entity id),
// destination (our ACS), InResponseTo (this sign-in's request id, so no
// IdP-initiated sign-in), NotBefore/NotOnOrAfter and IssueInstant within
// crewjam's bounded clock skew. Replay of an assertion id is refused by the
// engine, which stores consumed ids in the database.
package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/latch-dev/latch/experience/connector"
)

// Config is a SAML connector's configuration: the IdP by its metadata
// (URL or XML) or by hand (entity id, SSO URL, signing certificate).
type Config struct {
	MetadataURL      string  `json:"metadata_url,omitempty"`
	MetadataXML      string  `json:"metadata_xml,omitempty"`
	EntityID         string  `json:"entity_id,omitempty"`
	SSOURL           string  `json:"sso_url,omitempty"`
	Certificate      string  `json:"certificate,omitempty"`
	AttributeMapping Mapping `json:"attribute_mapping"`
	SignRequests     bool    `json:"sign_requests"`
	// SPCertificate is Latch's (the service provider's) certificate, PEM:
	// generated with its key pair when the connector is created; the key
	// is the connector's sealed secret.
	SPCertificate string `json:"sp_certificate,omitempty"`
}

// Mapping names the assertion attributes Latch reads (by Name or
// FriendlyName); empty members use the defaults.
type Mapping struct {
	// ID is the subject's attribute; empty: the assertion's NameID.
	ID    string `json:"id,omitempty"`
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// Attribute names tried when the mapping names none: the LDAP/eduPerson
// OIDs, and the claim URIs of ADFS and Entra.
var (
	defaultEmail = []string{"email", "mail", "emailaddress", "emailAddress", "urn:oid:0.9.2342.19200300.100.1.3",
		"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "http://schemas.xmlsoap.org/claims/EmailAddress"}
	defaultName = []string{"name", "displayName", "urn:oid:2.16.840.1.113730.3.1.241", "cn", "urn:oid:2.5.4.3",
		"http://schemas.microsoft.com/identity/claims/displayname", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"}
)

// mfaContexts are AuthnContextClassRefs that say the IdP used more than
// one factor (SAML's own two-factor classes, REFEDS MFA, ADFS/Entra's
// multipleauthn): an assertion with one reports amr "mfa".
var mfaContexts = []string{
	"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
	"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
	"urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
	"https://refeds.org/profile/mfa",
	"http://schemas.microsoft.com/claims/multipleauthn",
}

// maxResponse bounds a posted SAMLResponse (decoded).
const maxResponse = 1 << 20

// Kind is the "saml" provider.
type Kind struct{}

// Generated: the SP certificate is Latch's, never a request's.
func (Kind) Generated() []string { return []string{"sp_certificate"} }

// Split validates c. A configuration without an SP certificate (a new
// connector, or a patch that removed it to rotate the key) gets a fresh
// RSA key pair: the key is the secret, the certificate stays public.
func (Kind) Split(raw json.RawMessage) (json.RawMessage, string, error) {
	var c Config
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return nil, "", connector.InvalidConfig("", "is not a valid SAML configuration ("+err.Error()+")")
	}
	c.MetadataURL, c.EntityID, c.SSOURL = strings.TrimSpace(c.MetadataURL), strings.TrimSpace(c.EntityID), strings.TrimSpace(c.SSOURL)
	manual := c.EntityID != "" || c.SSOURL != "" || c.Certificate != ""
	n := 0
	for _, set := range []bool{c.MetadataURL != "", c.MetadataXML != "", manual} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, "", connector.InvalidConfig("", "give one of metadata_url, metadata_xml, or entity_id with sso_url and certificate")
	}
	switch {
	case c.MetadataURL != "":
		if !connector.HTTPURL(c.MetadataURL) {
			return nil, "", connector.InvalidConfig("metadata_url", "must be an http(s) URL")
		}
	case c.MetadataXML != "":
		if _, err := parseMetadata([]byte(c.MetadataXML)); err != nil {
			return nil, "", connector.InvalidConfig("metadata_xml", "is not IdP metadata with an HTTP-Redirect sign-in service and a signing certificate")
		}
	default:
		if c.EntityID == "" {
			return nil, "", connector.InvalidConfig("entity_id", "is required")
		}
		if !connector.HTTPURL(c.SSOURL) {
			return nil, "", connector.InvalidConfig("sso_url", "must be an http(s) URL")
		}
		cert, err := parseCert(c.Certificate)
		if err != nil {
			return nil, "", connector.InvalidConfig("certificate", "must be an X.509 certificate (PEM or base64 DER)")
		}
		c.Certificate = pemCert(cert)
	}
	secret := ""
	if c.SPCertificate == "" {
		key, cert, err := newKeyPair()
		if err != nil {
			return nil, "", err
		}
		c.SPCertificate, secret = cert, key
	}
	public, err := json.Marshal(c)
	return public, secret, err
}

// newKeyPair makes the SP's RSA 2048 key (PKCS#8 PEM) and a self-signed
// certificate for it (PEM): IdPs only use it as a container of the key.
func newKeyPair() (string, string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return "", "", err
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Latch SAML service provider"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// Open loads the IdP's metadata and builds the service provider at its
// endpoint: the entity id is its metadata URL, the ACS the endpoint.
func (Kind) Open(ctx context.Context, public json.RawMessage, secret string, at connector.Endpoint, hc *http.Client) (connector.Connector, error) {
	var c Config
	if err := json.Unmarshal(public, &c); err != nil {
		return nil, err
	}
	block, _ := pem.Decode([]byte(secret))
	if block == nil {
		return nil, errors.New("saml: the SP key is missing")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*rsa.PrivateKey)
	spCert, cerr := parseCert(c.SPCertificate)
	if !ok || cerr != nil || !key.PublicKey.Equal(spCert.PublicKey) {
		return nil, errors.New("saml: the SP key and certificate do not match")
	}
	var idp *crewsaml.EntityDescriptor
	switch {
	case c.MetadataURL != "":
		u, _ := url.Parse(c.MetadataURL)
		if idp, err = samlsp.FetchMetadata(ctx, hc, *u); err != nil {
			return nil, connector.InvalidResponse("the identity provider's metadata could not be loaded")
		}
	case c.MetadataXML != "":
		if idp, err = parseMetadata([]byte(c.MetadataXML)); err != nil {
			return nil, connector.InvalidResponse("the identity provider's metadata is invalid")
		}
	default:
		cert, err := parseCert(c.Certificate)
		if err != nil {
			return nil, err
		}
		idp = manualMetadata(c.EntityID, c.SSOURL, cert)
	}
	acs, err := url.Parse(at.URL)
	if err != nil || at.URL == "" {
		return nil, errors.New("saml: no endpoint for the connector")
	}
	meta, _ := url.Parse(at.URL + "/metadata")
	sp := &crewsaml.ServiceProvider{EntityID: meta.String(), Key: key, Certificate: spCert, MetadataURL: *meta, AcsURL: *acs,
		IDPMetadata: idp, AssertionConsumerServiceBindings: []string{crewsaml.HTTPPostBinding}, HTTPClient: hc,
		RejectUnknownConditions: true, RejectSHA1Signatures: true}
	if c.SignRequests {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	if sp.GetSSOBindingLocation(crewsaml.HTTPRedirectBinding) == "" {
		return nil, connector.InvalidResponse("the identity provider offers no HTTP-Redirect sign-in")
	}
	return &conn{cfg: c, sp: sp}, nil
}

func parseMetadata(raw []byte) (*crewsaml.EntityDescriptor, error) {
	md, err := samlsp.ParseMetadata(raw)
	if err != nil {
		return nil, err
	}
	sp := crewsaml.ServiceProvider{IDPMetadata: md}
	if sp.GetSSOBindingLocation(crewsaml.HTTPRedirectBinding) == "" {
		return nil, errors.New("saml: no HTTP-Redirect SSO service")
	}
	return md, nil
}

// manualMetadata is the metadata of an IdP configured by hand.
func manualMetadata(entityID, ssoURL string, cert *x509.Certificate) *crewsaml.EntityDescriptor {
	return &crewsaml.EntityDescriptor{EntityID: entityID, IDPSSODescriptors: []crewsaml.IDPSSODescriptor{{
		SSODescriptor: crewsaml.SSODescriptor{RoleDescriptor: crewsaml.RoleDescriptor{
			ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
			KeyDescriptors: []crewsaml.KeyDescriptor{{Use: "signing", KeyInfo: crewsaml.KeyInfo{X509Data: crewsaml.X509Data{
				X509Certificates: []crewsaml.X509Certificate{{Data: base64.StdEncoding.EncodeToString(cert.Raw)}}}}}},
		}},
		SingleSignOnServices: []crewsaml.Endpoint{{Binding: crewsaml.HTTPRedirectBinding, Location: ssoURL}},
	}}}
}

// parseCert reads a certificate as PEM or bare base64 DER (as metadata
// carries it).
func parseCert(s string) (*x509.Certificate, error) {
	if block, _ := pem.Decode([]byte(s)); block != nil {
		return x509.ParseCertificate(block.Bytes)
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

type conn struct {
	cfg Config
	sp  *crewsaml.ServiceProvider
}

// requestID is the AuthnRequest id of a sign-in: derived from the
// record's nonce, so the record holds it without another field (an xs:ID
// starts with a letter).
func requestID(r connector.Request) string { return "id-" + r.Nonce }

func (c *conn) UsesPKCE() bool { return false }

// AuthorizationURL is the IdP's SSO URL with the AuthnRequest (HTTP-Redirect
// binding; the query signed when sign_requests is set) and r.Relay as the
// RelayState.
func (c *conn) AuthorizationURL(_ context.Context, r connector.Request) (string, error) {
	if r.Nonce == "" || r.Relay == "" {
		return "", errors.New("saml: a request needs a nonce and a relay state")
	}
	req, err := c.sp.MakeAuthenticationRequest(c.sp.GetSSOBindingLocation(crewsaml.HTTPRedirectBinding), crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding)
	if err != nil {
		return "", err
	}
	req.ID = requestID(r)
	u, err := req.Redirect(r.Relay, c.sp)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// Exchange: SAML has no code; the IdP posts its response (Consume).
func (c *conn) Exchange(context.Context, connector.Request, string) (*connector.Identity, error) {
	return nil, connector.InvalidResponse("a SAML sign-in is completed by the identity provider's SAMLResponse, not a code")
}

// Metadata is the SP metadata: entity id, ACS (HTTP-POST), signing key.
func (c *conn) Metadata() ([]byte, error) {
	out, err := xml.MarshalIndent(c.sp.Metadata(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

// Consume verifies a posted SAMLResponse (HTTP-POST binding: base64 XML)
// as the answer to the request r.
func (c *conn) Consume(_ context.Context, r connector.Request, response string) (*connector.Assertion, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(response), ""))
	if err != nil || len(raw) == 0 || len(raw) > maxResponse {
		return nil, connector.InvalidResponse("the SAMLResponse is not a base64 SAML response")
	}
	a, err := c.sp.ParseXMLResponse(raw, []string{requestID(r)}, c.sp.AcsURL)
	if err != nil {
		return nil, refusal(err)
	}
	id := c.identity(a)
	if id.Subject == "" {
		return nil, connector.InvalidResponse("the assertion has no subject")
	}
	// The assertion is accepted until its IssueInstant plus crewjam's
	// bounds (never later than that, whatever NotOnOrAfter says): its id
	// is kept single use that long.
	issued := a.IssueInstant
	if now := time.Now(); issued.Before(now) {
		issued = now
	}
	return &connector.Assertion{Identity: id, ID: a.ID, Expires: issued.Add(crewsaml.MaxIssueDelay + crewsaml.MaxClockSkew)}, nil
}

// refusal names, in Latch's words, why a response was refused; crewjam's
// own detail goes to the log only.
func refusal(err error) error {
	detail := err
	var ire *crewsaml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr
	}
	var why string
	var status crewsaml.ErrBadStatus
	switch {
	case errors.Is(detail, crewsaml.ErrRequestIDMismatch):
		why = "it does not answer this sign-in's request"
	case errors.Is(detail, crewsaml.ErrExpired), errors.Is(detail, crewsaml.ErrNotYetValid):
		why = "the assertion is expired or not yet valid"
	case errors.Is(detail, crewsaml.ErrAudienceMismatch):
		why = "the assertion is for another service provider"
	// A missing signature is an unexported, unclassified error in crewjam.
	case errors.Is(detail, crewsaml.ErrInvalidSignature), errors.Is(detail, crewsaml.ErrUntrustedCertificate),
		strings.Contains(detail.Error(), "signature element not present"):
		why = "it is not signed by the identity provider"
	case errors.As(detail, &status):
		return &connector.Refusal{Err: connector.AuthorizationFailed(), Detail: detail}
	default:
		why = "it does not verify"
	}
	return &connector.Refusal{Err: connector.InvalidResponse("the SAML response was refused: " + why), Detail: detail}
}

// identity reads the subject, e-mail, name and MFA of an assertion.
func (c *conn) identity(a *crewsaml.Assertion) *connector.Identity {
	m := c.cfg.AttributeMapping
	id := &connector.Identity{DirectoryEmail: true}
	if m.ID != "" {
		id.Subject = attr(a, []string{m.ID})
	} else if a.Subject != nil && a.Subject.NameID != nil {
		id.Subject = strings.TrimSpace(a.Subject.NameID.Value)
	}
	id.Email = attr(a, names(m.Email, defaultEmail))
	id.Name = attr(a, names(m.Name, defaultName))
	for _, st := range a.AuthnStatements {
		if ref := st.AuthnContext.AuthnContextClassRef; ref != nil && slices.Contains(mfaContexts, ref.Value) {
			id.AMR = []string{"mfa"}
		}
	}
	return id
}

func names(configured string, defaults []string) []string {
	if configured != "" {
		return []string{configured}
	}
	return defaults
}

// attr is the first value of the first of names the assertion carries.
func attr(a *crewsaml.Assertion, names []string) string {
	for _, n := range names {
		for _, st := range a.AttributeStatements {
			for _, at := range st.Attributes {
				if (at.Name == n || at.FriendlyName == n) && len(at.Values) > 0 {
					if v := strings.TrimSpace(at.Values[0].Value); v != "" {
						return v
					}
				}
			}
		}
	}
	return ""
}

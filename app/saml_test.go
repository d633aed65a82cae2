package app_test

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"html"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/latch-dev/latch/app/apptest"
)

// TestSAMLConnectorManagement: a SAML SSO connector over /v1: Latch makes
// the SP key pair, seals the key and never shows it; the SP certificate,
// entity id and ACS are shown and served as parseable SP metadata; the
// configuration is validated; the certificate cannot be set, only rotated.
func TestSAMLConnectorManagement(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		idp := startIdP(t)
		res := f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "Acme SAML", "provider": "saml",
			"domains": []string{strings.ToLower(v1Name("samlm")) + ".test"}, "config": idp.config()})
		if res.Status != http.StatusCreated || res.JSON["has_client_secret"] != true {
			t.Fatalf("create: %s", res)
		}
		id := res.Str("id")
		cfg := res.JSON["config"].(map[string]any)
		spCert, _ := cfg["sp_certificate"].(string)
		if block, _ := pem.Decode([]byte(spCert)); block == nil || block.Type != "CERTIFICATE" {
			t.Fatalf("no SP certificate shown: %s", res)
		}
		sp, _ := res.JSON["service_provider"].(map[string]any)
		acsURL := f.URL + "/api/authn/saml/" + id
		if sp["acs_url"] != acsURL || sp["entity_id"] != acsURL+"/metadata" || sp["metadata_url"] != acsURL+"/metadata" {
			t.Fatalf("service_provider: %s", res)
		}

		// The key: sealed in the row, in no answer.
		var secret []byte
		var config string
		if err := f.Services.DB.Raw("SELECT secret, config FROM connectors WHERE id = ?", id).Row().Scan(&secret, &config); err != nil {
			t.Fatal(err)
		}
		if len(secret) == 0 || strings.Contains(string(secret), "PRIVATE KEY") || strings.Contains(config, "PRIVATE KEY") {
			t.Fatalf("the SP key is not sealed at rest")
		}
		md := f.call(t, http.MethodGet, "/api/authn/saml/"+id+"/metadata", "", nil)
		for _, got := range []*apptest.Response{res, md, f.call(t, http.MethodGet, "/v1/sso-connectors/"+id, f.tok, nil),
			f.call(t, http.MethodGet, "/v1/sso-connectors", f.tok, nil)} {
			if got.Status != http.StatusOK && got.Status != http.StatusCreated || strings.Contains(string(got.Raw), "PRIVATE KEY") {
				t.Fatalf("an answer shows the SP key: %s", got)
			}
		}
		for _, e := range f.auditEvents(t, "", "connector.created") {
			if raw, _ := json.Marshal(e); strings.Contains(string(raw), "PRIVATE KEY") {
				t.Fatalf("audit shows the SP key")
			}
		}

		// The metadata: our entity id, the ACS (HTTP-POST), our certificate.
		if ct := md.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/samlmetadata+xml") {
			t.Fatalf("metadata content type %q", ct)
		}
		var ed saml.EntityDescriptor
		if err := xml.Unmarshal(md.Raw, &ed); err != nil || len(ed.SPSSODescriptors) != 1 {
			t.Fatalf("metadata does not parse (%v): %s", err, md.Raw)
		}
		spd := ed.SPSSODescriptors[0]
		if ed.EntityID != acsURL+"/metadata" || len(spd.AssertionConsumerServices) != 1 ||
			spd.AssertionConsumerServices[0].Location != acsURL || spd.AssertionConsumerServices[0].Binding != saml.HTTPPostBinding {
			t.Fatalf("metadata: entity %q, ACS %+v", ed.EntityID, spd.AssertionConsumerServices)
		}
		block, _ := pem.Decode([]byte(spCert))
		if !strings.Contains(strings.Join(strings.Fields(string(md.Raw)), ""), base64.StdEncoding.EncodeToString(block.Bytes)) {
			t.Fatalf("metadata does not carry the SP certificate")
		}
		expWantAPI(t, f.call(t, http.MethodGet, "/api/authn/saml/nope/metadata", "", nil), http.StatusNotFound, "entity.not_exists_with_id")

		// Configuration: one IdP source, valid; the SP certificate is Latch's.
		for _, bad := range []map[string]any{{}, {"metadata_url": "not a url"}, {"metadata_xml": "<x/>"},
			{"metadata_url": idp.URL + "/metadata", "entity_id": "x"}, {"entity_id": "x", "sso_url": idp.URL + "/sso", "certificate": "nope"},
			{"metadata_url": idp.URL + "/metadata", "sp_certificate": spCert}, {"metadata_url": idp.URL + "/metadata", "unknown": 1}} {
			wantError(t, f.call(t, http.MethodPost, "/v1/sso-connectors", f.tok, map[string]any{"name": "Bad", "provider": "saml", "config": bad}),
				http.StatusBadRequest, "system_invalid_input")
		}
		wantError(t, f.call(t, http.MethodPost, "/v1/social-connectors", f.tok, map[string]any{"name": "Bad", "provider": "saml", "config": idp.config()}),
			http.StatusBadRequest, "system_invalid_input")
		wantError(t, f.call(t, http.MethodPatch, "/v1/sso-connectors/"+id, f.tok, map[string]any{"config": map[string]any{"sp_certificate": "x"}}),
			http.StatusBadRequest, "system_invalid_input")
		// A patch keeps the key pair; null rotates it.
		res = f.call(t, http.MethodPatch, "/v1/sso-connectors/"+id, f.tok, map[string]any{"config": map[string]any{"sign_requests": true}})
		if res.Status != http.StatusOK || res.JSON["config"].(map[string]any)["sp_certificate"] != spCert {
			t.Fatalf("patch changed the SP certificate: %s", res)
		}
		res = f.call(t, http.MethodPatch, "/v1/sso-connectors/"+id, f.tok, map[string]any{"config": map[string]any{"sp_certificate": nil}})
		if c, _ := res.JSON["config"].(map[string]any)["sp_certificate"].(string); res.Status != http.StatusOK || c == "" || c == spCert {
			t.Fatalf("rotation: %s", res)
		}
		var rotated []byte
		if err := f.Services.DB.Raw("SELECT secret FROM connectors WHERE id = ?", id).Row().Scan(&rotated); err != nil || string(rotated) == string(secret) {
			t.Fatalf("rotation kept the key (%v)", err)
		}
		// It still signs users in (signed requests, the new key).
		x := f.beginAs(t, f.appTok, "SignIn", false)
		if verify, _ := x.saml(t, f, idp, id, idp.user(expEmail("rot"))); verify.Status != http.StatusOK {
			t.Fatalf("sign-in after rotation: %s", verify)
		}
	})
}

// TestSAMLSignIn: an enterprise SAML connector owning a domain, against a
// real IdP: a new account (with the connector's JIT organization), the
// known identity again, linking by an address of the connector's domain
// and not by another's, and the response handed to verify directly.
func TestSAMLSignIn(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		idp := startIdP(t)
		org := f.newOrg(t, nil).Str("id")
		domain := strings.ToLower(v1Name("saml")) + ".test"
		conn := f.connector(t, "sso", map[string]any{"name": "Corp SAML", "provider": "saml", "domains": []string{domain},
			"config": idp.config(), "jit_organizations": []string{org}})
		up := idp.user(strings.ToLower(v1Name("ada")) + "@" + domain)

		var userID string
		t.Run("Register", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			verify, vid := x.saml(t, f, idp, conn, up)
			if verify.Status != http.StatusOK || verify.Str("verificationId") != vid {
				t.Fatalf("verify: %s", verify)
			}
			expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
			claims := x.submitTokens(t)
			userID = claims["sub"].(string)
			u := f.call(t, http.MethodGet, "/v1/users/"+userID, f.tok, nil)
			if u.Str("primary_email") != up.Email || u.JSON["email_verified"] != true || u.Str("name") != "Ada Lovelace" {
				t.Fatalf("registered user: %s", u)
			}
			if !slices.Contains(anyStrings(claims["amr"]), "fed") {
				t.Fatalf("amr: %v", claims["amr"])
			}
			if orgs := f.userOrgs(t, userID); len(orgs) != 1 || orgs[0]["org_id"] != org {
				t.Fatalf("JIT organizations: %v", orgs)
			}
			var subject string
			if err := f.Services.DB.Raw("SELECT subject FROM user_identities WHERE user_id = ?", userID).Row().Scan(&subject); err != nil || subject != up.NameID {
				t.Fatalf("identity subject %q (%v), want the NameID %q", subject, err, up.NameID)
			}
		})
		t.Run("SignInAgain", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.saml(t, f, idp, conn, up)
			expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
			if sub := x.submitTokens(t)["sub"]; sub != userID {
				t.Fatalf("signed in as %v, want %s", sub, userID)
			}
			if n := f.count(t, "SELECT COUNT(*) FROM user_identities WHERE connector_id = ?", conn); n != 1 {
				t.Fatalf("%d identities of the connector, want 1", n)
			}
		})
		t.Run("LinksDomainEmail", func(t *testing.T) {
			email := strings.ToLower(v1Name("emp")) + "@" + domain
			id := f.createUser(t, map[string]any{"username": v1Name("emp"), "email": email, "email_verified": true})
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.saml(t, f, idp, conn, idp.user(email))
			expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
			if sub := x.submitTokens(t)["sub"]; sub != id {
				t.Fatalf("SAML signed in as %v, want %s", sub, id)
			}
		})
		t.Run("ForeignEmailNeverLinks", func(t *testing.T) {
			// The IdP asserts another company's address: not its to vouch for.
			email := strings.ToLower(v1Name("other")) + "@elsewhere-" + domain
			id := f.createUser(t, map[string]any{"username": v1Name("oth"), "email": email, "email_verified": true})
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.saml(t, f, idp, conn, idp.user(email))
			expWantAPI(t, x.identify(t, vid), http.StatusUnprocessableEntity, "user.email_already_in_use")
			if n := f.count(t, "SELECT COUNT(*) FROM user_identities WHERE user_id = ?", id); n != 0 {
				t.Fatalf("a foreign address was linked")
			}
		})
		t.Run("ResponseToVerify", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			vid, uri := x.samlStart(t, conn, "direct")
			verify := func(data map[string]any) *apptest.Response {
				return x.post(t, "/verification/sso/"+conn+"/verify", map[string]any{"verificationId": vid, "connectorData": data})
			}
			expWantAPI(t, verify(map[string]any{}), http.StatusBadRequest, "session.verification_failed")
			resp, relay := idp.login(t, uri, up)
			expWantAPI(t, verify(map[string]any{"SAMLResponse": resp, "RelayState": "forged"}), http.StatusBadRequest, "session.verification_failed")
			expMust(t, verify(map[string]any{"SAMLResponse": resp, "RelayState": relay}), http.StatusOK, "verify")
			expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
			// Verified once: the same response again changes nothing.
			expWantAPI(t, samlACS(t, f.Env, conn, resp, relay), http.StatusBadRequest, "session.verification_failed")
		})
	})
}

// TestSAMLSecurity: what a response must be to sign anyone in — signed by
// the IdP and untouched, for our audience, answering this record's own
// request (no IdP-initiated sign-in), within its validity (bounded skew),
// its assertion id never seen before (on any replica) — and a connector
// deleted mid-flow. A refused response changes nothing: the genuine one
// still completes the record.
func TestSAMLSecurity(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		idp := startIdP(t)
		domain := strings.ToLower(v1Name("sec")) + ".test"
		conn := f.connector(t, "sso", map[string]any{"name": "Sec", "provider": "saml", "domains": []string{domain}, "config": idp.config()})
		up := idp.user(strings.ToLower(v1Name("sec")) + "@" + domain)
		// refused: the response is refused, for the reason named.
		refused := func(t *testing.T, res *apptest.Response, why string) {
			t.Helper()
			expWantAPI(t, res, http.StatusBadRequest, "connector.invalid_response")
			if !strings.Contains(res.Str("message"), why) {
				t.Fatalf("refused for another reason than %q: %s", why, res)
			}
			if strings.Contains(string(res.Raw), "saml:") || strings.Contains(string(res.Raw), "someone-else") {
				t.Fatalf("upstream detail leaked: %s", res)
			}
		}
		// attempt: a record and the IdP's answer for it.
		attempt := func(t *testing.T) (*expTx, string, string, string) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			vid, uri := x.samlStart(t, conn, "s-"+v1Name("s"))
			resp, relay := idp.login(t, uri, up)
			return x, vid, resp, relay
		}
		genuineStillWorks := func(t *testing.T, x *expTx, vid, resp, relay string) {
			t.Helper()
			expWantAPI(t, x.post(t, "/verification/sso/"+conn+"/verify", map[string]any{"verificationId": vid, "connectorData": map[string]any{}}),
				http.StatusBadRequest, "session.verification_failed")
			if res := samlACS(t, f.Env, conn, resp, relay); res.Status != http.StatusSeeOther {
				t.Fatalf("the genuine response after a refused one: %s", res)
			}
		}

		t.Run("Encrypted", func(t *testing.T) {
			// By default the IdP encrypts to the SP's key: the browser
			// carries no readable assertion.
			_, _, resp, _ := attempt(t)
			if xml := mustDecode(t, resp); !strings.Contains(xml, "EncryptedAssertion") || strings.Contains(xml, up.Email) {
				t.Fatalf("the assertion is not encrypted")
			}
		})
		idp.mu.Lock()
		idp.plain = true
		idp.mu.Unlock()
		t.Run("Unsigned", func(t *testing.T) {
			x, vid, resp, relay := attempt(t)
			stripped := samlEdit(t, resp, func(doc *etree.Document) {
				for _, el := range allElements(doc.Root()) {
					for _, sig := range el.SelectElements("Signature") {
						el.RemoveChild(sig)
					}
				}
			})
			if strings.Contains(mustDecode(t, stripped), "SignatureValue") {
				t.Fatal("signatures left in the stripped response")
			}
			refused(t, samlACS(t, f.Env, conn, stripped, relay), "not signed")
			genuineStillWorks(t, x, vid, resp, relay)
		})
		t.Run("Tampered", func(t *testing.T) {
			x, vid, resp, relay := attempt(t)
			for _, from := range []string{up.Email, up.NameID} {
				tampered := samlEdit(t, resp, func(doc *etree.Document) {
					for _, el := range allElements(doc.Root()) {
						if el.Text() == from {
							el.SetText("mallory-" + from)
						}
					}
				})
				refused(t, samlACS(t, f.Env, conn, tampered, relay), "not signed")
			}
			genuineStillWorks(t, x, vid, resp, relay)
		})
		t.Run("WrongAudience", func(t *testing.T) {
			idp.setTweak(func(a *saml.Assertion) {
				a.Conditions.AudienceRestrictions = []saml.AudienceRestriction{{Audience: saml.Audience{Value: "https://someone-else.example/metadata"}}}
			})
			defer idp.setTweak(nil)
			_, _, resp, relay := attempt(t)
			refused(t, samlACS(t, f.Env, conn, resp, relay), "another service provider")
		})
		t.Run("WrongInResponseTo", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			vidA, uriA := x.samlStart(t, conn, "a")
			_, uriB := x.samlStart(t, conn, "b")
			respA, relayA := idp.login(t, uriA, up)
			_, relayB := idp.login(t, uriB, up)
			refused(t, samlACS(t, f.Env, conn, respA, relayB), "does not answer")
			genuineStillWorks(t, x, vidA, respA, relayA)
		})
		t.Run("IdPInitiated", func(t *testing.T) {
			_, _, _, relay := attempt(t)
			idp.mu.Lock()
			idp.next = up
			idp.mu.Unlock()
			rec := httptest.NewRecorder()
			idp.idp.ServeIDPInitiated(rec, httptest.NewRequest(http.MethodGet, idp.URL+"/login", nil), f.URL+"/api/authn/saml/"+conn+"/metadata", relay)
			m := samlFormInput.FindStringSubmatch(rec.Body.String())
			if m == nil || m[1] != "SAMLResponse" {
				t.Fatalf("IdP-initiated response: %d %s", rec.Code, rec.Body)
			}
			refused(t, samlACS(t, f.Env, conn, html.UnescapeString(m[2]), relay), "does not answer")
		})
		t.Run("Expired", func(t *testing.T) {
			past := time.Now().Add(-time.Hour)
			idp.setTweak(func(a *saml.Assertion) {
				a.IssueInstant, a.Conditions.NotBefore, a.Conditions.NotOnOrAfter = past, past, past.Add(5*time.Minute)
				for i := range a.Subject.SubjectConfirmations {
					a.Subject.SubjectConfirmations[i].SubjectConfirmationData.NotOnOrAfter = past.Add(5 * time.Minute)
				}
			})
			defer idp.setTweak(nil)
			_, _, resp, relay := attempt(t)
			refused(t, samlACS(t, f.Env, conn, resp, relay), "expired")
		})
		t.Run("ClockSkew", func(t *testing.T) {
			// Not yet valid beyond the skew bound is refused; within it, fine.
			for _, c := range []struct {
				ahead time.Duration
				ok    bool
			}{{10 * time.Minute, false}, {time.Minute, true}} {
				idp.setTweak(func(a *saml.Assertion) { a.Conditions.NotBefore = time.Now().Add(c.ahead) })
				_, _, resp, relay := attempt(t)
				res := samlACS(t, f.Env, conn, resp, relay)
				if c.ok && res.Status != http.StatusSeeOther {
					t.Fatalf("NotBefore %s ahead: %s", c.ahead, res)
				}
				if !c.ok {
					refused(t, res, "not yet valid")
				}
			}
			idp.setTweak(nil)
		})
		t.Run("AssertionReplay", func(t *testing.T) {
			// An IdP (or whoever replays its assertions) reusing an id: the
			// second use is refused, also at another replica.
			id := "_" + v1Name("a")
			idp.setTweak(func(a *saml.Assertion) { a.ID = id })
			defer idp.setTweak(nil)
			x, vid, resp, relay := attempt(t)
			if res := samlACS(t, f.Env, conn, resp, relay); res.Status != http.StatusSeeOther {
				t.Fatalf("first use: %s", res)
			}
			expMust(t, x.post(t, "/verification/sso/"+conn+"/verify", map[string]any{"verificationId": vid, "connectorData": map[string]any{}}),
				http.StatusOK, "verify")
			replica := f.Replica(apptest.With("LATCH_ISSUER", f.Config.Issuer))
			x2, vid2, resp2, relay2 := attempt(t)
			expWantAPI(t, samlACS(t, replica, conn, resp2, relay2), http.StatusBadRequest, "session.verification_failed")
			expWantAPI(t, samlACS(t, f.Env, conn, resp2, relay2), http.StatusBadRequest, "session.verification_failed")
			expWantAPI(t, x2.post(t, "/verification/sso/"+conn+"/verify", map[string]any{"verificationId": vid2, "connectorData": map[string]any{}}),
				http.StatusBadRequest, "session.verification_failed")
			if n := f.count(t, "SELECT COUNT(*) FROM consumed_assertions WHERE connector_id = ? AND assertion_id = ?", conn, id); n != 1 {
				t.Fatalf("%d consumed rows of the assertion", n)
			}
		})
		t.Run("BadPosts", func(t *testing.T) {
			_, _, resp, relay := attempt(t)
			expWantAPI(t, samlACS(t, f.Env, conn, resp, "garbage"), http.StatusNotFound, "session.verification_session_not_found")
			expWantAPI(t, samlACS(t, f.Env, conn, "", relay), http.StatusBadRequest, "guard.invalid_input")
			expWantAPI(t, samlACS(t, f.Env, conn, "not base64!", relay), http.StatusBadRequest, "connector.invalid_response")
			expWantAPI(t, samlACS(t, f.Env, "nope", resp, relay), http.StatusNotFound, "session.verification_session_not_found")
			expWantAPI(t, f.call(t, http.MethodPost, "/api/authn/saml/"+conn, "", map[string]any{"SAMLResponse": resp, "RelayState": relay}),
				http.StatusBadRequest, "guard.invalid_input")
		})
		t.Run("DeletedMidFlow", func(t *testing.T) {
			other := f.connector(t, "sso", map[string]any{"name": "Gone", "provider": "saml", "config": idp.config()})
			x := f.beginAs(t, f.appTok, "SignIn", false)
			vid, uri := x.samlStart(t, other, "gone")
			resp, relay := idp.login(t, uri, up)
			vid2, uri2 := x.samlStart(t, other, "gone2")
			resp2, relay2 := idp.login(t, uri2, up)
			if res := samlACS(t, f.Env, other, resp2, relay2); res.Status != http.StatusSeeOther {
				t.Fatalf("ACS: %s", res)
			}
			expMust(t, f.call(t, http.MethodDelete, "/v1/sso-connectors/"+other, f.tok, nil), http.StatusNoContent, "delete")
			expWantAPI(t, samlACS(t, f.Env, other, resp, relay), http.StatusNotFound, "entity.not_exists_with_id")
			expWantAPI(t, x.post(t, "/verification/sso/"+other+"/verify", map[string]any{"verificationId": vid, "connectorData": map[string]any{"SAMLResponse": resp}}),
				http.StatusNotFound, "entity.not_exists_with_id")
			expWantAPI(t, x.post(t, "/verification/sso/"+other+"/verify", map[string]any{"verificationId": vid2, "connectorData": map[string]any{}}),
				http.StatusNotFound, "entity.not_exists_with_id")
			expWantAPI(t, x.identify(t, vid2), http.StatusNotFound, "entity.not_exists_with_id")
		})
	})
}

// allElements is el and every element under it.
func allElements(el *etree.Element) []*etree.Element {
	out := []*etree.Element{el}
	for _, c := range el.ChildElements() {
		out = append(out, allElements(c)...)
	}
	return out
}

func mustDecode(t testing.TB, s string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestSAMLMFA: with MFA mandatory, a SAML sign-in satisfies it when the
// IdP asserts a multi-factor AuthnContextClassRef, or when the connector
// is set to trust the upstream's MFA; otherwise MFA is still due.
func TestSAMLMFA(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		idp := startIdP(t)
		domain := strings.ToLower(v1Name("mfa")) + ".test"
		conn := f.connector(t, "sso", map[string]any{"name": "MFA", "provider": "saml", "domains": []string{domain}, "config": idp.config()})
		f.settings(t, `{"mfa": {"policy": "Mandatory"}}`)
		up := idp.user(strings.ToLower(v1Name("mfa")) + "@" + domain)

		x := f.beginAs(t, f.appTok, "SignIn", false)
		_, vid := x.saml(t, f, idp, conn, up)
		expMust(t, x.identify(t, vid), http.StatusCreated, "identify")
		expWantAPI(t, x.post(t, "/submit", nil), http.StatusUnprocessableEntity, "user.missing_mfa")

		withMFA := func(t *testing.T, u samlUser) {
			t.Helper()
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.saml(t, f, idp, conn, u)
			expMust(t, x.identify(t, vid), http.StatusNoContent, "identify")
			res := expMust(t, x.post(t, "/submit", nil), http.StatusOK, "submit")
			if amr := anyStrings(expJWT(t, res.Str("access_token"))["amr"]); !slices.Contains(amr, "mfa") {
				t.Fatalf("amr %v lacks mfa", amr)
			}
		}
		mfa := up
		mfa.ClassRef = "https://refeds.org/profile/mfa"
		withMFA(t, mfa)

		res := f.call(t, http.MethodPatch, "/v1/sso-connectors/"+conn, f.tok, map[string]any{"trust_upstream_mfa": true})
		if res.Status != http.StatusOK || res.JSON["trust_upstream_mfa"] != true {
			t.Fatalf("patch trust_upstream_mfa: %s", res)
		}
		withMFA(t, up)
	})
}

// TestBackendSAML: /v1/auth/sso/start and /authenticate with a SAML
// connector: after the ACS redirect (flow_id and state), or with the
// saml_response itself; a wrong state or RelayState changes nothing.
func TestBackendSAML(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		idp := startIdP(t)
		domain := strings.ToLower(v1Name("bsaml")) + ".test"
		conn := f.connector(t, "sso", map[string]any{"name": "Back SAML", "provider": "saml", "domains": []string{domain}, "config": idp.config()})
		email := strings.ToLower(v1Name("emp")) + "@" + domain
		id := f.createUser(t, map[string]any{"username": v1Name("emp"), "email": email, "email_verified": true})
		up := idp.user(email)
		start := func(body map[string]any) (string, string, string) {
			t.Helper()
			res := f.call(t, http.MethodPost, "/v1/auth/sso/start", f.appTok, body)
			if res.Status != http.StatusOK || res.Str("flow_id") == "" {
				t.Fatalf("sso/start: %s", res)
			}
			resp, relay := idp.login(t, res.Str("authorization_uri"), up)
			return res.Str("flow_id"), resp, relay
		}
		signedIn := func(t *testing.T, res *apptest.Response) {
			t.Helper()
			if res.Status != http.StatusOK || res.Str("session_id") == "" || res.Str("refresh_token") == "" {
				t.Fatalf("sso/authenticate: %s", res)
			}
			if at := expJWT(t, res.Str("access_token")); at["sub"] != id || !slices.Contains(anyStrings(at["amr"]), "fed") {
				t.Fatalf("access token: %v", at)
			}
		}

		// Through the ACS: it redirects with the state, the backend ends it.
		flow, resp, relay := start(map[string]any{"email": email, "redirect_uri": upCallback, "state": "back-1"})
		acs := samlACS(t, f.Env, conn, resp, relay)
		if acs.Status != http.StatusSeeOther || acs.Header.Get("Location") != upCallback+"?state=back-1" {
			t.Fatalf("ACS: %s %v", acs, acs.Header)
		}
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow}),
			http.StatusBadRequest, "system_invalid_input")
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow, "state": "forged"}),
			http.StatusBadRequest, "session_verification_failed")
		signedIn(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow, "state": "back-1"}))

		// One flow, one sign-in, however many backends race to end it.
		flow, resp, relay = start(map[string]any{"email": email, "redirect_uri": upCallback, "state": "back-race"})
		if acs := samlACS(t, f.Env, conn, resp, relay); acs.Status != http.StatusSeeOther {
			t.Fatalf("ACS: %s", acs)
		}
		sessionsBefore := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", id)
		var wg sync.WaitGroup
		statuses := make([]int, 20)
		codes := make([]string, 20)
		for i := range statuses {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				res := f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow, "state": "back-race"})
				statuses[i], codes[i] = res.Status, res.Str("error_code")
			}(i)
		}
		wg.Wait()
		ok := 0
		for i, st := range statuses {
			switch {
			case st == http.StatusOK:
				ok++
			case codes[i] == "session_not_found" || codes[i] == "session_verification_failed" || st == http.StatusConflict:
				// lost the race: the flow is someone else's now
			default:
				t.Fatalf("parallel sso/authenticate answered %d %s: %v %v", st, codes[i], statuses, codes)
			}
		}
		if n := f.count(t, "SELECT COUNT(*) FROM sessions WHERE user_id = ?", id) - sessionsBefore; ok != 1 || n != 1 {
			t.Fatalf("20 parallel ends of one flow: %d signed in, %d sessions (%v)", ok, n, statuses)
		}

		// The response itself, no ACS; a RelayState given must be the flow's.
		flow, resp, relay = start(map[string]any{"connector_id": conn, "redirect_uri": upCallback})
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow, "saml_response": resp,
			"relay_state": "forged"}), http.StatusBadRequest, "session_verification_failed")
		signedIn(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow, "saml_response": resp,
			"relay_state": relay}))
		// The flow is over; its response cannot serve again.
		wantError(t, f.call(t, http.MethodPost, "/v1/auth/sso/authenticate", f.appTok, map[string]any{"flow_id": flow, "saml_response": resp}),
			http.StatusBadRequest, "session_not_found")
		expWantAPI(t, samlACS(t, f.Env, conn, resp, relay), http.StatusNotFound, "session.not_found")
	})
}

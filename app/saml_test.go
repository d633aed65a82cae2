package app_test

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"net/http"
	"slices"
	"strings"
	"testing"

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

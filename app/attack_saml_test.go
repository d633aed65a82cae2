package app_test

// Attacks on the SAML assertion consumer service, as an attacker who can
// read and rewrite what the browser posts would try them: a response
// moved to another connector or another client's interaction, XML
// signature wrapping, comment injection in signed text, an oversized post,
// a post after the interaction ended. Each refused post is checked to
// change nothing in the database.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// samlDBSnapshot is what a refused post must not change: every
// interaction's stored state (records, version), the consumed assertion
// ids, and the accounts, identities and sessions.
func samlDBSnapshot(t testing.TB, f *upFix) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT id, version, data FROM interactions ORDER BY id",
		"SELECT connector_id, assertion_id FROM consumed_assertions ORDER BY connector_id, assertion_id",
		"SELECT id, '', '' FROM users ORDER BY id",
		"SELECT user_id, connector_id, subject FROM user_identities ORDER BY user_id, connector_id, subject",
		"SELECT id, user_id, '' FROM sessions ORDER BY id",
	} {
		rows, err := f.Services.DB.Raw(q).Rows()
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for _, vals := range apptest.RowValues(t, rows) {
			fmt.Fprintf(&b, "%s|", q[:20])
			for _, v := range vals {
				fmt.Fprintf(&b, "%v|", v)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// refusedUnchanged posts to the ACS, wants the refusal (status, code) and
// no change in the database.
func refusedUnchanged(t *testing.T, f *upFix, connectorID, response, relay string, status int, code string) *apptest.Response {
	t.Helper()
	before := samlDBSnapshot(t, f)
	res := samlACS(t, f.Env, connectorID, response, relay)
	expWantAPI(t, res, status, code)
	if after := samlDBSnapshot(t, f); after != before {
		t.Fatalf("a refused ACS post changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	return res
}

// stripResponseSignature removes the Response's own signature (the
// assertion's stays): an attacker rewriting the envelope must.
func stripResponseSignature(doc *etree.Document) {
	if sig := doc.Root().SelectElement("Signature"); sig != nil {
		doc.Root().RemoveChild(sig)
	}
}

// TestAttackSAML: the assertion consumer service against an attacker
// holding genuine responses of the IdP.
func TestAttackSAML(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := upStart(t, b)
		idp := startIdP(t)
		idp.mu.Lock()
		idp.plain = true // readable assertions, so they can be rewritten
		idp.mu.Unlock()
		domain := strings.ToLower(v1Name("atk")) + ".test"
		connA := f.connector(t, "sso", map[string]any{"name": "A", "provider": "saml", "domains": []string{domain}, "config": idp.config()})
		// B trusts the very same IdP: its signature alone proves nothing
		// about which connector a response is for.
		connB := f.connector(t, "sso", map[string]any{"name": "B", "provider": "saml", "config": idp.config()})
		up := idp.user(strings.ToLower(v1Name("atk")) + "@" + domain)
		attempt := func(t *testing.T, x *expTx, conn string) (string, string, string) {
			t.Helper()
			vid, uri := x.samlStart(t, conn, "s-"+v1Name("s"))
			resp, relay := idp.login(t, uri, up)
			return vid, resp, relay
		}
		genuine := func(t *testing.T, conn, resp, relay string) {
			t.Helper()
			if res := samlACS(t, f.Env, conn, resp, relay); res.Status != http.StatusSeeOther {
				t.Fatalf("the genuine response after the attack: %s", res)
			}
		}

		t.Run("ResponseForAnotherConnector", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, respA, relayA := attempt(t, x, connA)
			_, _, relayB := attempt(t, x, connB)
			// A's response and record at B's ACS: the record is A's.
			refusedUnchanged(t, f, connB, respA, relayA, http.StatusNotFound, "session.verification_session_not_found")
			// A's response for B's record: another audience and request.
			refusedUnchanged(t, f, connB, respA, relayB, http.StatusBadRequest, "connector.invalid_response")
			genuine(t, connA, respA, relayA)
		})

		t.Run("RelayOfAnotherClientsInteraction", func(t *testing.T) {
			other := f.CreateClientFrom(token.NewClient{Scopes: []string{"auth:execute"}, RedirectURIs: []string{upCallback}})
			mine := f.beginAs(t, f.appTok, "SignIn", false)
			theirs := f.beginAs(t, f.ClientToken(other), "SignIn", false)
			_, resp, relay := attempt(t, mine, connA)
			_, _, theirRelay := attempt(t, theirs, connA)
			refusedUnchanged(t, f, connA, resp, theirRelay, http.StatusBadRequest, "connector.invalid_response")
			// A relay naming a real interaction with a made-up record id.
			key, _, _ := strings.Cut(theirRelay, ".")
			refusedUnchanged(t, f, connA, resp, key+".rec_forged", http.StatusNotFound, "session.verification_session_not_found")
			genuine(t, connA, resp, relay)
		})

		t.Run("SignatureWrapping", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, resp, relay := attempt(t, x, connA)
			evil := func(a *etree.Element) *etree.Element {
				c := a.Copy()
				if sig := c.SelectElement("Signature"); sig != nil {
					c.RemoveChild(sig)
				}
				for _, el := range allElements(c) {
					if el.Text() == up.NameID {
						el.SetText("victim-nameid")
					}
					if el.Text() == up.Email {
						el.SetText("victim@" + domain)
					}
				}
				return c
			}
			attacks := map[string]func(doc *etree.Document){
				// An unsigned assertion ahead of the signed one, the
				// Response's signature left in place (it no longer matches).
				"InjectedKeepingResponseSignature": func(doc *etree.Document) {
					a := doc.Root().SelectElement("Assertion")
					doc.Root().InsertChildAt(a.Index(), evil(a))
				},
				// The same without the Response's signature: two assertions
				// in an unsigned Response.
				"InjectedBeforeSigned": func(doc *etree.Document) {
					stripResponseSignature(doc)
					a := doc.Root().SelectElement("Assertion")
					doc.Root().InsertChildAt(a.Index(), evil(a))
				},
				"InjectedAfterSigned": func(doc *etree.Document) {
					stripResponseSignature(doc)
					doc.Root().AddChild(evil(doc.Root().SelectElement("Assertion")))
				},
				// The signed assertion hidden in Extensions, an unsigned one
				// with its very ID in its place (the reference still resolves
				// to the signed one, by ID).
				"SignedWrappedInExtensions": func(doc *etree.Document) {
					stripResponseSignature(doc)
					a := doc.Root().SelectElement("Assertion")
					ev := evil(a)
					ext := etree.NewElement("samlp:Extensions")
					doc.Root().InsertChildAt(a.Index(), ext)
					doc.Root().RemoveChild(a)
					ext.AddChild(a)
					doc.Root().AddChild(ev)
				},
				// The evil assertion carries the signed one inside it.
				"SignedWrappedInEvil": func(doc *etree.Document) {
					stripResponseSignature(doc)
					a := doc.Root().SelectElement("Assertion")
					ev := evil(a)
					doc.Root().RemoveChild(a)
					ev.AddChild(a)
					doc.Root().AddChild(ev)
				},
			}
			for name, attack := range attacks {
				t.Run(name, func(t *testing.T) {
					forged := samlEdit(t, resp, attack)
					if !strings.Contains(mustDecode(t, forged), "victim@"+domain) {
						t.Fatal("the forged response carries no injected identity")
					}
					res := refusedUnchanged(t, f, connA, forged, relay, http.StatusBadRequest, "connector.invalid_response")
					t.Logf("%s: %s", name, res.Str("message"))
				})
			}
			genuine(t, connA, resp, relay)
		})

		t.Run("CommentInjection", func(t *testing.T) {
			// The victim: an account of the connector's domain, and an
			// identity at the connector. The attacker is an IdP user whose
			// NameID and address merely start like the victim's; a comment
			// inserted after that prefix leaves the signatures valid (the
			// canonical form drops comments), so a parser that stops at
			// the comment would read the victim's values.
			victimEmail := strings.ToLower(v1Name("victim")) + "@" + domain
			victim := f.createUser(t, map[string]any{"username": v1Name("vic"), "email": victimEmail, "email_verified": true})
			victimNameID := "saml-" + strings.ToLower(v1Name("victim"))
			vu := idp.user(strings.ToLower(v1Name("vicalt")) + "@" + domain)
			vu.NameID = victimNameID
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, vid := x.saml(t, f, idp, connA, vu)
			expMust(t, x.identify(t, vid), http.StatusCreated, "victim's identity")
			victimOfNameID := x.submitTokens(t)["sub"]

			attacker := samlUser{NameID: victimNameID + ".evil", Email: victimEmail + ".evil.test", Name: "Mallory"}
			inject := func(doc *etree.Document) {
				for _, el := range allElements(doc.Root()) {
					for _, v := range []string{attacker.NameID, attacker.Email} {
						if el.Text() == v {
							cut := strings.LastIndex(v, ".evil")
							el.SetText(v[:cut])
							el.CreateComment("")
							el.CreateText(v[cut:])
						}
					}
				}
			}
			x = f.beginAs(t, f.appTok, "SignIn", false)
			vid, uri := x.samlStart(t, connA, "ci")
			resp, relay := idp.login(t, uri, attacker)
			forged := samlEdit(t, resp, inject)
			if !strings.Contains(mustDecode(t, forged), victimNameID+"<!---->.evil") {
				t.Fatal("no comment was injected")
			}
			// Either refused, or read whole (the attacker's own values):
			// never the victim.
			res := samlACS(t, f.Env, connA, forged, relay)
			if res.Status != http.StatusSeeOther {
				expWantAPI(t, res, http.StatusBadRequest, "connector.invalid_response")
				t.Log("comment injection: refused")
				return
			}
			t.Log("comment injection: accepted, read whole")
			expMust(t, x.post(t, "/verification/sso/"+connA+"/verify", map[string]any{"verificationId": vid, "connectorData": map[string]any{}}),
				http.StatusOK, "verify")
			idn := x.identify(t, vid)
			if idn.Status != http.StatusCreated {
				t.Fatalf("the attacker's identity was not a new account: %s", idn)
			}
			sub := x.submitTokens(t)["sub"]
			if sub == victim || sub == victimOfNameID {
				t.Fatalf("comment injection signed in as the victim %v", sub)
			}
			var subject, email string
			f.Services.DB.Raw("SELECT subject FROM user_identities WHERE user_id = ?", sub).Row().Scan(&subject)
			f.Services.DB.Raw("SELECT primary_email FROM users WHERE id = ?", sub).Row().Scan(&email)
			if subject != attacker.NameID || email != attacker.Email {
				t.Fatalf("identity read as subject %q email %q, want the whole signed values %q %q", subject, email, attacker.NameID, attacker.Email)
			}
		})

		t.Run("OversizedResponse", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, resp, relay := attempt(t, x, connA)
			// Far beyond any IdP's answer: refused by the body limit before
			// any parsing, in the API dialect.
			huge := resp + strings.Repeat("A", 4<<20)
			res := refusedUnchanged(t, f, connA, huge, relay, http.StatusRequestEntityTooLarge, "request.body_too_large")
			if strings.Contains(string(res.Raw), "A") && len(res.Raw) > 1024 {
				t.Fatalf("the refusal echoes the body: %d bytes", len(res.Raw))
			}
			genuine(t, connA, resp, relay)
		})

		t.Run("LargeResponseAccepted", func(t *testing.T) {
			// A genuine response beyond the general 64 KiB body limit (an
			// IdP's many group attributes; here line breaks, which base64
			// allows) is read, not refused by the size of the post.
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, resp, relay := attempt(t, x, connA)
			padded := resp + strings.Repeat("\r\n", 100<<10)
			if res := samlACS(t, f.Env, connA, padded, relay); res.Status != http.StatusSeeOther {
				t.Fatalf("a %d KiB genuine response: %s", len(padded)>>10, res)
			}
		})

		t.Run("ConcurrentPosts", func(t *testing.T) {
			// The browser (or an attacker racing it) posts the same genuine
			// response many times at once: one wins, on any backend.
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, resp, relay := attempt(t, x, connA)
			const n = 8
			statuses := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					statuses <- samlACS(t, f.Env, connA, resp, relay).Status
				}()
			}
			wg.Wait()
			close(statuses)
			won := 0
			for st := range statuses {
				switch st {
				case http.StatusSeeOther:
					won++
				case http.StatusBadRequest, http.StatusConflict:
				default:
					t.Fatalf("a concurrent post answered %d", st)
				}
			}
			if won != 1 {
				t.Fatalf("%d concurrent posts of one response succeeded, want 1", won)
			}
		})

		t.Run("EntityExpansion", func(t *testing.T) {
			// A "billion laughs" document: refused at once, no expansion.
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, _, relay := attempt(t, x, connA)
			bomb := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">`
			prev := "a"
			for i := range 9 {
				name := fmt.Sprintf("e%d", i)
				bomb += fmt.Sprintf(`<!ENTITY %s "%s">`, name, strings.Repeat("&"+prev+";", 10))
				prev = name
			}
			bomb += `]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&` + prev + `;</samlp:Response>`
			start := time.Now()
			refusedUnchanged(t, f, connA, base64.StdEncoding.EncodeToString([]byte(bomb)), relay, http.StatusBadRequest, "connector.invalid_response")
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("the entity bomb took %s", d)
			}
		})

		t.Run("AfterSubmit", func(t *testing.T) {
			// Two SAML records in one interaction: one signs in, and the
			// other's genuine response arrives after the submit.
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, resp2, relay2 := attempt(t, x, connA)
			verify, vid := x.saml(t, f, idp, connA, up)
			expMust(t, verify, http.StatusOK, "verify")
			if st := x.identify(t, vid).Status; st != http.StatusCreated && st != http.StatusNoContent {
				t.Fatalf("identify: %d", st)
			}
			x.submitTokens(t)
			refusedUnchanged(t, f, connA, resp2, relay2, http.StatusNotFound, "session.not_found")
		})

		t.Run("AfterExpiry", func(t *testing.T) {
			x := f.beginAs(t, f.appTok, "SignIn", false)
			_, resp, relay := attempt(t, x, connA)
			f.expire(t, x.handle)
			refusedUnchanged(t, f, connA, resp, relay, http.StatusNotFound, "session.not_found")
		})
	})
}

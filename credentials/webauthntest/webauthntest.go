// Package webauthntest is a software WebAuthn authenticator for tests: it
// answers the options JSON produced by credentials.WebAuthn (or any relying
// party) with the registration and assertion responses a browser would
// post, signed with real P-256 keys ("packed" self attestation). It wraps
// github.com/descope/virtualwebauthn and adds what tests of Latch need:
// a sign counter that advances on each assertion, and Clone to simulate a
// cloned authenticator.
//
// Use it only from tests; an Authenticator is not safe for concurrent use.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/descope/virtualwebauthn"
)

// Authenticator is one software security key bound to a relying party.
type Authenticator struct {
	// RP is what the "browser" reports: RP.ID is hashed into the
	// authenticator data and RP.Origin is the client data origin. Change
	// RP.Origin to test a phishing origin.
	RP virtualwebauthn.RelyingParty
	// NoCounter makes Login leave the sign counter alone, like synced
	// passkeys that always report 0.
	NoCounter bool
	auth      virtualwebauthn.Authenticator
}

// New returns an authenticator for the relying party rpID ("example.com")
// whose browser is at origin ("https://auth.example.com").
func New(rpID, origin string) *Authenticator {
	return &Authenticator{
		RP:   virtualwebauthn.RelyingParty{ID: rpID, Name: rpID, Origin: origin},
		auth: virtualwebauthn.NewAuthenticator(),
	}
}

// Register answers PublicKeyCredentialCreationOptions JSON (bare, or wrapped
// as {"publicKey": ...}) with the PublicKeyCredential JSON of a new P-256
// credential, which the authenticator keeps for later assertions. Like a
// real authenticator it refuses when one of its credentials is listed in
// excludeCredentials.
func (a *Authenticator) Register(options []byte) (json.RawMessage, error) {
	opts, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		return nil, fmt.Errorf("webauthntest: creation options: %w", err)
	}
	for _, c := range a.auth.Credentials {
		if c.IsExcludedForAttestation(*opts) {
			return nil, errors.New("webauthntest: credential already registered (excludeCredentials)")
		}
	}
	cred := virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, p256Key())
	resp := virtualwebauthn.CreateAttestationResponse(a.RP, a.auth, cred, *opts)
	a.auth.AddCredential(cred)
	a.auth.Options.UserHandle = []byte(opts.UserID)
	return json.RawMessage(resp), nil
}

// Login answers PublicKeyCredentialRequestOptions JSON with an assertion by
// the first credential listed in allowCredentials that this authenticator
// holds, after incrementing that credential's sign counter (as hardware
// keys do) unless NoCounter is set.
func (a *Authenticator) Login(options []byte) (json.RawMessage, error) {
	opts, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		return nil, fmt.Errorf("webauthntest: request options: %w", err)
	}
	cred := a.auth.FindAllowedCredential(*opts)
	if cred == nil {
		return nil, errors.New("webauthntest: no allowed credential on this authenticator")
	}
	if !a.NoCounter {
		cred.Counter++
	}
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(a.RP, a.auth, *cred, *opts)), nil
}

// Counter returns the sign counter of the most recently registered
// credential (0 if none).
func (a *Authenticator) Counter() uint32 {
	if n := len(a.auth.Credentials); n > 0 {
		return a.auth.Credentials[n-1].Counter
	}
	return 0
}

// SetCounter sets the sign counter of every credential, e.g. to 0 to
// simulate an authenticator without a counter.
func (a *Authenticator) SetCounter(n uint32) {
	for i := range a.auth.Credentials {
		a.auth.Credentials[i].Counter = n
	}
}

// Clone returns an independent copy with the same keys and counters: a
// cloned authenticator. After the original signs in, the clone's next
// assertion carries a counter not greater than the stored one.
func (a *Authenticator) Clone() *Authenticator {
	c := *a
	c.auth.Credentials = append([]virtualwebauthn.Credential(nil), a.auth.Credentials...)
	c.auth.Options.UserHandle = append([]byte(nil), a.auth.Options.UserHandle...)
	return &c
}

// p256Key returns a PKCS#8 P-256 key whose coordinates both take 32 bytes.
// virtualwebauthn encodes X and Y with big.Int.Bytes, which drops leading
// zero bytes, and a relying party rightly rejects a COSE key with a short
// coordinate: about one key in 128 would make a test fail at random.
func p256Key() []byte {
	for {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic("webauthntest: " + err.Error())
		}
		if len(k.X.Bytes()) != 32 || len(k.Y.Bytes()) != 32 {
			continue
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			panic("webauthntest: " + err.Error())
		}
		return der
	}
}

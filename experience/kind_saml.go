package experience

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/connector"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// A SAML sign-in's answer is posted by the user agent to Latch's assertion
// consumer service, cross-site and without the interaction's handle (a
// SameSite cookie is not sent on that POST). Its RelayState names the
// record instead: the digest of the handle (the interaction's key, which
// cannot resume it) and the record id. What the post can do is bounded by
// the assertion: signed by the connector's IdP, answering the request id
// kept in that very record, for our audience, once.

// relayState is the RelayState of a record (64 characters, under the
// bindings' 80).
func relayState(handle, recordID string) string {
	sum, _ := hex.DecodeString(credentials.Digest(handle))
	return base64.RawURLEncoding.EncodeToString(sum) + "." + recordID
}

// parseRelay returns the interaction key and record id of a RelayState.
func parseRelay(relay string) (string, string, bool) {
	key, recordID, ok := strings.Cut(relay, ".")
	sum, err := base64.RawURLEncoding.DecodeString(key)
	if !ok || err != nil || len(sum) != 32 || recordID == "" || len(recordID) > 64 {
		return "", "", false
	}
	return hex.EncodeToString(sum), recordID, true
}

type consumedAssertion struct {
	ConnectorID string `gorm:"primaryKey"`
	AssertionID string `gorm:"primaryKey"`
	ExpiresAt   time.Time
}

func (consumedAssertion) TableName() string { return "consumed_assertions" }

func errAssertionUsed() *fault.Error {
	return fault.New(CodeVerificationFailed, http.StatusBadRequest, "This SAML assertion was already used.")
}

// consumeAssertionID records an assertion id as used until it expires; the
// primary key refuses a second use, on any replica.
func (e *Engine) consumeAssertionID(ctx context.Context, connectorID string, a *connector.Assertion) error {
	if a.ID == "" || len(a.ID) > 256 {
		return connector.InvalidResponse("the assertion has no usable id")
	}
	now := e.now()
	err := e.db.WithContext(ctx).Create(&consumedAssertion{ConnectorID: connectorID, AssertionID: a.ID, ExpiresAt: a.Expires}).Error
	if store.IsUniqueViolation(err) {
		return errAssertionUsed()
	}
	if err != nil {
		return fmt.Errorf("experience: consume assertion: %w", err)
	}
	e.db.WithContext(ctx).Where("expires_at < ?", now).Delete(&consumedAssertion{})
	return nil
}

// ConsumeAssertion is POST /api/authn/saml/{connectorId}, the assertion
// consumer service: the posted SAMLResponse verified as the answer to the
// record its RelayState names, the identity stored in that record, and the
// address the user agent goes on to (the record's redirect URI with the
// client's state), where the client calls verify.
func (e *Engine) ConsumeAssertion(ctx context.Context, connectorID, relay, response string) (string, error) {
	key, recordID, ok := parseRelay(relay)
	if !ok {
		return "", errRecordNotFound()
	}
	b, err := e.consumePosted(ctx, key, recordID, FamilySSO, connectorID, response)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(b.RedirectURI)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("state", b.State)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// SAMLMetadata is GET /api/authn/saml/{connectorId}/metadata: what the
// IdP must know of Latch.
func (e *Engine) SAMLMetadata(ctx context.Context, connectorID string) ([]byte, error) {
	_, c, err := e.Connectors.open(ctx, FamilySSO, connectorID)
	if err != nil {
		return nil, err
	}
	ac, ok := c.(connector.AssertionConsumer)
	if !ok {
		return nil, errUpstreamNotFound()
	}
	return ac.Metadata()
}

// verifyPosted is verify of a record whose provider posts its answer:
// already verified by the assertion consumer service, or completed here
// with the SAMLResponse the client passes on. It reports false for other
// records.
func (e *Engine) verifyPosted(ctx context.Context, handle, clientID, family, connectorID, recordID string, cb Callback) (bool, error) {
	in, err := e.interactions.load(ctx, handle, clientID)
	if err != nil {
		return false, nil // the code path answers it
	}
	v, ok := in.record(recordID).(upstream)
	if !ok || !v.base().Posted || v.family() != family || v.base().ConnectorID != connectorID {
		return false, nil
	}
	b := v.base()
	// The connector must still exist, also when the ACS already verified.
	if _, err := e.Connectors.row(ctx, family, connectorID); err != nil {
		return true, err
	}
	if cb.State != "" && subtle.ConstantTimeCompare([]byte(cb.State), []byte(b.State)) != 1 {
		return true, fault.New(CodeVerificationFailed, http.StatusBadRequest, "The state does not match the authorization request.")
	}
	if cb.RelayState != "" && cb.RelayState != relayState(handle, recordID) {
		return true, fault.New(CodeVerificationFailed, http.StatusBadRequest, "The RelayState does not match the authorization request.")
	}
	if v.Verified() {
		return true, nil
	}
	if cb.SAMLResponse == "" {
		return true, fault.New(CodeVerificationFailed, http.StatusBadRequest, "The identity provider's SAMLResponse has not been received.")
	}
	_, err = e.consumePosted(ctx, in.id, recordID, family, connectorID, cb.SAMLResponse)
	return true, err
}

// consumePosted verifies a provider's posted response against the record
// (interaction key, record id) and stores the verified identity in it.
// Nothing changes when it does not verify; a verified one claims the record
// (single use) and its assertion id (single use per connector).
func (e *Engine) consumePosted(ctx context.Context, key, recordID, family, connectorID, response string) (*upstreamRecord, error) {
	find := func(in *Interaction) (*upstreamRecord, error) {
		v, ok := in.record(recordID).(upstream)
		if !ok || !v.base().Posted || v.family() != family || v.base().ConnectorID != connectorID {
			return nil, errRecordNotFound()
		}
		if v.base().Consumed {
			return nil, errAssertionUsed()
		}
		return v.base(), nil
	}
	in, err := e.interactions.loadID(ctx, key)
	if err != nil {
		return nil, err
	}
	b, err := find(in)
	if err != nil {
		return nil, err
	}
	row, c, err := e.Connectors.open(ctx, family, connectorID)
	if err != nil {
		return nil, err
	}
	ac, ok := c.(connector.AssertionConsumer)
	if !ok {
		return nil, errRecordNotFound()
	}
	a, err := ac.Consume(ctx, connector.Request{RedirectURI: b.RedirectURI, State: b.State, Nonce: b.Nonce}, response)
	if err != nil {
		return nil, e.upstreamFailure(ctx, connectorID, err)
	}
	if err := e.consumeAssertionID(ctx, connectorID, a); err != nil {
		return nil, err
	}
	var out *upstreamRecord
	_, err = e.interactions.updateID(ctx, key, func(in *Interaction) error {
		b, err := find(in)
		if err != nil {
			return err
		}
		b.Consumed, b.Identity, b.TrustMFA = true, a.Identity, row.TrustUpstreamMFA
		b.markVerified()
		out = b
		return nil
	})
	return out, err
}

package experience

import (
	"context"
	"net/http"
	"slices"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
)

// RecordSSO is a sign-in at an enterprise SSO connector.
const RecordSSO = "EnterpriseSso"

func init() { registerKind(RecordSSO, func() Verification { return &ssoRecord{} }) }

type ssoRecord struct{ upstreamRecord }

func (r *ssoRecord) Kind() string   { return RecordSSO }
func (r *ssoRecord) family() string { return FamilySSO }

// upstreamMFA: the enterprise provider reports it did MFA (amr "mfa", or a
// multi-factor SAML AuthnContextClassRef), or its connector vouches for
// the provider's MFA (trust_upstream_mfa: a company whose IdP enforces MFA
// without saying so in each assertion).
func (r *ssoRecord) upstreamMFA() bool {
	return r.Verified() && r.Identity != nil && (slices.Contains(r.Identity.AMR, AMRMFA) || r.TrustMFA)
}

// upstreamMFAProven: a verified SSO record of the interaction vouches for
// MFA done upstream.
func upstreamMFAProven(in *Interaction) bool {
	for _, r := range in.Records {
		if s, ok := r.(*ssoRecord); ok && s.upstreamMFA() {
			return true
		}
	}
	return false
}

// SSORef names an SSO connector (session.sso_enabled's data).
type SSORef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// SSOConnectorsForEmail lists the SSO connectors owning an address's domain.
func (e *Engine) SSOConnectorsForEmail(ctx context.Context, email string) ([]SSORef, error) {
	cs, err := e.Connectors.ForEmail(ctx, email)
	if err != nil {
		return nil, err
	}
	out := make([]SSORef, 0, len(cs))
	for _, c := range cs {
		out = append(out, SSORef{ID: c.ID, Name: c.Name})
	}
	return out, nil
}

// requireNotSSO refuses a password or code sign-in (or registration) with
// an e-mail address whose domain belongs to an SSO connector: that user
// signs in through their company's provider.
func (e *Engine) requireNotSSO(ctx context.Context, id Identifier) error {
	if id.Type != IdentifierEmail {
		return nil
	}
	email, err := NormalizeEmail(id.Value)
	if err != nil {
		return nil
	}
	refs, err := e.SSOConnectorsForEmail(ctx, email)
	if err != nil || len(refs) == 0 {
		return err
	}
	return fault.New(CodeSSOEnabled, http.StatusUnprocessableEntity, "This e-mail domain signs in through enterprise SSO.").
		With("ssoConnectors", refs)
}

// Memberships is what the engine needs of organizations for just-in-time
// membership: the organizations package is another's, so app wires it.
type Memberships interface {
	// JoinTx makes userID a member of orgID inside tx (no-op if already).
	JoinTx(ctx context.Context, tx *gorm.DB, orgID, userID string) error
}

// joinOrganizations applies an SSO connector's JIT organizations to a user
// it created. Without an organizations service wired, the ids stay stored
// on the connector and nothing is joined.
func (e *Engine) joinOrganizations(ctx context.Context, tx *gorm.DB, userID string, orgIDs []string) error {
	if e.opts.Memberships == nil {
		return nil
	}
	for _, org := range orgIDs {
		if err := e.opts.Memberships.JoinTx(ctx, tx, org, userID); err != nil {
			return err
		}
	}
	return nil
}

// StartSSO is POST /v1/auth/sso/start: a SignIn interaction of the calling
// client (its handle is the flow id) with an SSO record, exactly as the
// Experience API would create them. The connector is given, or the one
// owning the e-mail's domain.
func (e *Engine) StartSSO(ctx context.Context, clientID, connectorID, email, redirectURI, state string) (string, string, error) {
	if connectorID == "" {
		refs, err := e.SSOConnectorsForEmail(ctx, email)
		if err != nil {
			return "", "", err
		}
		if len(refs) == 0 {
			return "", "", fault.New(CodeUpstreamNotFound, http.StatusNotFound, "No SSO connector owns this e-mail domain.")
		}
		connectorID = refs[0].ID
	}
	if state == "" {
		state = credentials.RandomToken(16)
	}
	handle, err := e.interactions.create(ctx, clientID, EventSignInFlow, false)
	if err != nil {
		return "", "", err
	}
	uri, _, err := e.StartUpstream(ctx, handle, clientID, FamilySSO, connectorID, state, redirectURI)
	if err != nil {
		return "", "", err
	}
	return uri, handle, nil
}

// AuthenticateSSO is POST /v1/auth/sso/authenticate: the flow's SSO record
// verified (a code, a SAMLResponse, or the SAML assertion consumer already
// did) and its user identified as in the Experience API, then the
// backend sign-in's session (pending when MFA is still due, as after a
// password; an upstream that did MFA satisfies it).
func (e *Engine) AuthenticateSSO(ctx context.Context, flowID string, cb Callback, meta SessionMeta, enforceMFA bool) (*SignIn, error) {
	org, err := e.requestedOrg(ctx, meta.OrgID)
	if err != nil {
		return nil, err
	}
	in, err := e.interactions.load(ctx, flowID, meta.ClientID)
	if err != nil {
		return nil, err
	}
	var rec *ssoRecord
	for _, r := range in.Records {
		if s, ok := r.(*ssoRecord); ok {
			rec = s
		}
	}
	if rec == nil {
		return nil, errRecordNotFound()
	}
	if _, err := e.VerifyUpstream(ctx, flowID, meta.ClientID, FamilySSO, rec.ConnectorID, rec.ID, cb); err != nil {
		return nil, err
	}
	if _, err := e.IdentifyWith(ctx, flowID, meta.ClientID, rec.ID, false, meta); err != nil {
		return nil, err
	}
	if in, err = e.interactions.load(ctx, flowID, meta.ClientID); err != nil {
		return nil, err
	}
	user, err := e.Users.Get(ctx, in.UserID)
	if err != nil {
		return nil, err
	}
	// One flow, one sign-in: the interaction ends here, claimed at the
	// version just read, so that of parallel calls ending one flow exactly
	// one goes on (the others find it gone or changed).
	if err := e.interactions.claim(ctx, in); err != nil {
		return nil, err
	}
	amr := []string{AMRFederated}
	if upstreamMFAProven(in) {
		amr, enforceMFA = append(amr, AMRMFA), false
	}
	return e.completeFirstFactor(ctx, user, nil, amr, meta, enforceMFA, nil, orgAsk{org: org}, nil)
}

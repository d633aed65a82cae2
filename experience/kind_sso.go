package experience

import (
	"context"
	"net/http"
	"slices"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/fault"
)

// RecordSSO is a sign-in at an enterprise SSO connector.
const RecordSSO = "EnterpriseSso"

func init() { registerKind(RecordSSO, func() Verification { return &ssoRecord{} }) }

type ssoRecord struct{ upstreamRecord }

func (r *ssoRecord) Kind() string   { return RecordSSO }
func (r *ssoRecord) family() string { return FamilySSO }

// upstreamMFA: the enterprise provider reports it did MFA (amr "mfa").
func (r *ssoRecord) upstreamMFA() bool {
	return r.Verified() && r.Identity != nil && slices.Contains(r.Identity.AMR, AMRMFA)
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

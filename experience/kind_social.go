package experience

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/oauth2"
	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/connector"
	"github.com/latch-dev/latch/fault"
)

// RecordSocial is a sign-in at a social connector ("Sign in with …").
const RecordSocial = "Social"

// AMRFederated is the method of a sign-in vouched for by an upstream
// identity provider.
const AMRFederated = "fed"

// Codes of upstream sign-ins.
const (
	CodeIdentityNotExist = "user.identity_not_exist"
	CodeSSOEnabled       = "session.sso_enabled"
)

func init() { registerKind(RecordSocial, func() Verification { return &socialRecord{} }) }

// upstreamRecord is the state social and SSO records share: the round trip
// to the provider (the client's state, Latch's nonce and PKCE verifier,
// all checked here, not by the client) and what the provider said.
type upstreamRecord struct {
	record
	ConnectorID string `json:"connector_id"`
	State       string `json:"state"`
	Nonce       string `json:"nonce"`
	// Verifier is the PKCE code verifier, sealed to the record.
	Verifier    string `json:"verifier,omitempty"`
	RedirectURI string `json:"redirect_uri"`
	// Consumed: a callback was presented; state and code are single use.
	Consumed bool                `json:"consumed,omitempty"`
	Identity *connector.Identity `json:"identity,omitempty"`
	// Posted: the provider posts an assertion back (SAML) instead of
	// returning a code.
	Posted bool `json:"posted,omitempty"`
	// TrustMFA: when the record was verified, its SSO connector vouched
	// for the upstream's MFA (trust_upstream_mfa).
	TrustMFA bool `json:"trust_mfa,omitempty"`
}

func (r *upstreamRecord) base() *upstreamRecord { return r }

func (r *upstreamRecord) Proof() Proof {
	return Proof{Method: AMRFederated, FirstFactor: true}
}

type socialRecord struct{ upstreamRecord }

func (r *socialRecord) Kind() string   { return RecordSocial }
func (r *socialRecord) family() string { return FamilySocial }

// upstream is a social or SSO record.
type upstream interface {
	Verification
	base() *upstreamRecord
	family() string
}

func newUpstream(family string) upstream {
	if family == FamilySSO {
		return &ssoRecord{}
	}
	return &socialRecord{}
}

// maxStateLen bounds the client's state.
const maxStateLen = 512

// StartUpstream is POST /verification/{social|sso}/{connectorId}/authorization-uri:
// a new record holding the round trip, and the provider's authorization URL.
func (e *Engine) StartUpstream(ctx context.Context, handle, clientID, family, connectorID, state, redirectURI string) (string, string, error) {
	return e.startUpstream(ctx, handle, clientID, family, connectorID, state, redirectURI, false)
}

// StartHostedUpstream is StartUpstream for an interaction of Latch's own
// hosted pages returning to Latch's own callback page: the caller vouches
// for redirectURI, which no client registers.
func (e *Engine) StartHostedUpstream(ctx context.Context, handle, clientID, family, connectorID, state, redirectURI string) (string, string, error) {
	return e.startUpstream(ctx, handle, clientID, family, connectorID, state, redirectURI, true)
}

func (e *Engine) startUpstream(ctx context.Context, handle, clientID, family, connectorID, state, redirectURI string, trusted bool) (string, string, error) {
	if _, err := e.interactions.load(ctx, handle, clientID); err != nil {
		return "", "", err
	}
	rec := newUpstream(family)
	uri, err := e.authorize(ctx, handle, clientID, family, connectorID, state, redirectURI, trusted, rec.base())
	if err != nil {
		return "", "", err
	}
	id, err := e.addRecord(ctx, handle, clientID, rec)
	return uri, id, err
}

// authorize fills a record's round trip and returns the provider's URL.
// trusted: redirectURI is Latch's own, vouched for by the caller.
func (e *Engine) authorize(ctx context.Context, handle, clientID, family, connectorID, state, redirectURI string, trusted bool, b *upstreamRecord) (string, error) {
	var details []fault.Detail
	if state == "" || len(state) > maxStateLen {
		details = append(details, fault.Detail{Field: "state", Message: "is required (at most 512 characters)"})
	}
	if redirectURI == "" {
		details = append(details, fault.Detail{Field: "redirectUri", Message: "is required"})
	}
	if len(details) > 0 {
		return "", fault.Invalid(details...)
	}
	allowed := trusted
	if !allowed && e.opts.Clients != nil {
		var err error
		if allowed, err = e.opts.Clients.AllowsRedirect(ctx, clientID, redirectURI); err != nil {
			return "", err
		}
	}
	if !allowed {
		return "", fault.Invalid(fault.Detail{Field: "redirectUri", Message: "is not a redirect URI registered for this application"})
	}
	_, c, err := e.Connectors.open(ctx, family, connectorID)
	if err != nil {
		return "", err
	}
	*b = upstreamRecord{record: newRecord(), ConnectorID: connectorID, State: state, Nonce: credentials.RandomToken(24), RedirectURI: redirectURI}
	req := connector.Request{RedirectURI: redirectURI, State: state, Nonce: b.Nonce}
	if _, ok := c.(connector.AssertionConsumer); ok {
		b.Posted, req.Relay = true, relayState(handle, b.ID)
	}
	if c.UsesPKCE() {
		req.Verifier = oauth2.GenerateVerifier()
		sealed, err := e.sealer.Seal([]byte(req.Verifier), []byte("pkce:"+b.ID))
		if err != nil {
			return "", err
		}
		b.Verifier = base64.StdEncoding.EncodeToString(sealed)
	}
	return c.AuthorizationURL(ctx, req)
}

// Callback is what the user agent brought back from the provider: a code
// (OIDC, OAuth 2.0), or a SAMLResponse and its RelayState.
type Callback struct {
	Code         string
	State        string
	RedirectURI  string
	SAMLResponse string
	RelayState   string
}

// VerifyUpstream is POST /verification/{social|sso}/{connectorId}/verify:
// the callback is checked against the record (state, redirect URI; once
// only), the code redeemed and the identity verified by the connector.
func (e *Engine) VerifyUpstream(ctx context.Context, handle, clientID, family, connectorID, recordID string, cb Callback) (string, error) {
	if posted, err := e.verifyPosted(ctx, handle, clientID, family, connectorID, recordID, cb); posted {
		return recordID, err
	}
	var rec upstream
	// Claiming the record first makes state and code single use, also
	// against a concurrent replay on another replica.
	_, err := e.interactions.update(ctx, handle, clientID, func(in *Interaction) error {
		v, ok := in.record(recordID).(upstream)
		if !ok || v.family() != family || v.base().ConnectorID != connectorID {
			return errRecordNotFound()
		}
		if v.base().Consumed {
			return fault.New(CodeVerificationFailed, http.StatusBadRequest, "This authorization response was already used.")
		}
		v.base().Consumed = true
		rec = v
		return nil
	})
	if err != nil {
		return "", err
	}
	b := rec.base()
	if err := e.checkCallback(b, cb); err != nil {
		return "", err
	}
	id, trustMFA, err := e.redeem(ctx, family, b, cb.Code)
	if err != nil {
		return "", err
	}
	b.Identity, b.TrustMFA = id, trustMFA
	b.markVerified()
	return recordID, e.replaceRecord(ctx, handle, clientID, rec)
}

func (e *Engine) checkCallback(b *upstreamRecord, cb Callback) error {
	var missing []fault.Detail
	for field, v := range map[string]string{"connectorData.code": cb.Code, "connectorData.state": cb.State} {
		if v == "" {
			missing = append(missing, fault.Detail{Field: field, Message: "is required"})
		}
	}
	if len(missing) > 0 {
		slices.SortFunc(missing, func(a, b fault.Detail) int { return strings.Compare(a.Field, b.Field) })
		return fault.Invalid(missing...)
	}
	if subtle.ConstantTimeCompare([]byte(cb.State), []byte(b.State)) != 1 {
		return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The state does not match the authorization request.")
	}
	if cb.RedirectURI != "" && cb.RedirectURI != b.RedirectURI {
		return fault.New(CodeVerificationFailed, http.StatusBadRequest, "The redirect URI does not match the authorization request.")
	}
	return nil
}

// redeem exchanges the code at the (still existing) connector; it also
// says whether the connector vouches for the upstream's MFA.
func (e *Engine) redeem(ctx context.Context, family string, b *upstreamRecord, code string) (*connector.Identity, bool, error) {
	row, c, err := e.Connectors.open(ctx, family, b.ConnectorID)
	if err != nil {
		return nil, false, err
	}
	req := connector.Request{RedirectURI: b.RedirectURI, State: b.State, Nonce: b.Nonce}
	if b.Verifier != "" {
		raw, err := base64.StdEncoding.DecodeString(b.Verifier)
		if err != nil {
			return nil, false, err
		}
		plain, err := e.sealer.Open(raw, []byte("pkce:"+b.ID))
		if err != nil {
			return nil, false, err
		}
		req.Verifier = string(plain)
	}
	id, err := c.Exchange(ctx, req, code)
	if err != nil {
		return nil, false, e.upstreamFailure(ctx, b.ConnectorID, err)
	}
	return id, row.TrustUpstreamMFA, nil
}

// upstreamFailure is a connector's error as the client sees it: its own
// codes pass, anything else is logged and answered without its text.
func (e *Engine) upstreamFailure(ctx context.Context, connectorID string, err error) error {
	var r *connector.Refusal
	if errors.As(err, &r) {
		e.log.InfoContext(ctx, "upstream response refused", "connector", connectorID, "error", r.Detail.Error())
		return r.Err
	}
	if _, ok := fault.As(err); ok {
		return err
	}
	e.log.WarnContext(ctx, "upstream sign-in failed", "connector", connectorID, "error", err.Error())
	return connector.InvalidResponse("the provider could not be reached")
}

// identifyUpstream identifies (or creates) the account of a verified
// social or SSO record.
func (e *Engine) identifyUpstream(ctx context.Context, handle string, in *Interaction, rec upstream, link bool, settings Settings, meta SessionMeta) (bool, error) {
	if in.Event == EventForgotPasswordFlow {
		return false, fault.New(CodeNotForForgotPassword, http.StatusBadRequest, "A social or SSO sign-in cannot recover a password.")
	}
	b := rec.base()
	if !rec.Verified() || b.Identity == nil {
		return false, fault.New(CodeVerificationFailed, http.StatusBadRequest, "The verification record is not verified.")
	}
	row, err := e.Connectors.row(ctx, rec.family(), b.ConnectorID)
	if err != nil {
		return false, err
	}
	id := b.Identity
	userID, err := e.Identities.Find(ctx, b.ConnectorID, id.Subject)
	if err != nil {
		return false, err
	}
	if userID != "" {
		return false, e.identifyAs(ctx, handle, in, userID)
	}
	// An upstream address counts only when the upstream verified it (or
	// the SSO connector is told to trust its directory).
	var email, unverified string
	if n, err := NormalizeEmail(id.Email); err == nil && id.Email != "" {
		trusted, err := e.trustedEmail(ctx, rec.family(), row, id, n)
		if err != nil {
			return false, err
		}
		if trusted {
			email = n
		} else {
			unverified = n
		}
	}
	var related *User
	if email != "" {
		if related, err = e.Users.FindByIdentifier(ctx, IdentifierEmail, email); err != nil {
			return false, err
		}
	}
	sso := rec.family() == FamilySSO
	switch {
	case related != nil && (sso || (in.Event == EventSignInFlow && link)):
		if related.Suspended {
			return false, errSuspended
		}
		if err := e.db.Tx(ctx, func(tx *gorm.DB) error {
			return e.Identities.LinkTx(tx, b.ConnectorID, id.Subject, related.ID, email)
		}); err != nil {
			return false, err
		}
		e.audit(ctx, AuditEvent{Event: EventIdentityLinked, Outcome: OutcomeSuccess, UserID: related.ID, ClientID: meta.ClientID,
			IPAddress: meta.IPAddress, Data: map[string]any{"connector_id": b.ConnectorID}})
		return false, e.identifyAs(ctx, handle, in, related.ID)
	case in.Event == EventRegisterFlow || (sso && eventOpen(settings, EventRegisterFlow)):
		return true, e.registerUpstream(ctx, handle, in, row, id, email, unverified, meta)
	}
	fe := fault.New(CodeIdentityNotExist, http.StatusNotFound, "No account is linked to this identity.")
	if related != nil {
		fe = fe.With("relatedUser", email)
	}
	return false, fe
}

// trustedEmail says whether an upstream address counts as verified: the
// upstream verified it (email_verified), or the SSO connector is told to
// trust its directory (trust_unverified_email), or — a SAML assertion's
// e-mail attribute, which carries no verification claim — the address is
// in one of the connector's own domains. An enterprise IdP is the authority
// of its company's addresses (Logto trusts SAML e-mail outright), but not
// of anyone else's: a tenant's IdP asserting another company's address
// must not link to (take over) that company's accounts.
func (e *Engine) trustedEmail(ctx context.Context, family string, row *connectorRow, id *connector.Identity, email string) (bool, error) {
	if id.EmailVerified || (family == FamilySSO && row.TrustUnverifiedEmail) {
		return true, nil
	}
	if family != FamilySSO || !id.DirectoryEmail {
		return false, nil
	}
	domains, err := e.Connectors.domains(ctx, []string{row.ID})
	if err != nil {
		return false, err
	}
	return slices.Contains(domains[row.ID], email[strings.LastIndexByte(email, '@')+1:]), nil
}

// identifyAs sets the interaction's user, from an upstream sign-in.
func (e *Engine) identifyAs(ctx context.Context, handle string, in *Interaction, userID string) error {
	user, err := e.Users.Get(ctx, userID)
	if err != nil {
		return err
	}
	if user.Suspended {
		return errSuspended
	}
	_, err = e.interactions.update(ctx, handle, in.ClientID, func(in *Interaction) error {
		if in.UserID != "" && in.UserID != user.ID {
			return fault.New(CodeIdentityConflict, http.StatusConflict, "The interaction already identified another user.")
		}
		in.UserID, in.Federated = user.ID, true
		return nil
	})
	return err
}

// registerUpstream creates the account of an upstream identity, links the
// identity and joins the connector's organizations, in one transaction.
//
// A verified address becomes the account's verified e-mail; an unverified
// one is kept unverified, and only when no account has it (it never links
// nor takes over one: the registration is refused as the address in use).
func (e *Engine) registerUpstream(ctx context.Context, handle string, in *Interaction, row *connectorRow, id *connector.Identity, email, unverified string, meta SessionMeta) error {
	if in.UserID != "" {
		return fault.New(CodeIdentityConflict, http.StatusConflict, "The interaction already identified a user.")
	}
	p := Profile{}
	switch {
	case email != "":
		p.Email, p.EmailVerified = &email, boolPtr(true)
	case unverified != "":
		p.Email, p.EmailVerified = &unverified, boolPtr(false)
	}
	if name := strings.TrimSpace(id.Name); name != "" {
		if len(name) > 128 {
			name = name[:128]
		}
		p.Name = &name
	}
	var userID string
	err := e.db.Tx(ctx, func(tx *gorm.DB) error {
		created, err := e.Users.CreateTx(tx, p, "", false)
		if err != nil {
			return err
		}
		userID = created.ID
		if err := e.Identities.LinkTx(tx, row.ID, id.Subject, created.ID, email); err != nil {
			return err
		}
		return e.joinOrganizations(ctx, tx, created.ID, row.jitOrganizations())
	})
	if err != nil {
		return err
	}
	e.audit(ctx, AuditEvent{Event: EventUserCreated, Outcome: OutcomeSuccess, UserID: userID, ClientID: meta.ClientID,
		IPAddress: meta.IPAddress, Data: map[string]any{"via": "experience", "connector_id": row.ID}})
	_, err = e.interactions.update(ctx, handle, in.ClientID, func(fresh *Interaction) error {
		if fresh.UserID != "" {
			return fault.New(CodeIdentityConflict, http.StatusConflict, "The interaction already identified a user.")
		}
		fresh.UserID, fresh.Federated = userID, true
		return nil
	})
	return err
}

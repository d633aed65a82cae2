package experience

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/experience/connector"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Connector families: "Sign in with …" providers, and a customer's
// enterprise identity provider owning e-mail domains.
const (
	FamilySocial = "social"
	FamilySSO    = "sso"
)

// Connector error codes.
const (
	// CodeUpstreamNotFound is an unknown (or deleted) social or SSO
	// connector (Logto's code for an entity missing by id).
	CodeUpstreamNotFound = "entity.not_exists_with_id"
	CodeDomainInUse      = "connector.domain_in_use"
	CodeDomainPublic     = "connector.domain_not_allowed"
	CodeProviderUnknown  = "connector.provider_not_supported"
)

// Connector is a configured upstream identity provider, as management
// shows it: never its secret.
type Connector struct {
	ID                   string          `json:"id"`
	Family               string          `json:"-"`
	Name                 string          `json:"name"`
	Provider             string          `json:"provider"`
	Domains              []string        `json:"domains"`
	Config               json.RawMessage `json:"config"`
	HasSecret            bool            `json:"has_client_secret"`
	TrustUnverifiedEmail bool            `json:"trust_unverified_email"`
	TrustUpstreamMFA     bool            `json:"trust_upstream_mfa"`
	JITOrganizations     []string        `json:"jit_organizations"`
	// ServiceProvider is Latch as a SAML IdP must know it.
	ServiceProvider *ServiceProvider `json:"service_provider,omitempty"`
	CreatedAt       time.Time        `json:"created_at"`
	UpdatedAt       time.Time        `json:"updated_at"`
}

// ServiceProvider is a SAML connector's service provider (Latch): its
// entity id (which is its metadata URL) and assertion consumer service.
type ServiceProvider struct {
	EntityID    string `json:"entity_id"`
	MetadataURL string `json:"metadata_url"`
	ACSURL      string `json:"acs_url"`
}

// ConnectorInput creates a connector; in a patch, nil fields stay.
type ConnectorInput struct {
	Name                 *string
	Provider             *string
	Domains              *[]string
	Config               json.RawMessage
	TrustUnverifiedEmail *bool
	TrustUpstreamMFA     *bool
	JITOrganizations     *[]string
}

type connectorRow struct {
	ID                   string `gorm:"primaryKey"`
	Family               string
	Name                 string
	Provider             string
	Config               string
	Secret               []byte
	TrustUnverifiedEmail bool
	TrustUpstreamMFA     bool   `gorm:"column:trust_upstream_mfa"`
	JITOrganizations     string `gorm:"column:jit_organizations"`
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

func (connectorRow) TableName() string { return "connectors" }

type connectorDomain struct {
	Domain      string `gorm:"primaryKey"`
	ConnectorID string
}

func (connectorDomain) TableName() string { return "connector_domains" }

// Connectors stores upstream connectors; secrets are sealed to their
// connector (like TOTP secrets to their user).
type Connectors struct {
	db     *store.DB
	now    func() time.Time
	sealer *credentials.Sealer
	kinds  connector.Kinds
	hc     *http.Client
	audit  *Audit
	// endpoint is Latch's URL of a connector (SAML's assertion consumer
	// service); the app owns the routes.
	endpoint func(provider, id string) string

	// live caches opened connectors (an OIDC one holds the discovery
	// document and the provider's key set) for openTTL, keyed by id and
	// update time: the row is still read at every step, so a deleted
	// connector fails at once and a changed one is reopened on every replica.
	mu   sync.Mutex
	live map[string]liveConnector
}

type liveConnector struct {
	conn   connector.Connector
	opened time.Time
}

// openTTL bounds how long an opened connector is reused.
const openTTL = 5 * time.Minute

func errUpstreamNotFound() *fault.Error {
	return fault.New(CodeUpstreamNotFound, http.StatusNotFound, "The connector does not exist.")
}

// providers of each family.
var familyProviders = map[string][]string{FamilySocial: {"oidc", "oauth2"}, FamilySSO: {"oidc", "saml"}}

func (s *Connectors) secretAD(id string) []byte { return []byte("connector:" + id) }

// Create validates and stores a connector.
func (s *Connectors) Create(ctx context.Context, family string, in ConnectorInput) (*Connector, error) {
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		return nil, fault.Invalid(fault.Detail{Field: "name", Message: "is required"})
	}
	if in.Provider == nil {
		return nil, fault.Invalid(fault.Detail{Field: "provider", Message: "is required"})
	}
	kind, err := s.kind(family, *in.Provider)
	if err != nil {
		return nil, err
	}
	if len(in.Config) == 0 {
		return nil, fault.Invalid(fault.Detail{Field: "config", Message: "is required"})
	}
	if err := checkGenerated(kind, in.Config, false); err != nil {
		return nil, err
	}
	public, secret, err := kind.Split(in.Config)
	if err != nil {
		return nil, err
	}
	domains, err := s.checkDomains(family, in.Domains)
	if err != nil {
		return nil, err
	}
	orgs, err := checkOrgIDs(in.JITOrganizations)
	if err != nil {
		return nil, err
	}
	now := s.now()
	row := connectorRow{ID: credentials.RandomID(16), Family: family, Name: strings.TrimSpace(*in.Name), Provider: *in.Provider,
		Config: string(public), TrustUnverifiedEmail: in.TrustUnverifiedEmail != nil && *in.TrustUnverifiedEmail,
		TrustUpstreamMFA: in.TrustUpstreamMFA != nil && *in.TrustUpstreamMFA, JITOrganizations: orgs, CreatedAt: now, UpdatedAt: now}
	if secret != "" {
		if row.Secret, err = s.sealer.Seal([]byte(secret), s.secretAD(row.ID)); err != nil {
			return nil, err
		}
	}
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("experience: create connector: %w", err)
		}
		if err := s.setDomainsTx(tx, row.ID, domains); err != nil {
			return err
		}
		return s.audit.record(tx, connectorEvent(EventConnectorCreated, &row, map[string]any{"domains": domains}))
	})
	if err != nil {
		return nil, err
	}
	return s.view(&row, domains), nil
}

// checkGenerated refuses configuration members a kind makes itself; a
// patch may remove them (null) to have them made anew.
func checkGenerated(kind connector.Kind, config json.RawMessage, patch bool) error {
	g, ok := kind.(connector.Generated)
	if !ok {
		return nil
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(config, &members) != nil {
		return nil // Split says what is wrong with it
	}
	for _, name := range g.Generated() {
		if v, set := members[name]; set && !(patch && string(v) == "null") {
			return fault.Invalid(fault.Detail{Field: "config." + name, Message: "is made by Latch and cannot be set"})
		}
	}
	return nil
}

// Update applies a patch. A config patch is merged into the stored one
// member by member, and an absent client secret keeps the stored secret.
func (s *Connectors) Update(ctx context.Context, family, id string, in ConnectorInput) (*Connector, error) {
	row, err := s.row(ctx, family, id)
	if err != nil {
		return nil, err
	}
	if in.Provider != nil && *in.Provider != row.Provider {
		return nil, fault.Invalid(fault.Detail{Field: "provider", Message: "cannot change; create another connector"})
	}
	if in.Name != nil {
		if strings.TrimSpace(*in.Name) == "" {
			return nil, fault.Invalid(fault.Detail{Field: "name", Message: "must not be empty"})
		}
		row.Name = strings.TrimSpace(*in.Name)
	}
	if len(in.Config) > 0 {
		merged, err := mergeJSON(row.Config, in.Config)
		if err != nil {
			return nil, err
		}
		kind, err := s.kind(family, row.Provider)
		if err != nil {
			return nil, err
		}
		if err := checkGenerated(kind, in.Config, true); err != nil {
			return nil, err
		}
		public, secret, err := kind.Split(merged)
		if err != nil {
			return nil, err
		}
		row.Config = string(public)
		if secret != "" {
			if row.Secret, err = s.sealer.Seal([]byte(secret), s.secretAD(row.ID)); err != nil {
				return nil, err
			}
		}
	}
	if in.TrustUnverifiedEmail != nil {
		row.TrustUnverifiedEmail = *in.TrustUnverifiedEmail
	}
	if in.TrustUpstreamMFA != nil {
		row.TrustUpstreamMFA = *in.TrustUpstreamMFA
	}
	if in.JITOrganizations != nil {
		if row.JITOrganizations, err = checkOrgIDs(in.JITOrganizations); err != nil {
			return nil, err
		}
	}
	var domains []string
	if in.Domains != nil {
		if domains, err = s.checkDomains(family, in.Domains); err != nil {
			return nil, err
		}
	}
	row.UpdatedAt = s.now()
	err = s.db.Tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Save(row).Error; err != nil {
			return fmt.Errorf("experience: update connector: %w", err)
		}
		if err := s.audit.record(tx, connectorEvent(EventConnectorUpdated, row, map[string]any{"fields": in.fields()})); err != nil {
			return err
		}
		if in.Domains == nil {
			return nil
		}
		if err := tx.Where("connector_id = ?", row.ID).Delete(&connectorDomain{}).Error; err != nil {
			return fmt.Errorf("experience: update connector domains: %w", err)
		}
		return s.setDomainsTx(tx, row.ID, domains)
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, family, id)
}

// Get returns a connector of family.
func (s *Connectors) Get(ctx context.Context, family, id string) (*Connector, error) {
	row, err := s.row(ctx, family, id)
	if err != nil {
		return nil, err
	}
	domains, err := s.domains(ctx, []string{row.ID})
	if err != nil {
		return nil, err
	}
	return s.view(row, domains[row.ID]), nil
}

// List returns the connectors of family, oldest first.
func (s *Connectors) List(ctx context.Context, family string) ([]*Connector, error) {
	var rows []connectorRow
	if err := s.db.WithContext(ctx).Where("family = ?", family).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("experience: list connectors: %w", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	domains, err := s.domains(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]*Connector, 0, len(rows))
	for _, r := range rows {
		out = append(out, s.view(&r, domains[r.ID]))
	}
	return out, nil
}

// Delete removes a connector, its domains and the identities linked
// through it; a sign-in under way with it fails cleanly at its next step.
func (s *Connectors) Delete(ctx context.Context, family, id string) error {
	row, err := s.row(ctx, family, id)
	if err != nil {
		return err
	}
	return s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND family = ?", id, family).Delete(&connectorRow{})
		if res.Error != nil {
			return fmt.Errorf("experience: delete connector: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return errUpstreamNotFound()
		}
		return s.audit.record(tx, connectorEvent(EventConnectorDeleted, row, nil))
	})
}

// connectorEvent is the audit row of a connector change: what changed,
// never a secret.
func connectorEvent(event string, row *connectorRow, data map[string]any) AuditEvent {
	if data == nil {
		data = map[string]any{}
	}
	data["connector_id"], data["family"], data["provider"], data["name"] = row.ID, row.Family, row.Provider, row.Name
	return AuditEvent{Event: event, Outcome: OutcomeSuccess, Data: data}
}

// fields names what a patch changes (config by its member names).
func (in ConnectorInput) fields() []string {
	var out []string
	for name, set := range map[string]bool{"name": in.Name != nil, "domains": in.Domains != nil,
		"trust_unverified_email": in.TrustUnverifiedEmail != nil, "trust_upstream_mfa": in.TrustUpstreamMFA != nil,
		"jit_organizations": in.JITOrganizations != nil} {
		if set {
			out = append(out, name)
		}
	}
	var config map[string]json.RawMessage
	if json.Unmarshal(in.Config, &config) == nil {
		for k := range config {
			out = append(out, "config."+k)
		}
	}
	slices.Sort(out)
	return out
}

// ForEmail returns the SSO connectors owning an address's domain.
func (s *Connectors) ForEmail(ctx context.Context, email string) ([]*Connector, error) {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return nil, nil
	}
	var rows []connectorRow
	err := s.db.WithContext(ctx).Where("family = ? AND id IN (?)", FamilySSO,
		s.db.Model(&connectorDomain{}).Select("connector_id").Where("domain = ?", strings.ToLower(email[at+1:]))).
		Order("created_at, id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("experience: connectors for domain: %w", err)
	}
	out := make([]*Connector, 0, len(rows))
	for _, r := range rows {
		out = append(out, s.view(&r, nil))
	}
	return out, nil
}

// open builds the live connector of a stored one.
func (s *Connectors) open(ctx context.Context, family, id string) (*connectorRow, connector.Connector, error) {
	row, err := s.row(ctx, family, id)
	if err != nil {
		return nil, nil, err
	}
	key := row.ID + "@" + row.UpdatedAt.UTC().Format(time.RFC3339Nano)
	now := s.now()
	s.mu.Lock()
	cached, ok := s.live[key]
	s.mu.Unlock()
	if ok && now.Sub(cached.opened) < openTTL {
		return row, cached.conn, nil
	}
	kind, err := s.kind(family, row.Provider)
	if err != nil {
		return nil, nil, err
	}
	var secret string
	if len(row.Secret) > 0 {
		plain, err := s.sealer.Open(row.Secret, s.secretAD(row.ID))
		if err != nil {
			return nil, nil, fmt.Errorf("experience: open connector secret: %w", err)
		}
		secret = string(plain)
	}
	c, err := kind.Open(ctx, json.RawMessage(row.Config), secret, s.endpointOf(row), s.hc)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if s.live == nil {
		s.live = map[string]liveConnector{}
	}
	for k, v := range s.live {
		if now.Sub(v.opened) >= openTTL || strings.HasPrefix(k, row.ID+"@") {
			delete(s.live, k)
		}
	}
	s.live[key] = liveConnector{conn: c, opened: now}
	s.mu.Unlock()
	return row, c, nil
}

func (s *Connectors) row(ctx context.Context, family, id string) (*connectorRow, error) {
	var row connectorRow
	err := s.db.WithContext(ctx).Where("id = ? AND family = ?", id, family).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, errUpstreamNotFound()
	}
	if err != nil {
		return nil, fmt.Errorf("experience: load connector: %w", err)
	}
	return &row, nil
}

func (s *Connectors) kind(family, provider string) (connector.Kind, error) {
	k, ok := s.kinds[provider]
	if !ok || !slices.Contains(familyProviders[family], provider) {
		return nil, fault.Invalid(fault.Detail{Field: "provider", Message: "must be one of " + strings.Join(familyProviders[family], ", ")})
	}
	return k, nil
}

func (s *Connectors) domains(ctx context.Context, ids []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []connectorDomain
	if err := s.db.WithContext(ctx).Where("connector_id IN ?", ids).Order("domain").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("experience: connector domains: %w", err)
	}
	for _, r := range rows {
		out[r.ConnectorID] = append(out[r.ConnectorID], r.Domain)
	}
	return out, nil
}

// setDomainsTx claims domains for a connector; the primary key makes a
// domain one connector's, even against a concurrent claim.
func (s *Connectors) setDomainsTx(tx *gorm.DB, id string, domains []string) error {
	for _, d := range domains {
		if err := tx.Create(&connectorDomain{Domain: d, ConnectorID: id}).Error; err != nil {
			if store.IsUniqueViolation(err) {
				return fault.New(CodeDomainInUse, http.StatusConflict, "The domain %s belongs to another SSO connector.", d)
			}
			return fmt.Errorf("experience: claim domain: %w", err)
		}
	}
	return nil
}

var domainLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// publicMailDomains are webmail providers anyone can have an address at:
// owning one would send every user of that provider to one customer's SSO.
var publicMailDomains = map[string]bool{
	"gmail.com": true, "googlemail.com": true, "outlook.com": true, "hotmail.com": true, "live.com": true, "msn.com": true,
	"yahoo.com": true, "ymail.com": true, "icloud.com": true, "me.com": true, "mac.com": true, "aol.com": true,
	"proton.me": true, "protonmail.com": true, "pm.me": true, "gmx.com": true, "gmx.de": true, "gmx.net": true, "web.de": true,
	"mail.com": true, "yandex.com": true, "yandex.ru": true, "mail.ru": true, "qq.com": true, "163.com": true, "126.com": true,
	"zoho.com": true, "fastmail.com": true, "tutanota.com": true, "hey.com": true, "hotmail.co.uk": true, "yahoo.co.uk": true,
	"outlook.fr": true, "hotmail.fr": true, "orange.fr": true, "free.fr": true, "laposte.net": true, "t-online.de": true,
}

// checkDomains validates SSO domains: host names, lower-cased, not a
// public webmail provider. Social connectors own none.
func (s *Connectors) checkDomains(family string, in *[]string) ([]string, error) {
	if in == nil || len(*in) == 0 {
		return nil, nil
	}
	if family != FamilySSO {
		return nil, fault.Invalid(fault.Detail{Field: "domains", Message: "only SSO connectors own domains"})
	}
	var out []string
	for i, d := range *in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		field := fmt.Sprintf("domains[%d]", i)
		labels := strings.Split(d, ".")
		ok := len(d) <= 253 && len(labels) >= 2
		for _, l := range labels {
			ok = ok && domainLabel.MatchString(l)
		}
		if !ok {
			return nil, fault.Invalid(fault.Detail{Field: field, Message: "must be a domain name such as example.com"})
		}
		if publicMailDomains[d] {
			return nil, fault.New(CodeDomainPublic, http.StatusUnprocessableEntity, "The domain %s is a public e-mail provider and cannot be owned by an SSO connector.", d)
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// checkOrgIDs validates JIT organization ids and stores them as JSON.
func checkOrgIDs(in *[]string) (string, error) {
	ids := []string{}
	if in != nil {
		for i, id := range *in {
			id = strings.TrimSpace(id)
			if id == "" || len(id) > 128 {
				return "", fault.Invalid(fault.Detail{Field: fmt.Sprintf("jit_organizations[%d]", i), Message: "must be an organization id"})
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	b, err := json.Marshal(ids)
	return string(b), err
}

func (r *connectorRow) jitOrganizations() []string {
	var ids []string
	_ = json.Unmarshal([]byte(r.JITOrganizations), &ids)
	if ids == nil {
		ids = []string{}
	}
	return ids
}

func (s *Connectors) view(r *connectorRow, domains []string) *Connector {
	if domains == nil {
		domains = []string{}
	}
	c := &Connector{ID: r.ID, Family: r.Family, Name: r.Name, Provider: r.Provider, Domains: domains, Config: json.RawMessage(r.Config),
		HasSecret: len(r.Secret) > 0, TrustUnverifiedEmail: r.TrustUnverifiedEmail, TrustUpstreamMFA: r.TrustUpstreamMFA,
		JITOrganizations: r.jitOrganizations(), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if _, hosted := s.kinds[r.Provider].(connector.Generated); hosted {
		if at := s.endpointOf(r).URL; at != "" {
			c.ServiceProvider = &ServiceProvider{EntityID: at + "/metadata", MetadataURL: at + "/metadata", ACSURL: at}
		}
	}
	return c
}

// endpointOf is Latch's address of a connector.
func (s *Connectors) endpointOf(r *connectorRow) connector.Endpoint {
	if s.endpoint == nil {
		return connector.Endpoint{}
	}
	return connector.Endpoint{URL: s.endpoint(r.Provider, r.ID)}
}

// mergeJSON merges a patch object into a stored one (RFC 7386 without
// nested merging: a member sent replaces the stored member; null removes it).
func mergeJSON(stored string, patch json.RawMessage) (json.RawMessage, error) {
	var base, p map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stored), &base); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fault.Invalid(fault.Detail{Field: "config", Message: "must be an object"})
	}
	for k, v := range p {
		if string(v) == "null" {
			delete(base, k)
			continue
		}
		base[k] = v
	}
	return json.Marshal(base)
}

package token

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Grant types a client may be allowed.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	GrantAuthorizationCode = "authorization_code"
)

var knownGrantTypes = map[string]bool{GrantClientCredentials: true, GrantRefreshToken: true, GrantAuthorizationCode: true}

// Client types. A backend client (the default) holds a secret and uses
// Latch's backend APIs; web, spa and native clients sign people in through
// the authorization endpoint. spa and native clients cannot keep a secret
// (public clients, RFC 6749 §2.1): they get none and must use PKCE.
const (
	ClientBackend = "backend"
	ClientWeb     = "web"
	ClientSPA     = "spa"
	ClientNative  = "native"
)

// Scopes of Latch's own API.
const (
	ScopeAuthExecute = "auth:execute"
	ScopeUsersRead   = "users:read"
	ScopeUsersWrite  = "users:write"
	ScopeManagement  = "management"
	ScopeOpenID      = "openid"
	// ScopeOfflineAccess asks for a refresh token (OIDC Core §11).
	ScopeOfflineAccess = "offline_access"
	// ScopeOrganizations asks the authorization endpoint for the
	// organizations claim: the ids of the user's organizations (Logto's
	// urn:logto:scope:organizations, in Latch's namespace).
	ScopeOrganizations = "urn:latch:scope:organizations"
	// ScopeOrganizationRoles asks for the organization_roles claim: the
	// user's roles as "org_id:role" (Logto's
	// urn:logto:scope:organization_roles).
	ScopeOrganizationRoles = "urn:latch:scope:organization_roles"
)

// knownScopes are the scopes a client may be granted. Organization scopes
// join this list with organizations.
var knownScopes = []string{ScopeAuthExecute, ScopeUsersRead, ScopeUsersWrite, ScopeManagement, ScopeOpenID}

// KnownScopes returns the scopes a client may be granted.
func KnownScopes() []string { return append([]string{}, knownScopes...) }

// CheckScopes refuses scopes that are not known: a typo in a grant would
// otherwise give a client a scope no route ever asks for.
func CheckScopes(field string, scopes []string) error {
	for _, sc := range scopes {
		if !contains(knownScopes, sc) {
			return fault.Invalid(fault.Detail{Field: field, Message: fmt.Sprintf("%q is not a known scope (%s)", sc, strings.Join(knownScopes, ", "))})
		}
	}
	return nil
}

// clientSecretPrefix marks Latch client secrets so secret scanners can find
// leaked ones.
const clientSecretPrefix = "lcs_"

// Client is an OAuth2 client: a trusted backend.
type Client struct {
	ID         string   `json:"client_id"`
	Name       string   `json:"name"`
	Scopes     []string `json:"scopes"`
	GrantTypes []string `json:"grant_types"`
	Resources  []string `json:"resources"`
	// EnforceMFA: users with MFA factors must complete MFA before this
	// client gets tokens; when false tokens are issued after the first
	// factor and the application decides from the amr claim.
	EnforceMFA bool `json:"enforce_mfa"`
	// SSO: the client takes part in cross-application single sign-on — it
	// may re-authenticate sessions of other SSO clients, and they its.
	SSO bool `json:"sso"`
	// AllowedOrigins are the browser origins (besides the issuer's own)
	// from which the Experience API accepts cookie-authorised calls.
	AllowedOrigins  []string  `json:"allowed_origins"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	SecretRotatedAt time.Time `json:"secret_rotated_at"`
	// TokensValidAfter is set by a secret rotation that revoked the
	// client's tokens: ClientAccessTokens issued in that second or earlier
	// are refused (see AcceptsIssuedAt).
	TokensValidAfter *time.Time `json:"tokens_valid_after,omitempty"`
	// Type is backend, web, spa or native (see the Client* constants).
	Type string `json:"type"`
	// RedirectURIs are the exact redirect_uri values the authorization
	// endpoint accepts (web, spa, native) or, for a backend client, where
	// an upstream identity provider may send the user back after a social
	// or SSO sign-in of its Experience API interactions; PostLogoutRedirectURIs
	// are those of RP-Initiated Logout.
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	// FirstParty clients are the deployment's own apps: no consent page.
	FirstParty bool `json:"first_party"`
	// RefreshWithoutOfflineAccess: a confidential client gets a refresh
	// token from the authorization code grant even without offline_access.
	RefreshWithoutOfflineAccess bool `json:"refresh_without_offline_access"`
	secretDigest                string
}

// Public reports whether the client cannot keep a secret (spa, native).
func (c *Client) Public() bool { return c.Type == ClientSPA || c.Type == ClientNative }

// HasRedirectURI reports whether uri is registered, compared exactly
// (RFC 9700 §2.1).
func (c *Client) HasRedirectURI(uri string) bool { return uri != "" && contains(c.RedirectURIs, uri) }

// HasPostLogoutRedirectURI reports whether uri is registered for logout.
func (c *Client) HasPostLogoutRedirectURI(uri string) bool {
	return uri != "" && contains(c.PostLogoutRedirectURIs, uri)
}

// HasScope reports whether the client was granted scope.
func (c *Client) HasScope(scope string) bool { return contains(c.Scopes, scope) }

// HasGrant reports whether the client may use grant type g.
func (c *Client) HasGrant(g string) bool { return contains(c.GrantTypes, g) }

// AcceptsIssuedAt reports whether a ClientAccessToken issued at iat is still
// backed by the client: not when a secret rotation with token revocation
// happened since. iat has whole seconds (RFC 7519 NumericDate), so a token
// of the rotation's own second may predate it and is refused as well;
// RotateSecret does not hand out the new secret before the next second, so
// no token minted with it falls in that second. A token without iat is
// refused once tokens were revoked.
func (c *Client) AcceptsIssuedAt(iat *jwt.NumericDate) bool {
	if c.TokensValidAfter == nil {
		return true
	}
	return iat != nil && iat.Unix() > c.TokensValidAfter.Unix()
}

type clientRow struct {
	ID               string `gorm:"primaryKey"`
	Name             string
	SecretDigest     string
	Scopes           string
	GrantTypes       string
	Resources        string
	EnforceMFA       bool `gorm:"column:enforce_mfa"`
	SSO              bool `gorm:"column:sso"`
	AllowedOrigins   string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	SecretRotatedAt  time.Time
	TokensValidAfter *time.Time
	ClientType       string `gorm:"column:client_type"`
	// Redirect URIs are kept one per line: they may not contain spaces
	// either, but a newline can never be part of a valid one.
	RedirectURIs           string `gorm:"column:redirect_uris"`
	PostLogoutRedirectURIs string `gorm:"column:post_logout_redirect_uris"`
	FirstParty             bool   `gorm:"column:first_party"`
	RefreshWithoutOffline  bool   `gorm:"column:refresh_without_offline_access"`
}

func (clientRow) TableName() string { return "oauth_clients" }

func (r clientRow) client() *Client {
	return &Client{ID: r.ID, Name: r.Name, Scopes: fields(r.Scopes), GrantTypes: fields(r.GrantTypes),
		Resources: fields(r.Resources), EnforceMFA: r.EnforceMFA, SSO: r.SSO, AllowedOrigins: fields(r.AllowedOrigins), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		SecretRotatedAt: r.SecretRotatedAt, TokensValidAfter: r.TokensValidAfter, secretDigest: r.SecretDigest,
		Type: r.ClientType, RedirectURIs: lines(r.RedirectURIs), PostLogoutRedirectURIs: lines(r.PostLogoutRedirectURIs), FirstParty: r.FirstParty,
		RefreshWithoutOfflineAccess: r.RefreshWithoutOffline}
}

// NewClient is the input to CreateClient.
type NewClient struct {
	Name       string
	Scopes     []string
	GrantTypes []string // default: client_credentials, refresh_token
	Resources  []string // absolute URIs the client may request as audience
	// EnforceMFA defaults to true (nil).
	EnforceMFA *bool
	// SSO opts the client into cross-application single sign-on.
	SSO bool
	// AllowedOrigins are browser origins (scheme://host[:port]) allowed to
	// drive the Experience API with the interaction cookie.
	AllowedOrigins []string
	// Type is backend (default), web, spa or native.
	Type string
	// RedirectURIs and PostLogoutRedirectURIs are absolute URIs without a
	// fragment; web, spa and native clients need at least one redirect URI.
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// FirstParty defaults to true (nil): no consent page.
	FirstParty *bool
	// RefreshWithoutOfflineAccess (confidential clients only) issues a
	// refresh token from the authorization code grant without the
	// offline_access scope.
	RefreshWithoutOfflineAccess bool
}

// Clients stores OAuth2 clients. Lookups are cached for a short TTL: the
// token endpoint is hot, and a deleted or rotated client is refused by every
// replica within that TTL (and at once by the replica that changed it).
// Creation, deletion and secret rotation are audited.
type Clients struct {
	db       *store.DB
	cacheTTL time.Duration
	now      func() time.Time
	audit    AuditSink

	mu    sync.RWMutex
	cache map[string]cachedClient
	// dummyDigest is compared against for unknown clients so both paths cost
	// the same.
	dummyDigest string
}

type cachedClient struct {
	client  *Client
	fetched time.Time
}

// NewClients returns a client store that reports its changes to sink (nil:
// none).
func NewClients(db *store.DB, cacheTTL time.Duration, sink AuditSink) *Clients {
	return &Clients{db: db, cacheTTL: cacheTTL, now: func() time.Time { return time.Now().UTC() }, audit: sink,
		cache: map[string]cachedClient{}, dummyDigest: credentials.Digest(credentials.RandomToken(32))}
}

// Create registers a client and returns it with its secret, shown only now.
func (s *Clients) Create(ctx context.Context, in NewClient) (*Client, string, error) {
	if strings.TrimSpace(in.Name) == "" {
		return nil, "", fault.Invalid(fault.Detail{Field: "name", Message: "is required"})
	}
	if in.Type == "" {
		in.Type = ClientBackend
	}
	if err := validateClientType(in.Type, in.RedirectURIs, in.PostLogoutRedirectURIs); err != nil {
		return nil, "", err
	}
	if len(in.GrantTypes) == 0 {
		in.GrantTypes = []string{GrantClientCredentials, GrantRefreshToken}
		if in.Type != ClientBackend {
			in.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
		}
	}
	if err := validateClientLists(in.Scopes, in.GrantTypes, in.Resources); err != nil {
		return nil, "", err
	}
	if (in.Type == ClientSPA || in.Type == ClientNative) && contains(in.GrantTypes, GrantClientCredentials) {
		return nil, "", fault.Invalid(fault.Detail{Field: "grant_types", Message: "a public client cannot use client_credentials"})
	}
	if in.RefreshWithoutOfflineAccess && in.Type != ClientWeb {
		return nil, "", fault.Invalid(fault.Detail{Field: "refresh_without_offline_access", Message: "only for web (confidential) clients"})
	}
	origins, err := normalizeOrigins(in.AllowedOrigins)
	if err != nil {
		return nil, "", err
	}
	redirects := in.RedirectURIs
	if in.Type == ClientBackend {
		if redirects, err = checkRedirectURIs(in.RedirectURIs); err != nil {
			return nil, "", err
		}
	}
	secret := clientSecretPrefix + credentials.RandomToken(32)
	digest := credentials.Digest(secret)
	if in.Type == ClientSPA || in.Type == ClientNative {
		// A public client has no secret: the digest of a discarded one
		// matches nothing.
		secret = ""
	}
	now := s.now()
	row := clientRow{ID: credentials.RandomID(24), Name: strings.TrimSpace(in.Name), SecretDigest: digest,
		Scopes: join(in.Scopes), GrantTypes: join(in.GrantTypes), Resources: join(in.Resources),
		EnforceMFA: in.EnforceMFA == nil || *in.EnforceMFA, SSO: in.SSO, AllowedOrigins: join(origins), CreatedAt: now, UpdatedAt: now, SecretRotatedAt: now,
		ClientType: in.Type, RedirectURIs: joinLines(redirects), PostLogoutRedirectURIs: joinLines(in.PostLogoutRedirectURIs),
		FirstParty: in.FirstParty == nil || *in.FirstParty, RefreshWithoutOffline: in.RefreshWithoutOfflineAccess}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return nil, "", fmt.Errorf("token: create client: %w", err)
	}
	c := row.client()
	audit(ctx, s.audit, AuditEvent{Event: EventClientCreated, ClientID: c.ID, Data: map[string]any{
		"name": c.Name, "scopes": c.Scopes, "grant_types": c.GrantTypes, "resources": c.Resources, "enforce_mfa": c.EnforceMFA}})
	return c, secret, nil
}

// Get returns a client by id (uncached).
func (s *Clients) Get(ctx context.Context, id string) (*Client, error) {
	var row clientRow
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fault.New(fault.CodeNotFound, 404, "client %q not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("token: get client: %w", err)
	}
	return row.client(), nil
}

// cached returns a client through the short-TTL cache; nil when unknown.
func (s *Clients) cached(ctx context.Context, id string) (*Client, error) {
	now := s.now()
	s.mu.RLock()
	c, ok := s.cache[id]
	s.mu.RUnlock()
	if ok && now.Sub(c.fetched) < s.cacheTTL {
		return c.client, nil
	}
	client, err := s.Get(ctx, id)
	if fault.Is(err, fault.CodeNotFound) {
		s.forget(id)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if s.cacheTTL > 0 {
		s.mu.Lock()
		s.cache[id] = cachedClient{client: client, fetched: now}
		s.mu.Unlock()
	}
	return client, nil
}

// Lookup returns a live client by id through the cache, or nil if unknown.
func (s *Clients) Lookup(ctx context.Context, id string) (*Client, error) { return s.cached(ctx, id) }

// SharesSessions reports whether a client exists and takes part in
// cross-application SSO (the Experience engine asks it before letting one
// client use another's session).
func (s *Clients) SharesSessions(ctx context.Context, id string) (bool, error) {
	c, err := s.cached(ctx, id)
	if err != nil || c == nil {
		return false, err
	}
	return c.SSO, nil
}

// AllowsRedirect reports whether a client exists and registered uri as a
// redirect URI (exact match).
func (s *Clients) AllowsRedirect(ctx context.Context, id, uri string) (bool, error) {
	c, err := s.cached(ctx, id)
	if err != nil || c == nil {
		return false, err
	}
	return contains(c.RedirectURIs, uri), nil
}

func (s *Clients) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

// Authenticate checks a client id and secret. Unknown clients and wrong
// secrets cost the same and fail the same way.
func (s *Clients) Authenticate(ctx context.Context, id, secret string) (*Client, error) {
	var client *Client
	if id != "" && len(id) <= 128 {
		var err error
		if client, err = s.cached(ctx, id); err != nil {
			return nil, err
		}
	}
	digest := s.dummyDigest
	if client != nil {
		digest = client.secretDigest
	}
	if !credentials.DigestEqual(secret, digest) || client == nil {
		return nil, errInvalidClient
	}
	return client, nil
}

// List returns every client, oldest first.
func (s *Clients) List(ctx context.Context) ([]*Client, error) {
	var rows []clientRow
	if err := s.db.WithContext(ctx).Order("created_at, id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("token: list clients: %w", err)
	}
	out := make([]*Client, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.client())
	}
	return out, nil
}

// Delete removes a client. Its secret and every token it holds stop
// working at once on this replica and within the cache TTL on the others
// (Service.VerifyClientToken looks the client up for every token).
func (s *Clients) Delete(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&clientRow{})
	if res.Error != nil {
		return fmt.Errorf("token: delete client: %w", res.Error)
	}
	s.forget(id)
	if res.RowsAffected == 0 {
		return fault.New(fault.CodeNotFound, 404, "client %q not found", id)
	}
	audit(ctx, s.audit, AuditEvent{Event: EventClientDeleted, ClientID: id})
	return nil
}

// ClientPatch changes some of a client's settings: nil fields stay as they
// are; a list given replaces the stored one.
type ClientPatch struct {
	Name           *string
	Scopes         *[]string
	GrantTypes     *[]string
	Resources      *[]string
	EnforceMFA     *bool
	SSO            *bool
	AllowedOrigins *[]string
	RedirectURIs   *[]string
}

// fields names the settings the patch changes, for the audit log.
func (p ClientPatch) fields() []string {
	var out []string
	for name, set := range map[string]bool{"name": p.Name != nil, "scopes": p.Scopes != nil, "grant_types": p.GrantTypes != nil,
		"resources": p.Resources != nil, "enforce_mfa": p.EnforceMFA != nil, "sso": p.SSO != nil, "allowed_origins": p.AllowedOrigins != nil,
		"redirect_uris": p.RedirectURIs != nil} {
		if set {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Update applies p to a client, validated as Create validates. The change
// reaches this replica at once and the others within the cache TTL; it
// leaves the secret and the tokens already issued alone (a token keeps the
// scopes it was issued with until it expires).
func (s *Clients) Update(ctx context.Context, id string, p ClientPatch) (*Client, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.Name != nil {
		if strings.TrimSpace(*p.Name) == "" {
			return nil, fault.Invalid(fault.Detail{Field: "name", Message: "must not be empty"})
		}
		c.Name = strings.TrimSpace(*p.Name)
	}
	for _, f := range []struct {
		in  *[]string
		out *[]string
	}{{p.Scopes, &c.Scopes}, {p.GrantTypes, &c.GrantTypes}, {p.Resources, &c.Resources}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	if len(c.GrantTypes) == 0 {
		return nil, fault.Invalid(fault.Detail{Field: "grant_types", Message: "must name at least one grant type"})
	}
	if err := validateClientLists(c.Scopes, c.GrantTypes, c.Resources); err != nil {
		return nil, err
	}
	if p.AllowedOrigins != nil {
		if c.AllowedOrigins, err = normalizeOrigins(*p.AllowedOrigins); err != nil {
			return nil, err
		}
	}
	if p.RedirectURIs != nil {
		if c.RedirectURIs, err = checkRedirectURIs(*p.RedirectURIs); err != nil {
			return nil, err
		}
	}
	if p.EnforceMFA != nil {
		c.EnforceMFA = *p.EnforceMFA
	}
	if p.SSO != nil {
		c.SSO = *p.SSO
	}
	now := s.now()
	res := s.db.WithContext(ctx).Model(&clientRow{}).Where("id = ?", id).Updates(map[string]any{
		"name": c.Name, "scopes": join(c.Scopes), "grant_types": join(c.GrantTypes), "resources": join(c.Resources),
		"enforce_mfa": c.EnforceMFA, "sso": c.SSO, "allowed_origins": join(c.AllowedOrigins), "redirect_uris": joinLines(c.RedirectURIs), "updated_at": now})
	if res.Error != nil {
		return nil, fmt.Errorf("token: update client: %w", res.Error)
	}
	s.forget(id)
	if res.RowsAffected == 0 {
		return nil, fault.New(fault.CodeNotFound, 404, "client %q not found", id)
	}
	audit(ctx, s.audit, AuditEvent{Event: EventClientUpdated, ClientID: id, Data: map[string]any{"fields": p.fields()}})
	return s.Get(ctx, id)
}

// RotateSecret replaces a client's secret and returns the new one. The old
// secret stops working at once on this replica and within the cache TTL on
// the others. ClientAccessTokens already issued stay valid until they
// expire — unless revokeTokens is set: then every token issued before the
// rotation is refused (on other replicas within the cache TTL). Because
// token iat has whole seconds, the rotation's own second is refused too,
// and with revokeTokens RotateSecret returns only once that second is over,
// so that no token minted with the new secret is issued within it.
func (s *Clients) RotateSecret(ctx context.Context, id string, revokeTokens bool) (*Client, string, error) {
	secret := clientSecretPrefix + credentials.RandomToken(32)
	now := s.now()
	update := map[string]any{"secret_digest": credentials.Digest(secret), "secret_rotated_at": now, "updated_at": now}
	if revokeTokens {
		update["tokens_valid_after"] = now
	}
	res := s.db.WithContext(ctx).Model(&clientRow{}).Where("id = ?", id).Updates(update)
	if res.Error != nil {
		return nil, "", fmt.Errorf("token: rotate client secret: %w", res.Error)
	}
	s.forget(id)
	if res.RowsAffected == 0 {
		return nil, "", fault.New(fault.CodeNotFound, 404, "client %q not found", id)
	}
	audit(ctx, s.audit, AuditEvent{Event: EventClientSecretRotated, ClientID: id, Data: map[string]any{"revoke_tokens": revokeTokens}})
	if revokeTokens {
		// At most a second, and not cut short by ctx: the rotation has
		// committed, and returning without the new secret would lock the
		// client out.
		time.Sleep(now.Truncate(time.Second).Add(time.Second).Sub(s.now()))
	}
	c, err := s.Get(ctx, id)
	return c, secret, err
}

func validateClientLists(scopes, grants, resources []string) error {
	if err := CheckScopes("scopes", scopes); err != nil {
		return err
	}
	for _, g := range grants {
		if !knownGrantTypes[g] {
			return fault.Invalid(fault.Detail{Field: "grant_types", Message: fmt.Sprintf("%q is not a supported grant type (client_credentials, refresh_token, authorization_code)", g)})
		}
	}
	for _, r := range resources {
		if err := validResource(r); err != nil {
			return fault.Invalid(fault.Detail{Field: "resource", Message: err.Error()})
		}
	}
	return nil
}

// validScopeToken follows RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// validResource follows RFC 8707 §2: an absolute URI without a fragment.
func validResource(r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.ContainsAny(r, " \t\n") || len(r) > 512 {
		return fmt.Errorf("%q is not an absolute URI without fragment", r)
	}
	return nil
}

func fields(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		return []string{}
	}
	return f
}

// join stores a set of words (scopes, grant types): space-separated,
// sorted, without duplicates or empties.
func join(list []string) string {
	out := distinct(list)
	sort.Strings(out)
	return strings.Join(out, " ")
}

// distinct is list without empty strings and repeats, in order.
func distinct(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// normalizeOrigins checks browser origins: an absolute http(s) URL with a
// host and nothing after it (RFC 6454), kept in its serialised form.
func normalizeOrigins(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, o := range in {
		u, err := url.Parse(strings.TrimSpace(o))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fault.Invalid(fault.Detail{Field: fmt.Sprintf("allowed_origins[%d]", i),
				Message: "must be an origin such as https://app.example.com"})
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out, nil
}

// checkRedirectURIs checks redirect URIs: absolute http(s) URLs without a
// fragment (RFC 6749 §3.1.2), compared later exactly as registered.
func checkRedirectURIs(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, raw := range in {
		raw = strings.TrimSpace(raw)
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.User != nil ||
			strings.ContainsAny(raw, " \t") {
			return nil, fault.Invalid(fault.Detail{Field: fmt.Sprintf("redirect_uris[%d]", i),
				Message: "must be an absolute http(s) URL without a fragment"})
		}
		out = append(out, raw)
	}
	return out, nil
}

// AllowsOrigin reports whether the client lists a browser origin.
func (c *Client) AllowsOrigin(origin string) bool {
	return contains(c.AllowedOrigins, strings.ToLower(origin))
}

// validateClientType checks a client's type against its redirect URIs: a
// browser client (web, spa, native) needs at least one redirect URI, a
// backend client none; every URI is absolute, without fragment (RFC 6749
// §3.1.2), and http only for loopback hosts (RFC 8252 §7.3, RFC 9700 §2.6).
func validateClientType(typ string, redirects, logouts []string) error {
	switch typ {
	case ClientBackend:
		// A backend client never uses the authorization endpoint; its
		// redirect URIs are where social and SSO sign-ins of its Experience
		// API interactions return (checked by checkRedirectURIs).
		if len(logouts) > 0 {
			return fault.Invalid(fault.Detail{Field: "post_logout_redirect_uris", Message: "a backend client has no post-logout redirect URIs (use --type web, spa or native)"})
		}
		return nil
	case ClientWeb, ClientSPA, ClientNative:
	default:
		return fault.Invalid(fault.Detail{Field: "type", Message: fmt.Sprintf("%q is not a client type (backend, web, spa, native)", typ)})
	}
	if len(redirects) == 0 {
		return fault.Invalid(fault.Detail{Field: "redirect_uris", Message: "a " + typ + " client needs at least one redirect URI"})
	}
	for field, list := range map[string][]string{"redirect_uris": redirects, "post_logout_redirect_uris": logouts} {
		for _, r := range list {
			if err := validRedirectURI(typ, r); err != nil {
				return fault.Invalid(fault.Detail{Field: field, Message: err.Error()})
			}
		}
	}
	return nil
}

func validRedirectURI(typ, r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.ContainsAny(r, " \t\r\n#") || len(r) > 1024 || u.User != nil {
		return fmt.Errorf("%q is not an absolute URI without fragment", r)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if h := u.Hostname(); h == "localhost" || h == "127.0.0.1" || h == "::1" {
			return nil
		}
		return fmt.Errorf("%q: http is allowed only for loopback hosts", r)
	}
	if typ == ClientNative && strings.Contains(u.Scheme, ".") {
		return nil // a private-use scheme (RFC 8252 §7.1), e.g. com.example.app:/cb
	}
	return fmt.Errorf("%q: the scheme must be https (or a reverse-domain scheme for native apps)", r)
}

func lines(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}

// joinLines stores a list of URIs one a line, in order, without
// duplicates or empties.
func joinLines(list []string) string { return strings.Join(distinct(list), "\n") }

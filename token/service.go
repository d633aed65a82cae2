// Package token issues and verifies the tokens Latch signs: ClientAccessTokens
// (OAuth2 client credentials), user access, ID and refresh tokens. It owns
// signing keys, OAuth2 clients, revocation, introspection and the discovery
// document.
package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"gorm.io/gorm/clause"

	"github.com/latch-dev/latch/credentials"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// Leeway is the clock skew tolerated when verifying tokens (DESIGN §3: ≤ 60 s).
const Leeway = 30 * time.Second

// AccessTokenType is the JWT "typ" header of access tokens (RFC 9068 §2.1).
const AccessTokenType = "at+jwt"

// Options configure the token service.
type Options struct {
	Issuer          string
	APIResource     string // Latch's own API identifier: the default audience
	ClientTokenTTL  time.Duration
	AccessTokenTTL  time.Duration
	IDTokenTTL      time.Duration
	RefreshTokenTTL time.Duration
	SigningAlg      string
	KeyCacheTTL     time.Duration
	ClientCacheTTL  time.Duration
	// RefreshReuseGrace is how long after a refresh token's rotation a second
	// presentation of it is taken for a duplicate of the same request (a
	// client retrying or firing parallel refreshes) and refused with plain
	// invalid_grant, instead of being treated as theft that revokes the whole
	// family. Zero is strict: only requests that lost the consumption race
	// itself are spared. Keep it to seconds: a thief replaying within the
	// grace is refused but not detected.
	RefreshReuseGrace time.Duration
	// VerifyCacheTTL is how long a verified access token is trusted without
	// re-checking its signature and the revocation table (0 disables).
	VerifyCacheTTL time.Duration
	// Audit receives key rotations and client changes (nil: not audited).
	Audit AuditSink
}

// Service issues and verifies tokens.
type Service struct {
	db      *store.DB
	opts    Options
	Keys    *KeyRing
	Clients *Clients
	now     func() time.Time

	verified *verifyCache
}

// New returns a token service. Call Keys.Ensure before serving.
func New(db *store.DB, sealer *credentials.Sealer, opts Options) *Service {
	longest := opts.ClientTokenTTL
	for _, d := range []time.Duration{opts.AccessTokenTTL, opts.IDTokenTTL} {
		if d > longest {
			longest = d
		}
	}
	return &Service{
		db:   db,
		opts: opts,
		Keys: NewKeyRing(db, sealer, KeyRingOptions{Alg: opts.SigningAlg, CacheTTL: opts.KeyCacheTTL,
			PublishWindow: longest + 2*Leeway, Audit: opts.Audit}),
		Clients:  NewClients(db, opts.ClientCacheTTL, opts.Audit),
		now:      func() time.Time { return time.Now().UTC() },
		verified: newVerifyCache(opts.VerifyCacheTTL, 100_000),
	}
}

// Options returns the service's configuration.
func (s *Service) Options() Options { return s.opts }

// AccessClaims are the claims of an access token (RFC 9068). ClientAccess
// tokens have sub = client_id; user access tokens carry the session claims.
type AccessClaims struct {
	jwt.RegisteredClaims
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	// In an organization context: the organization, the member's role
	// names and the union of their permissions (empty lists are omitted).
	OrgID       string   `json:"org_id,omitempty"`
	Roles       []string `json:"roles,omitempty"`
	Permissions []string `json:"permissions,omitempty"`
}

// Scopes returns the space-separated scope claim as a list.
func (c *AccessClaims) Scopes() []string { return strings.Fields(c.Scope) }

// HasScope reports whether the token carries scope.
func (c *AccessClaims) HasScope(scope string) bool { return contains(c.Scopes(), scope) }

// IsClientToken reports whether the token was issued to a client for itself
// (client credentials) rather than on behalf of a user.
func (c *AccessClaims) IsClientToken() bool { return c.SessionID == "" && c.Subject == c.ClientID }

// TokenResponse is the RFC 6749 §5.1 success body.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
}

// ClientCredentials issues a ClientAccessToken (RFC 6749 §4.4) to an
// authenticated client. scope is the request's space-separated scope (empty:
// every granted scope); resources are the RFC 8707 resource parameters.
func (s *Service) ClientCredentials(ctx context.Context, client *Client, scope string, resources []string) (*TokenResponse, error) {
	if !client.HasGrant(GrantClientCredentials) {
		return nil, OAuthError(CodeUnauthorizedClient, "the client is not allowed to use the client_credentials grant")
	}
	audience, err := s.ResolveResource(client, resources)
	if err != nil {
		return nil, err
	}
	scopes, err := grantedScopes(client, scope)
	if err != nil {
		return nil, err
	}
	now := s.now()
	claims := &AccessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.opts.Issuer,
			Subject:   client.ID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.opts.ClientTokenTTL)),
			ID:        credentials.RandomToken(16),
		},
		ClientID: client.ID,
		Scope:    strings.Join(scopes, " "),
	}
	raw, err := s.sign(ctx, AccessTokenType, claims)
	if err != nil {
		return nil, err
	}
	return &TokenResponse{AccessToken: raw, TokenType: "Bearer", ExpiresIn: int64(s.opts.ClientTokenTTL / time.Second),
		Scope: claims.Scope}, nil
}

// ResolveResource picks the audience for a token: the single requested
// resource, which must be Latch's own API or one the client was allowed, or
// Latch's API when none is requested.
func (s *Service) ResolveResource(client *Client, resources []string) (string, error) {
	switch len(resources) {
	case 0:
		return s.opts.APIResource, nil
	case 1:
	default:
		return "", OAuthError(CodeInvalidTarget, "request at most one resource per token")
	}
	r := resources[0]
	if err := validResource(r); err != nil {
		return "", OAuthError(CodeInvalidTarget, err.Error())
	}
	if r != s.opts.APIResource && !contains(client.Resources, r) {
		return "", OAuthError(CodeInvalidTarget, fmt.Sprintf("the client may not request resource %q", r))
	}
	return r, nil
}

// grantedScopes checks a requested scope string against the client's grants.
func grantedScopes(client *Client, requested string) ([]string, error) {
	if strings.TrimSpace(requested) == "" {
		return client.Scopes, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, sc := range strings.Fields(requested) {
		if !validScopeToken(sc) {
			return nil, OAuthError(CodeInvalidScope, "the scope parameter is malformed")
		}
		if !client.HasScope(sc) {
			return nil, OAuthError(CodeInvalidScope, fmt.Sprintf("scope %q is not granted to this client", sc))
		}
		if !seen[sc] {
			seen[sc] = true
			out = append(out, sc)
		}
	}
	return out, nil
}

// sign signs claims with the active key.
func (s *Service) sign(ctx context.Context, typ string, claims jwt.Claims) (string, error) {
	set, err := s.Keys.snapshot(ctx)
	if err != nil {
		return "", err
	}
	k := set.active
	t := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), claims)
	t.Header["kid"] = k.kid
	if typ != "" {
		t.Header["typ"] = typ
	}
	raw, err := t.SignedString(k.private)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return raw, nil
}

// errCritical refuses a token whose header lists critical extensions.
var errCritical = errors.New("token: the header names critical extensions (crit)")

// parse verifies a JWT signed by Latch: exact algorithm allow-list, a
// published kid whose algorithm matches the header, no crit header, exp
// required, iss, and (when audience is not empty) aud. Segments must be
// canonical base64url, so one signature has one encoding.
func (s *Service) parse(ctx context.Context, raw string, claims jwt.Claims, audience string) (*jwt.Token, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"ES256", "RS256"}),
		jwt.WithIssuer(s.opts.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(Leeway),
		jwt.WithStrictDecoding(),
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	return jwt.NewParser(opts...).ParseWithClaims(raw, claims, s.keyFunc(ctx, nil))
}

// keyFunc finds the verification key of a token Latch signed: no crit
// header, then (check, when given, on the header), then the published key
// of its kid, whose algorithm must be the header's.
func (s *Service) keyFunc(ctx context.Context, check func(*jwt.Token) error) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		// RFC 7515 §4.1.11: a recipient must refuse a JWS naming critical
		// extensions it does not understand. Latch signs none and
		// understands none, so any crit (even an empty or malformed one)
		// is refused — before the signature costs anything.
		if _, ok := t.Header["crit"]; ok {
			return nil, errCritical
		}
		if check != nil {
			if err := check(t); err != nil {
				return nil, err
			}
		}
		kid, _ := t.Header["kid"].(string)
		k, err := s.Keys.lookup(ctx, kid)
		if err != nil {
			return nil, err
		}
		if t.Method.Alg() != k.alg {
			return nil, errors.New("token: algorithm does not match the key")
		}
		return k.public, nil
	}
}

// VerifyAccessToken verifies an access token for the given audience ("" for
// any) and that it has not been revoked.
func (s *Service) VerifyAccessToken(ctx context.Context, raw, audience string) (*AccessClaims, error) {
	now := s.now()
	if cached := s.verified.get(raw, now); cached != nil {
		if audience != "" && !contains(cached.Audience, audience) {
			return nil, ErrInvalidClientToken(describeJWTError(jwt.ErrTokenInvalidAudience))
		}
		return cached, nil
	}
	claims := &AccessClaims{}
	t, err := s.parse(ctx, raw, claims, audience)
	if err != nil {
		if store.IsUnavailable(err) {
			// Loading the keys failed: the token may well be valid.
			return nil, err
		}
		return nil, ErrInvalidClientToken(describeJWTError(err))
	}
	typ, _ := t.Header["typ"].(string)
	if !strings.EqualFold(typ, AccessTokenType) && !strings.EqualFold(typ, "application/"+AccessTokenType) {
		return nil, ErrInvalidClientToken("the token is not an access token (typ must be at+jwt)")
	}
	if claims.ID == "" || claims.ClientID == "" {
		return nil, ErrInvalidClientToken("the token lacks jti or client_id")
	}
	revoked, err := s.isRevoked(ctx, claims.ID)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, ErrInvalidClientToken("the token has been revoked")
	}
	s.verified.put(raw, claims, now)
	return claims, nil
}

// VerifyClientToken verifies a ClientAccessToken for audience: a live access
// token (VerifyAccessToken) that a client was issued for itself, whose client
// still exists and has not revoked it (RotateSecret with revokeTokens). It
// returns the claims and the client. Signature and revocation checks may be
// cached (Options.VerifyCacheTTL); the client is looked up every time,
// through the client cache, so a client deleted or rotated by another
// process is refused within Options.ClientCacheTTL, and at once on the
// replica that changed it.
func (s *Service) VerifyClientToken(ctx context.Context, raw, audience string) (*AccessClaims, *Client, error) {
	claims, err := s.VerifyAccessToken(ctx, raw, audience)
	if err != nil {
		return nil, nil, err
	}
	if !claims.IsClientToken() {
		return nil, nil, ErrInvalidClientToken("a ClientAccessToken is required, not a user token")
	}
	client, err := s.tokenClient(ctx, claims)
	if err != nil {
		return nil, nil, err
	}
	return claims, client, nil
}

// tokenClient returns the client a verified access token was issued to, or
// ErrInvalidClientToken when that client no longer exists or, for a
// ClientAccessToken, revoked it since it was issued.
func (s *Service) tokenClient(ctx context.Context, claims *AccessClaims) (*Client, error) {
	client, err := s.Clients.Lookup(ctx, claims.ClientID)
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, ErrInvalidClientToken("the client of this token no longer exists")
	}
	if claims.IsClientToken() && !client.AcceptsIssuedAt(claims.IssuedAt) {
		return nil, ErrInvalidClientToken("the token was revoked by a rotation of its client's secret")
	}
	return client, nil
}

func describeJWTError(err error) string {
	switch {
	case errors.Is(err, errCritical):
		return "the token header names critical extensions (crit), which this server does not support"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the token is not meant for this API (aud)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "the token was not issued by this server (iss)"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "the token signature is invalid"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the token is malformed"
	default:
		return "the token is invalid"
	}
}

type revokedToken struct {
	JTI       string `gorm:"column:jti;primaryKey"`
	ExpiresAt time.Time
}

func (revokedToken) TableName() string { return "revoked_tokens" }

func (s *Service) isRevoked(ctx context.Context, jti string) (bool, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&revokedToken{}).Where("jti = ?", jti).Limit(1).Count(&n).Error; err != nil {
		return false, fmt.Errorf("token: check revocation: %w", err)
	}
	return n > 0, nil
}

// revokeJTI records a revoked access token until it would have expired.
func (s *Service) revokeJTI(ctx context.Context, jti string, exp time.Time) error {
	db := s.db.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&revokedToken{JTI: jti, ExpiresAt: exp.UTC()}).Error; err != nil {
		return fmt.Errorf("token: revoke: %w", err)
	}
	// Housekeeping: rows past expiry protect nothing.
	db.Where("expires_at < ?", s.now().Add(-Leeway)).Delete(&revokedToken{})
	return nil
}

// Introspection is the RFC 7662 response.
type Introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	JTI       string   `json:"jti,omitempty"`
	SessionID string   `json:"sid,omitempty"`
}

// Introspect reports whether a token is active (RFC 7662): ClientAccess and
// user access tokens (JWTs) and refresh tokens (opaque). Anything that is
// not a live token Latch issued to a client that still exists (and, for a
// ClientAccessToken, has not revoked it) is simply inactive. Whether the
// session of a user's token is alive is not this package's knowledge: the
// caller checks it for results that carry a SessionID. The two kinds cannot be
// confused — refresh tokens contain no dots — so token_type_hint is not
// needed and is ignored (RFC 7662 §2.1: the server extends its search past a
// wrong hint anyway).
func (s *Service) Introspect(ctx context.Context, client *Client, raw, _ string) (*Introspection, error) {
	if !looksLikeJWT(raw) {
		return s.introspectRefresh(ctx, client, raw)
	}
	claims, err := s.VerifyAccessToken(ctx, raw, "")
	if err == nil {
		_, err = s.tokenClient(ctx, claims)
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return &Introspection{Active: false}, nil
		}
		return nil, err
	}
	return &Introspection{Active: true, Scope: claims.Scope, ClientID: claims.ClientID, TokenType: "Bearer",
		Exp: claims.ExpiresAt.Unix(), Iat: claims.IssuedAt.Unix(), Sub: claims.Subject, Aud: claims.Audience,
		Iss: claims.Issuer, JTI: claims.ID, SessionID: claims.SessionID}, nil
}

// Revoke revokes a token issued to client (RFC 7009). An access token is
// revoked by its jti until it expires; a refresh token revokes its whole
// family. Invalid or unknown tokens are not an error: the client's goal is
// reached either way. A token of another client is refused and left alone.
func (s *Service) Revoke(ctx context.Context, client *Client, raw, hint string) error {
	if hint != "" && hint != "access_token" && hint != "refresh_token" {
		return OAuthError(CodeUnsupportedTokenType, "token_type_hint must be access_token or refresh_token")
	}
	if !looksLikeJWT(raw) {
		return s.revokeRefresh(ctx, client, raw)
	}
	claims, err := s.VerifyAccessToken(ctx, raw, "")
	if err != nil {
		if _, ok := fault.As(err); ok {
			return nil
		}
		return err
	}
	if claims.ClientID != client.ID {
		return OAuthError(CodeUnauthorizedClient, "the token was not issued to this client")
	}
	// Record first, then evict: a verification racing this revocation
	// either reads the row or meets the cache's tombstone. Eviction goes by
	// jti, so every encoding of the token is evicted, not only raw.
	if err := s.revokeJTI(ctx, claims.ID, claims.ExpiresAt.Time); err != nil {
		return err
	}
	s.verified.forget(claims.ID, s.now())
	return nil
}

func looksLikeJWT(raw string) bool { return strings.Count(raw, ".") == 2 }

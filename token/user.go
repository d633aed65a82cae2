package token

import (
	"context"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/latch-dev/latch/credentials"
)

// IDTokenType is the JWT "typ" header of ID tokens. It differs from the
// access token's at+jwt, so neither can be passed off as the other (RFC 9068
// §2.1, RFC 8725 §3.11).
const IDTokenType = "JWT"

// UserGrant is everything needed to issue tokens for a user's session. The
// caller (the app layer) has already decided who authenticated and how (the
// Experience engine) and resolved the audience and the extra ID-token claims;
// this package only turns that into signed tokens.
type UserGrant struct {
	ClientID, UserID, SessionID string
	AuthTime                    time.Time
	AMR                         []string
	// Audience is the already-resolved resource (see ResolveUserResource);
	// "" means the default, the issuer.
	Audience string
	Scope    string
	// OrgID, Roles and Permissions are the organization context (see
	// AccessClaims); the ID token carries OrgID, and Roles only when the
	// caller puts them in IDClaims.
	OrgID       string
	Roles       []string
	Permissions []string
	// IDClaims are extra ID-token claims already resolved by the caller
	// (username, email, …, see ParseClaimsRequest). They can never override
	// the registered claims this package sets.
	IDClaims map[string]any
	// IDClaimNames are the claim names the caller asked for (the OIDC
	// claims parameter); a refresh family keeps them so refreshed ID tokens
	// carry the same claims.
	IDClaimNames []string
	// SessionExpiresAt bounds the refresh token: it never outlives the session.
	SessionExpiresAt time.Time
	// WithRefresh starts a new refresh token family for the grant. A
	// rotation issues with WithRefresh false and hands out the successor
	// from RotateRefreshToken instead.
	WithRefresh bool
	// AuthorizationCode marks tokens of the authorization code flow: the ID
	// token then carries azp and at_hash, and Nonce when the request had one.
	AuthorizationCode bool
	Nonce             string
	// Refresh is a refresh token already stored for the grant, with the
	// sign-in (StoreRefreshFamily): it is handed out and WithRefresh is
	// ignored.
	Refresh *RefreshIssue
}

// UserTokens are the tokens issued for a UserGrant.
type UserTokens struct {
	AccessToken, IDToken, RefreshToken string
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int64
	// RefreshExpiresAt and FamilyID describe the refresh token and the new
	// family it starts, when one was issued (for audit; clients are not
	// told).
	RefreshExpiresAt time.Time
	FamilyID         string
	// AccessJTI and AccessExpiresAt identify the access token, so it can
	// be revoked later (an authorization code's replay).
	AccessJTI       string
	AccessExpiresAt time.Time
}

// registeredIDClaims are the ID-token claims this package sets or that carry
// protocol meaning; IDClaims may not supply them, so a user-controlled
// attribute can never impersonate another subject, audience or session.
var registeredIDClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"auth_time": true, "amr": true, "sid": true, "azp": true, "nonce": true, "acr": true,
	"at_hash": true, "c_hash": true, "s_hash": true, "cnf": true, "client_id": true,
}

// ResolveUserResource validates the optional RFC 8707 resource of a user
// token request: "" stays "" (IssueUserTokens then uses the issuer as the
// audience); anything else must be Latch's API or one of the client's
// resources, else invalid_target.
func (s *Service) ResolveUserResource(client *Client, resource string) (string, error) {
	if resource == "" {
		return "", nil
	}
	return s.ResolveResource(client, []string{resource})
}

// IssueUserTokens issues an access token (RFC 9068), an ID token (OIDC Core
// §2) and, with WithRefresh, a refresh token that starts a new family for g
// (bounded by g.SessionExpiresAt). Rotating an existing family is
// InspectRefreshToken and RotateRefreshToken, not this.
func (s *Service) IssueUserTokens(ctx context.Context, g UserGrant) (*UserTokens, error) {
	if g.ClientID == "" || g.UserID == "" || g.SessionID == "" {
		return nil, errors.New("token: IssueUserTokens needs ClientID, UserID and SessionID")
	}
	now := s.now()
	audience := s.audienceOf(g)
	out := &UserTokens{ExpiresIn: int64(s.opts.AccessTokenTTL / time.Second)}
	// The refresh token is stored first: if the session has already ended,
	// nothing is signed.
	switch {
	case g.Refresh != nil:
		out.RefreshToken, out.RefreshExpiresAt, out.FamilyID = g.Refresh.Token, g.Refresh.ExpiresAt, g.Refresh.FamilyID
	case g.WithRefresh:
		raw, exp, family, err := s.newRefreshFamily(s.db.WithContext(ctx), false, g, audience, now)
		if err != nil {
			return nil, err
		}
		out.RefreshToken, out.RefreshExpiresAt, out.FamilyID = raw, exp, family
	}

	var authTime int64
	if !g.AuthTime.IsZero() {
		authTime = g.AuthTime.Unix()
	}
	access := &AccessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.opts.Issuer,
			Subject:   g.UserID,
			Audience:  jwt.ClaimStrings{audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.opts.AccessTokenTTL)),
			ID:        credentials.RandomToken(16),
		},
		ClientID:    g.ClientID,
		Scope:       g.Scope,
		SessionID:   g.SessionID,
		AuthTime:    authTime,
		AMR:         g.AMR,
		OrgID:       g.OrgID,
		Roles:       g.Roles,
		Permissions: g.Permissions,
	}
	var err error
	if out.AccessToken, err = s.sign(ctx, AccessTokenType, access); err != nil {
		return nil, err
	}
	out.AccessJTI, out.AccessExpiresAt = access.ID, access.ExpiresAt.Time

	id := jwt.MapClaims{}
	for k, v := range g.IDClaims {
		if !registeredIDClaims[k] {
			id[k] = v
		}
	}
	id["iss"] = s.opts.Issuer
	id["sub"] = g.UserID
	id["aud"] = g.ClientID
	id["iat"] = now.Unix()
	id["exp"] = now.Add(s.opts.IDTokenTTL).Unix()
	id["sid"] = g.SessionID
	if authTime != 0 {
		id["auth_time"] = authTime
	}
	if len(g.AMR) > 0 {
		id["amr"] = g.AMR
	}
	if g.AuthorizationCode {
		id["azp"] = g.ClientID
		id["at_hash"] = atHash(out.AccessToken)
		if g.Nonce != "" {
			id["nonce"] = g.Nonce
		}
	}
	if g.OrgID != "" {
		id["org_id"] = g.OrgID
	} else {
		delete(id, "org_id") // only the grant's context, never a caller's claim
	}
	if out.IDToken, err = s.sign(ctx, IDTokenType, id); err != nil {
		return nil, err
	}
	return out, nil
}

// audienceOf is the audience of g's tokens: the resolved resource, or the
// issuer.
func (s *Service) audienceOf(g UserGrant) string {
	if g.Audience == "" {
		return s.opts.Issuer
	}
	return g.Audience
}

// VerifyUserAccessToken verifies a user access token for any audience (for
// userinfo, GET /oidc/me): it must be a live access token issued on behalf of
// a user's session to a client that still exists, never a
// ClientAccessToken. Whether the session is still alive is the caller's to
// check.
func (s *Service) VerifyUserAccessToken(ctx context.Context, raw string) (*AccessClaims, error) {
	claims, err := s.VerifyAccessToken(ctx, raw, "")
	if err != nil {
		return nil, err
	}
	if claims.SessionID == "" || claims.Subject == "" || claims.IsClientToken() {
		return nil, ErrInvalidClientToken("a user access token is required")
	}
	if _, err := s.tokenClient(ctx, claims); err != nil {
		return nil, err
	}
	return claims, nil
}

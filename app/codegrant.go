package app

import (
	"context"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// codeTokenResponse is the token response of the authorization code grant
// (RFC 6749 §5.1, OIDC Core §3.1.3.3).
type codeTokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
}

// scopeClaims are the ID-token claims each OIDC scope asks for (OIDC Core
// §5.4).
var scopeClaims = map[string][]string{
	"profile": {"name", "username"},
	"email":   {"email", "email_verified"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// authorizationCodeGrant serves grant_type=authorization_code at
// /oidc/token (RFC 6749 §4.1.3, RFC 7636 §4.5).
func (a *App) authorizationCodeGrant(c echo.Context, client *token.Client, form url.Values) (any, error) {
	if !client.HasGrant(token.GrantAuthorizationCode) {
		return nil, token.OAuthError(token.CodeUnauthorizedClient, "the client is not allowed to use the authorization_code grant")
	}
	code, redirect := form.Get("code"), form.Get("redirect_uri")
	if code == "" || redirect == "" {
		return nil, token.OAuthError(token.CodeInvalidRequest, "code and redirect_uri are required")
	}
	ctx := c.Request().Context()
	grant, err := a.tokens.RedeemCode(ctx, client, code, redirect, form.Get("code_verifier"))
	if err != nil {
		return nil, err
	}
	// In an organization context (organization_id), what the user holds
	// there now: a member removed since the sign-in gets no tokens.
	signIn, err := a.engine.RefreshSignIn(ctx, grant.SessionID, grant.OrgID, false)
	if err != nil && experience.IsOrgRefusal(err) {
		return nil, token.OAuthError(token.CodeInvalidGrant, "the organization context of this code has ended: "+orgRefusal(err))
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			return nil, token.OAuthError(token.CodeInvalidGrant, "the sign-in behind this code has ended")
		}
		return nil, err
	}
	if signIn.User.ID != grant.UserID {
		return nil, token.OAuthError(token.CodeInvalidGrant, "the sign-in behind this code has ended")
	}
	scopes := strings.Fields(grant.Scope)
	var claimNames []string
	for _, s := range scopes {
		claimNames = append(claimNames, scopeClaims[s]...)
	}
	idClaims := profileClaims(signIn.User, signIn.Org, claimNames)
	if err := a.organizationClaims(ctx, signIn.User.ID, scopes, &idClaims); err != nil {
		return nil, err
	}
	// The organization context is the SignIn's, which the engine checked
	// (the authorization request's organization_id), never the session's
	// recorded org_id taken on trust.
	g := token.UserGrant{
		ClientID:          client.ID,
		UserID:            signIn.User.ID,
		SessionID:         signIn.Session.ID,
		AuthTime:          signIn.Session.AuthTime,
		AMR:               signIn.Session.AMR,
		Scope:             grant.Scope,
		IDClaims:          idClaims,
		IDClaimNames:      claimNames,
		SessionExpiresAt:  signIn.Session.ExpiresAt,
		WithRefresh:       wantsRefresh(client, scopes),
		AuthorizationCode: true,
		Nonce:             grant.Nonce,
	}
	withOrg(&g, signIn.Org)
	toks, err := a.tokens.IssueUserTokens(ctx, g)
	if err != nil {
		return nil, err
	}
	if err := a.tokens.RecordCodeTokens(ctx, grant, toks); err != nil {
		return nil, err
	}
	return &codeTokenResponse{AccessToken: toks.AccessToken, IDToken: toks.IDToken, RefreshToken: toks.RefreshToken,
		TokenType: "Bearer", ExpiresIn: toks.ExpiresIn, Scope: grant.Scope}, nil
}

// organizationClaims adds the claims of the organization scopes (Logto's
// organizations and organization_roles, read now): the ids of the user's
// organizations, and their roles as "org_id:role".
func (a *App) organizationClaims(ctx context.Context, userID string, scopes []string, out *map[string]any) error {
	orgs, roles := contains(scopes, token.ScopeOrganizations), contains(scopes, token.ScopeOrganizationRoles)
	if !orgs && !roles {
		return nil
	}
	list, err := a.engine.Members.ForUser(ctx, userID)
	if err != nil {
		return err
	}
	if *out == nil {
		*out = map[string]any{}
	}
	ids, pairs := []string{}, []string{}
	for _, o := range list {
		ids = append(ids, o.OrgID)
		for _, r := range o.Roles {
			pairs = append(pairs, o.OrgID+":"+r)
		}
	}
	if orgs {
		(*out)["organizations"] = ids
	}
	if roles {
		(*out)["organization_roles"] = pairs
	}
	return nil
}

// wantsRefresh: a refresh token only for offline_access (OIDC Core §11) —
// or, for a confidential client configured so, always — and only to a
// client allowed the refresh_token grant.
func wantsRefresh(client *token.Client, scopes []string) bool {
	asked := contains(scopes, token.ScopeOfflineAccess) || (client.RefreshWithoutOfflineAccess && !client.Public())
	return asked && client.HasGrant(token.GrantRefreshToken)
}

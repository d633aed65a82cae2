package app

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// userTokenResponse is the /v1 token response (seed 003).
type userTokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	SessionID    string `json:"session_id"`
}

// tokenPlan is what a request asked of its tokens, checked before any
// credential is: the audience and the ID-token claims.
type tokenPlan struct {
	audience string
	idClaims []string
}

// planTokens validates the resource and claims parameters of a request.
func (a *App) planTokens(client *token.Client, req tokenRequest) (tokenPlan, error) {
	var plan tokenPlan
	if req.Resource != "" {
		aud, err := a.tokens.ResolveResource(client, []string{req.Resource})
		if err != nil {
			return plan, err
		}
		plan.audience = aud
	}
	if len(req.Claims) > 0 && string(req.Claims) != "null" {
		cr, err := token.ParseClaimsRequest(req.Claims)
		if err != nil {
			return plan, err
		}
		plan.idClaims = cr.IDToken
	}
	return plan, nil
}

// callingClient returns the client behind the request's ClientAccessToken,
// which requireClientToken found alive.
func (a *App) callingClient(c echo.Context) (*token.Client, error) {
	client, _ := c.Get(ctxClient).(*token.Client)
	if client == nil {
		return nil, a.bearerChallenge(c, token.ErrInvalidClientToken("the client no longer exists"))
	}
	return client, nil
}

// issue turns a sign-in into user tokens. withRefresh starts a new refresh
// token family when the client may refresh, unless stored is the one
// already stored with the sign-in; a rotation passes false and attaches the
// successor itself.
func (a *App) issue(ctx context.Context, client *token.Client, signIn *experience.SignIn, plan tokenPlan, scope string, withRefresh bool, stored *token.RefreshIssue) (*userTokenResponse, error) {
	g := a.userGrant(client, signIn, plan, scope)
	// A refresh of a code-flow grant keeps its organization scopes' claims,
	// read afresh.
	if err := a.organizationClaims(ctx, signIn.User.ID, strings.Fields(g.Scope), &g.IDClaims); err != nil {
		return nil, err
	}
	g.WithRefresh = withRefresh && client.HasGrant(token.GrantRefreshToken)
	g.Refresh = stored
	toks, err := a.tokens.IssueUserTokens(ctx, g)
	if err != nil {
		return nil, err
	}
	return &userTokenResponse{AccessToken: toks.AccessToken, IDToken: toks.IDToken, RefreshToken: toks.RefreshToken,
		TokenType: "Bearer", ExpiresIn: toks.ExpiresIn, SessionID: signIn.Session.ID}, nil
}

// userGrant is what the tokens of a sign-in are issued for.
func (a *App) userGrant(client *token.Client, signIn *experience.SignIn, plan tokenPlan, scope string) token.UserGrant {
	if scope == "" {
		scope = "openid"
	}
	grant := token.UserGrant{
		ClientID:         client.ID,
		UserID:           signIn.User.ID,
		SessionID:        signIn.Session.ID,
		AuthTime:         signIn.Session.AuthTime,
		AMR:              signIn.Session.AMR,
		Audience:         plan.audience,
		Scope:            scope,
		IDClaims:         profileClaims(signIn.User, signIn.Org, plan.idClaims),
		IDClaimNames:     plan.idClaims,
		SessionExpiresAt: signIn.Session.ExpiresAt,
	}
	// The organization context is the sign-in's, as the engine read it
	// (the member's roles now), not whatever the session recorded.
	withOrg(&grant, signIn.Org)
	return grant
}

// signInTokens is the token response a /v1 sign-in is heading for: the
// calling client, what the request asked of its tokens and, once stored
// with the sign-in, the refresh token.
type signInTokens struct {
	client  *token.Client
	plan    tokenPlan
	refresh *token.RefreshIssue
}

// storeRefresh returns the work a sign-in commits with its session
// (experience.PasswordSignIn.InTx): storing its refresh token, when the
// client may refresh — one commit for both instead of two. The token is
// only handed out once that commit succeeded (the engine then returns the
// sign-in).
func (a *App) storeRefresh(t *signInTokens) func(*gorm.DB, *experience.SignIn) error {
	return func(tx *gorm.DB, s *experience.SignIn) error {
		if !t.client.HasGrant(token.GrantRefreshToken) {
			return nil
		}
		r, err := a.tokens.StoreRefreshFamily(tx, a.userGrant(t.client, s, t.plan, ""))
		t.refresh = r
		return err
	}
}

// withOrg puts an organization context into a grant: org_id, the member's
// role names and their permissions (nil: a plain grant).
func withOrg(g *token.UserGrant, org *experience.OrgContext) {
	if org != nil {
		g.OrgID, g.Roles, g.Permissions = org.ID, org.Roles, org.Permissions
	}
}

// tokenRequester is a /v1 request body that ends in user tokens.
type tokenRequester interface {
	validator
	tokenParams() tokenRequest
}

func (r *tokenRequest) tokenParams() tokenRequest { return *r }

// tokenRoute builds a /v1 handler that ends in user tokens: bind and
// validate the body, resolve the calling client and what its tokens should
// carry — before any credential is checked, so a bad request never costs a
// hash or an attempt — let decide (the engine) authenticate, and render the
// token response. decide may store the refresh token with the sign-in
// (a.storeRefresh(t)); otherwise it is stored when the tokens are issued.
func tokenRoute[R tokenRequester](a *App, newReq func() R, decide func(echo.Context, *token.Client, R, *signInTokens) (*experience.SignIn, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := newReq()
		if err := bindJSON(c, req); err != nil {
			return err
		}
		client, err := a.callingClient(c)
		if err != nil {
			return err
		}
		plan, err := a.planTokens(client, req.tokenParams())
		if err != nil {
			return err
		}
		t := &signInTokens{client: client, plan: plan}
		signIn, err := decide(c, client, req, t)
		if err != nil {
			return err
		}
		return a.respondTokens(c, t, signIn)
	}
}

// respondTokens renders the token response of a completed sign-in, with a
// new refresh token family (t.refresh if already stored).
func (a *App) respondTokens(c echo.Context, t *signInTokens, signIn *experience.SignIn) error {
	resp, err := a.issue(c.Request().Context(), t.client, signIn, t.plan, "", true, t.refresh)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, resp)
}

// refresh rotates a refresh token into new tokens: inspect the token, check
// that its session is still alive, sign the access and ID tokens, rotate
// (exactly one of concurrent presentations wins) and hand out the successor.
// A replayed token ends its whole family and the session (RFC 9700
// §4.14.2).
//
// The tokens are in the organization context the refresh token was issued
// in, with the member's roles read again: a user no longer allowed in it
// gets invalid_grant, its family is revoked and the session's context
// ends. organizationID asks instead for an organization token (Logto's):
// the tokens of that organization, for a member (else access_denied, and
// nothing ends); the refresh token keeps its own context.
func (a *App) refresh(ctx context.Context, client *token.Client, raw, organizationID string) (*userTokenResponse, error) {
	grant, err := a.tokens.InspectRefreshToken(ctx, client, raw)
	var reuse *token.RefreshReuse
	if errors.As(err, &reuse) {
		if rerr := a.engine.RecordRefreshReuse(ctx, reuse.SessionID, reuse.UserID, reuse.ClientID); rerr != nil {
			return nil, rerr
		}
		if rerr := a.tokens.RevokeSessionTokens(ctx, reuse.SessionID); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	orgID, keep := grant.OrgID, organizationID == ""
	if !keep {
		orgID = organizationID
	}
	signIn, err := a.engine.RefreshSignIn(ctx, grant.SessionID, orgID, keep)
	if err != nil && experience.IsOrgRefusal(err) {
		if !keep {
			return nil, token.ErrAccessDenied("the user may not have tokens of this organization: " + orgRefusal(err))
		}
		if rerr := a.tokens.RevokeRefreshFamily(ctx, grant.FamilyID); rerr != nil {
			return nil, rerr
		}
		return nil, token.OAuthError(token.CodeInvalidGrant, "the organization context of this refresh token has ended: "+orgRefusal(err))
	}
	if err != nil {
		if _, ok := fault.As(err); ok {
			_ = a.tokens.RevokeSessionTokens(ctx, grant.SessionID)
			return nil, token.OAuthError(token.CodeInvalidGrant, "the session of this refresh token has ended")
		}
		return nil, err
	}
	// Sign first: it writes nothing, so if it fails the presented token is
	// still unconsumed and the client can retry; once the rotation commits,
	// nothing is left that can fail.
	resp, err := a.issue(ctx, client, signIn, tokenPlan{audience: grant.Audience, idClaims: grant.IDClaims}, grant.Scope, false, nil)
	if err != nil {
		return nil, err
	}
	next, _, err := a.tokens.RotateRefreshToken(ctx, grant)
	if err != nil {
		return nil, err
	}
	resp.RefreshToken = next
	return resp, nil
}

// refreshTokenGrant serves grant_type=refresh_token at /oidc/token.
func (a *App) refreshTokenGrant(c echo.Context, client *token.Client, form url.Values) (any, error) {
	if !client.HasGrant(token.GrantRefreshToken) {
		return nil, token.OAuthError(token.CodeUnauthorizedClient, "the client is not allowed to use the refresh_token grant")
	}
	raw := form.Get("refresh_token")
	if raw == "" {
		return nil, token.OAuthError(token.CodeInvalidRequest, "refresh_token is required")
	}
	orgID := form.Get("organization_id")
	if len(orgID) > 64 {
		return nil, token.OAuthError(token.CodeInvalidRequest, "organization_id is too long")
	}
	return a.refresh(c.Request().Context(), client, raw, orgID)
}

// orgRefusal says, in a few words, why an organization context was refused.
func orgRefusal(err error) string {
	switch {
	case fault.Is(err, experience.CodeOrgMembershipRequired):
		return "the user is not a member"
	case fault.Is(err, experience.CodeSignInOrgNotFound):
		return "the organization does not exist"
	default:
		return "the organization requires multi-factor authentication, which the session has not completed"
	}
}

// endSessions revokes sessions and every refresh token they hold.
func (a *App) endSessions(ctx context.Context, reason string, ids ...string) error {
	for _, id := range ids {
		if _, err := a.engine.RevokeSession(ctx, id, reason); err != nil {
			return err
		}
		if err := a.tokens.RevokeSessionTokens(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// profileClaims picks the requested standard claims from a user's profile
// and, for roles, from the sign-in's organization context (none: []).
func profileClaims(u *experience.User, org *experience.OrgContext, names []string) map[string]any {
	if len(names) == 0 {
		return nil
	}
	out := map[string]any{}
	for _, n := range names {
		switch n {
		case "username":
			if u.Username != nil {
				out[n] = *u.Username
			}
		case "name":
			if u.Name != "" {
				out[n] = u.Name
			}
		case "email":
			if u.PrimaryEmail != nil {
				out[n] = *u.PrimaryEmail
			}
		case "email_verified":
			if u.PrimaryEmail != nil {
				out[n] = u.EmailVerified
			}
		case "phone_number":
			if u.PrimaryPhone != nil {
				out[n] = *u.PrimaryPhone
			}
		case "phone_number_verified":
			if u.PrimaryPhone != nil {
				out[n] = u.PhoneVerified
			}
		case "roles":
			out[n] = []string{}
			if org != nil {
				out[n] = org.Roles
			}
		case "updated_at":
			out[n] = u.UpdatedAt.Unix()
		}
	}
	return out
}

// tokenSession returns the sign-in behind a user's token (access or
// refresh), given its session and subject, while that session lives: a
// token outlives nothing that ended its session — logout, revocation,
// refresh-token reuse, the user's suspension or deletion, or whatever else
// ends sessions. Userinfo and introspection both ask this, so they cannot
// disagree. An ended session is ErrInvalidClientToken; other errors are
// internal.
func (a *App) tokenSession(ctx context.Context, sessionID, subject string) (*experience.SignIn, error) {
	signIn, err := a.engine.ActiveSession(ctx, sessionID)
	if err != nil {
		if _, ok := fault.As(err); !ok {
			return nil, err
		}
	}
	if err != nil || signIn.User.ID != subject {
		return nil, token.ErrInvalidClientToken("the session of this token has ended")
	}
	return signIn, nil
}

// userinfo is GET /oidc/me (OIDC Core §5.3) for a user access token.
func (a *App) userinfo(c echo.Context) error {
	raw, ok := bearerToken(c)
	if fromBody, sent, err := formAccessToken(c); err != nil {
		return err
	} else if sent {
		if ok {
			// RFC 6750 §2: one method per request.
			return token.OAuthError(token.CodeInvalidRequest, "send the access token in the Authorization header or the body, not both")
		}
		raw, ok = fromBody, fromBody != ""
	}
	if !ok {
		return a.bearerRequired(c, token.ErrInvalidClientToken("a Bearer access token is required"))
	}
	ctx := c.Request().Context()
	claims, err := a.tokens.VerifyUserAccessToken(ctx, raw)
	if err != nil {
		return a.bearerChallenge(c, err)
	}
	signIn, err := a.tokenSession(ctx, claims.SessionID, claims.Subject)
	if err != nil {
		return a.bearerChallenge(c, err)
	}
	out := profileClaims(signIn.User, nil, []string{"username", "name", "email", "email_verified", "phone_number", "phone_number_verified", "updated_at"})
	out["sub"] = signIn.User.ID
	// A token of an organization context: the organization and the
	// member's roles as they are now (none once the user left it).
	if claims.OrgID != "" {
		org, err := a.engine.OrgMemberContext(ctx, claims.OrgID, signIn.User.ID)
		if err != nil {
			return err
		}
		if org != nil {
			out["org_id"], out["roles"] = org.ID, org.Roles
		}
	}
	if err := a.organizationClaims(ctx, signIn.User.ID, strings.Fields(claims.Scope), &out); err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, out)
}

// formAccessToken reads the access_token of a form-encoded POST body (RFC
// 6750 §2.2), which userinfo accepts besides the Authorization header (OIDC
// Core §5.3.1). sent reports whether the body had the parameter at all.
func formAccessToken(c echo.Context) (raw string, sent bool, err error) {
	req := c.Request()
	ct, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if req.Method != http.MethodPost || ct != "application/x-www-form-urlencoded" {
		return "", false, nil
	}
	form, err := oauthForm(c)
	if err != nil {
		return "", false, err
	}
	_, sent = form["access_token"]
	return form.Get("access_token"), sent, nil
}

package app

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/latch-dev/latch/experience"
	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/token"
)

// connectorRequest is the body of POST and PATCH of /v1/sso-connectors and
// /v1/social-connectors; absent fields stay unchanged in a PATCH.
type connectorRequest struct {
	Name                 *string         `json:"name"`
	Provider             *string         `json:"provider"`
	Domains              *[]string       `json:"domains"`
	Config               json.RawMessage `json:"config"`
	TrustUnverifiedEmail *bool           `json:"trust_unverified_email"`
	TrustUpstreamMFA     *bool           `json:"trust_upstream_mfa"`
	JITOrganizations     *[]string       `json:"jit_organizations"`
	family               string
}

func (r *connectorRequest) validate() []fault.Detail {
	var f fields
	if r.Name != nil {
		f.maxLen("name", *r.Name, 128)
	}
	if r.family == experience.FamilySocial {
		for name, set := range map[string]bool{"domains": r.Domains != nil, "trust_unverified_email": r.TrustUnverifiedEmail != nil,
			"trust_upstream_mfa": r.TrustUpstreamMFA != nil, "jit_organizations": r.JITOrganizations != nil} {
			if set {
				f.add(name, "is an SSO connector setting")
			}
		}
	}
	if r.Domains != nil && len(*r.Domains) > 100 {
		f.add("domains", "must list at most 100 domains")
	}
	if len(r.Config) > 0 && (r.Config[0] != '{') {
		f.add("config", "must be an object")
	}
	slices.SortFunc(f, func(a, b fault.Detail) int {
		switch {
		case a.Field < b.Field:
			return -1
		case a.Field > b.Field:
			return 1
		}
		return 0
	})
	return f
}

func (r *connectorRequest) input() experience.ConnectorInput {
	return experience.ConnectorInput{Name: r.Name, Provider: r.Provider, Domains: r.Domains, Config: r.Config,
		TrustUnverifiedEmail: r.TrustUnverifiedEmail, TrustUpstreamMFA: r.TrustUpstreamMFA, JITOrganizations: r.JITOrganizations}
}

// socialConnectorView is a social connector as management shows it (SSO
// connectors show the whole experience.Connector).
type socialConnectorView struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Provider  string          `json:"provider"`
	Config    json.RawMessage `json:"config"`
	HasSecret bool            `json:"has_client_secret"`
	CreatedAt string          `json:"created_at"`
	UpdatedAt string          `json:"updated_at"`
}

func connectorView(c *experience.Connector) any {
	if c.Family == experience.FamilySSO {
		return c
	}
	const ts = "2006-01-02T15:04:05.999999999Z07:00"
	return socialConnectorView{ID: c.ID, Name: c.Name, Provider: c.Provider, Config: c.Config, HasSecret: c.HasSecret,
		CreatedAt: c.CreatedAt.Format(ts), UpdatedAt: c.UpdatedAt.Format(ts)}
}

// connectorRoutes registers the management routes of one family.
func (a *App) connectorRoutes(prefix, family string, mw ...echo.MiddlewareFunc) {
	e := a.echo
	bind := func(c echo.Context) (*connectorRequest, error) {
		req := &connectorRequest{family: family}
		return req, bindJSON(c, req)
	}
	e.POST(prefix, func(c echo.Context) error {
		req, err := bind(c)
		if err != nil {
			return err
		}
		conn, err := a.engine.Connectors.Create(c.Request().Context(), family, req.input())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, connectorView(conn))
	}, mw...)
	e.GET(prefix, func(c echo.Context) error {
		list, err := a.engine.Connectors.List(c.Request().Context(), family)
		if err != nil {
			return err
		}
		out := make([]any, 0, len(list))
		for _, conn := range list {
			out = append(out, connectorView(conn))
		}
		return c.JSON(http.StatusOK, map[string]any{"connectors": out})
	}, mw...)
	e.GET(prefix+"/:id", func(c echo.Context) error {
		conn, err := a.engine.Connectors.Get(c.Request().Context(), family, c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, connectorView(conn))
	}, mw...)
	e.PATCH(prefix+"/:id", func(c echo.Context) error {
		req, err := bind(c)
		if err != nil {
			return err
		}
		conn, err := a.engine.Connectors.Update(c.Request().Context(), family, c.Param("id"), req.input())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, connectorView(conn))
	}, mw...)
	e.DELETE(prefix+"/:id", func(c echo.Context) error {
		if err := a.engine.Connectors.Delete(c.Request().Context(), family, c.Param("id")); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}, mw...)
}

// upstreamStartRequest is the body of …/authorization-uri.
type upstreamStartRequest struct {
	State       string `json:"state"`
	RedirectURI string `json:"redirectUri"`
}

func (r *upstreamStartRequest) validate() []fault.Detail {
	var f fields
	f.required("state", r.State)
	f.maxLen("state", r.State, 512)
	f.required("redirectUri", r.RedirectURI)
	f.maxLen("redirectUri", r.RedirectURI, 2048)
	return f
}

// upstreamVerifyRequest is the body of …/verify. OIDC and OAuth 2.0 pass
// the callback's code and state (the engine requires them); SAML nothing
// once the assertion consumer service verified the record, or the
// SAMLResponse (and RelayState) the client received itself.
type upstreamVerifyRequest struct {
	VerificationID string `json:"verificationId"`
	ConnectorData  struct {
		Code         string `json:"code"`
		State        string `json:"state"`
		RedirectURI  string `json:"redirectUri"`
		SAMLResponse string `json:"SAMLResponse"`
		RelayState   string `json:"RelayState"`
	} `json:"connectorData"`
}

// samlRoutes are the routes whose body may carry a SAMLResponse.
var samlRoutes = map[string]bool{
	samlPath + ":connectorId":                              true,
	"/api/experience/verification/sso/:connectorId/verify": true,
	"/v1/auth/sso/authenticate":                            true,
}

// carriesSAMLResponse skips the general body limit on the routes that take
// a SAMLResponse: an enterprise IdP's signed, often encrypted assertion
// with its certificate and group attributes passes 64 KiB. Those routes
// have samlBodyLimit instead.
func carriesSAMLResponse(c echo.Context) bool { return samlRoutes[c.Path()] }

// samlBodyLimit is the body limit of the SAML routes: room for the largest
// SAMLResponse accepted (maxSAMLResponse) and the rest of the request, or
// the general limit where the operator set a larger one.
func (a *App) samlBodyLimit() string {
	const room = maxSAMLResponse + 64<<10
	if a.cfg.BodyLimitBytes() > room {
		return a.cfg.BodyLimit
	}
	return fmt.Sprintf("%dK", room>>10)
}

// maxSAMLResponse bounds a base64 SAMLResponse (the connector bounds the
// decoded XML at 1 MiB).
const maxSAMLResponse = 1400 << 10

func (r *upstreamVerifyRequest) validate() []fault.Detail {
	var f fields
	f.required("verificationId", r.VerificationID)
	f.maxLen("verificationId", r.VerificationID, 64)
	f.maxLen("connectorData.code", r.ConnectorData.Code, 4096)
	f.maxLen("connectorData.state", r.ConnectorData.State, 512)
	f.maxLen("connectorData.redirectUri", r.ConnectorData.RedirectURI, 2048)
	f.maxLen("connectorData.SAMLResponse", r.ConnectorData.SAMLResponse, maxSAMLResponse)
	f.maxLen("connectorData.RelayState", r.ConnectorData.RelayState, 512)
	return f
}

// upstreamStart is POST /api/experience/verification/{social|sso}/{connectorId}/authorization-uri.
func (a *App) upstreamStart(family string) echo.HandlerFunc {
	return func(c echo.Context) error {
		return expRoute(body[upstreamStartRequest], func(s step, r *upstreamStartRequest) (any, error) {
			start := a.engine.StartUpstream
			if r.RedirectURI == a.hostedCallback() {
				// Latch's own callback page serves the interactions of the
				// hosted pages only (an authorization request started them);
				// no client registers it.
				ar, err := a.tokens.AuthRequestForInteraction(s.ctx, s.handle)
				if err != nil {
					return nil, err
				}
				if ar == nil {
					return nil, fault.Invalid(fault.Detail{Field: "redirectUri", Message: "is Latch's own callback, for its hosted pages only"})
				}
				start = a.engine.StartHostedUpstream
			}
			uri, id, err := start(s.ctx, s.handle, s.client, family, c.Param("connectorId"), r.State, r.RedirectURI)
			if err != nil {
				return nil, err
			}
			return map[string]string{"authorizationUri": uri, "verificationId": id}, nil
		})(c)
	}
}

// upstreamVerify is POST /api/experience/verification/{social|sso}/{connectorId}/verify.
func (a *App) upstreamVerify(family string) echo.HandlerFunc {
	return func(c echo.Context) error {
		return expRoute(body[upstreamVerifyRequest], func(s step, r *upstreamVerifyRequest) (any, error) {
			return recordOf(a.engine.VerifyUpstream(s.ctx, s.handle, s.client, family, c.Param("connectorId"), r.VerificationID,
				experience.Callback{Code: r.ConnectorData.Code, State: r.ConnectorData.State, RedirectURI: r.ConnectorData.RedirectURI,
					SAMLResponse: r.ConnectorData.SAMLResponse, RelayState: r.ConnectorData.RelayState}))
		})(c)
	}
}

// ssoStartRequest is the body of POST /v1/auth/sso/start.
type ssoStartRequest struct {
	ConnectorID string `json:"connector_id"`
	Email       string `json:"email"`
	RedirectURI string `json:"redirect_uri"`
	State       string `json:"state"`
}

func (r *ssoStartRequest) validate() []fault.Detail {
	var f fields
	if (r.ConnectorID == "") == (r.Email == "") {
		f.add("connector_id", "give connector_id or email (one of them)")
	}
	if r.Email != "" {
		if _, err := experience.NormalizeEmail(r.Email); err != nil {
			f.add("email", "must be a valid email address")
		}
	}
	f.maxLen("connector_id", r.ConnectorID, 64)
	f.required("redirect_uri", r.RedirectURI)
	f.maxLen("redirect_uri", r.RedirectURI, 2048)
	f.maxLen("state", r.State, 512)
	return f
}

// ssoStart is POST /v1/auth/sso/start.
func (a *App) ssoStart(c echo.Context) error {
	var req ssoStartRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.RedirectURI == a.hostedCallback() {
		// As on the Experience API (upstreamStart): Latch's own callback
		// page serves the hosted pages' interactions only, even for a
		// client that listed it among its redirect URIs.
		return fault.Invalid(fault.Detail{Field: "redirect_uri", Message: "is Latch's own callback, for its hosted pages only"})
	}
	email := ""
	if req.Email != "" {
		email, _ = experience.NormalizeEmail(req.Email)
	}
	uri, flow, err := a.engine.StartSSO(c.Request().Context(), clientToken(c).ClientID, req.ConnectorID, email, req.RedirectURI, req.State)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, map[string]string{"authorization_uri": uri, "flow_id": flow})
}

// ssoAuthenticateRequest is the body of POST /v1/auth/sso/authenticate:
// OIDC's code and state; SAML's state after the assertion consumer
// service redirected back, or the saml_response itself.
type ssoAuthenticateRequest struct {
	tokenRequest
	FlowID       string `json:"flow_id"`
	Code         string `json:"code"`
	State        string `json:"state"`
	SAMLResponse string `json:"saml_response"`
	RelayState   string `json:"relay_state"`
}

func (r *ssoAuthenticateRequest) validate() []fault.Detail {
	var f fields
	f.required("flow_id", r.FlowID)
	f.maxLen("flow_id", r.FlowID, 128)
	if r.SAMLResponse == "" {
		f.required("state", r.State)
	}
	f.maxLen("code", r.Code, 4096)
	f.maxLen("state", r.State, 512)
	f.maxLen("saml_response", r.SAMLResponse, maxSAMLResponse)
	f.maxLen("relay_state", r.RelayState, 512)
	r.validateTokenRequest(&f)
	return f
}

// ssoAuthenticate is POST /v1/auth/sso/authenticate: the token response of
// seed 003 for a completed SSO flow.
func (a *App) ssoAuthenticate(c echo.Context, client *token.Client, req *ssoAuthenticateRequest, _ *signInTokens) (*experience.SignIn, error) {
	return a.engine.AuthenticateSSO(c.Request().Context(), req.FlowID, experience.Callback{Code: req.Code, State: req.State,
		SAMLResponse: req.SAMLResponse, RelayState: req.RelayState}, req.meta(c, client), client.EnforceMFA)
}

// samlPath is where SAML connectors live at Latch: the assertion consumer
// service, and the SP metadata under it.
const samlPath = "/api/authn/saml/"

// samlURL makes the engine's connector URLs (SAML only) under the issuer.
func samlURL(issuer string) func(provider, id string) string {
	return func(provider, id string) string {
		if provider != "saml" {
			return ""
		}
		return strings.TrimRight(issuer, "/") + samlPath + url.PathEscape(id)
	}
}

// samlMetadata is GET /api/authn/saml/{connectorId}/metadata.
func (a *App) samlMetadata(c echo.Context) error {
	md, err := a.engine.SAMLMetadata(c.Request().Context(), c.Param("connectorId"))
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "application/samlmetadata+xml", md)
}

// samlACS is POST /api/authn/saml/{connectorId}, the assertion consumer
// service (HTTP-POST binding): the IdP's SAMLResponse is verified into the
// record RelayState names and the user agent sent on (303) to the record's
// redirect URI with the client's state, Logto style. A refusal is the API
// dialect's JSON error; the record stays as it was.
func (a *App) samlACS(c echo.Context) error {
	ct, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if ct != echo.MIMEApplicationForm {
		return fault.Invalid(fault.Detail{Field: "body", Message: "Content-Type must be application/x-www-form-urlencoded"})
	}
	var f fields
	resp, relay := c.FormValue("SAMLResponse"), c.FormValue("RelayState")
	f.required("SAMLResponse", resp)
	f.maxLen("SAMLResponse", resp, maxSAMLResponse)
	f.required("RelayState", relay)
	f.maxLen("RelayState", relay, 512)
	if len(f) > 0 {
		return fault.Invalid(f...)
	}
	next, err := a.engine.ConsumeAssertion(c.Request().Context(), c.Param("connectorId"), relay, resp)
	if err != nil {
		return err
	}
	noStore(c)
	return c.Redirect(http.StatusSeeOther, next)
}

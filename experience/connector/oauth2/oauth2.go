// Package oauth2 is the plain OAuth 2.0 connector ("Sign in with GitHub"
// style): configured endpoints, the code exchanged with the client secret
// (and the PKCE verifier), and the identity read from the userinfo
// endpoint through a profile map, since there is no ID token to verify.
package oauth2

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/experience/connector"
)

// Token endpoint authentication methods.
const (
	AuthBasic = "client_secret_basic"
	AuthPost  = "client_secret_post"
)

// Config is an OAuth 2.0 connector's configuration.
type Config struct {
	AuthorizationEndpoint string     `json:"authorization_endpoint"`
	TokenEndpoint         string     `json:"token_endpoint"`
	UserinfoEndpoint      string     `json:"userinfo_endpoint"`
	ClientID              string     `json:"client_id"`
	ClientSecret          string     `json:"client_secret,omitempty"`
	TokenAuthMethod       string     `json:"token_endpoint_auth_method,omitempty"`
	Scope                 string     `json:"scope,omitempty"`
	PKCE                  string     `json:"pkce,omitempty"`
	ProfileMap            ProfileMap `json:"profile_map"`
}

// ProfileMap names the userinfo members holding each part of the identity.
type ProfileMap struct {
	ID            string `json:"id,omitempty"`
	Email         string `json:"email,omitempty"`
	EmailVerified string `json:"email_verified,omitempty"`
	Name          string `json:"name,omitempty"`
	Avatar        string `json:"avatar,omitempty"`
}

// Kind is the "oauth2" provider.
type Kind struct{}

// Split validates c and takes out the client secret.
func (Kind) Split(raw json.RawMessage) (json.RawMessage, string, error) {
	var c Config
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return nil, "", connector.InvalidConfig("", "is not a valid OAuth 2.0 configuration ("+err.Error()+")")
	}
	for name, v := range map[string]string{"authorization_endpoint": c.AuthorizationEndpoint, "token_endpoint": c.TokenEndpoint,
		"userinfo_endpoint": c.UserinfoEndpoint} {
		if !connector.HTTPURL(v) {
			return nil, "", connector.InvalidConfig(name, "must be an http(s) URL")
		}
	}
	if strings.TrimSpace(c.ClientID) == "" {
		return nil, "", connector.InvalidConfig("client_id", "is required")
	}
	switch c.TokenAuthMethod {
	case "":
		c.TokenAuthMethod = AuthBasic
	case AuthBasic, AuthPost:
	default:
		return nil, "", connector.InvalidConfig("token_endpoint_auth_method", "must be client_secret_basic or client_secret_post")
	}
	mode, err := connector.CheckPKCE(c.PKCE)
	if err != nil {
		return nil, "", err
	}
	c.PKCE = mode
	m := &c.ProfileMap
	for _, f := range []struct {
		v   *string
		def string
	}{{&m.ID, "id"}, {&m.Email, "email"}, {&m.EmailVerified, "email_verified"}, {&m.Name, "name"}, {&m.Avatar, "avatar_url"}} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
	secret := c.ClientSecret
	c.ClientSecret = ""
	public, err := json.Marshal(c)
	return public, secret, err
}

// Open returns the connector (no network: the endpoints are configured).
func (Kind) Open(_ context.Context, public json.RawMessage, secret string, _ connector.Endpoint, hc *http.Client) (connector.Connector, error) {
	var c Config
	if err := json.Unmarshal(public, &c); err != nil {
		return nil, err
	}
	style := oauth2.AuthStyleInHeader
	if c.TokenAuthMethod == AuthPost {
		style = oauth2.AuthStyleInParams
	}
	return &conn{cfg: c, hc: hc, oauth: oauth2.Config{ClientID: c.ClientID, ClientSecret: secret, Scopes: connector.Scopes(c.Scope),
		Endpoint: oauth2.Endpoint{AuthURL: c.AuthorizationEndpoint, TokenURL: c.TokenEndpoint, AuthStyle: style}}}, nil
}

type conn struct {
	cfg   Config
	oauth oauth2.Config
	hc    *http.Client
}

// UsesPKCE: in auto mode always — a plain OAuth 2.0 provider has no
// discovery to ask, and RFC 9700 wants PKCE; "never" is for the few that
// refuse the parameters.
func (c *conn) UsesPKCE() bool { return c.cfg.PKCE != connector.PKCENever }

func (c *conn) AuthorizationURL(_ context.Context, r connector.Request) (string, error) {
	cfg := c.oauth
	cfg.RedirectURL = r.RedirectURI
	var opts []oauth2.AuthCodeOption
	if r.Verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(r.Verifier))
	}
	return cfg.AuthCodeURL(r.State, opts...), nil
}

// maxUserinfo bounds the userinfo answer read.
const maxUserinfo = 1 << 20

func (c *conn) Exchange(ctx context.Context, r connector.Request, code string) (*connector.Identity, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.hc)
	cfg := c.oauth
	cfg.RedirectURL = r.RedirectURI
	var opts []oauth2.AuthCodeOption
	if r.Verifier != "" {
		opts = append(opts, oauth2.VerifierOption(r.Verifier))
	}
	tok, err := cfg.Exchange(ctx, code, opts...)
	if err != nil {
		return nil, connector.AuthorizationFailed()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.UserinfoEndpoint, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	tok.SetAuthHeader(req)
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, connector.InvalidResponse("userinfo could not be loaded")
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxUserinfo))
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, connector.InvalidResponse("userinfo could not be loaded")
	}
	var info map[string]any
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, connector.InvalidResponse("userinfo is not JSON")
	}
	m := c.cfg.ProfileMap
	id := str(info[m.ID])
	if id == "" {
		return nil, connector.InvalidResponse("userinfo has no user id")
	}
	verified := false
	switch v := info[m.EmailVerified].(type) {
	case bool:
		verified = v
	case string:
		verified = v == "true"
	}
	return &connector.Identity{Subject: id, Email: str(info[m.Email]), EmailVerified: verified, Name: str(info[m.Name]),
		Avatar: str(info[m.Avatar])}, nil
}

// str renders a userinfo member as a string (ids are often numbers).
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return fmt.Sprintf("%.0f", v)
	}
	return ""
}

// Package oidc is the OpenID Connect connector: endpoints from the
// issuer's discovery document, the code exchanged with the client secret
// (and the PKCE verifier), the ID token verified by coreos/go-oidc (issuer,
// audience, expiry, signing algorithm, nonce) and claims completed from
// userinfo when the ID token lacks them.
package oidc

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/experience/connector"
)

// Config is an OIDC connector's configuration.
type Config struct {
	Issuer       string `json:"issuer"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	Scope        string `json:"scope,omitempty"`
	PKCE         string `json:"pkce,omitempty"`
}

// signingAlgs are the ID token algorithms accepted: asymmetric only (no
// "none", no HS* keyed with the client secret).
var signingAlgs = []string{gooidc.RS256, gooidc.RS384, gooidc.RS512, gooidc.ES256, gooidc.ES384, gooidc.ES512,
	gooidc.PS256, gooidc.PS384, gooidc.PS512, gooidc.EdDSA}

// Kind is the "oidc" provider.
type Kind struct{}

// Split validates c and takes out the client secret.
func (Kind) Split(raw json.RawMessage) (json.RawMessage, string, error) {
	var c Config
	if err := strictDecode(raw, &c); err != nil {
		return nil, "", err
	}
	c.Issuer = strings.TrimSpace(c.Issuer)
	if !connector.HTTPURL(c.Issuer) {
		return nil, "", connector.InvalidConfig("issuer", "must be an http(s) URL")
	}
	if strings.TrimSpace(c.ClientID) == "" {
		return nil, "", connector.InvalidConfig("client_id", "is required")
	}
	mode, err := connector.CheckPKCE(c.PKCE)
	if err != nil {
		return nil, "", err
	}
	c.PKCE = mode
	if c.Scope == "" {
		c.Scope = "openid email profile"
	}
	if !slices.Contains(connector.Scopes(c.Scope), gooidc.ScopeOpenID) {
		c.Scope = "openid " + c.Scope
	}
	secret := c.ClientSecret
	c.ClientSecret = ""
	public, err := json.Marshal(c)
	return public, secret, err
}

// Open fetches the discovery document and returns the connector.
func (Kind) Open(ctx context.Context, public json.RawMessage, secret string, _ connector.Endpoint, hc *http.Client) (connector.Connector, error) {
	var c Config
	if err := json.Unmarshal(public, &c); err != nil {
		return nil, err
	}
	ctx = gooidc.ClientContext(ctx, hc)
	p, err := gooidc.NewProvider(ctx, c.Issuer)
	if err != nil {
		return nil, connector.InvalidResponse("the discovery document could not be loaded")
	}
	var meta struct {
		Methods []string `json:"code_challenge_methods_supported"`
	}
	_ = p.Claims(&meta)
	pkce := c.PKCE == connector.PKCEForce || (c.PKCE == connector.PKCEAuto && slices.Contains(meta.Methods, "S256"))
	return &conn{cfg: c, provider: p, hc: hc, pkce: pkce, oauth: oauth2.Config{ClientID: c.ClientID, ClientSecret: secret,
		Endpoint: p.Endpoint(), Scopes: connector.Scopes(c.Scope)}}, nil
}

type conn struct {
	cfg      Config
	provider *gooidc.Provider
	oauth    oauth2.Config
	hc       *http.Client
	pkce     bool
}

func (c *conn) UsesPKCE() bool { return c.pkce }

func (c *conn) AuthorizationURL(_ context.Context, r connector.Request) (string, error) {
	cfg := c.oauth
	cfg.RedirectURL = r.RedirectURI
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(r.Nonce)}
	if r.Verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(r.Verifier))
	}
	return cfg.AuthCodeURL(r.State, opts...), nil
}

// claims are the ID token and userinfo claims Latch reads.
type claims struct {
	Subject       string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified flexBool `json:"email_verified"`
	Name          string   `json:"name"`
	Picture       string   `json:"picture"`
	AMR           []string `json:"amr"`
}

func (c *conn) Exchange(ctx context.Context, r connector.Request, code string) (*connector.Identity, error) {
	ctx = gooidc.ClientContext(ctx, c.hc)
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
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, connector.InvalidResponse("no ID token")
	}
	idt, err := c.provider.Verifier(&gooidc.Config{ClientID: c.cfg.ClientID, SupportedSigningAlgs: signingAlgs}).Verify(ctx, raw)
	if err != nil {
		return nil, connector.InvalidResponse("the ID token does not verify")
	}
	if r.Nonce == "" || idt.Nonce != r.Nonce {
		return nil, connector.InvalidResponse("the ID token's nonce does not match")
	}
	var cl claims
	if err := idt.Claims(&cl); err != nil || cl.Subject == "" {
		return nil, connector.InvalidResponse("the ID token has no subject")
	}
	if (cl.Email == "" || cl.Name == "") && c.provider.UserInfoEndpoint() != "" {
		info, err := c.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, connector.InvalidResponse("userinfo could not be loaded")
		}
		// OIDC Core §5.3.2: a userinfo answer for another subject is refused.
		if info.Subject != cl.Subject {
			return nil, connector.InvalidResponse("userinfo is about another subject")
		}
		var more claims
		if err := info.Claims(&more); err != nil {
			return nil, connector.InvalidResponse("userinfo is malformed")
		}
		if cl.Email == "" {
			cl.Email, cl.EmailVerified = more.Email, more.EmailVerified
		}
		if cl.Name == "" {
			cl.Name = more.Name
		}
		if cl.Picture == "" {
			cl.Picture = more.Picture
		}
	}
	return &connector.Identity{Subject: cl.Subject, Email: cl.Email, EmailVerified: bool(cl.EmailVerified), Name: cl.Name,
		Avatar: cl.Picture, AMR: cl.AMR}, nil
}

// flexBool reads a JSON boolean also when a provider sends it as a string
// (some send "email_verified": "true").
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	switch strings.Trim(string(data), `"`) {
	case "true":
		*b = true
	default:
		*b = false
	}
	return nil
}

func strictDecode(raw json.RawMessage, v any) error {
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return connector.InvalidConfig("", "is not a valid OIDC configuration ("+err.Error()+")")
	}
	return nil
}

package token

import "context"

// Discovery is the OpenID Provider metadata (OIDC Discovery 1.0), served
// as the OAuth 2.0 Authorization Server Metadata (RFC 8414) too. It
// advertises only what works.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
	// Both default to true and false respectively when absent (OIDC
	// Discovery §3), so they are always stated: Latch reads no request
	// objects, by value or by reference.
	RequestParameterSupported    bool `json:"request_parameter_supported"`
	RequestURIParameterSupported bool `json:"request_uri_parameter_supported"`
}

// IDTokenClaims are the claims every ID token carries (auth_time and amr
// when the session has them); ProfileClaims may be added on request.
var IDTokenClaims = []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "amr", "sid"}

// ProfileClaims are the user claims Latch releases: in the ID token through
// the claims request parameter, and from userinfo. The app layer fills their
// values; the discovery document lists exactly these and IDTokenClaims.
var ProfileClaims = []string{"username", "name", "email", "email_verified", "phone_number", "phone_number_verified", "updated_at", "roles"}

// OrgClaims are the claims of organizations: org_id in a sign-in in an
// organization's context (roles is a ProfileClaim), and organizations and
// organization_roles for the organization scopes.
var OrgClaims = []string{"org_id", "organizations", "organization_roles"}

// CodeFlowScopes are the scopes the authorization endpoint grants a person's
// sign-in (OIDC Core §5.4, §11, and the organization scopes).
var CodeFlowScopes = []string{"profile", "email", "phone", ScopeOfflineAccess, ScopeOrganizations, ScopeOrganizationRoles}

// Discovery returns the provider metadata.
func (s *Service) Discovery(ctx context.Context) Discovery {
	iss := s.opts.Issuer
	auth := []string{"client_secret_basic", "client_secret_post"}
	return Discovery{
		Issuer:                           iss,
		AuthorizationEndpoint:            iss + "/oidc/auth",
		EndSessionEndpoint:               iss + "/oidc/session/end",
		CodeChallengeMethodsSupported:    []string{"S256"},
		ResponseModesSupported:           []string{"query"},
		PromptValuesSupported:            []string{"none", "login", "consent"},
		TokenEndpoint:                    iss + "/oidc/token",
		JWKSURI:                          iss + "/oidc/jwks",
		UserinfoEndpoint:                 iss + "/oidc/me",
		IntrospectionEndpoint:            iss + "/oidc/token/introspection",
		RevocationEndpoint:               iss + "/oidc/token/revocation",
		GrantTypesSupported:              []string{GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken},
		ResponseTypesSupported:           []string{"code"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: s.Keys.Algorithms(ctx),
		// Public clients (spa, native) authenticate with none, and PKCE.
		TokenEndpointAuthMethodsSupported: append(append([]string{}, auth...), "none"),
		IntrospectionAuthMethodsSupported: auth,
		RevocationAuthMethodsSupported:    auth,
		// The code flow grants its scopes on top of the scopes clients
		// hold.
		ScopesSupported:          append(append([]string{}, CodeFlowScopes...), KnownScopes()...),
		ClaimsSupported:          append(append(append([]string{}, IDTokenClaims...), ProfileClaims...), OrgClaims...),
		ClaimsParameterSupported: true,
	}
}

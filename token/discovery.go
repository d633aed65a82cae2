package token

import "context"

// Discovery is the OpenID Provider metadata (OIDC Discovery 1.0), served
// as the OAuth 2.0 Authorization Server Metadata (RFC 8414) too. It
// advertises only what works.
type Discovery struct {
	Issuer                            string   `json:"issuer"`
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

// Discovery returns the provider metadata.
func (s *Service) Discovery(ctx context.Context) Discovery {
	iss := s.opts.Issuer
	auth := []string{"client_secret_basic", "client_secret_post"}
	return Discovery{
		Issuer:                iss,
		TokenEndpoint:         iss + "/oidc/token",
		JWKSURI:               iss + "/oidc/jwks",
		UserinfoEndpoint:      iss + "/oidc/me",
		IntrospectionEndpoint: iss + "/oidc/token/introspection",
		RevocationEndpoint:    iss + "/oidc/token/revocation",
		GrantTypesSupported:   []string{GrantClientCredentials, GrantRefreshToken},
		// No authorization endpoint yet: no response type works, and an
		// empty list says so (RFC 8414 §2 requires the member).
		ResponseTypesSupported:            []string{},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  s.Keys.Algorithms(ctx),
		TokenEndpointAuthMethodsSupported: auth,
		IntrospectionAuthMethodsSupported: auth,
		RevocationAuthMethodsSupported:    auth,
		ScopesSupported:                   KnownScopes(),
		ClaimsSupported:                   append(append([]string{}, IDTokenClaims...), ProfileClaims...),
		ClaimsParameterSupported:          true,
	}
}

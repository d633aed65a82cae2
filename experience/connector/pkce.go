package connector

import "strings"

// PKCE modes of a connector's configuration.
const (
	PKCEAuto  = "auto"  // when the provider advertises S256 (OIDC discovery); always for plain OAuth 2.0
	PKCEForce = "force" // always
	PKCENever = "never" // never (providers that refuse unknown parameters)
)

// CheckPKCE validates a pkce setting ("" is auto).
func CheckPKCE(mode string) (string, error) {
	switch mode {
	case "":
		return PKCEAuto, nil
	case PKCEAuto, PKCEForce, PKCENever:
		return mode, nil
	}
	return "", InvalidConfig("pkce", "must be auto, force or never")
}

// Scopes splits a space- or comma-separated scope setting.
func Scopes(s string) []string { return strings.Fields(strings.ReplaceAll(s, ",", " ")) }

// HTTPURL reports whether s is an absolute http(s) URL.
func HTTPURL(s string) bool {
	return (strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")) && len(s) > len("https://") && !strings.ContainsAny(s, " \t\r\n")
}

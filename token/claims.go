package token

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/latch-dev/latch/fault"
)

// ClaimsRequest lists the claim names requested through the OIDC `claims`
// parameter, per target, sorted and without duplicates. Which of them a user
// may receive, and their values, is the caller's business: this package only
// parses the request and signs what it is given (UserGrant.IDClaims).
type ClaimsRequest struct{ IDToken, UserInfo []string }

// Limits on a claims request, so that a hostile request cannot make Latch
// build huge tokens or spend time on it; real requests name a handful.
const (
	maxRequestedClaims = 64
	maxClaimNameLen    = 128
)

// ParseClaimsRequest reads the OIDC `claims` request parameter (OIDC Core
// §5.5): a JSON object with optional "id_token" and "userinfo" members, each
// mapping claim names to null or to {"essential": bool, "value": …,
// "values": […]}. Empty input and JSON null mean no request. Because the
// parameter travels as a string in OAuth forms, a JSON string holding the
// object is accepted too. Members that are not understood are ignored, as
// §5.5 requires; essential/value/values are checked for shape but otherwise
// not acted on (Latch releases what the user has, never fails on a missing
// essential claim, which §5.5.1 allows). Malformed input yields
// fault.Invalid for the field "claims".
func ParseClaimsRequest(raw json.RawMessage) (ClaimsRequest, error) {
	var out ClaimsRequest
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return out, nil
	}
	if raw[0] == '"' {
		var inner string
		if err := json.Unmarshal(raw, &inner); err != nil {
			return out, invalidClaims("is not valid JSON")
		}
		return ParseClaimsRequest(json.RawMessage(inner))
	}
	if raw[0] != '{' {
		return out, invalidClaims("must be a JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return out, invalidClaims("is not a valid JSON object")
	}
	var err error
	if out.IDToken, err = parseClaimsTarget("id_token", top["id_token"]); err != nil {
		return ClaimsRequest{}, err
	}
	if out.UserInfo, err = parseClaimsTarget("userinfo", top["userinfo"]); err != nil {
		return ClaimsRequest{}, err
	}
	return out, nil
}

// claimSpec is an individual claim request (OIDC Core §5.5.1). The pointers
// tell absent members from present ones; value may be any JSON.
type claimSpec struct {
	Essential *bool            `json:"essential"`
	Value     json.RawMessage  `json:"value"`
	Values    *json.RawMessage `json:"values"`
}

func parseClaimsTarget(member string, raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, invalidClaims(member + " must be a JSON object")
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, invalidClaims(member + " is not a valid JSON object")
	}
	if len(claims) > maxRequestedClaims {
		return nil, invalidClaims(fmt.Sprintf("%s requests more than %d claims", member, maxRequestedClaims))
	}
	names := make([]string, 0, len(claims))
	for name, spec := range claims {
		if name == "" || len(name) > maxClaimNameLen {
			return nil, invalidClaims(member + " has an empty or overlong claim name")
		}
		spec = bytes.TrimSpace(spec)
		if !bytes.Equal(spec, []byte("null")) {
			if len(spec) == 0 || spec[0] != '{' {
				return nil, invalidClaims(fmt.Sprintf("%s.%s must be null or an object", member, name))
			}
			var cs claimSpec
			if err := json.Unmarshal(spec, &cs); err != nil {
				return nil, invalidClaims(fmt.Sprintf("%s.%s: essential must be a boolean", member, name))
			}
			if cs.Values != nil {
				var values []json.RawMessage
				if err := json.Unmarshal(*cs.Values, &values); err != nil {
					return nil, invalidClaims(fmt.Sprintf("%s.%s: values must be an array", member, name))
				}
			}
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

func invalidClaims(msg string) error {
	return fault.Invalid(fault.Detail{Field: "claims", Message: msg})
}

package token

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/latch-dev/latch/fault"
)

func TestParseClaimsRequest(t *testing.T) {
	many := map[string]any{}
	for i := 0; i < maxRequestedClaims+1; i++ {
		many["c"+strings.Repeat("x", i)] = nil
	}
	manyJSON, _ := json.Marshal(map[string]any{"id_token": many})

	tests := []struct {
		name     string
		raw      string
		id, info []string
		bad      bool
	}{
		{name: "empty", raw: ""},
		{name: "whitespace", raw: "  \n"},
		{name: "null", raw: "null"},
		{name: "empty object", raw: "{}"},
		{name: "id_token nulls", raw: `{"id_token":{"email":null,"username":null}}`, id: []string{"email", "username"}},
		{name: "both targets", raw: `{"id_token":{"name":null},"userinfo":{"phone_number":{"essential":true}}}`,
			id: []string{"name"}, info: []string{"phone_number"}},
		{name: "full specs", raw: `{"id_token":{"email":{"essential":false,"value":"a@b.c"},"roles":{"values":["a","b"]},"org_id":{"value":{"nested":1}}}}`,
			id: []string{"email", "org_id", "roles"}},
		{name: "unknown members ignored", raw: `{"id_token":{"email":{"essential":true,"purpose":"x"}},"other":[1,2]}`,
			id: []string{"email"}},
		{name: "null targets", raw: `{"id_token":null,"userinfo":null}`},
		{name: "values null", raw: `{"id_token":{"email":{"values":null}}}`, id: []string{"email"}},
		{name: "JSON string form", raw: `"{\"id_token\":{\"email_verified\":null}}"`, id: []string{"email_verified"}},
		{name: "sorted", raw: `{"id_token":{"z":null,"a":null,"m":null}}`, id: []string{"a", "m", "z"}},

		{name: "not JSON", raw: `{id_token}`, bad: true},
		{name: "array", raw: `[1]`, bad: true},
		{name: "number", raw: `42`, bad: true},
		{name: "string of garbage", raw: `"nope"`, bad: true},
		{name: "bad string escape", raw: `"\x"`, bad: true},
		{name: "id_token array", raw: `{"id_token":["email"]}`, bad: true},
		{name: "id_token string", raw: `{"id_token":"email"}`, bad: true},
		{name: "userinfo number", raw: `{"userinfo":1}`, bad: true},
		{name: "claim true", raw: `{"id_token":{"email":true}}`, bad: true},
		{name: "claim string", raw: `{"id_token":{"email":"yes"}}`, bad: true},
		{name: "claim array", raw: `{"id_token":{"email":[]}}`, bad: true},
		{name: "essential not bool", raw: `{"id_token":{"email":{"essential":"yes"}}}`, bad: true},
		{name: "values not array", raw: `{"id_token":{"email":{"values":"a"}}}`, bad: true},
		{name: "empty claim name", raw: `{"id_token":{"":null}}`, bad: true},
		{name: "overlong claim name", raw: `{"id_token":{"` + strings.Repeat("a", maxClaimNameLen+1) + `":null}}`, bad: true},
		{name: "too many claims", raw: string(manyJSON), bad: true},
		{name: "trailing garbage", raw: `{"id_token":{}} x`, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClaimsRequest(json.RawMessage(tc.raw))
			if tc.bad {
				fe, ok := fault.As(err)
				if !ok || fe.Code != fault.CodeInvalidInput || len(fe.Details) != 1 || fe.Details[0].Field != "claims" {
					t.Fatalf("want fault.Invalid on claims, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !equalNames(got.IDToken, tc.id) || !equalNames(got.UserInfo, tc.info) {
				t.Fatalf("got %+v, want id_token=%v userinfo=%v", got, tc.id, tc.info)
			}
		})
	}
}

func equalNames(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

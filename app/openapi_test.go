package app_test

// The OpenAPI document (GET /openapi.yaml) is kept true by these tests: it
// must be a valid OpenAPI 3 document, list exactly the routes the server
// registers, declare the security the server enforces, and describe the
// responses the server really sends.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/latch-dev/latch/app/apptest"
)

// loadSpec fetches GET /openapi.yaml and loads and validates it.
func loadSpec(t *testing.T, env *apptest.Env) *openapi3.T {
	t.Helper()
	res, err := env.HTTP.Get(env.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %s", res.StatusCode, raw)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Fatalf("Content-Type = %q, want application/yaml", ct)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served document is not valid OpenAPI: %v", err)
	}
	return doc
}

func TestOpenAPIServedAndValid(t *testing.T) {
	env := apptest.Start(t, apptest.SQLite)
	doc := loadSpec(t, env)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	// Every operation is documented enough to be useful.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.Summary == "" || op.OperationID == "" {
				t.Errorf("%s %s: summary and operationId are required", method, path)
			}
			if op.Responses == nil || op.Responses.Len() == 0 {
				t.Errorf("%s %s: no responses", method, path)
			}
		}
	}
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// serverOperations lists the routes the server registers, as "METHOD /path"
// in OpenAPI's path syntax.
func serverOperations(env *apptest.Env) map[string]bool {
	out := map[string]bool{}
	for _, r := range env.App.Routes() {
		// Echo-internal catch-alls (none today) would end in "*".
		if strings.HasSuffix(r.Path, "*") {
			continue
		}
		out[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	return out
}

func specOperations(doc *openapi3.T) map[string]*openapi3.Operation {
	out := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out[strings.ToUpper(method)+" "+path] = op
		}
	}
	return out
}

func TestOpenAPICoversEveryRoute(t *testing.T) {
	env := apptest.Start(t, apptest.SQLite)
	doc := loadSpec(t, env)
	server, spec := serverOperations(env), specOperations(doc)
	if len(server) < 60 {
		t.Fatalf("only %d routes registered; the route listing looks broken", len(server))
	}
	var missing, extra []string
	for op := range server {
		if spec[op] == nil {
			missing = append(missing, op)
		}
	}
	for op := range spec {
		if !server[op] {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, op := range missing {
		t.Errorf("route %s is registered but not in openapi.yaml", op)
	}
	for _, op := range extra {
		t.Errorf("openapi.yaml documents %s, which the server does not register", op)
	}
}

// requiredScopes returns the ClientAccessToken scopes an operation declares
// and whether it declares the scheme at all.
func requiredScopes(op *openapi3.Operation) ([]string, bool) {
	if op.Security == nil {
		return nil, false
	}
	for _, req := range *op.Security {
		if scopes, ok := req["ClientAccessToken"]; ok {
			return scopes, true
		}
	}
	return nil, false
}

func declaresScheme(op *openapi3.Operation, scheme string) bool {
	if op.Security == nil {
		return false
	}
	for _, req := range *op.Security {
		if _, ok := req[scheme]; ok {
			return true
		}
	}
	return false
}

func fillPath(path string) string {
	return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(path, "x")
}

// TestOpenAPISecurityMatchesServer checks the declared security against the
// server: every /v1 and /api operation declares a ClientAccessToken, refuses
// a call without one (401), and refuses a token lacking the declared scope
// (403 insufficient_scope) while every other declared-public route answers
// without credentials.
func TestOpenAPISecurityMatchesServer(t *testing.T) {
	env := apptest.Start(t, apptest.SQLite)
	doc := loadSpec(t, env)
	all := []string{"auth:execute", "users:read", "users:write", "management"}
	tokenWithout := map[string]string{}
	for _, s := range all {
		var rest []string
		for _, o := range all {
			if o != s {
				rest = append(rest, o)
			}
		}
		tokenWithout[s] = env.ClientToken(env.CreateClient(rest...))
	}
	for key, op := range specOperations(doc) {
		method, path, _ := strings.Cut(key, " ")
		url := env.URL + fillPath(path)
		scopes, declared := requiredScopes(op)
		// After init, the Experience API is authorised by the interaction
		// handle alone (seed 004), and the SSO lookup by nothing at all, nor
		// SAML's SP metadata and assertion consumer service (an IdP and a
		// browser reach them, with no token; the assertion is the proof).
		public := path == "/api/experience/sso-connectors" || strings.HasPrefix(path, "/api/authn/saml/")
		byHandle := strings.HasPrefix(path, "/api/experience/") && !public
		guarded := (strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/api/")) && !byHandle && !public
		if guarded != declared {
			t.Errorf("%s: ClientAccessToken declared=%v, want %v", key, declared, guarded)
			continue
		}
		switch {
		case byHandle:
			if !declaresScheme(op, "InteractionHandleHeader") || !declaresScheme(op, "InteractionHandleCookie") {
				t.Errorf("%s: must declare the interaction handle schemes", key)
				continue
			}
			req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Latch-Interaction", "lxi_unknown")
			if res := env.Do(req); res.Status != http.StatusNotFound || res.Str("code") != "session.not_found" {
				t.Errorf("%s with an unknown handle: %s, want 404 session.not_found", key, res)
			}
			req, _ = http.NewRequest(method, url, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Latch-Interaction", "lxi_unknown")
			req.Header.Set("Authorization", "Bearer garbage")
			if res := env.Do(req); res.Status != http.StatusUnauthorized {
				t.Errorf("%s with an invalid Bearer: %s, want 401", key, res)
			}
			continue
		case op.Security == nil || len(*op.Security) == 0:
			// Declared public: answers without credentials.
			req, _ := http.NewRequest(method, url, nil)
			if res := env.Do(req); res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden {
				t.Errorf("%s is declared public but answered %s without credentials", key, res)
			}
			continue
		case declaresScheme(op, "clientSecretBasic"):
			// Client authentication: without it, 401 invalid_client.
			form := "grant_type=client_credentials&token=x"
			req, _ := http.NewRequest(method, url, strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			res := env.Do(req)
			if res.Status != http.StatusUnauthorized || res.Str("error") != "invalid_client" {
				t.Errorf("%s without client credentials: %s, want 401 invalid_client", key, res)
			}
			continue
		case declaresScheme(op, "UserAccessToken"):
			req, _ := http.NewRequest(method, url, nil)
			if res := env.Do(req); res.Status != http.StatusUnauthorized {
				t.Errorf("%s without a token: %s, want 401", key, res)
			}
			continue
		case !guarded:
			t.Errorf("%s: unexpected security %v", key, *op.Security)
			continue
		}
		if len(scopes) > 1 {
			t.Errorf("%s: declares %d scopes; the server checks them all, list them in one requirement", key, len(scopes))
		}
		if !strings.Contains(op.Description, "Scope:") {
			t.Errorf("%s: the description must name the required scope", key)
		}
		req, _ := http.NewRequest(method, url, nil)
		if res := env.Do(req); res.Status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %s, want 401", key, res)
		}
		if op.Responses.Status(http.StatusUnauthorized) == nil {
			t.Errorf("%s: 401 is not documented", key)
		}
		for _, s := range scopes {
			req, _ := http.NewRequest(method, url, nil)
			req.Header.Set("Authorization", "Bearer "+tokenWithout[s])
			res := env.Do(req)
			if res.Status != http.StatusForbidden || !strings.Contains(string(res.Raw), "insufficient_scope") {
				t.Errorf("%s with a token lacking %s: %s, want 403 insufficient_scope", key, s, res)
			}
			if op.Responses.Status(http.StatusForbidden) == nil {
				t.Errorf("%s: 403 is not documented", key)
			}
		}
		if len(scopes) == 0 {
			// Declared as needing no particular scope: a token with none works.
			req, _ := http.NewRequest(method, url, nil)
			req.Header.Set("Authorization", "Bearer "+env.ClientToken(env.CreateClient()))
			if res := env.Do(req); res.Status == http.StatusForbidden {
				t.Errorf("%s declares no scope but answered %s", key, res)
			}
		}
	}
}

// specCheck sends real requests and validates each request and response
// against the document.
type specCheck struct {
	t      *testing.T
	env    *apptest.Env
	router routers.Router
	// invalid: the request is deliberately invalid, and the spec must say
	// so too (its request schema must refuse it).
	invalid bool
}

// refusing returns s for deliberately invalid requests.
func (s *specCheck) refusing() *specCheck {
	c := *s
	c.invalid = true
	return &c
}

func newSpecCheck(t *testing.T, env *apptest.Env) *specCheck {
	doc := loadSpec(t, env)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &specCheck{t: t, env: env, router: router}
}

// SAML SP metadata is XML, checked as the string the spec says it is
// (saml_test.go parses it).
func init() {
	openapi3filter.RegisterBodyDecoder("application/samlmetadata+xml", openapi3filter.PlainBodyDecoder)
}

// do sends req (whose body, if any, is body), validates the request and the
// response against the spec and returns the response.
func (s *specCheck) do(req *http.Request, body []byte, wantStatus int) *apptest.Response {
	s.t.Helper()
	name := req.Method + " " + req.URL.Path
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		s.t.Fatalf("%s: not in the spec: %v", name, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	err = openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case err != nil && !s.invalid:
		s.t.Errorf("%s: the test's request does not match the spec: %v", name, err)
	case err == nil && s.invalid:
		s.t.Errorf("%s: the server refuses this request but the spec accepts it", name)
	}
	req.Body, req.ContentLength = nil, 0
	if body != nil {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	res := s.env.Do(req)
	if res.Status != wantStatus {
		s.t.Fatalf("%s: %s, want %d", name, res, wantStatus)
	}
	if err := s.validate(in, res, res.Raw); err != nil {
		s.t.Errorf("%s: the response does not match the spec: %v\nbody: %s", name, err, res.Raw)
	}
	return res
}

func (s *specCheck) validate(in *openapi3filter.RequestValidationInput, res *apptest.Response, body []byte) error {
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.Status,
		Header:                 res.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

func (s *specCheck) json(method, path, bearer string, body any, wantStatus int, header ...string) *apptest.Response {
	s.t.Helper()
	var raw []byte
	var payload any
	if body != nil {
		raw, _ = json.Marshal(body)
		payload = raw
	}
	req := s.env.JSONRequest(method, path, bearer, payload)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return s.do(req, raw, wantStatus)
}

func (s *specCheck) form(path string, c *apptest.Client, form url.Values, wantStatus int) *apptest.Response {
	s.t.Helper()
	raw := []byte(form.Encode())
	req, _ := http.NewRequest(http.MethodPost, s.env.URL+path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	return s.do(req, raw, wantStatus)
}

func (s *specCheck) get(path, bearer string, wantStatus int) *apptest.Response {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.env.URL+path, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return s.do(req, nil, wantStatus)
}

// TestOpenAPIResponsesMatchServer validates real responses of the main
// flows against the document, so drift between code and spec fails here.
func TestOpenAPIResponsesMatchServer(t *testing.T) {
	env := apptest.Start(t, apptest.SQLite)
	s := newSpecCheck(t, env)
	client := env.CreateClient("auth:execute", "users:read", "users:write", "management")

	// Standard and OIDC endpoints.
	s.get("/healthz", "", http.StatusOK)
	s.get("/readyz", "", http.StatusOK)
	s.get("/metrics", "", http.StatusOK)
	s.get("/openapi.yaml", "", http.StatusOK)
	s.get("/.well-known/openid-configuration", "", http.StatusOK)
	s.get("/.well-known/oauth-authorization-server", "", http.StatusOK)
	s.get("/oidc/jwks", "", http.StatusOK)
	tok := s.form("/oidc/token", &client, url.Values{"grant_type": {"client_credentials"}}, http.StatusOK).Str("access_token")
	s.form("/oidc/token", &apptest.Client{ID: client.ID, Secret: "wrong"}, url.Values{"grant_type": {"client_credentials"}}, http.StatusUnauthorized)
	s.refusing().form("/oidc/token", &client, url.Values{"grant_type": {"password"}}, http.StatusBadRequest)
	s.form("/oidc/token/introspection", nil, url.Values{"token": {tok}, "client_id": {client.ID}, "client_secret": {client.Secret}}, http.StatusOK)
	s.get("/v1/auth/whoami", tok, http.StatusOK)

	// Users API and password authentication.
	username, password := v1Name("spec"), "correct horse battery staple 7"
	user := s.json(http.MethodPost, "/v1/users", tok, map[string]any{
		"username": username, "name": "Spec User", "custom_data": map[string]any{"k": "v"},
		"credentials": map[string]any{"password": password},
	}, http.StatusCreated)
	userID := user.Str("id")
	s.get("/v1/users/"+userID, tok, http.StatusOK)
	s.get("/v1/users?username="+url.QueryEscape(username), tok, http.StatusOK)
	s.get("/v1/users/nope", tok, http.StatusNotFound)
	s.json(http.MethodPost, "/v1/users", tok, map[string]any{"username": username}, http.StatusConflict)

	signIn := s.json(http.MethodPost, "/v1/auth/password/authenticate", tok, map[string]any{
		"username": username, "password": password,
		"client_attributes": map[string]any{"ip_address": "192.0.2.1", "user_agent": "spec-test"},
	}, http.StatusOK)
	s.json(http.MethodPost, "/v1/auth/password/authenticate", tok,
		map[string]any{"username": username, "password": "wrong password 123"}, http.StatusUnauthorized)
	s.refusing().json(http.MethodPost, "/v1/auth/password/authenticate", tok,
		map[string]any{"username": username, "password": "x", "username_type": "nickname"}, http.StatusBadRequest)
	s.get("/oidc/me", signIn.Str("access_token"), http.StatusOK)
	s.form("/oidc/me", nil, url.Values{"access_token": {signIn.Str("access_token")}}, http.StatusOK)
	s.get("/v1/auth/users/"+userID+"/sessions", tok, http.StatusOK)
	s.form("/oidc/token", &client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {signIn.Str("refresh_token")}}, http.StatusOK)
	s.json(http.MethodPost, "/v1/auth/password/validate", tok, map[string]any{"password": "short"}, http.StatusOK)
	s.get("/v1/users/"+userID+"/mfa-factors", tok, http.StatusOK)
	s.get("/v1/audit-events?limit=5", tok, http.StatusOK)
	s.get("/v1/audit-events?limit=1&event=user.created&since=2020-01-01T00:00:00Z", tok, http.StatusOK)
	s.refusing().get("/v1/audit-events?limit=0", tok, http.StatusBadRequest)
	s.get("/v1/users?q=spec&suspended=false&limit=1", tok, http.StatusOK)
	s.get("/v1/users", tok, http.StatusOK)

	// Management API.
	mc := s.json(http.MethodPost, "/v1/clients", tok, map[string]any{"name": "spec client", "scopes": []string{"auth:execute"}}, http.StatusCreated)
	mcID := mc.Str("client_id")
	s.refusing().json(http.MethodPost, "/v1/clients", tok, map[string]any{"name": "typo", "scopes": []string{"auth:exec"}}, http.StatusBadRequest)
	s.get("/v1/clients", tok, http.StatusOK)
	s.get("/v1/clients/"+mcID, tok, http.StatusOK)
	s.get("/v1/clients/nope", tok, http.StatusNotFound)
	s.json(http.MethodPatch, "/v1/clients/"+mcID, tok, map[string]any{"resources": []string{"https://spec.example.com"}}, http.StatusOK)
	s.json(http.MethodPost, "/v1/clients/"+mcID+"/secret", tok, nil, http.StatusOK)
	s.json(http.MethodPost, "/v1/clients/"+mcID+"/secret", tok, map[string]any{"revoke_tokens": false}, http.StatusOK)
	s.json(http.MethodDelete, "/v1/clients/"+mcID, tok, nil, http.StatusNoContent)
	s.get("/v1/keys", tok, http.StatusOK)
	s.json(http.MethodPost, "/v1/keys/rotate", tok, nil, http.StatusOK)
	s.get("/v1/settings", tok, http.StatusOK)
	s.json(http.MethodPatch, "/v1/settings", tok, map[string]any{"lockout": map[string]any{"max_failures": 6}}, http.StatusOK)
	s.json(http.MethodPatch, "/v1/settings", tok, map[string]any{"lockout": map[string]any{"max_failures": -1}}, http.StatusBadRequest)

	// Experience API.
	init := s.json(http.MethodPut, "/api/experience", tok, map[string]any{"interactionEvent": "SignIn"}, http.StatusNoContent)
	handle := init.Header.Get("Latch-Interaction")
	s.refusing().json(http.MethodPut, "/api/experience", tok, map[string]any{"interactionEvent": "Nope"}, http.StatusBadRequest)
	rec := s.json(http.MethodPost, "/api/experience/verification/password", tok, map[string]any{
		"identifier": map[string]any{"type": "username", "value": username}, "password": password,
	}, http.StatusOK, "Latch-Interaction", handle)
	s.json(http.MethodPost, "/api/experience/verification/password", tok, map[string]any{
		"identifier": map[string]any{"type": "username", "value": username}, "password": "wrong password 123",
	}, http.StatusUnprocessableEntity, "Latch-Interaction", handle)
	s.json(http.MethodPost, "/api/experience/identification", tok, map[string]any{"verificationId": rec.Str("verificationId")},
		http.StatusNoContent, "Latch-Interaction", handle)
	s.json(http.MethodGet, "/api/experience/interaction", tok, nil, http.StatusOK, "Latch-Interaction", handle)
	s.json(http.MethodPost, "/api/experience/submit", tok, nil, http.StatusOK, "Latch-Interaction", handle)
	s.json(http.MethodGet, "/api/experience/interaction", tok, nil, http.StatusNotFound, "Latch-Interaction", handle)
	s.get("/api/experience/sso-connectors?email=a%40example.com", tok, http.StatusOK)
	s.json(http.MethodPost, "/api/experience/verification/social/google/authorization-uri", "",
		map[string]any{"state": "s", "redirectUri": "https://app.example.com/cb"}, http.StatusNotFound, "Latch-Interaction", "lxi_none")

	// Connectors (issue 13); their sign-in flows are checked in upstream_test.go.
	oidcConfig := map[string]any{"issuer": "https://idp.example.com", "client_id": "rp", "client_secret": "s3cret"}
	sso := s.json(http.MethodPost, "/v1/sso-connectors", tok, map[string]any{"name": "Acme", "provider": "oidc",
		"domains": []string{"spec-acme.test"}, "config": oidcConfig}, http.StatusCreated)
	s.json(http.MethodPost, "/v1/sso-connectors", tok, map[string]any{"name": "Acme", "provider": "oidc",
		"domains": []string{"spec-acme.test"}, "config": oidcConfig}, http.StatusConflict)
	s.get("/v1/sso-connectors", tok, http.StatusOK)
	s.get("/v1/sso-connectors/"+sso.Str("id"), tok, http.StatusOK)
	s.json(http.MethodPatch, "/v1/sso-connectors/"+sso.Str("id"), tok, map[string]any{"name": "Acme Corp"}, http.StatusOK)
	s.get("/api/experience/sso-connectors?email=a%40spec-acme.test", "", http.StatusOK)
	s.json(http.MethodDelete, "/v1/sso-connectors/"+sso.Str("id"), tok, nil, http.StatusNoContent)
	_, idpCert := samlKeyPair(t)
	samlConn := s.json(http.MethodPost, "/v1/sso-connectors", tok, map[string]any{"name": "Acme SAML", "provider": "saml",
		"config": map[string]any{"entity_id": "https://idp.example.com", "sso_url": "https://idp.example.com/sso",
			"certificate": base64.StdEncoding.EncodeToString(idpCert.Raw)}, "trust_upstream_mfa": true}, http.StatusCreated)
	s.get("/v1/sso-connectors/"+samlConn.Str("id"), tok, http.StatusOK)
	s.get("/api/authn/saml/"+samlConn.Str("id")+"/metadata", "", http.StatusOK)
	s.get("/api/authn/saml/nope/metadata", "", http.StatusNotFound)
	social := s.json(http.MethodPost, "/v1/social-connectors", tok, map[string]any{"name": "Up", "provider": "oidc", "config": oidcConfig}, http.StatusCreated)
	s.get("/v1/social-connectors", tok, http.StatusOK)
	s.get("/v1/social-connectors/"+social.Str("id"), tok, http.StatusOK)
	s.json(http.MethodPatch, "/v1/social-connectors/"+social.Str("id"), tok, map[string]any{"name": "Upstream"}, http.StatusOK)
	s.json(http.MethodDelete, "/v1/social-connectors/"+social.Str("id"), tok, nil, http.StatusNoContent)
	s.get("/v1/social-connectors/"+social.Str("id"), tok, http.StatusNotFound)
	s.json(http.MethodPost, "/v1/auth/sso/start", tok, map[string]any{"email": "a@nobody.test", "redirect_uri": "https://app.example.com/cb"}, http.StatusNotFound)
	s.json(http.MethodPost, "/v1/auth/sso/authenticate", tok, map[string]any{"flow_id": "lxi_none", "code": "c", "state": "s"}, http.StatusBadRequest)

	// Errors in each dialect for a missing token.
	s.get("/v1/users/"+userID, "", http.StatusUnauthorized)
	s.json(http.MethodPut, "/api/experience", "", map[string]any{"interactionEvent": "SignIn"}, http.StatusUnauthorized)
	s.get("/oidc/me", "", http.StatusUnauthorized)

	s.json(http.MethodDelete, "/v1/users/"+userID, tok, nil, http.StatusNoContent)
}

// TestOpenAPIValidationCatchesDrift proves the checks above have teeth: a
// response with a field the spec does not know, or a status it does not
// list, fails validation.
func TestOpenAPIValidationCatchesDrift(t *testing.T) {
	env := apptest.Start(t, apptest.SQLite)
	s := newSpecCheck(t, env)
	client := env.CreateClient("users:write")
	tok := env.ClientToken(client)
	res := s.json(http.MethodPost, "/v1/users", tok, map[string]any{"username": v1Name("drift")}, http.StatusCreated)

	req, _ := http.NewRequest(http.MethodPost, env.URL+"/v1/users", nil)
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}

	var user map[string]any
	if err := json.Unmarshal(res.Raw, &user); err != nil {
		t.Fatal(err)
	}
	user["surprise"] = true
	drifted, _ := json.Marshal(user)
	if err := s.validate(in, res, drifted); err == nil {
		t.Error("a user with an undocumented field passed validation")
	}
	delete(user, "surprise")
	delete(user, "locked_seconds")
	drifted, _ = json.Marshal(user)
	if err := s.validate(in, res, drifted); err == nil {
		t.Error("a user without a required field passed validation")
	}
	moved := *res
	moved.Status = http.StatusAccepted
	if err := s.validate(in, &moved, []byte(`{}`)); err == nil {
		t.Error("an undocumented status with a non-error body passed validation")
	}
}

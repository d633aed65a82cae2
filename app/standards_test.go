package app_test

// Standards-true discovery and endpoints, checked with the clients
// integrators use (go-oidc, x/oauth2) where there is one.

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

// metadata fetches a well-known document as a map.
func metadata(t *testing.T, env *apptest.Env, path string) map[string]any {
	t.Helper()
	res := env.JSON(http.MethodGet, path, "", nil)
	if res.Status != http.StatusOK || res.JSON == nil {
		t.Fatalf("GET %s: %s", path, res)
	}
	return res.JSON
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, s.(string))
	}
	return out
}

// TestDiscoveryAdvertisesOnlyWhatWorks: both metadata documents (OIDC
// Discovery and RFC 8414) say the same, state what does not exist rather
// than leaving it to defaults, and go-oidc reads either.
func TestDiscoveryAdvertisesOnlyWhatWorks(t *testing.T) {
	env := apptest.Start(t, apptest.SQLite)
	oidcDoc := metadata(t, env, "/.well-known/openid-configuration")
	oauthDoc := metadata(t, env, "/.well-known/oauth-authorization-server")
	a, _ := json.Marshal(oidcDoc)
	b, _ := json.Marshal(oauthDoc)
	if string(a) != string(b) {
		t.Errorf("the two metadata documents differ:\n%s\n%s", a, b)
	}
	if oidcDoc["issuer"] != env.Config.Issuer {
		t.Errorf("issuer %v, want %s", oidcDoc["issuer"], env.Config.Issuer)
	}
	// The authorization endpoint (issue 15) serves the code flow only.
	if rt := stringList(oidcDoc["response_types_supported"]); !slices.Equal(rt, []string{"code"}) {
		t.Errorf("response_types_supported = %v, want [code]", rt)
	}
	if oidcDoc["authorization_endpoint"] != env.Config.Issuer+"/oidc/auth" {
		t.Errorf("authorization_endpoint %v", oidcDoc["authorization_endpoint"])
	}
	if m := stringList(oidcDoc["code_challenge_methods_supported"]); !slices.Equal(m, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported %v, want [S256]", m)
	}
	// request_uri_parameter_supported defaults to true when absent.
	for _, k := range []string{"request_uri_parameter_supported", "request_parameter_supported"} {
		if v, ok := oidcDoc[k]; !ok || v != false {
			t.Errorf("%s = %v (present %v), want false", k, v, ok)
		}
	}
	// Every advertised scope can be granted: the user scopes of the code
	// flow to any web client, and a client created with all the others
	// gets a token with all of them.
	var scopes []string
	for _, sc := range stringList(oidcDoc["scopes_supported"]) {
		if !slices.Contains(token.CodeFlowScopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if !slices.Contains(scopes, "openid") {
		t.Errorf("scopes_supported %v lacks openid", scopes)
	}
	c := env.CreateClient(scopes...)
	tok := env.Form("/oidc/token", &c, url.Values{"grant_type": {"client_credentials"}})
	granted := strings.Fields(tok.Str("scope"))
	sort.Strings(granted)
	sort.Strings(scopes)
	if !slices.Equal(granted, scopes) {
		t.Errorf("granted %v, advertised %v", granted, scopes)
	}

	// go-oidc reads the OIDC document; the RFC 8414 one, being the same,
	// decodes to the same provider configuration.
	ctx := oidc.ClientContext(context.Background(), env.HTTP)
	if _, err := oidc.NewProvider(ctx, env.URL); err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	var cfg oidc.ProviderConfig
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.IssuerURL != env.URL || cfg.TokenURL == "" || cfg.JWKSURL == "" {
		t.Errorf("RFC 8414 document as provider config: %+v %v", cfg, err)
	}
}

// TestClaimsSupportedIsExactlyWhatIsIssued asks for every advertised claim
// and collects what the ID token and userinfo carry: the two sets match. The
// sign-in is in an organization's context, whose claims are advertised too.
func TestClaimsSupportedIsExactlyWhatIsIssued(t *testing.T) {
	f := v1Start(t, apptest.SQLite)
	supported := stringList(metadata(t, f.Env, "/.well-known/openid-configuration")["claims_supported"])
	if !slices.Contains(supported, "updated_at") {
		t.Errorf("claims_supported %v lacks updated_at", supported)
	}
	username, password := v1Name("claims"), v1Password()
	userID := f.createUser(t, map[string]any{"username": username, "name": "Claire", "primary_email": username + "@example.com",
		"primary_phone": "+14155550142", "credentials": map[string]any{"password": password}})
	org := f.newOrg(t, nil).Str("id")
	f.addMember(t, org, userID, f.newRole(t, "p"))
	want := map[string]any{}
	for _, c := range supported {
		want[c] = nil
	}
	res := f.authenticate(t, username, password, map[string]any{"org_id": org, "claims": map[string]any{"id_token": want}})
	if res.Status != http.StatusOK {
		t.Fatalf("authenticate: %s", res)
	}
	issued := map[string]bool{}
	ctx := oidc.ClientContext(context.Background(), f.HTTP)
	provider, err := oidc.NewProvider(ctx, f.URL)
	if err != nil {
		t.Fatal(err)
	}
	idTok, err := provider.Verifier(&oidc.Config{ClientID: f.client.ID}).Verify(ctx, res.Str("id_token"))
	if err != nil {
		t.Fatal(err)
	}
	var idClaims map[string]any
	_ = idTok.Claims(&idClaims)
	for k := range idClaims {
		issued[k] = true
	}
	info, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: res.Str("access_token")}))
	if err != nil {
		t.Fatalf("go-oidc userinfo: %v", err)
	}
	var infoClaims map[string]any
	_ = info.Claims(&infoClaims)
	for k := range infoClaims {
		issued[k] = true
	}
	// The organization scopes' claims come from the code flow.
	e := &expFix{v1Fix: f}
	r := e.newRP(t, token.NewClient{Type: token.ClientWeb})
	r.config.Scopes = []string{"openid", token.ScopeOrganizations, token.ScopeOrganizationRoles}
	verifier, challenge := pkce()
	back := e.browser(t).authorize(r.config.AuthCodeURL("st", challenge, oidc.Nonce("n")), username, password)
	_, _, codeClaims := r.exchange(t, codeOf(t, back, "st"), verifier, "n")
	for _, k := range []string{"organizations", "organization_roles"} {
		if codeClaims[k] == nil {
			t.Errorf("code flow with the organization scopes: no %s in %v", k, codeClaims)
		}
		issued[k] = true
	}
	var got []string
	for k := range issued {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(supported)
	if !slices.Equal(got, supported) {
		t.Errorf("issued %v\nadvertised %v", got, supported)
	}
}

// TestUserAccessTokenForRealClients: go-oidc verifies a user's access token
// against the JWKS with the documented audience (the issuer when no
// resource was asked for), and x/oauth2 refreshes through the token
// endpoint the discovery document names.
func TestUserAccessTokenForRealClients(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		f := v1Start(t, b)
		_, username, password := f.newUser(t)
		res := f.signIn(t, username, password)
		ctx := oidc.ClientContext(context.Background(), f.HTTP)
		provider, err := oidc.NewProvider(ctx, f.URL)
		if err != nil {
			t.Fatal(err)
		}
		at, err := provider.Verifier(&oidc.Config{ClientID: f.Config.Issuer}).Verify(ctx, res.Str("access_token"))
		if err != nil {
			t.Fatalf("access token with aud = issuer: %v", err)
		}
		if !slices.Equal(at.Audience, []string{f.Config.Issuer}) {
			t.Errorf("aud %v", at.Audience)
		}
		// The ID token is for the client, never for the issuer.
		if _, err := provider.Verifier(&oidc.Config{ClientID: f.Config.Issuer}).Verify(ctx, res.Str("id_token")); err == nil {
			t.Error("the ID token verified with the issuer as audience")
		}

		cfg := oauth2.Config{ClientID: f.client.ID, ClientSecret: f.client.Secret, Endpoint: provider.Endpoint()}
		fresh, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: res.Str("refresh_token")}).Token()
		if err != nil {
			t.Fatalf("x/oauth2 refresh: %v", err)
		}
		if fresh.AccessToken == "" || fresh.RefreshToken == "" || fresh.RefreshToken == res.Str("refresh_token") {
			t.Fatalf("refresh did not rotate: %+v", fresh)
		}
		if _, err := provider.Verifier(&oidc.Config{ClientID: f.Config.Issuer}).Verify(ctx, fresh.AccessToken); err != nil {
			t.Errorf("refreshed access token: %v", err)
		}
		// RFC 7662 §2.2: token_type names an access token type; a refresh
		// token has none.
		intro := f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {fresh.RefreshToken}})
		if _, typed := intro.JSON["token_type"]; intro.JSON["active"] != true || typed {
			t.Errorf("introspect refresh token: %s", intro)
		}
		intro = f.form(t, "/oidc/token/introspection", f.client, url.Values{"token": {fresh.AccessToken}})
		if intro.JSON["active"] != true || intro.Str("token_type") != "Bearer" {
			t.Errorf("introspect access token: %s", intro)
		}
	})
}

// TestUserinfoByPost: OIDC Core §5.3.1 — GET and POST, the token in the
// header or (RFC 6750 §2.2) in a form body, never both.
func TestUserinfoByPost(t *testing.T) {
	f := v1Start(t, apptest.SQLite)
	id, username, password := f.newUser(t)
	access := f.signIn(t, username, password).Str("access_token")

	post := func(header bool, body url.Values) *apptest.Response {
		req, _ := http.NewRequest(http.MethodPost, f.URL+"/oidc/me", strings.NewReader(body.Encode()))
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if header {
			req.Header.Set("Authorization", "Bearer "+access)
		}
		return f.Do(req)
	}
	for name, res := range map[string]*apptest.Response{
		"header":    post(true, nil),
		"form body": post(false, url.Values{"access_token": {access}}),
	} {
		if res.Status != http.StatusOK || res.Str("sub") != id || res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("POST /oidc/me with the token in the %s: %s", name, res)
		}
	}
	if res := post(true, url.Values{"access_token": {access}}); res.Status != http.StatusBadRequest || res.Str("error") != "invalid_request" {
		t.Errorf("both methods: %s, want 400 invalid_request", res)
	}
	if res := post(false, url.Values{"access_token": {"garbage"}}); res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("a bad token in the body: %s, want 401 with a challenge", res)
	}
	if res := post(false, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("no token: %s, want 401", res)
	}
}

// TestHeadOnGetRoutes: HEAD answers like GET without a body (RFC 9110
// §9.3.2), guarded routes included; a route without GET still answers 405.
func TestHeadOnGetRoutes(t *testing.T) {
	f := v1Start(t, apptest.SQLite)
	head := func(path, bearer string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodHead, f.URL+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		res, err := f.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res, raw
	}
	for _, path := range []string{"/healthz", "/.well-known/openid-configuration", "/oidc/jwks", "/openapi.yaml", "/v1/auth/whoami"} {
		res, raw := head(path, f.tok)
		get := f.call(t, http.MethodGet, path, f.tok, nil)
		if res.StatusCode != get.Status || len(raw) != 0 || res.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q %q, GET answered %d %q", path, res.StatusCode, raw, res.Header.Get("Content-Type"), get.Status, get.Header.Get("Content-Type"))
		}
	}
	if res, _ := head("/v1/auth/whoami", ""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("HEAD of a guarded route without a token: %d", res.StatusCode)
	}
	if res, _ := head("/oidc/token", ""); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("HEAD /oidc/token: %d, want 405", res.StatusCode)
	}
}

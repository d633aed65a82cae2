package app_test

// Helpers of the social and SSO tests: a real OpenID provider (zitadel's
// op package with its example storage) in the test process, and a driver
// that walks the whole redirect dance against it — Latch's authorization
// URL, the provider's login form, its callback, the code back to Latch.

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/token"
)

const (
	opClientID     = "latch-rp"
	opClientSecret = "latch-rp-secret-0123456789"
	// upCallback is the sign-in page's callback the provider returns to.
	upCallback = "https://app.example.com/callback"
)

// opUsers is the provider's user directory (storage.UserStore).
type opUsers struct {
	mu    sync.Mutex
	users map[string]*storage.User
}

func (u *opUsers) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.users[id]
}

func (u *opUsers) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, x := range u.users {
		if x.Username == name {
			return x
		}
	}
	return nil
}

func (u *opUsers) ExampleClientID() string { return "service" }

// opStorage is the example storage with two knobs on the code it redeems:
// the amr the provider reports and the audience of its ID token.
type opStorage struct {
	*storage.Storage
	mu       sync.Mutex
	amr      []string
	audience []string
}

type opAuthRequest struct {
	op.AuthRequest
	amr, audience []string
	// calls counts GetClientID: with a foreign audience the provider's own
	// client check (the first call) passes and the ID token it then mints
	// is for another client — a mix-up Latch must refuse.
	calls *int
}

func (r opAuthRequest) GetClientID() string {
	*r.calls++
	if r.audience != nil && *r.calls > 1 {
		return r.audience[0]
	}
	return r.AuthRequest.GetClientID()
}

func (r opAuthRequest) GetAMR() []string {
	if r.amr != nil {
		return r.amr
	}
	return r.AuthRequest.GetAMR()
}

func (r opAuthRequest) GetAudience() []string {
	if r.audience != nil {
		return r.audience
	}
	return r.AuthRequest.GetAudience()
}

func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	ar, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return opAuthRequest{AuthRequest: ar, amr: s.amr, audience: s.audience, calls: new(int)}, nil
}

func (s *opStorage) set(amr, audience []string) {
	s.mu.Lock()
	s.amr, s.audience = amr, audience
	s.mu.Unlock()
}

// upstreamOP is a running OpenID provider.
type upstreamOP struct {
	URL   string
	users *opUsers
	store *opStorage
	seq   int
	// discovery counts fetches of the discovery document.
	discovery atomic.Int64
}

// startOP starts the provider; its client may return to upCallback and
// to callbacks.
func startOP(t testing.TB, callbacks ...string) *upstreamOP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	users := &opUsers{users: map[string]*storage.User{}}
	st := &opStorage{Storage: storage.NewStorageWithClients(users, map[string]*storage.Client{
		opClientID: storage.WebClient(opClientID, opClientSecret, append([]string{upCallback}, callbacks...)...),
	})}
	p := &upstreamOP{URL: issuer, users: users, store: st}
	h := exampleop.SetupServer(issuer, st, nil, false)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/openid-configuration" {
			p.discovery.Add(1)
		}
		h.ServeHTTP(w, r)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// user adds a user to the provider; its password is "verysecure".
func (p *upstreamOP) user(email string, verified bool) *storage.User {
	p.users.mu.Lock()
	defer p.users.mu.Unlock()
	p.seq++
	u := &storage.User{ID: "up-" + strings.ToLower(v1Name("s")), Username: email, Password: "verysecure", FirstName: "Ada",
		LastName: "Upstream", Email: email, EmailVerified: verified, PreferredLanguage: language.English}
	p.users.users[u.ID] = u
	return u
}

// oidcConfig is a Latch connector configuration for this provider.
func (p *upstreamOP) oidcConfig() map[string]any {
	return map[string]any{"issuer": p.URL, "client_id": opClientID, "client_secret": opClientSecret}
}

// oauth2Config is the same provider configured as plain OAuth 2.0.
func (p *upstreamOP) oauth2Config() map[string]any {
	return map[string]any{"authorization_endpoint": p.URL + "/auth", "token_endpoint": p.URL + "/oauth/token",
		"userinfo_endpoint": p.URL + "/userinfo", "client_id": opClientID, "client_secret": opClientSecret,
		"scope": "openid email profile", "profile_map": map[string]any{"id": "sub", "avatar": "picture"}}
}

// login follows an authorization URL through the provider's login form
// as the user, and returns the callback's query (code, state).
func (p *upstreamOP) login(t testing.TB, authURL string, u *storage.User) url.Values {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := func(res *http.Response, err error) *url.URL {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc, err := res.Location()
		if err != nil {
			t.Fatalf("provider answered %d without a redirect", res.StatusCode)
		}
		return loc
	}
	login := next(hc.Get(authURL))
	id := login.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("provider did not ask for a login: %s", login)
	}
	cb := next(hc.PostForm(p.URL+"/login/username", url.Values{"id": {id}, "username": {u.Username}, "password": {u.Password}}))
	back := next(hc.Get(cb.String()))
	if !strings.HasPrefix(back.String(), upCallback) {
		t.Fatalf("provider returned to %s", back)
	}
	return back.Query()
}

// upFix is a Latch server with an application allowed the callback.
type upFix struct {
	*expFix
	op     *upstreamOP
	appTok string
}

func upStart(t *testing.T, b apptest.Backend) *upFix {
	t.Helper()
	f := expStart(t, b)
	app := f.CreateClientFrom(token.NewClient{Scopes: []string{"auth:execute"}, RedirectURIs: []string{upCallback}})
	return &upFix{expFix: f, op: startOP(t), appTok: f.ClientToken(app)}
}

// connector creates a connector of family ("sso" or "social") over the
// management API and returns its id.
func (f *upFix) connector(t testing.TB, family string, body map[string]any) string {
	t.Helper()
	res := f.call(t, http.MethodPost, "/v1/"+family+"-connectors", f.tok, body)
	if res.Status != http.StatusCreated || res.Str("id") == "" {
		t.Fatalf("create %s connector: %s", family, res)
	}
	return res.Str("id")
}

// upstreamFlow runs authorization-uri, the provider login and verify in
// an interaction, and returns the verify answer and the record id.
func (x *expTx) upstream(t testing.TB, op *upstreamOP, family, connectorID string, u *storage.User) (*apptest.Response, string) {
	t.Helper()
	state := "st-" + v1Name("s")
	res := expMust(t, x.post(t, "/verification/"+family+"/"+connectorID+"/authorization-uri",
		map[string]any{"state": state, "redirectUri": upCallback}), http.StatusOK, "authorization-uri")
	vid, uri := res.Str("verificationId"), res.Str("authorizationUri")
	if vid == "" || !strings.HasPrefix(uri, op.URL) {
		t.Fatalf("authorization-uri: %s", res)
	}
	cb := op.login(t, uri, u)
	if cb.Get("state") != state {
		t.Fatalf("callback state %q, want %q", cb.Get("state"), state)
	}
	return x.post(t, "/verification/"+family+"/"+connectorID+"/verify", map[string]any{"verificationId": vid,
		"connectorData": map[string]any{"code": cb.Get("code"), "state": cb.Get("state"), "redirectUri": upCallback}}), vid
}

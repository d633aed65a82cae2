package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/credentials"
)

// v1Fix is a running server plus one all-purpose client for the /v1 tests:
// its ClientAccessToken carries auth:execute, users:read, users:write and
// management.
type v1Fix struct {
	*apptest.Env
	client apptest.Client
	tok    string
}

// v1Scopes are the scopes of the fixture's client.
var v1Scopes = []string{"auth:execute", "users:read", "users:write", "management"}

// v1Start starts a server for b. Parallel subtests hash a lot at once, so
// the hashing gate gets a long queue unless opts say otherwise.
func v1Start(t *testing.T, b apptest.Backend, opts ...apptest.Option) *v1Fix {
	t.Helper()
	opts = append([]apptest.Option{apptest.With("LATCH_HASH_QUEUE", "200"), apptest.With("LATCH_HASH_QUEUE_WAIT", "30s")}, opts...)
	env := apptest.Start(t, b, opts...)
	return v1Wrap(env)
}

func v1Wrap(env *apptest.Env) *v1Fix {
	c := env.CreateClient(v1Scopes...)
	return &v1Fix{Env: env, client: c, tok: env.ClientToken(c)}
}

// send is a goroutine-safe JSON request: it never touches a testing.T.
func (f *v1Fix) send(method, path, bearer string, body any) (*apptest.Response, error) {
	req, err := f.NewJSONRequest(method, path, bearer, body)
	if err != nil {
		return nil, err
	}
	return v1Do(f.HTTP, req)
}

func v1Do(hc *http.Client, req *http.Request) (*apptest.Response, error) {
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	out := &apptest.Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.JSON)
	return out, nil
}

// call is send for the test goroutine t.
func (f *v1Fix) call(t testing.TB, method, path, bearer string, body any) *apptest.Response {
	t.Helper()
	res, err := f.send(method, path, bearer, body)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// form posts a form to the /oidc endpoints, with client_secret_basic
// unless c is the zero Client.
func (f *v1Fix) form(t testing.TB, path string, c apptest.Client, values url.Values) *apptest.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.URL+path, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.ID != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	res, err := v1Do(f.HTTP, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

var v1Seq atomic.Int64

// v1Name returns a fresh username.
func v1Name(prefix string) string {
	return fmt.Sprintf("%s%d%s", prefix, v1Seq.Add(1), strings.ToLower(credentials.RandomID(6)))
}

// v1Password returns a fresh password that passes the default policy.
func v1Password() string { return "Pw9!" + credentials.RandomToken(9) }

// createUser creates a user through the Users API and returns its id.
func (f *v1Fix) createUser(t testing.TB, body map[string]any) string {
	t.Helper()
	res := f.call(t, http.MethodPost, "/v1/users", f.tok, body)
	if res.Status != http.StatusCreated {
		t.Fatalf("create user: %s", res)
	}
	id := res.Str("id")
	if id == "" {
		t.Fatalf("create user: no id: %s", res)
	}
	return id
}

// newUser creates a user with a username and a (non-temporary) password.
func (f *v1Fix) newUser(t testing.TB) (id, username, password string) {
	t.Helper()
	username, password = v1Name("user"), v1Password()
	id = f.createUser(t, map[string]any{"username": username, "credentials": map[string]any{"password": password}})
	return id, username, password
}

// authBody is the JSON body of a password authentication.
func authBody(username, password string, extra map[string]any) map[string]any {
	body := map[string]any{"username": username, "password": password}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// authenticate calls POST /v1/auth/password/authenticate.
func (f *v1Fix) authenticate(t testing.TB, username, password string, extra map[string]any) *apptest.Response {
	t.Helper()
	return f.call(t, http.MethodPost, "/v1/auth/password/authenticate", f.tok, authBody(username, password, extra))
}

// signIn authenticates and requires success.
func (f *v1Fix) signIn(t testing.TB, username, password string) *apptest.Response {
	t.Helper()
	res := f.authenticate(t, username, password, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("sign in %s: %s", username, res)
	}
	return res
}

// wantError checks a /v1 error response.
func wantError(t testing.TB, res *apptest.Response, status int, code string) {
	t.Helper()
	if res.Status != status || res.Str("error_code") != code {
		t.Fatalf("got %s, want %d %s", res, status, code)
	}
	if res.Str("message") == "" {
		t.Fatalf("error without message: %s", res)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("error is not JSON: %q", res.Header.Get("Content-Type"))
	}
}

// wantDetail checks a 400 system_invalid_input naming field in details.
func wantDetail(t testing.TB, res *apptest.Response, field string) {
	t.Helper()
	wantError(t, res, http.StatusBadRequest, "system_invalid_input")
	details, _ := res.JSON["details"].([]any)
	if len(details) == 0 {
		t.Fatalf("no details: %s", res)
	}
	if field == "" {
		return
	}
	for _, d := range details {
		if m, _ := d.(map[string]any); m != nil && m["field"] == field && m["message"] != "" {
			return
		}
	}
	t.Fatalf("details do not name %q: %s", field, res)
}

// auditEvents lists audit events through the management API.
func (f *v1Fix) auditEvents(t testing.TB, userID, event string) []map[string]any {
	t.Helper()
	q := url.Values{"limit": {"1000"}}
	if userID != "" {
		q.Set("user_id", userID)
	}
	if event != "" {
		q.Set("event", event)
	}
	res := f.call(t, http.MethodGet, "/v1/audit-events?"+q.Encode(), f.tok, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("audit events: %s", res)
	}
	list, _ := res.JSON["events"].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		out = append(out, e.(map[string]any))
	}
	return out
}

// countAudit counts a user's audit events of one kind (and outcome, if set).
func (f *v1Fix) countAudit(t testing.TB, userID, event, outcome string) int {
	t.Helper()
	n := 0
	for _, e := range f.auditEvents(t, userID, event) {
		if outcome == "" || e["outcome"] == outcome {
			n++
		}
	}
	return n
}

// storedHash reads a user's password hash straight from the database.
func (f *v1Fix) storedHash(t testing.TB, userID string) string {
	t.Helper()
	var row struct{ PasswordHash *string }
	if err := f.Services.DB.WithContext(context.Background()).
		Raw("SELECT password_hash FROM users WHERE id = ?", userID).Scan(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.PasswordHash == nil {
		return ""
	}
	return *row.PasswordHash
}

// count runs a COUNT(*) query.
func (f *v1Fix) count(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := f.Services.DB.WithContext(context.Background()).Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// patchSettings changes the stored sign-in settings.
func (f *v1Fix) patchSettings(t testing.TB, patch string) {
	t.Helper()
	if _, err := f.Services.Engine.Settings.Patch(context.Background(), []byte(patch)); err != nil {
		t.Fatalf("settings patch %s: %v", patch, err)
	}
}

// retryAfter returns the Retry-After header in seconds, failing if absent.
func retryAfter(t testing.TB, res *apptest.Response) time.Duration {
	t.Helper()
	v := res.Header.Get("Retry-After")
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 1 {
		t.Fatalf("Retry-After = %q: %s", v, res)
	}
	return time.Duration(n) * time.Second
}

// Command example is a tiny backend using Latch: it gets a ClientAccessToken
// (client credentials), signs a user in with a password, verifies the user's
// access token against the JWKS, refreshes it and logs the user out.
//
//	ISSUER=http://127.0.0.1:8080 CLIENT_ID=… CLIENT_SECRET=… \
//	DEMO_USERNAME=alice DEMO_PASSWORD='correct horse battery staple' go run ./examples/go
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	issuer := strings.TrimRight(os.Getenv("ISSUER"), "/")
	l := latch{base: issuer, http: &http.Client{Timeout: 10 * time.Second}}

	// 1. Client credentials: the backend's own token for Latch's API.
	var ct struct {
		AccessToken string `json:"access_token"`
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/oidc/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(os.Getenv("CLIENT_ID")), url.QueryEscape(os.Getenv("CLIENT_SECRET")))
	if err := l.do(req, http.StatusOK, &ct); err != nil {
		return fmt.Errorf("client credentials: %w", err)
	}
	l.token = ct.AccessToken
	fmt.Println("client token: ok")

	// 2. Authenticate the user with a password.
	var signIn struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		SessionID    string `json:"session_id"`
	}
	if err := l.post(ctx, "/v1/auth/password/authenticate", map[string]string{
		"username": os.Getenv("DEMO_USERNAME"), "password": os.Getenv("DEMO_PASSWORD"),
	}, http.StatusOK, &signIn); err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	fmt.Println("authenticated: session", signIn.SessionID)

	// 3. Verify the user's access token, as a resource server would.
	tok, err := verify(ctx, issuer, signIn.AccessToken)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Println("verified: sub=" + tok.Subject())

	// 4. Refresh: the refresh token rotates, keep the new one.
	var refreshed struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := l.post(ctx, "/v1/auth/token/refresh", map[string]string{"refresh_token": signIn.RefreshToken},
		http.StatusOK, &refreshed); err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	if _, err := verify(ctx, issuer, refreshed.AccessToken); err != nil {
		return fmt.Errorf("verify the refreshed token: %w", err)
	}
	fmt.Println("refreshed: ok")

	// 5. Log out: the session and its refresh tokens end.
	if err := l.post(ctx, "/v1/auth/session/logout", map[string]string{"session_id": signIn.SessionID},
		http.StatusNoContent, nil); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if err := l.post(ctx, "/v1/auth/token/refresh", map[string]string{"refresh_token": refreshed.RefreshToken},
		http.StatusOK, nil); err == nil {
		return fmt.Errorf("the refresh token still works after logout")
	}
	fmt.Println("logged out: ok")
	return nil
}

// verify checks a user access token: signature against the JWKS, issuer,
// audience (the issuer, as no resource was named), expiry and the RFC 9068
// header type.
func verify(ctx context.Context, issuer, accessToken string) (jwt.Token, error) {
	keys, err := jwk.Fetch(ctx, issuer+"/oidc/jwks") // cache it (jwk.NewCache) in a real service
	if err != nil {
		return nil, err
	}
	msg, err := jws.Parse([]byte(accessToken))
	if err != nil {
		return nil, err
	}
	if typ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		return nil, fmt.Errorf("not an access token: typ %q", typ)
	}
	tok, err := jwt.Parse([]byte(accessToken), jwt.WithKeySet(keys),
		jwt.WithIssuer(issuer), jwt.WithAudience(issuer), jwt.WithValidate(true))
	if err != nil {
		return nil, err
	}
	// tok.Subject() is the user id; tok.PrivateClaims()["scope"] the scopes
	return tok, nil
}

// latch calls Latch's /v1 API with the backend's ClientAccessToken.
type latch struct {
	base, token string
	http        *http.Client
}

func (l latch) post(ctx context.Context, path string, body any, want int, out any) error {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	return l.do(req, want, out)
}

func (l latch) do(req *http.Request, want int, out any) error {
	res, err := l.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, res.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

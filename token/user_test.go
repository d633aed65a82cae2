package token

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/latch-dev/latch/fault"
	"github.com/latch-dev/latch/store"
)

// jwksKeyfunc verifies like an outside relying party: only with the public
// keys published in JWKS, parsed by an independent JOSE library.
func jwksKeyfunc(t *testing.T, s *Service) jwt.Keyfunc {
	t.Helper()
	raw, err := s.Keys.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		key, ok := set.LookupKeyID(kid)
		if !ok {
			return nil, fmt.Errorf("kid %q not in JWKS", kid)
		}
		var pub ecdsa.PublicKey
		if err := key.Raw(&pub); err != nil {
			return nil, err
		}
		return &pub, nil
	}
}

func TestIssueUserTokens(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		g := testGrant(client)
		g.OrgID, g.Roles = "org-1", []string{"admin", "viewer"}
		g.AMR = []string{"pwd", "totp", "mfa"}
		g.IDClaims = map[string]any{"email": "ada@example.com", "email_verified": true, "username": "ada",
			// Registered claims must never be overridable through IDClaims.
			"sub": "someone-else", "aud": "evil", "sid": "other", "iss": "https://evil", "exp": 1}
		aud, err := s.ResolveUserResource(client, testResource)
		if err != nil {
			t.Fatal(err)
		}
		g.Audience = aud
		out := issue(t, s, g)
		if out.ExpiresIn != 3600 || out.AccessToken == "" || out.IDToken == "" || out.RefreshToken == "" {
			t.Fatalf("tokens = %+v", out)
		}

		// Access token: RFC 9068, verified by Latch for its audience.
		claims, err := s.VerifyAccessToken(ctx, out.AccessToken, testResource)
		if err != nil {
			t.Fatalf("VerifyAccessToken: %v", err)
		}
		if claims.Subject != g.UserID || claims.ClientID != client.ID || claims.SessionID != g.SessionID ||
			claims.Scope != g.Scope || claims.OrgID != "org-1" || len(claims.Roles) != 2 ||
			claims.AuthTime != g.AuthTime.Unix() || len(claims.AMR) != 3 || claims.ID == "" || claims.IsClientToken() {
			t.Fatalf("access claims = %+v", claims)
		}
		if _, err := s.VerifyAccessToken(ctx, out.AccessToken, testAPI); err == nil {
			t.Fatal("access token accepted for another audience")
		}
		if uc, err := s.VerifyUserAccessToken(ctx, out.AccessToken); err != nil || uc.Subject != g.UserID {
			t.Fatalf("VerifyUserAccessToken = %+v, %v", uc, err)
		}
		tok, _, err := jwt.NewParser().ParseUnverified(out.AccessToken, jwt.MapClaims{})
		if err != nil || tok.Header["typ"] != "at+jwt" {
			t.Fatalf("access token header = %v, %v", tok.Header, err)
		}

		// ID token: verified by an outside verifier with the JWKS public key.
		idc := jwt.MapClaims{}
		idTok, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(testIssuer),
			jwt.WithAudience(client.ID), jwt.WithExpirationRequired(), jwt.WithIssuedAt()).
			ParseWithClaims(out.IDToken, idc, jwksKeyfunc(t, s))
		if err != nil {
			t.Fatalf("ID token does not verify: %v", err)
		}
		if idTok.Header["typ"] != "JWT" {
			t.Fatalf("ID token typ = %v", idTok.Header["typ"])
		}
		if idc["sub"] != g.UserID || idc["aud"] != client.ID || idc["sid"] != g.SessionID || idc["iss"] != testIssuer {
			t.Fatalf("ID token registered claims overridden or wrong: %v", idc)
		}
		if idc["email"] != "ada@example.com" || idc["email_verified"] != true || idc["username"] != "ada" {
			t.Fatalf("ID token lacks requested claims: %v", idc)
		}
		if at, _ := idc["auth_time"].(float64); int64(at) != g.AuthTime.Unix() {
			t.Fatalf("auth_time = %v", idc["auth_time"])
		}
		if amr, _ := idc["amr"].([]any); len(amr) != 3 || amr[2] != "mfa" {
			t.Fatalf("amr = %v", idc["amr"])
		}
		exp, _ := idc.GetExpirationTime()
		iat, _ := idc.GetIssuedAt()
		if d := exp.Sub(iat.Time); d != 30*time.Minute {
			t.Fatalf("ID token lifetime = %v, want IDTokenTTL", d)
		}

		// Neither token can pass for another kind.
		if _, err := s.VerifyAccessToken(ctx, out.IDToken, ""); err == nil {
			t.Fatal("an ID token was accepted as an access token")
		}
		cc, err := s.ClientCredentials(ctx, client, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.VerifyUserAccessToken(ctx, cc.AccessToken); !fault.Is(err, CodeInvalidClientToken) {
			t.Fatalf("a ClientAccessToken passed as a user token: %v", err)
		}
	})
}

func TestIssueUserTokensDefaultsAndValidation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)

		// No resource: the audience is the issuer; no refresh unless asked.
		g := testGrant(client)
		g.WithRefresh = false
		g.IDClaims = nil
		out := issue(t, s, g)
		if out.RefreshToken != "" {
			t.Fatal("refresh token issued without WithRefresh")
		}
		if _, err := s.VerifyAccessToken(ctx, out.AccessToken, testIssuer); err != nil {
			t.Fatalf("default audience is not the issuer: %v", err)
		}
		if aud, err := s.ResolveUserResource(client, ""); err != nil || aud != "" {
			t.Fatalf("ResolveUserResource(\"\") = %q, %v", aud, err)
		}
		if _, err := s.ResolveUserResource(client, "https://not-allowed.example"); !fault.Is(err, CodeInvalidTarget) {
			t.Fatalf("foreign resource: %v", err)
		}

		// Programming errors are internal, not client faults.
		bad := testGrant(client)
		bad.SessionID = ""
		if _, err := s.IssueUserTokens(ctx, bad); err == nil {
			t.Fatal("grant without session accepted")
		} else if _, ok := fault.As(err); ok {
			t.Fatalf("missing session reported as a client fault: %v", err)
		}
		bad = testGrant(client)
		bad.SessionExpiresAt = time.Time{}
		if _, err := s.IssueUserTokens(ctx, bad); err == nil {
			t.Fatal("refresh token without session expiry accepted")
		}
		// Every issue WithRefresh starts a family of its own.
		a, b := issue(t, s, testGrant(client)), issue(t, s, testGrant(client))
		if a.FamilyID == "" || a.FamilyID == b.FamilyID || a.RefreshToken == b.RefreshToken {
			t.Fatalf("families %q and %q", a.FamilyID, b.FamilyID)
		}
	})
}

func TestUserTokenIntrospectionAndRevocation(t *testing.T) {
	eachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newTestService(t, db)
		client := newTestClient(t, s)
		other := newTestClient(t, s)
		g := testGrant(client)
		out := issue(t, s, g)

		in, err := s.Introspect(ctx, nil, out.AccessToken, "")
		if err != nil || !in.Active || in.SessionID != g.SessionID || in.Sub != g.UserID || in.ClientID != client.ID {
			t.Fatalf("introspect user access token = %+v, %v", in, err)
		}
		// A wrong hint does not hide the token.
		if in, err := s.Introspect(ctx, nil, out.AccessToken, "refresh_token"); err != nil || !in.Active {
			t.Fatalf("introspect with wrong hint = %+v, %v", in, err)
		}
		if in, err := s.Introspect(ctx, nil, out.IDToken, ""); err != nil || in.Active {
			t.Fatalf("an ID token introspects as %+v, %v", in, err)
		}
		if err := s.Revoke(ctx, other, out.AccessToken, ""); !fault.Is(err, CodeUnauthorizedClient) {
			t.Fatalf("revocation by another client: %v", err)
		}
		if err := s.Revoke(ctx, client, out.AccessToken, "access_token"); err != nil {
			t.Fatal(err)
		}
		if in, _ := s.Introspect(ctx, nil, out.AccessToken, ""); in.Active {
			t.Fatal("revoked access token still active")
		}
		if _, err := s.VerifyUserAccessToken(ctx, out.AccessToken); !fault.Is(err, CodeInvalidClientToken) {
			t.Fatalf("revoked access token verified: %v", err)
		}
		var fe *fault.Error
		if err := s.Revoke(ctx, client, "x", "id_token"); !errors.As(err, &fe) || fe.Code != CodeUnsupportedTokenType {
			t.Fatalf("unknown hint: %v", err)
		}
	})
}

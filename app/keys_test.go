package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	gjwt "github.com/golang-jwt/jwt/v5"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/credentials"
)

// A key rotation never breaks a verifier: tokens signed before it keep
// verifying (through JWKS and at Latch's own API), new tokens carry the new
// kid, which was already published before the rotation.
func TestKeyRotation(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		c := env.CreateClient("auth:execute")
		before := env.ClientToken(c)
		_, hdrBefore := verifyOutside(t, env, before, env.Config.APIResource)
		oldKid := hdrBefore.KeyID()
		jwksBefore := kids(fetchJWKS(t, env))
		if !jwksBefore[oldKid] || len(jwksBefore) != 2 {
			t.Fatalf("JWKS before rotation %v: want the active key %s and the next one", jwksBefore, oldKid)
		}

		for round := 1; round <= 2; round++ {
			rotated, err := env.Services.Tokens.Keys.Rotate(context.Background(), 0)
			if err != nil || !rotated {
				t.Fatalf("rotate: %v %v", rotated, err)
			}
			after := env.ClientToken(c)
			_, hdrAfter := verifyOutside(t, env, after, env.Config.APIResource)
			newKid := hdrAfter.KeyID()
			if newKid == oldKid {
				t.Fatalf("round %d: new tokens still carry the old kid %s", round, oldKid)
			}
			if round == 1 && !jwksBefore[newKid] {
				t.Errorf("the new key %s was not published (as next) before the rotation", newKid)
			}
			set := kids(fetchJWKS(t, env))
			if !set[oldKid] || !set[newKid] {
				t.Fatalf("round %d: JWKS %v lacks the old %s or the new %s", round, set, oldKid, newKid)
			}
			// The token signed before the first rotation still verifies for
			// an outside verifier and for Latch's own API.
			verifyOutside(t, env, before, env.Config.APIResource)
			if res := env.JSON(http.MethodGet, "/v1/auth/whoami", before, nil); res.Status != http.StatusOK {
				t.Fatalf("round %d: old token refused after rotation: %s", round, res)
			}
			if res := env.JSON(http.MethodGet, "/v1/auth/whoami", after, nil); res.Status != http.StatusOK {
				t.Fatalf("round %d: new token refused: %s", round, res)
			}
			if res := introspect(env, c, before); res.JSON["active"] != true {
				t.Fatalf("round %d: old token inactive after rotation: %s", round, res)
			}
			oldKid = newKid
		}

		infos, err := env.Services.Tokens.Keys.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]int{}
		for _, k := range infos {
			states[k.State]++
		}
		if states["active"] != 1 || states["next"] != 1 || states["retired"] != 2 {
			t.Fatalf("key states after two rotations: %v", states)
		}
	})
}

// Two back-to-back rotations on one replica: a token signed with the newest
// key — which another replica has never loaded — verifies there at once,
// even right after a token with a made-up kid and for many requests at once.
// An unknown kid makes a replica load the keys again (one load, shared), not
// answer 401. Made-up kids are still refused, and a burst of them loads the
// keys at most once per second.
func TestKeyRotationAcrossReplicas(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		env := apptest.Start(t, b)
		replica := env.Replica(apptest.With("LATCH_ISSUER", env.Config.Issuer))
		c := env.CreateClient("auth:execute")
		whoami := func(on *apptest.Env, raw string) *apptest.Response {
			req, err := on.NewJSONRequest(http.MethodGet, "/v1/auth/whoami", raw, nil)
			if err != nil {
				return &apptest.Response{Raw: []byte(err.Error())}
			}
			res, err := v1Do(on.HTTP, req)
			if err != nil {
				return &apptest.Response{Raw: []byte(err.Error())}
			}
			return res
		}
		if res := whoami(replica, env.ClientToken(c)); res.Status != http.StatusOK {
			t.Fatalf("the replica refuses a token of the current key: %s", res)
		}
		foreign, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		madeUp := func() string {
			return forge(t, gjwt.SigningMethodES256, foreign, map[string]any{"kid": credentials.RandomToken(16), "typ": "at+jwt"},
				clientClaims(env, c.ID))
		}
		// A made-up kid is refused (and has the replica load the keys just
		// before the rotations, which must not stop it loading them again).
		if res := whoami(replica, madeUp()); res.Status != http.StatusUnauthorized {
			t.Fatalf("a made-up kid: %s", res)
		}

		for i := 0; i < 2; i++ {
			if rotated, err := env.Services.Tokens.Keys.Rotate(context.Background(), 0); err != nil || !rotated {
				t.Fatalf("rotate: %v %v", rotated, err)
			}
		}
		fresh := env.ClientToken(c)
		_, hdr := verifyOutside(t, env, fresh, env.Config.APIResource)
		loaded := replica.Services.Tokens.Keys.Loads()
		for i, res := range expParallel(t, 8, func(int) (*apptest.Response, error) { return whoami(replica, fresh), nil }) {
			if res.Status != http.StatusOK {
				t.Fatalf("request %d on the replica, token of the new key %s: %s", i, hdr.KeyID(), res)
			}
		}
		if n := replica.Services.Tokens.Keys.Loads() - loaded; n != 1 {
			t.Errorf("the replica loaded the keys %d times for 8 requests with one new kid, want 1", n)
		}

		// A burst of made-up kids: all refused, with at most one load per
		// second they took (plus the one the first of them may start).
		loaded = replica.Services.Tokens.Keys.Loads()
		start := time.Now()
		for i, res := range expParallel(t, 16, func(int) (*apptest.Response, error) { return whoami(replica, madeUp()), nil }) {
			if res.Status != http.StatusUnauthorized || res.Str("error_code") != "invalid_client_token" {
				t.Fatalf("made-up kid %d: %s", i, res)
			}
		}
		limit := 1 + uint64(time.Since(start)/time.Second)
		if n := replica.Services.Tokens.Keys.Loads() - loaded; n > limit {
			t.Errorf("16 made-up kids loaded the keys %d times, more than once a second (limit %d)", n, limit)
		}
	})
}

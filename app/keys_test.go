package app_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/latch-dev/latch/app/apptest"
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

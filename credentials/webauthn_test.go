package credentials

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/latch-dev/latch/credentials/webauthntest"
)

const (
	testRPID   = "example.com"
	testOrigin = "https://auth.example.com"
)

func newTestWebAuthn(t *testing.T) *WebAuthn {
	t.Helper()
	w, err := NewWebAuthn(WebAuthnConfig{RPID: testRPID, RPName: "Latch test", Origins: []string{testOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func testWebAuthnUser() WebAuthnUser {
	return WebAuthnUser{ID: []byte("user-0123456789"), Name: "alice@example.com", DisplayName: "Alice"}
}

// register runs a full registration of a new credential on key for u and
// returns the stored form of the credential (through Marshal/Unmarshal).
func register(t *testing.T, w *WebAuthn, key *webauthntest.Authenticator, u WebAuthnUser) webauthn.Credential {
	t.Helper()
	options, session, err := w.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := key.Register(options)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := w.FinishRegistration(u, session, resp)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	stored, err := MarshalCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalCredential(stored)
	if err != nil {
		t.Fatal(err)
	}
	return *back
}

// login runs a full authentication with key and returns FinishLogin's result.
func login(t *testing.T, w *WebAuthn, key *webauthntest.Authenticator, u WebAuthnUser) (*webauthn.Credential, error) {
	t.Helper()
	options, session, err := w.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := key.Login(options)
	if err != nil {
		t.Fatal(err)
	}
	return w.FinishLogin(u, session, resp)
}

func TestWebAuthnRegistrationAndLogin(t *testing.T) {
	w := newTestWebAuthn(t)
	key := webauthntest.New(testRPID, testOrigin)
	u := testWebAuthnUser()

	options, session, err := w.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	var opts struct {
		Challenge string `json:"challenge"`
		RP        struct{ ID, Name string }
		User      struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			DisplayName string `json:"displayName"`
		}
		Attestation string `json:"attestation"`
		Timeout     int    `json:"timeout"`
	}
	if err := json.Unmarshal(options, &opts); err != nil {
		t.Fatalf("options are not the bare PublicKeyCredentialCreationOptions: %v\n%s", err, options)
	}
	if opts.RP.ID != testRPID || opts.RP.Name != "Latch test" || opts.Attestation != "none" || opts.Timeout != 300000 {
		t.Errorf("creation options: %s", options)
	}
	if opts.User.ID != base64.RawURLEncoding.EncodeToString(u.ID) || opts.User.Name != u.Name || opts.User.DisplayName != u.DisplayName {
		t.Errorf("user entity: %+v", opts.User)
	}
	if c, err := base64.RawURLEncoding.DecodeString(opts.Challenge); err != nil || len(c) < 16 {
		t.Errorf("challenge %q: want ≥16 random bytes, base64url", opts.Challenge)
	}
	if strings.Contains(session, opts.Challenge) == false {
		t.Error("session does not carry the challenge")
	}

	resp, err := key.Register(options)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := w.FinishRegistration(u, session, resp)
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	if len(cred.ID) == 0 || len(cred.PublicKey) == 0 || cred.Authenticator.SignCount != 0 {
		t.Fatalf("credential: %+v", cred)
	}

	stored, err := MarshalCredential(cred)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalCredential(stored)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.ID) != string(cred.ID) || string(back.PublicKey) != string(cred.PublicKey) {
		t.Error("credential does not survive Marshal/Unmarshal")
	}
	u.Credentials = []webauthn.Credential{*back}

	// Login: options allow exactly the registered credential.
	loginOptions, loginSession, err := w.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	var lopts struct {
		RPID  string `json:"rpId"`
		Allow []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	}
	if err := json.Unmarshal(loginOptions, &lopts); err != nil {
		t.Fatal(err)
	}
	if lopts.RPID != testRPID || len(lopts.Allow) != 1 || lopts.Allow[0].ID != base64.RawURLEncoding.EncodeToString(cred.ID) {
		t.Errorf("request options: %s", loginOptions)
	}
	assertion, err := key.Login(loginOptions)
	if err != nil {
		t.Fatal(err)
	}
	used, err := w.FinishLogin(u, loginSession, assertion)
	if err != nil {
		t.Fatalf("FinishLogin: %v", err)
	}
	if string(used.ID) != string(cred.ID) || used.Authenticator.SignCount != 1 || used.Authenticator.CloneWarning {
		t.Errorf("used credential: sign count %d, clone warning %v", used.Authenticator.SignCount, used.Authenticator.CloneWarning)
	}
	if u.Credentials[0].Authenticator.SignCount != 0 {
		t.Error("FinishLogin modified the caller's credentials")
	}

	// The caller stores the updated counter; the next login advances it.
	u.Credentials = []webauthn.Credential{*used}
	next, err := login(t, w, key, u)
	if err != nil || next.Authenticator.SignCount != 2 {
		t.Fatalf("second login: %v (sign count %v)", err, next)
	}

	// Replaying the first assertion for its own (not yet discarded) session
	// verifies cryptographically but its counter did not increase.
	if _, err := w.FinishLogin(u, loginSession, assertion); !errors.Is(err, ErrWebAuthnCloned) {
		t.Errorf("replayed assertion: %v, want ErrWebAuthnCloned", err)
	}
	// Replaying it for a new session fails on the challenge.
	_, freshSession, err := w.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.FinishLogin(u, freshSession, assertion); !errors.Is(err, ErrWebAuthnFailed) {
		t.Errorf("assertion replayed for another session: %v, want ErrWebAuthnFailed", err)
	}
}

func TestWebAuthnWrongChallenge(t *testing.T) {
	w := newTestWebAuthn(t)
	key := webauthntest.New(testRPID, testOrigin)
	u := testWebAuthnUser()
	u.Credentials = []webauthn.Credential{register(t, w, key, u)}

	optionsA, _, err := w.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	_, sessionB, err := w.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	assertionA, err := key.Login(optionsA)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.FinishLogin(u, sessionB, assertionA)
	if !errors.Is(err, ErrWebAuthnFailed) || errors.Is(err, ErrWebAuthnCloned) || !strings.Contains(err.Error(), "challenge") {
		t.Errorf("assertion for another session's challenge: %v, want ErrWebAuthnFailed (challenge)", err)
	}

	// The same at registration.
	other := webauthntest.New(testRPID, testOrigin)
	regA, _, err := w.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	_, regSessionB, err := w.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	respA, err := other.Register(regA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.FinishRegistration(u, regSessionB, respA); !errors.Is(err, ErrWebAuthnFailed) || !strings.Contains(err.Error(), "challenge") {
		t.Errorf("attestation for another session's challenge: %v, want ErrWebAuthnFailed (challenge)", err)
	}
}

func TestWebAuthnClonedAuthenticator(t *testing.T) {
	w := newTestWebAuthn(t)
	key := webauthntest.New(testRPID, testOrigin)
	u := testWebAuthnUser()
	u.Credentials = []webauthn.Credential{register(t, w, key, u)}
	clone := key.Clone()

	// The original signs in twice: stored counter 2.
	for range 2 {
		used, err := login(t, w, key, u)
		if err != nil {
			t.Fatal(err)
		}
		u.Credentials = []webauthn.Credential{*used}
	}
	if got := u.Credentials[0].Authenticator.SignCount; got != 2 {
		t.Fatalf("stored counter %d, want 2", got)
	}

	// The clone's assertion is valid but its counter is 1 (≤ 2); with an
	// equal counter (2 ≤ 2) it is refused too.
	for want := uint32(1); want <= 2; want++ {
		_, err := login(t, w, clone, u)
		if clone.Counter() != want {
			t.Fatalf("clone counter %d, want %d", clone.Counter(), want)
		}
		if !errors.Is(err, ErrWebAuthnCloned) {
			t.Errorf("clone with counter %d: %v, want ErrWebAuthnCloned", want, err)
		}
	}
	// Once past the stored counter, the clone is indistinguishable (the
	// counter only detects clones that lag behind).
	if _, err := login(t, w, clone, u); err != nil {
		t.Errorf("clone with counter 3: %v", err)
	}

	// A stored record with a stale CloneWarning does not poison sign-in.
	u.Credentials[0].Authenticator.CloneWarning = true
	if _, err := login(t, w, key, u); err != nil {
		t.Errorf("login with stale clone warning on record: %v", err)
	}
}

func TestWebAuthnZeroCounter(t *testing.T) {
	// Authenticators without a counter (synced passkeys) always report 0:
	// no clone signal, every login passes.
	w := newTestWebAuthn(t)
	key := webauthntest.New(testRPID, testOrigin)
	key.NoCounter = true
	u := testWebAuthnUser()
	u.Credentials = []webauthn.Credential{register(t, w, key, u)}
	for range 3 {
		used, err := login(t, w, key, u)
		if err != nil {
			t.Fatal(err)
		}
		if used.Authenticator.SignCount != 0 {
			t.Errorf("sign count %d, want 0", used.Authenticator.SignCount)
		}
		u.Credentials = []webauthn.Credential{*used}
	}
}

func TestWebAuthnRefusals(t *testing.T) {
	w := newTestWebAuthn(t)
	key := webauthntest.New(testRPID, testOrigin)
	u := testWebAuthnUser()
	u.Credentials = []webauthn.Credential{register(t, w, key, u)}

	loginOptions, loginSession, err := w.BeginLogin(u)
	if err != nil {
		t.Fatal(err)
	}
	regOptions, regSession, err := w.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("existing credential excluded", func(t *testing.T) {
		var opts struct {
			Exclude []struct {
				ID string `json:"id"`
			} `json:"excludeCredentials"`
		}
		if err := json.Unmarshal(regOptions, &opts); err != nil {
			t.Fatal(err)
		}
		if len(opts.Exclude) != 1 || opts.Exclude[0].ID != base64.RawURLEncoding.EncodeToString(u.Credentials[0].ID) {
			t.Errorf("excludeCredentials: %s", regOptions)
		}
		if _, err := key.Register(regOptions); err == nil {
			t.Error("software authenticator registered an excluded credential")
		}
	})

	t.Run("phishing origin", func(t *testing.T) {
		phished := key.Clone()
		phished.RP.Origin = "https://auth.example.com.evil.test"
		resp, err := phished.Login(loginOptions)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.FinishLogin(u, loginSession, resp); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("%v, want ErrWebAuthnFailed", err)
		}
	})

	t.Run("other RP id", func(t *testing.T) {
		other := webauthntest.New("evil.test", testOrigin)
		resp, err := other.Register(regOptions)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.FinishRegistration(u, regSession, resp); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("%v, want ErrWebAuthnFailed", err)
		}
	})

	t.Run("unknown credential", func(t *testing.T) {
		stranger := webauthntest.New(testRPID, testOrigin)
		v := testWebAuthnUser()
		v.ID = []byte("user-stranger")
		v.Credentials = []webauthn.Credential{register(t, w, stranger, v)}
		opts, _, err := w.BeginLogin(v)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := stranger.Login(opts)
		if err != nil {
			t.Fatal(err)
		}
		// The stranger's valid assertion, submitted against u's session.
		if _, err := w.FinishLogin(u, loginSession, resp); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("%v, want ErrWebAuthnFailed", err)
		}
	})

	t.Run("session of another user", func(t *testing.T) {
		resp, err := key.Clone().Login(loginOptions)
		if err != nil {
			t.Fatal(err)
		}
		v := u
		v.ID = []byte("user-other")
		if _, err := w.FinishLogin(v, loginSession, resp); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("%v, want ErrWebAuthnFailed", err)
		}
	})

	t.Run("wrong session kind or garbage", func(t *testing.T) {
		resp, err := key.Clone().Login(loginOptions)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{regSession, "", "{}", "not json", `{"kind":"login","data":{}}`} {
			if _, err := w.FinishLogin(u, s, resp); !errors.Is(err, ErrWebAuthnFailed) {
				t.Errorf("session %q: %v, want ErrWebAuthnFailed", s, err)
			}
		}
		if _, err := w.FinishRegistration(u, loginSession, json.RawMessage(`{}`)); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("login session at registration: %v, want ErrWebAuthnFailed", err)
		}
	})

	t.Run("malformed or tampered response", func(t *testing.T) {
		for _, r := range []string{"", "null", "{}", `{"id":"x","type":"public-key"}`} {
			if _, err := w.FinishLogin(u, loginSession, json.RawMessage(r)); !errors.Is(err, ErrWebAuthnFailed) {
				t.Errorf("login response %q: %v", r, err)
			}
			if _, err := w.FinishRegistration(u, regSession, json.RawMessage(r)); !errors.Is(err, ErrWebAuthnFailed) {
				t.Errorf("registration response %q: %v", r, err)
			}
		}
		resp, err := key.Clone().Login(loginOptions)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(resp, &body); err != nil {
			t.Fatal(err)
		}
		r := body["response"].(map[string]any)
		sig, _ := base64.RawURLEncoding.DecodeString(r["signature"].(string))
		sig[len(sig)-1] ^= 1
		r["signature"] = base64.RawURLEncoding.EncodeToString(sig)
		tampered, _ := json.Marshal(body)
		if _, err := w.FinishLogin(u, loginSession, tampered); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("tampered signature: %v, want ErrWebAuthnFailed", err)
		}
	})

	t.Run("expired session", func(t *testing.T) {
		resp, err := key.Clone().Login(loginOptions)
		if err != nil {
			t.Fatal(err)
		}
		var sess struct {
			Kind string         `json:"kind"`
			Data map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(loginSession), &sess); err != nil {
			t.Fatal(err)
		}
		exp, err := time.Parse(time.RFC3339Nano, sess.Data["expires"].(string))
		if err != nil || time.Until(exp) < 4*time.Minute || time.Until(exp) > WebAuthnTimeout {
			t.Errorf("session expires %v (%v), want in about %v", exp, err, WebAuthnTimeout)
		}
		same, _ := json.Marshal(sess)
		if _, err := w.FinishLogin(u, string(same), resp); err != nil {
			t.Fatalf("re-encoded session: %v", err)
		}
		sess.Data["expires"] = time.Now().Add(-time.Second).Format(time.RFC3339Nano)
		expired, _ := json.Marshal(sess)
		if _, err := w.FinishLogin(u, string(expired), resp); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("%v, want ErrWebAuthnFailed", err)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		if _, _, err := w.BeginLogin(testWebAuthnUser()); !errors.Is(err, ErrWebAuthnNoCredentials) {
			t.Errorf("%v, want ErrWebAuthnNoCredentials", err)
		}
	})

	t.Run("registering a credential the user already has", func(t *testing.T) {
		// A caller whose exclude list was bypassed (e.g. a stale user
		// record at Begin) still cannot register the same id twice.
		fresh := webauthntest.New(testRPID, testOrigin)
		v := testWebAuthnUser()
		opts, sess, err := w.BeginRegistration(v)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := fresh.Register(opts)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := w.FinishRegistration(v, sess, resp)
		if err != nil {
			t.Fatal(err)
		}
		v.Credentials = []webauthn.Credential{*cred}
		if _, err := w.FinishRegistration(v, sess, resp); !errors.Is(err, ErrWebAuthnFailed) {
			t.Errorf("%v, want ErrWebAuthnFailed", err)
		}
	})
}

func TestNewWebAuthnConfig(t *testing.T) {
	for _, cfg := range []WebAuthnConfig{
		{RPName: "x", Origins: []string{testOrigin}},
		{RPID: testRPID, Origins: []string{testOrigin}},
		{RPID: testRPID, RPName: "x"},
		{RPID: "https://example.com/", RPName: "x", Origins: []string{testOrigin}},
	} {
		if _, err := NewWebAuthn(cfg); err == nil {
			t.Errorf("NewWebAuthn(%+v): want error", cfg)
		}
	}
}

func TestUnmarshalCredentialRejects(t *testing.T) {
	for _, s := range []string{"", "null", "{}", `{"id":"AQID"}`, "not json"} {
		if _, err := UnmarshalCredential(s); err == nil {
			t.Errorf("UnmarshalCredential(%q): want error", s)
		}
	}
	if _, err := MarshalCredential(nil); err == nil {
		t.Error("MarshalCredential(nil): want error")
	}
}

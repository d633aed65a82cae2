package smssink

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/latch-dev/latch/experience/messaging"
)

const secret = "smssink-test-secret-0123456789"

func TestReceivesFromTheWebhookConnector(t *testing.T) {
	sink := Start(t, secret)
	c, err := messaging.New(messaging.Config{Env: messaging.EnvProduction, SMSWebhookURL: sink.URL(), SMSWebhookSecret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.SMS.Send(ctx, messaging.Message{To: "+14155550123", Purpose: messaging.PurposeForgotPassword, Code: "246810", ExpiresIn: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := c.SMS.Send(ctx, messaging.Message{To: "+14155550123", Purpose: messaging.PurposeSignIn, Code: "135791", ExpiresIn: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	first := sink.WaitFor(t, "+14155550123", 5*time.Second)
	if first.Code != "246810" || first.Purpose != messaging.PurposeForgotPassword || first.ExpiresIn != 600 || first.Delivery == "" {
		t.Errorf("first %+v", first)
	}
	if second := sink.WaitFor(t, "+14155550123", 5*time.Second); second.Code != "135791" {
		t.Errorf("second %+v", second)
	}
	if sink.Count("+14155550123") != 2 || sink.Count("+15555550100") != 0 || sink.Rejected() != 0 {
		t.Errorf("count %d rejected %d", sink.Count("+14155550123"), sink.Rejected())
	}
}

func TestFailNextExercisesRetries(t *testing.T) {
	sink := Start(t, secret)
	sink.FailNext(2, http.StatusServiceUnavailable)
	c, err := messaging.New(messaging.Config{SMSWebhookURL: sink.URL(), SMSWebhookSecret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SMS.Send(context.Background(), messaging.Message{To: "+14155550123", Purpose: messaging.PurposeSignIn, Code: "123456", ExpiresIn: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if sink.Requests() != 3 || sink.Count("+14155550123") != 1 {
		t.Errorf("requests %d, accepted %d", sink.Requests(), sink.Count("+14155550123"))
	}
}

func TestRejectsWhatAReceiverMustReject(t *testing.T) {
	sink := Start(t, secret)
	body := []byte(`{"to":"+1","purpose":"SignIn","code":"123456","message":"m","expires_in":60}`)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	old := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	tests := []struct {
		name, method, ctype, ts, sig string
		body                         []byte
		want                         int
	}{
		{"valid", http.MethodPost, "application/json", now, messaging.SignWebhook(secret, now, body), body, http.StatusNoContent},
		{"GET", http.MethodGet, "application/json", now, messaging.SignWebhook(secret, now, body), body, http.StatusMethodNotAllowed},
		{"form", http.MethodPost, "application/x-www-form-urlencoded", now, messaging.SignWebhook(secret, now, body), body, http.StatusUnsupportedMediaType},
		{"wrong secret", http.MethodPost, "application/json", now, messaging.SignWebhook("another-secret-0123456789", now, body), body, http.StatusUnauthorized},
		{"unsigned", http.MethodPost, "application/json", now, "", body, http.StatusUnauthorized},
		{"replayed", http.MethodPost, "application/json", old, messaging.SignWebhook(secret, old, body), body, http.StatusUnauthorized},
		{"unknown field", http.MethodPost, "application/json", now, messaging.SignWebhook(secret, now, []byte(`{"to":"+1","purpose":"SignIn","code":"1","message":"m","expires_in":60,"x":1}`)), []byte(`{"to":"+1","purpose":"SignIn","code":"1","message":"m","expires_in":60,"x":1}`), http.StatusBadRequest},
	}
	for _, tc := range tests {
		req, err := http.NewRequest(tc.method, sink.URL(), bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", tc.ctype)
		req.Header.Set(messaging.HeaderTimestamp, tc.ts)
		req.Header.Set(messaging.HeaderSignature, tc.sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	if sink.Count("+1") != 1 || sink.Rejected() != len(tests)-1 {
		t.Errorf("accepted %d, rejected %d", sink.Count("+1"), sink.Rejected())
	}
}

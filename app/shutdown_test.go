package app_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-dev/latch/app/apptest"
	"github.com/latch-dev/latch/store/faultproxy"
)

// Graceful shutdown: requests still running when the drain times out are
// cut, and the log says so with their number; a drain that completes says
// that instead.
func TestShutdownDrainTimeoutIsLogged(t *testing.T) {
	apptest.Each(t, func(t *testing.T, b apptest.Backend) {
		opts := []apptest.Option{apptest.With("LATCH_SHUTDOWN_TIMEOUT", "200ms"), apptest.With("LATCH_REQUEST_TIMEOUT", "5s")}
		var (
			f     *v1Fix
			block func() (release func())
		)
		if b == apptest.Postgres {
			var p *faultproxy.Proxy
			f, p = startBehindProxy(t, opts...)
			block = func() func() {
				setMode(t, p, faultproxy.Freeze)
				return func() { setMode(t, p, faultproxy.Forward) }
			}
		} else {
			f = v1Start(t, b, opts...)
			block = func() func() { return lockSQLite(t, f.Env) }
		}
		serve := func() (addr string, stop func() error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- f.App.Serve(ctx, ln) }()
			return "http://" + ln.Addr().String(), func() error {
				cancel()
				select {
				case err := <-errc:
					return err
				case <-time.After(30 * time.Second):
					t.Fatal("Serve did not return after its context ended")
					return nil
				}
			}
		}

		// Nothing in flight: the drain completes.
		_, stop := serve()
		if err := stop(); err != nil {
			t.Fatalf("serve: %v", err)
		}
		if done := logLines(f.Env, "shutdown complete"); len(done) != 1 || done[0]["drained"] != true {
			t.Fatalf("no drain-complete line: %s", f.LogText())
		}

		// One write stuck on the database when the shutdown begins.
		addr, stop := serve()
		release := block()
		defer release()
		errc := make(chan error, 1)
		go func() {
			req, err := http.NewRequest(http.MethodPost, addr+"/v1/users", strings.NewReader(`{"username":"`+v1Name("cut")+`"}`))
			if err != nil {
				errc <- err
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+f.tok)
			_, err = http.DefaultClient.Do(req)
			errc <- err
		}()
		// In flight: the gauge counts it besides this scrape itself.
		for deadline := time.Now().Add(10 * time.Second); metricValue(t, f.Env, "latch_http_requests_in_flight") < 2; {
			if time.Now().After(deadline) {
				t.Fatal("the blocked request never got in flight")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := stop(); err != nil {
			t.Fatalf("serve: %v", err)
		}
		if err := <-errc; err == nil {
			t.Error("the cut request got an answer")
		}
		release()
		lines := logLines(f.Env, "shutdown drain timed out; cutting the remaining requests")
		if len(lines) != 1 {
			t.Fatalf("%d drain-timeout lines: %s", len(lines), f.LogText())
		}
		if lines[0]["requests_cut"] != float64(1) || lines[0]["level"] != "WARN" {
			t.Fatalf("drain-timeout line %v, want WARN with requests_cut 1", lines[0])
		}
	})
}

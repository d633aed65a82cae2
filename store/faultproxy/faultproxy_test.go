package faultproxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// echoServer answers each line with "echo: " + the line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write([]byte("echo: " + sc.Text() + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends line and reads the answer, waiting at most wait.
func roundTrip(c net.Conn, r *bufio.Reader, line string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	s, err := r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

func TestModes(t *testing.T) {
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	c, r := dial()
	if got, err := roundTrip(c, r, "a", 5*time.Second); err != nil || got != "echo: a" {
		t.Fatalf("forward: %q %v", got, err)
	}

	// Freeze: nothing comes back, then everything held is delivered.
	if err := p.Set(Freeze); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, r, "b", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("frozen: got an answer or %v", err)
	}
	if err := p.Set(Forward); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "echo: b\n" {
		t.Fatalf("after the thaw: %q %v", got, err)
	}

	// Cut: the open connection breaks, new ones are refused.
	if err := p.Set(Cut); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(c, r, "c", 5*time.Second); err == nil {
		t.Fatal("a cut connection still answers")
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Fatal("a cut proxy accepts connections")
	}
	if err := p.Set(Forward); err != nil {
		t.Fatal(err)
	}
	c, r = dial()
	if got, err := roundTrip(c, r, "d", 5*time.Second); err != nil || got != "echo: d" {
		t.Fatalf("after the cut: %q %v", got, err)
	}

	// FreezeAfter: the triggering answer is delivered, the next is held.
	p.FreezeAfter([]byte("echo: e"))
	if got, err := roundTrip(c, r, "e", 5*time.Second); err != nil || got != "echo: e" {
		t.Fatalf("trigger: %q %v", got, err)
	}
	if p.Mode() != Freeze {
		t.Fatalf("mode %s after the trigger", p.Mode())
	}
	if _, err := roundTrip(c, r, "f", 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after the trigger: got an answer or %v", err)
	}
	p.Set(Forward)

	// A client that gives up during a freeze frees its link.
	p.Set(Freeze)
	c2, _ := dial()
	c2.Write([]byte("g\n"))
	for deadline := time.Now().Add(5 * time.Second); p.Links() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the new link never opened")
		}
	}
	c2.Close()
	for deadline := time.Now().Add(5 * time.Second); p.Links() > 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d links open after a client closed during the freeze", p.Links())
		}
	}
}

// Package faultproxy is a TCP proxy for fault-injection tests and benches:
// put it between Latch and its database, then cut the database off or
// freeze it without touching the (shared) database server itself.
//
//   - Forward: bytes flow both ways (the normal state).
//   - Cut: every open connection is reset and new ones are refused, as when
//     the database host goes down.
//   - Freeze: connections stay open, new ones are accepted, but no byte is
//     forwarded until Forward, as when the database process is stopped
//     (SIGSTOP) or the network silently drops packets.
//
// FreezeAfter freezes at a precise point of the conversation instead of a
// moment in time: right after the database sent given bytes.
package faultproxy

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"os"
	"sync"
	"time"
)

// Mode is what the proxy does with traffic.
type Mode int

// Modes.
const (
	Forward Mode = iota
	Cut
	Freeze
)

func (m Mode) String() string {
	switch m {
	case Cut:
		return "cut"
	case Freeze:
		return "freeze"
	default:
		return "forward"
	}
}

// maxHeld bounds the bytes a frozen direction of one connection buffers
// before it stops reading (then the sender's socket buffers fill up, as
// with a stopped peer).
const maxHeld = 1 << 20

// pollEvery is how often a frozen direction holding bytes checks whether
// it may deliver them.
const pollEvery = 10 * time.Millisecond

// Proxy forwards one loopback port to a target address.
type Proxy struct {
	target string
	addr   string

	mu     sync.Mutex
	mode   Mode
	ln     net.Listener
	links  map[*link]struct{}
	closed bool
	// freezeOn, when set, freezes the proxy once the database sends bytes
	// containing it.
	freezeOn []byte
	wg       sync.WaitGroup
}

// Start listens on a free loopback port and forwards it to target
// (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), links: map[*link]struct{}{}}
	p.serve(ln)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

// URL returns rawURL (a postgres:// URL) with its host replaced by the
// proxy's address; everything else (database, search_path, …) is kept.
func (p *Proxy) URL(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	u.Host = p.addr
	return u.String(), nil
}

// Mode returns the current mode.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Links returns how many proxied connections are open.
func (p *Proxy) Links() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Set switches the mode. Cut resets every connection and closes the
// listener (connection attempts are refused); leaving Cut listens again on
// the same port. Leaving Freeze delivers what was held.
func (p *Proxy) Set(m Mode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: closed")
	}
	prev := p.mode
	p.mode = m
	switch {
	case m == Cut && prev != Cut:
		p.ln.Close()
		p.ln = nil
		for l := range p.links {
			l.reset()
		}
	case m != Cut && prev == Cut:
		// The port was ours a moment ago; re-binding it only fails if
		// another process took it meanwhile.
		var ln net.Listener
		var err error
		for i := 0; i < 50; i++ {
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			p.mode = Cut
			return err
		}
		p.serve(ln)
	}
	return nil
}

// FreezeAfter arms a freeze: as soon as the database sends bytes that
// contain pattern (within one read), they are delivered and the proxy
// switches to Freeze. For example "COMMIT\x00", the tag of PostgreSQL's
// answer to a COMMIT, freezes the database right after a transaction
// committed.
func (p *Proxy) FreezeAfter(pattern []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.freezeOn = append([]byte(nil), pattern...)
}

// tripped freezes the proxy when chunk, just sent by the database, fires an
// armed FreezeAfter (the caller still delivers chunk).
func (p *Proxy) tripped(chunk []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.freezeOn != nil && bytes.Contains(chunk, p.freezeOn) {
		p.freezeOn = nil
		p.mode = Freeze
	}
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	if p.ln != nil {
		p.ln.Close()
	}
	for l := range p.links {
		l.reset()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) frozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode == Freeze
}

// serve accepts on ln until it is closed. Called with p.mu held or before
// the proxy is shared.
func (p *Proxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			l := &link{client: c, upstream: up, done: make(chan struct{})}
			p.mu.Lock()
			if p.closed || p.mode == Cut {
				p.mu.Unlock()
				l.reset()
				continue
			}
			p.links[l] = struct{}{}
			p.wg.Add(2)
			p.mu.Unlock()
			go p.pipe(l, up, c, false)
			go p.pipe(l, c, up, true)
		}
	}()
}

// link is one proxied connection.
type link struct {
	client, upstream net.Conn
	once             sync.Once
	done             chan struct{} // closed by reset
}

// reset closes both ends; the client sees a connection reset rather than
// an orderly close.
func (l *link) reset() {
	l.once.Do(func() {
		close(l.done)
		if tc, ok := l.client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		l.client.Close()
		l.upstream.Close()
	})
}

// pipe copies src to dst. While the proxy is frozen it keeps reading (so a
// peer that gives up and closes is noticed and the link freed) but holds
// the bytes, up to maxHeld, until the proxy forwards again.
func (p *Proxy) pipe(l *link, dst, src net.Conn, fromUpstream bool) {
	defer p.wg.Done()
	defer func() {
		l.reset()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	var held []byte
	for {
		if len(held) > 0 && !p.frozen() {
			if _, err := dst.Write(held); err != nil {
				return
			}
			held = held[:0]
		}
		if len(held) >= maxHeld {
			select {
			case <-l.done:
				return
			case <-time.After(pollEvery):
			}
			continue
		}
		// Holding bytes: wake up now and then to deliver them once thawed.
		var deadline time.Time
		if len(held) > 0 {
			deadline = time.Now().Add(pollEvery)
		}
		_ = src.SetReadDeadline(deadline)
		n, err := src.Read(buf)
		if n > 0 {
			if fromUpstream && len(held) == 0 && !p.frozen() {
				p.tripped(buf[:n])
				if p.frozen() { // this chunk is the trigger: it goes through
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
					continue
				}
			}
			if p.frozen() || len(held) > 0 {
				held = append(held, buf[:n]...)
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return
		}
	}
}

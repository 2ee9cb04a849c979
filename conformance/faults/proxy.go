// Package faults injects network faults on loopback for tests: a TCP proxy
// that can cut the path between a client and a server the way a partition
// does — silently, with no reset — and heal it.
package faults

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Proxy forwards TCP connections from its own loopback address to a target.
type Proxy struct {
	target string
	lis    net.Listener

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	done  bool
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) { return NewProxyAt("127.0.0.1:0", target) }

// NewProxyAt listens on addr and forwards to target: for clients that
// derive a second port from the first (Nacos' gRPC port is its HTTP port
// + 1000), which need two proxies on related ports.
func NewProxyAt(addr, target string) (*Proxy, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, lis: lis, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial instead of the target.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Cut partitions the path: bytes on open connections are dropped and new
// connections are accepted but never reach the target. Nothing is reset, so
// peers notice only through their own timeouts, as in a real partition.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
}

// Heal ends the partition. Connections opened or stalled during it are
// closed, as a real network would eventually time them out, so clients
// reconnect through the healed path.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.cut = false
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.lis.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			if p.isCut() {
				_, _ = io.Copy(io.Discard, c) // a black hole until healed or closed
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			if !p.track(up) {
				return
			}
			defer p.untrack(up)
			done := make(chan struct{}, 2)
			go func() { p.pipe(up, c); done <- struct{}{} }()
			go func() { p.pipe(c, up); done <- struct{}{} }()
			<-done
		}()
	}
}

// pipe copies src to dst, discarding while the path is cut.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isCut() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				_ = dst.(*net.TCPConn).CloseWrite()
			}
			return
		}
	}
}

package raftstore

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// PeerTLS runs a cluster's Raft transport over mutual TLS: Server is what
// this node listens with (it must require and verify the peers' client
// certificates); Client gives, for each connection, what it dials the
// others with (it verifies them and presents this node's certificate).
type PeerTLS struct {
	Server *tls.Config
	Client func() *tls.Config
}

// tlsLayer is a raft.StreamLayer over TLS.
type tlsLayer struct {
	net.Listener
	client    func() *tls.Config
	advertise net.Addr
}

func newTLSLayer(addr string, t *PeerTLS) (*tlsLayer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("raft transport: %q is not HOST:PORT: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("raft transport: %s is not an address the other nodes can reach (name this node's host)", addr)
	}
	lis, err := tls.Listen("tcp", addr, t.Server)
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", addr, err)
	}
	// The others reach this node at the address as given (a host name
	// stays a name, for the certificates that name it), on the port bound.
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	return &tlsLayer{Listener: lis, client: t.Client, advertise: advertised(net.JoinHostPort(host, port))}, nil
}

// advertised is the address this node's peers dial.
type advertised string

func (a advertised) Network() string { return "tcp" }
func (a advertised) String() string  { return string(a) }

// Dial implements raft.StreamLayer.
func (l *tlsLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	cfg := l.client()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(string(address)); err == nil {
			cfg.ServerName = host
		}
	}
	return tls.DialWithDialer(d, "tcp", string(address), cfg)
}

// Addr implements net.Listener: the address the others reach this node at.
func (l *tlsLayer) Addr() net.Addr { return l.advertise }

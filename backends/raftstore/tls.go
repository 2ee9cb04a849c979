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
// certificates), Client what it dials the others with (it verifies them
// and presents this node's certificate).
type PeerTLS struct {
	Server, Client *tls.Config
}

// tlsLayer is a raft.StreamLayer over TLS.
type tlsLayer struct {
	net.Listener
	client    *tls.Config
	advertise net.Addr
}

func newTLSLayer(addr string, t *PeerTLS) (*tlsLayer, error) {
	lis, err := tls.Listen("tcp", addr, t.Server)
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", addr, err)
	}
	return &tlsLayer{Listener: lis, client: t.Client, advertise: lis.Addr()}, nil
}

// Dial implements raft.StreamLayer.
func (l *tlsLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	cfg := l.client.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(string(address)); err == nil {
			cfg.ServerName = host
		}
	}
	return tls.DialWithDialer(d, "tcp", string(address), cfg)
}

// Addr implements net.Listener: the address the others reach this node at.
func (l *tlsLayer) Addr() net.Addr { return l.advertise }

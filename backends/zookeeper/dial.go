package zookeeper

import (
	"net"
	"sync/atomic"
	"time"
)

// handshakeLimit bounds how long the client waits for ZooKeeper's answer
// to its connect request. The client library allows ten times its receive
// timeout (over a minute with the default session timeout), and a server
// that has just started can accept a connection and never answer it; with
// the bound the client gives up and dials again instead of stalling.
func handshakeLimit(sessionTimeout time.Duration) time.Duration {
	return max(2*time.Second, sessionTimeout/3)
}

// dialer returns a zk.Dialer whose connections cap their deadlines at
// limit until the first byte arrives, which is the server's answer to the
// connect request. Later deadlines, set by the session's receive loop, are
// left as the client library sets them.
func dialer(limit time.Duration) func(network, address string, timeout time.Duration) (net.Conn, error) {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &handshakeConn{Conn: c, limit: limit}, nil
	}
}

type handshakeConn struct {
	net.Conn
	limit    time.Duration
	answered atomic.Bool
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.answered.Store(true)
	}
	return n, err
}

func (c *handshakeConn) capped(t time.Time) time.Time {
	if c.answered.Load() || t.IsZero() {
		return t
	}
	if limit := time.Now().Add(c.limit); t.After(limit) {
		return limit
	}
	return t
}

func (c *handshakeConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.capped(t))
}
func (c *handshakeConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.capped(t))
}

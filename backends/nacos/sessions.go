package nacos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"

	"github.com/junctionhq/junction/backends/internal/heldsessions"
	"github.com/junctionhq/junction/model"
)

// sessionConn is the connection of one Junction session. Nacos ties an
// ephemeral instance to the connection that registered it, not to a TTL:
// the driver gives every session connections of its own (one per Nacos
// namespace), enforces the session's TTL itself, and on expiry deregisters
// its instances and closes the connections. Should the gateway die, the
// connections close with it and the server removes the instances: that
// is the backstop.
type sessionConn struct {
	mu      sync.Mutex
	clients map[string]naming_client.INamingClient
	closed  bool
}

func (c *sessionConn) close() {
	c.mu.Lock()
	clients := c.clients
	c.clients, c.closed = nil, true
	c.mu.Unlock()
	for _, cl := range clients {
		cl.CloseClient()
	}
}

// client returns the session's connection to a namespace.
func (d *Driver) sessionClient(ctx context.Context, sid, ns string) (naming_client.INamingClient, error) {
	d.mu.Lock()
	conn, ok := d.conns[sid]
	d.mu.Unlock()
	if !ok || !d.sessions.Live(sid) {
		return nil, fmt.Errorf("%w: session %s", model.ErrSessionExpired, sid)
	}
	conn.mu.Lock()
	cl, ok := conn.clients[ns]
	conn.mu.Unlock()
	if ok {
		return cl, nil
	}
	cl, err := d.newNamingClient(ctx, ns)
	if err != nil {
		return nil, err
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.closed {
		go cl.CloseClient()
		return nil, fmt.Errorf("%w: session %s", model.ErrSessionExpired, sid)
	}
	if old, ok := conn.clients[ns]; ok {
		go cl.CloseClient()
		return old, nil
	}
	conn.clients[ns] = cl
	return cl, nil
}

// sessionConn returns the connection an ephemeral instance of svc
// registers through. Nacos 2 keeps one instance of a service per
// connection (a second registration replaces the first), so a session
// owns at most one instance of a service.
func (d *Driver) sessionConn(ctx context.Context, sid string, svc model.ServiceKey, id string) (naming_client.INamingClient, error) {
	if sid == "" {
		return nil, model.Invalid("session", "an ephemeral instance needs a session")
	}
	var other string
	held, _ := d.sessions.Owned(sid)
	for k := range held {
		if k.svc == svc && k.id != id {
			other = k.id
		}
	}
	if other != "" {
		return nil, model.Invalid("session", "session %s already holds instance %q of %s; nacos keeps one ephemeral instance of a service per connection, so register each instance with its own session", sid, other, svc)
	}
	return d.sessionClient(ctx, sid, d.nacosNamespace(svc.Namespace))
}

// CreateSession starts a session the driver expires itself.
func (d *Driver) CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return model.Session{}, 0, fmt.Errorf("%w: driver closed", model.ErrUnavailable)
	}
	id := heldsessions.NewID()
	d.conns[id] = &sessionConn{clients: map[string]naming_client.INamingClient{}}
	d.sessions.Add(id, ttl)
	return model.Session{ID: id, TTL: ttl}, d.clock.tick(0), nil
}

// KeepAlive renews a session.
func (d *Driver) KeepAlive(_ context.Context, id string) (model.Session, error) {
	return d.sessions.KeepAliveSession(id)
}

// CloseSession ends a session: its instances are deregistered and its
// connections closed.
func (d *Driver) CloseSession(_ context.Context, id string) (int64, error) {
	return d.sessions.CloseSession(id, func(own map[instKey]owned) (int64, error) {
		if err := d.expire(id, own); err != nil {
			return 0, err
		}
		return d.clock.tick(0), nil
	})
}

// expire removes an ended session's instances: each is deregistered
// through the session's connection, which is then closed. A deregistration
// that fails is not retried: closing the connection makes the server
// remove what the connection registered.
func (d *Driver) expire(id string, own map[instKey]owned) error {
	d.mu.Lock()
	conn, ok := d.conns[id]
	delete(d.conns, id)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	var errs []error
	conn.mu.Lock()
	clients := conn.clients
	conn.mu.Unlock()
	for k, a := range own {
		if cl, ok := clients[d.nacosNamespace(k.svc.Namespace)]; ok {
			if err := deregisterWith(cl, k.svc, a, true); err != nil {
				errs = append(errs, err)
			}
		}
	}
	conn.close()
	d.mu.Lock()
	views := make(map[instKey]*view, len(own))
	for k := range own {
		if v, ok := d.views[k.svc]; ok {
			views[k] = v
		}
	}
	d.mu.Unlock()
	for k, v := range views {
		v.acknowledged(k.id, nil)
	}
	if err := errors.Join(errs...); err != nil {
		d.log.Warn("deregistration of an ended session's instances failed; its connections are closed, so the server removes them", "session", id, "err", err)
	}
	return nil
}

// dropFromSession deregisters one instance of a live session.
func (d *Driver) dropFromSession(sid string, k instKey, a owned) error {
	d.mu.Lock()
	conn, ok := d.conns[sid]
	d.mu.Unlock()
	if !ok {
		return nil
	}
	conn.mu.Lock()
	cl, ok := conn.clients[d.nacosNamespace(k.svc.Namespace)]
	conn.mu.Unlock()
	if !ok {
		return nil
	}
	return deregisterWith(cl, k.svc, a, true)
}

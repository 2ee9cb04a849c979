// Package nacos is Junction's Nacos-compatible front end: the Nacos 2.x
// gRPC protocol, as nacos-sdk-go, the Java client and Spring Cloud Alibaba
// speak it, translated onto the backends contract, so that an unmodified
// Nacos client runs over any of Junction's stores and gets the guarantees
// the conformance matrix shows for it.
//
// The mapping: a tenant is a namespace (empty: public); groups, clusters,
// weights, enabled, healthy and metadata are Junction's own; an ephemeral
// instance belongs to the client's connection, which holds a session for
// it: the connection's end closes the session and removes the instances,
// and a server that dies leaves them to the session's expiry. A config's
// md5 is Junction's, and casMd5 is a compare-and-set on the revision read
// with it.
package nacos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Config configures the front end.
type Config struct {
	// SessionTTL is how long a connection's ephemeral instances outlive a
	// server that dies without closing the connection's session.
	SessionTTL time.Duration
	// Keepalive is how long a connection may stay silent before the server
	// pings it; a connection that does not answer within as long again is
	// dead, and closed.
	Keepalive time.Duration
	// Logger receives the front end's logs; nil: slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: instances outlive a crashed server
// by 10 s, a silent connection is pinged after 10 s.
func DefaultConfig() Config {
	return Config{SessionTTL: 10 * time.Second, Keepalive: 10 * time.Second}
}

// Server serves the Nacos protocol over a backend.
type Server struct {
	b    backends.Backend
	cfg  Config
	log  *slog.Logger
	grpc *grpc.Server

	mu      sync.Mutex
	conns   map[string]*conn // by the client's address
	arrived chan struct{}    // closed and replaced when a connection is set up
	seq     atomic.Int64
}

// New returns a front end over b.
func New(b backends.Backend, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultConfig().SessionTTL
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = DefaultConfig().Keepalive
	}
	s := &Server{b: b, cfg: cfg, log: cfg.Logger.With("component", "nacos"), conns: map[string]*conn{}, arrived: make(chan struct{})}
	s.grpc = grpc.NewServer(
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.Keepalive, Timeout: cfg.Keepalive}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(16<<20))
	nacosgrpc.RegisterRequestServer(s.grpc, requestService{s})
	nacosgrpc.RegisterBiRequestStreamServer(s.grpc, streamService{s})
	return s
}

// Serve serves the gRPC protocol on lis until ctx ends.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.log.Info("nacos gRPC protocol serving", "addr", lis.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(lis) }()
	select {
	case <-ctx.Done():
		s.grpc.Stop()
		<-errc
		return nil
	case err := <-errc:
		return err
	}
}

// requestService answers the unary Request RPC.
type requestService struct{ s *Server }

// Request implements the Nacos Request service: the payload's type picks
// the handler.
func (r requestService) Request(ctx context.Context, p *nacosgrpc.Payload) (*nacosgrpc.Payload, error) {
	typ := p.GetMetadata().GetType()
	h, found := handlers[typ]
	if !found {
		return payload("ErrorResponse", fail(errNoHandler, "Junction does not serve "+typ))
	}
	respType, body := h(ctx, r.s, p.GetBody().GetValue())
	return payload(respType, body)
}

// handler serves one request type: it returns the response's type and
// body.
type handler func(ctx context.Context, s *Server, body []byte) (string, any)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"ServerCheckRequest":       serverCheck,
		"HealthCheckRequest":       func(context.Context, *Server, []byte) (string, any) { return "HealthCheckResponse", ok() },
		"InstanceRequest":          registerInstance,
		"BatchInstanceRequest":     batchRegister,
		"SubscribeServiceRequest":  subscribe,
		"ServiceQueryRequest":      queryService,
		"ServiceListRequest":       listServices,
		"ConfigPublishRequest":     publishConfig,
		"ConfigQueryRequest":       queryConfig,
		"ConfigRemoveRequest":      removeConfig,
		"ConfigBatchListenRequest": batchListen,
	}
}

// decode reads a request body into v, and the request id into the
// response that echoes it.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("not a request body: %w: %v", model.ErrInvalidArgument, err)
	}
	return nil
}

// failure maps an error onto the protocol's codes.
func failure(err error) response {
	switch {
	case errors.Is(err, model.ErrInvalidArgument), errors.Is(err, model.ErrTooLarge):
		return fail(errInvalid, err.Error())
	case errors.Is(err, model.ErrNotFound):
		return fail(errNotFound, err.Error())
	case errors.Is(err, model.ErrConflict):
		return fail(errConflict, err.Error())
	case errors.Is(err, model.ErrUnsupported):
		return fail(errNotImplemented, err.Error())
	}
	return fail(errServer, err.Error())
}

func serverCheck(ctx context.Context, s *Server, _ []byte) (string, any) {
	type serverCheckResponse struct {
		response
		ConnectionID string `json:"connectionId"`
	}
	return "ServerCheckResponse", serverCheckResponse{response: ok(),
		ConnectionID: fmt.Sprintf("%d_%d_%s", time.Now().UnixMilli(), s.seq.Add(1), peerAddr(ctx))}
}

func peerAddr(ctx context.Context) string {
	if p, found := peer.FromContext(ctx); found {
		return p.Addr.String()
	}
	return ""
}

// conn is a client's connection: its bi-directional stream, which the
// server pushes on, and what the connection holds.
type conn struct {
	s    *Server
	addr string
	ctx  context.Context
	stop context.CancelFunc

	sendMu sync.Mutex
	stream nacosgrpc.BiRequestStream_RequestBiStreamServer

	mu      sync.Mutex
	session string                                 // for its ephemeral instances; "" until the first
	subs    map[model.ServiceKey]*subscription     // services it subscribed to
	listens map[model.ConfigKey]context.CancelFunc // configs it listens to
	pushes  atomic.Int64
}

// connOf returns the connection a unary request arrived on: the stream set
// up from the same client address. A client sets its stream up just
// before its first request; this waits for it a little.
func (s *Server) connOf(ctx context.Context) (*conn, bool) {
	addr := peerAddr(ctx)
	deadline := time.After(3 * time.Second)
	for {
		s.mu.Lock()
		c, found := s.conns[addr]
		arrived := s.arrived
		s.mu.Unlock()
		if found {
			return c, true
		}
		select {
		case <-arrived:
		case <-deadline:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

var errUnregisteredConn = errors.New("the connection is not set up (no ConnectionSetupRequest on its stream)")

// streamService serves the BiRequestStream RPC: a client's connection.
type streamService struct{ s *Server }

// RequestBiStream implements the Nacos BiRequestStream service. The first
// message sets the connection up; later ones acknowledge the server's
// pushes. When the stream ends, so does everything the connection held.
func (t streamService) RequestBiStream(stream nacosgrpc.BiRequestStream_RequestBiStreamServer) error {
	s := t.s
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if typ := first.GetMetadata().GetType(); typ != "ConnectionSetupRequest" {
		return fmt.Errorf("the first message of a connection is a ConnectionSetupRequest, not %s", typ)
	}
	ctx, stop := context.WithCancel(stream.Context())
	defer stop()
	c := &conn{s: s, addr: peerAddr(stream.Context()), ctx: ctx, stop: stop, stream: stream,
		subs: map[model.ServiceKey]*subscription{}, listens: map[model.ConfigKey]context.CancelFunc{}}
	s.mu.Lock()
	if old := s.conns[c.addr]; old != nil {
		old.stop()
	}
	s.conns[c.addr] = c
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	s.log.Debug("connection set up", "client", c.addr)
	defer c.close()
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		for {
			if _, err := stream.Recv(); err != nil {
				return // the client is gone: close says goodbye for it
			}
			// An acknowledgement of a push: the push was best effort, and
			// a client that misses one catches up at its next query.
		}
	}()
	select {
	case <-gone:
	case <-ctx.Done(): // ended by the server (its session expired, a newer connection)
	}
	return nil
}

// close ends what the connection held: its subscriptions and listens, and
// its session, whose ephemeral instances go with it.
func (c *conn) close() {
	c.stop()
	c.s.mu.Lock()
	if c.s.conns[c.addr] == c {
		delete(c.s.conns, c.addr)
	}
	c.s.mu.Unlock()
	c.mu.Lock()
	session := c.session
	c.session = ""
	c.mu.Unlock()
	if session == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.s.b.CloseSession(ctx, session); err != nil && !errors.Is(err, model.ErrSessionExpired) {
		c.s.log.Warn("closing a connection's session: its instances go when it expires", "client", c.addr, "err", err)
	}
}

// sessionID returns the connection's session, created on first use and
// kept alive while the connection lives.
func (c *conn) sessionID(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != "" {
		return c.session, nil
	}
	if c.ctx.Err() != nil {
		return "", errUnregisteredConn
	}
	sess, _, err := c.s.b.CreateSession(ctx, c.s.cfg.SessionTTL)
	if err != nil {
		return "", err
	}
	c.session = sess.ID
	go c.keepAlive(sess.ID)
	return sess.ID, nil
}

func (c *conn) keepAlive(id string) {
	t := time.NewTicker(c.s.cfg.SessionTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.SessionTTL/3)
		_, err := c.s.b.KeepAlive(ctx, id)
		cancel()
		if errors.Is(err, model.ErrSessionExpired) {
			// Its instances are gone: the client must register them again,
			// which it does after a reconnect.
			c.s.log.Warn("a connection's session expired: closing the connection", "client", c.addr)
			c.stop()
			return
		}
	}
}

// push sends a server request on the connection's stream.
func (c *conn) push(typ string, body any) error {
	p, err := payload(typ, body)
	if err != nil {
		return err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.ctx.Err() != nil {
		return c.ctx.Err()
	}
	c.pushes.Add(1)
	return c.stream.Send(p)
}

// pushID numbers the server's pushes (the client echoes it in its ack).
func (c *conn) pushID() string { return fmt.Sprintf("push-%d", c.pushes.Load()+1) }

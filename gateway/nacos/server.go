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
	"maps"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// Config configures the front end.
type Config struct {
	// SessionTTL is how long a connection's ephemeral instances outlive a
	// server that dies without closing the connection's session.
	SessionTTL time.Duration
	// BeatTTL is how long an instance registered as ephemeral over HTTP
	// (the v1 API) lives without a beat; clients beat every 5 s.
	BeatTTL time.Duration
	// Keepalive is how long a connection may stay silent before the server
	// pings it; a connection that does not answer within as long again is
	// dead, and closed.
	Keepalive time.Duration
	// MaxContentSize limits a config's content, in bytes (the gateway's
	// --max-content-size).
	MaxContentSize int
	// HistoryRetention bounds each config item's history, as the gateway's
	// writes do (zero: the default).
	HistoryRetention backends.Retention
	// Authorizer decides each request (the gateway's, with access control
	// on); nil: every request is allowed, as with access control off.
	Authorizer Authorizer
	// Thresholds gives each service's protect threshold (the gateway's
	// service settings); nil: none is applied.
	Thresholds Thresholds
	// Logins hands out, at login, handles standing for token secrets for
	// LoginTTL (the gateway's); nil: a login answers the secret itself.
	Logins Logins
	// LoginTTL is how long a login's accessToken stands for its secret;
	// clients log in again before it ends (Nacos' tokenTtl).
	LoginTTL time.Duration
	// Watches opens the front end's watches: the gateway's, through its
	// hub, so that a thousand clients subscribed to one service share one
	// store watch; nil: the backend's own, one store watch per
	// subscription.
	Watches backends.Watches
	// Grays serves Nacos' beta (betaIps) and tagged publishes as gray
	// releases, and gray content to the clients they choose (the
	// gateway's); nil: such publishes are refused.
	Grays Grays
	// CloseSessionsOnExit closes, when the front end stops, the sessions
	// of its clients' ephemeral instances, which then go at once.
	// Otherwise they are left to expire (SessionTTL, BeatTTL), so that
	// clients that reconnect to another server within that time keep
	// their instances listed throughout (a rolling restart).
	CloseSessionsOnExit bool
	// Logger receives the front end's logs; nil: slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: instances outlive a crashed server
// by 10 s, an HTTP-registered instance lives 15 s without a beat, a silent
// connection is pinged after 10 s.
func DefaultConfig() Config {
	return Config{SessionTTL: 10 * time.Second, BeatTTL: 15 * time.Second, Keepalive: 10 * time.Second, LoginTTL: defaultLoginTTL,
		MaxContentSize: model.DefaultMaxContentSize, HistoryRetention: backends.DefaultRetention}
}

// Thresholds gives a service's protect threshold (gateway.Server is one).
type Thresholds interface {
	ProtectThreshold(ctx context.Context, svc model.ServiceKey) (float64, error)
}

// threshold is svc's protect threshold; 0 when there is none or it cannot
// be read (the instances are then returned as they are).
func (s *Server) threshold(ctx context.Context, svc model.ServiceKey) float64 {
	if s.cfg.Thresholds == nil {
		return 0
	}
	t, err := s.cfg.Thresholds.ProtectThreshold(ctx, svc)
	if err != nil {
		s.log.Warn("a service's protect threshold cannot be read: none applied", "service", svc, "err", err)
		return 0
	}
	return t
}

// Server serves the Nacos protocol over a backend.
type Server struct {
	b    backends.Backend
	cfg  Config
	log  *slog.Logger
	grpc *grpc.Server

	mu      sync.Mutex
	conns   map[uint64]*conn     // by transport (one client connection)
	checked map[uint64]time.Time // transports that asked ServerCheck: a stream comes next
	arrived chan struct{}        // closed and replaced when a connection is set up
	seq     atomic.Uint64
	// beats are the sessions the HTTP API made for its ephemeral
	// instances, by id, with their last beat: a beat keeps only those
	// alive, never a session someone else holds.
	beats map[string]time.Time
	// stopping is set once Serve's context ends: connections closed from
	// then on leave their sessions to expire (CloseSessionsOnExit).
	stopping atomic.Bool
}

// defaultLoginTTL is how long a login's handle stands for its token.
const defaultLoginTTL = 5 * time.Hour

// maxStreams bounds the concurrent calls on one client connection.
const maxStreams = 256

// transportKey is the context key of a call's transport id.
type transportKey struct{}

// transports numbers each client connection (each HTTP/2 transport): the
// unary calls and the stream of one client share it, whatever its address
// (clients behind one proxy share that).
type transports struct{ s *Server }

func (t transports) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, transportKey{}, t.s.seq.Add(1))
}

func (t transports) HandleConn(ctx context.Context, st stats.ConnStats) {
	if _, end := st.(*stats.ConnEnd); end {
		t.s.mu.Lock()
		delete(t.s.checked, transportOf(ctx))
		t.s.mu.Unlock()
	}
}

func (transports) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (transports) HandleRPC(context.Context, stats.RPCStats)                       {}

func transportOf(ctx context.Context) uint64 {
	id, _ := ctx.Value(transportKey{}).(uint64)
	return id
}

// recoverUnary and recoverStream turn a handler's panic into an error
// for its caller: one bad request must not end the server.
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("nacos request panicked", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return h(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("nacos stream panicked", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return h(srv, ss)
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
	if cfg.BeatTTL <= 0 {
		cfg.BeatTTL = DefaultConfig().BeatTTL
	}
	if cfg.MaxContentSize <= 0 {
		cfg.MaxContentSize = DefaultConfig().MaxContentSize
	}
	if cfg.LoginTTL <= 0 {
		cfg.LoginTTL = defaultLoginTTL
	}
	if cfg.Watches == nil {
		cfg.Watches = b
	}
	s := &Server{b: b, cfg: cfg, log: cfg.Logger.With("component", "nacos"), conns: map[uint64]*conn{},
		checked: map[uint64]time.Time{}, arrived: make(chan struct{}), beats: map[string]time.Time{}}
	s.grpc = grpc.NewServer(
		grpc.StatsHandler(transports{s}),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.Keepalive, Timeout: cfg.Keepalive}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(maxStreams),
		grpc.WaitForHandlers(true),
		grpc.MaxRecvMsgSize(cfg.MaxContentSize+1<<20))
	nacosgrpc.RegisterRequestServer(s.grpc, requestService{s})
	nacosgrpc.RegisterBiRequestStreamServer(s.grpc, streamService{s})
	return s
}

// Serve serves the gRPC protocol on lis, and the v1 HTTP open API on
// httpLis when it is not nil, until ctx ends.
func (s *Server) Serve(ctx context.Context, lis, httpLis net.Listener) error {
	s.log.Info("nacos gRPC protocol serving", "addr", lis.Addr().String())
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(lis) }()
	var hs *http.Server
	if httpLis != nil {
		s.log.Info("nacos HTTP open API serving", "addr", httpLis.Addr().String())
		hs = &http.Server{Handler: s.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
		go func() { errc <- hs.Serve(httpLis) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.stopping.Store(true)
	s.grpc.Stop()
	if hs != nil {
		_ = hs.Close()
	}
	if s.cfg.CloseSessionsOnExit {
		s.closeBeatSessions()
	}
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
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
	token := p.GetMetadata().GetHeaders()["accessToken"]
	r.s.sawToken(ctx, token)
	ctx = withSecret(ctx, token)
	respType, body := h.handle(ctx, r.s, typ, p.GetBody().GetValue())
	return payload(respType, body)
}

// handlers is the one table of the gRPC request types, each built with
// the access decorator (guard) or open.
var handlers map[string]rpc

// RequestTypes lists the gRPC request types served, and whether each is
// open (needs no token: it reads nothing of the store).
func RequestTypes() map[string]bool {
	out := map[string]bool{}
	for t, h := range handlers {
		out[t] = h.open
	}
	return out
}

func init() {
	handlers = map[string]rpc{
		"ServerCheckRequest":       open(serverCheck),
		"HealthCheckRequest":       open(healthCheck),
		"InstanceRequest":          guard("InstanceResponse", acl.ActWrite, parseInstance, registerInstance),
		"BatchInstanceRequest":     guard("BatchInstanceResponse", acl.ActWrite, parseBatch, batchRegister),
		"SubscribeServiceRequest":  guard("SubscribeServiceResponse", acl.ActRead, parseSubscribe, subscribe),
		"ServiceQueryRequest":      guard("QueryServiceResponse", acl.ActRead, parseQuery, queryService),
		"ServiceListRequest":       guard("ServiceListResponse", acl.ActRead, parseList, listServices),
		"ConfigPublishRequest":     guard("ConfigPublishResponse", acl.ActWrite, parsePublish, publishConfig),
		"ConfigQueryRequest":       guard("ConfigQueryResponse", acl.ActRead, parseConfig, queryConfig),
		"ConfigRemoveRequest":      guard("ConfigRemoveResponse", acl.ActWrite, parseConfig, removeConfig),
		"ConfigBatchListenRequest": guard("ConfigChangeBatchListenResponse", acl.ActRead, parseListen, batchListen),
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
	case errors.Is(err, model.ErrPermissionDenied):
		return fail(errForbidden, err.Error())
	case errors.Is(err, model.ErrUnauthenticated):
		return fail(errUnauthenticated, err.Error())
	case errors.Is(err, model.ErrRateLimited):
		return fail(errRateLimited, err.Error())
	}
	return fail(errServer, err.Error())
}

func serverCheck(ctx context.Context, s *Server) (string, any) {
	type serverCheckResponse struct {
		response
		ConnectionID string `json:"connectionId"`
	}
	id := transportOf(ctx)
	s.mu.Lock()
	s.checked[id] = time.Now()
	s.mu.Unlock()
	return "ServerCheckResponse", serverCheckResponse{response: ok(),
		ConnectionID: fmt.Sprintf("%d_%d_%s", time.Now().UnixMilli(), id, peerAddr(ctx))}
}

// healthCheck answers a client's periodic check: 301 when its connection
// is not set up, on which a client reconnects.
func healthCheck(ctx context.Context, s *Server) (string, any) {
	s.mu.Lock()
	_, found := s.conns[transportOf(ctx)]
	s.mu.Unlock()
	if !found {
		return "ErrorResponse", fail(errUnregistered, errUnregisteredConn.Error())
	}
	return "HealthCheckResponse", ok()
}

// addrKey carries an HTTP request's client address (gRPC's is its peer).
type addrKey struct{}

func peerAddr(ctx context.Context) string {
	if a, found := ctx.Value(addrKey{}).(string); found {
		return a
	}
	if p, found := peer.FromContext(ctx); found {
		return p.Addr.String()
	}
	return ""
}

// conn is a client's connection: its bi-directional stream, which the
// server pushes on, and what the connection holds.
type conn struct {
	s    *Server
	id   uint64 // its transport
	addr string
	ctx  context.Context
	stop context.CancelFunc

	sendMu sync.Mutex
	stream nacosgrpc.BiRequestStream_RequestBiStreamServer
	closed bool // under sendMu: the stream's handler returned

	mu      sync.Mutex
	session string                                 // for its ephemeral instances; "" until the first
	grants  map[model.ServiceKey]string            // the services it registered into, and the token that did
	subs    map[model.ServiceKey]*subscription     // services it subscribed to
	listens map[model.ConfigKey]context.CancelFunc // configs it listens to
	// token is the newest accessToken a request on the connection sent:
	// what its listens, subscriptions and instances are checked again
	// with, so that a client that logged in again (a login handle lasts
	// LoginTTL) keeps them.
	token  string
	pushes atomic.Int64
}

// tokenFor is the token to check again what the connection holds since
// it was asked with kept: the newest the connection sent, else kept.
func (c *conn) tokenFor(kept string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" {
		return c.token
	}
	return kept
}

// sawToken records the token a request on the connection of ctx sent.
func (s *Server) sawToken(ctx context.Context, token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	c := s.conns[transportOf(ctx)]
	s.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		c.token = token
		c.mu.Unlock()
	}
}

// connOf returns the connection a unary request arrived on: the stream
// set up on the same transport. A client sets its stream up just after
// its ServerCheck and before its first request; a request on a transport
// that checked in moments ago waits for it a little, any other is
// answered at once.
func (s *Server) connOf(ctx context.Context) (*conn, bool) {
	id := transportOf(ctx)
	var deadline <-chan time.Time
	for {
		s.mu.Lock()
		c, found := s.conns[id]
		checked, recent := s.checked[id]
		arrived := s.arrived
		s.mu.Unlock()
		if found {
			return c, true
		}
		if !recent || time.Since(checked) > 10*time.Second {
			return nil, false
		}
		if deadline == nil {
			deadline = time.After(3 * time.Second)
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
	// The setup comes first, and soon: a stream that says nothing holds
	// nothing for long.
	firstc := make(chan error, 1)
	var first *nacosgrpc.Payload
	go func() {
		var err error
		first, err = stream.Recv()
		firstc <- err
	}()
	select {
	case err := <-firstc:
		if err != nil {
			return err
		}
	case <-time.After(10 * time.Second):
		return status.Error(codes.DeadlineExceeded, "no ConnectionSetupRequest within 10s")
	}
	if typ := first.GetMetadata().GetType(); typ != "ConnectionSetupRequest" {
		return status.Errorf(codes.InvalidArgument, "the first message of a connection is a ConnectionSetupRequest, not %s", typ)
	}
	ctx, stop := context.WithCancel(stream.Context())
	defer stop()
	c := &conn{s: s, id: transportOf(stream.Context()), addr: peerAddr(stream.Context()), ctx: ctx, stop: stop, stream: stream,
		subs: map[model.ServiceKey]*subscription{}, listens: map[model.ConfigKey]context.CancelFunc{}, grants: map[model.ServiceKey]string{}}
	s.mu.Lock()
	if s.conns[c.id] != nil {
		s.mu.Unlock()
		return status.Error(codes.AlreadyExists, "this connection has its stream already")
	}
	s.conns[c.id] = c
	delete(s.checked, c.id)
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
	c.sendMu.Lock() // no push still sending once the handler returns, nor after
	c.closed = true
	c.sendMu.Unlock()
	c.s.mu.Lock()
	if c.s.conns[c.id] == c {
		delete(c.s.conns, c.id)
	}
	c.s.mu.Unlock()
	c.mu.Lock()
	session := c.session
	c.session = ""
	c.mu.Unlock()
	if session == "" {
		return
	}
	if c.s.stopping.Load() && !c.s.cfg.CloseSessionsOnExit {
		c.s.log.Debug("server stopping: a connection's session is left to expire", "client", c.addr, "within", c.s.cfg.SessionTTL)
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
		c.recheck(ctx, id)
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

// recheck asks again, for each service the connection registered into,
// whether the token that did may still write it: a token revoked, expired
// or stripped of the right takes the connection's instances of that
// service with it, as a revoked session would.
func (c *conn) recheck(ctx context.Context, session string) {
	if c.s.cfg.Authorizer == nil {
		return
	}
	c.mu.Lock()
	grants := maps.Clone(c.grants)
	c.mu.Unlock()
	for svc, secret := range grants {
		if _, err := c.s.decide(withSecret(ctx, c.tokenFor(secret)), "InstanceRequest", acl.ActWrite, []acl.Resource{serviceRes(svc)}); err == nil {
			continue
		}
		insts, _, err := c.s.b.Instances(ctx, svc, backends.ReadOptions{})
		if err != nil {
			continue // asked again at the next tick
		}
		for _, i := range insts {
			if i.Session == session {
				_, _ = c.s.b.Deregister(ctx, svc, i.ID)
			}
		}
		c.mu.Lock()
		if c.grants[svc] == secret {
			delete(c.grants, svc)
		}
		c.mu.Unlock()
		c.s.log.Info("a Nacos connection's token lost the right to its instances: removed", "service", svc, "client", c.addr)
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
	if c.closed || c.ctx.Err() != nil {
		return context.Canceled
	}
	c.pushes.Add(1)
	return c.stream.Send(p)
}

// pushID numbers the server's pushes (the client echoes it in its ack).
func (c *conn) pushID() string { return fmt.Sprintf("push-%d", c.pushes.Load()+1) }

// closeBeatSessions closes the sessions of the instances the HTTP API
// registered as ephemeral, when the front end stops (CloseSessionsOnExit).
func (s *Server) closeBeatSessions() {
	s.mu.Lock()
	ids := slices.Collect(maps.Keys(s.beats))
	s.beats = map[string]time.Time{}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range ids {
		if _, err := s.b.CloseSession(ctx, id); err != nil && !errors.Is(err, model.ErrSessionExpired) {
			s.log.Warn("closing an HTTP client's session: its instances go when it expires", "err", err)
		}
	}
}

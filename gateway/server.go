package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/soheilhy/cmux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
)

// DefaultListen is the address a server listens on by default.
const DefaultListen = "127.0.0.1:7480"

// Config configures a Server.
type Config struct {
	// Listen is the address for gRPC and REST (ListenAndServe only).
	Listen string
	// MaxContentSize limits a config's content, in bytes.
	MaxContentSize int
	// WatchHistory is how many recent events each watched service or config
	// keeps for subscribers that lag or resume; beyond it they get a RESET.
	WatchHistory int
	// Build is the server's build, reported by the status endpoint and the
	// junction_build_info metric.
	Build BuildInfo
	// Logger receives the server's logs; nil: slog.Default().
	Logger *slog.Logger
	// GatewayID names this gateway to the others over the same store
	// (default: host/pid/random).
	GatewayID string
	// HealthLease is how long the gateway that runs the health checks holds
	// its lease without renewing it; another gateway takes over after it
	// has seen the lease unchanged this long.
	HealthLease time.Duration
	// HealthScan is how often the runner looks for new or removed checks.
	HealthScan time.Duration
	// BodyTimeout is how long a REST request body may go without sending a
	// byte; then the request fails and its connection is closed.
	BodyTimeout time.Duration
	// Auth turns access control on: every request needs a token its
	// policies allow (see package acl); only /healthz, /readyz and, with
	// MetricsPublic, /metrics stay open. Every gateway over one store must
	// agree on it.
	Auth bool
	// MetricsPublic leaves /metrics open with Auth on; otherwise it needs
	// a token that may read the cluster.
	MetricsPublic bool
	// ACLBootstrapReset, when it is the current bootstrap's reset code
	// (which a second bootstrap's error names), allows one more bootstrap.
	ACLBootstrapReset string
	// Audit configures the audit log of writes and denials.
	Audit AuditConfig
	// TLS, when set, serves the API over TLS (and, with a client CA,
	// mutual TLS), and makes a follower forward to the leader over TLS,
	// presenting its own certificate.
	TLS *TLS
	// AuthFailureRate is how many failed authentications a second one
	// client address may make (after a burst of four times as many)
	// before its requests are refused as RATE_LIMITED unlooked at.
	AuthFailureRate float64
	// ListenerPublish is how often the gateway publishes its config
	// watches in the store, when they changed, for ListConfigListeners at
	// the other gateways.
	ListenerPublish time.Duration
	// UI serves the web console at /ui/ (package ui).
	UI bool
	// Measured is what a conformance run measured on this kind of store,
	// shown by the status beside the declared capabilities (nil: none).
	Measured *pb.MeasuredGuarantees
	// HistoryRetention bounds each config item's history: how many versions
	// (1 to 10000) and for how long (a minute at least).
	HistoryRetention backends.Retention
	// Pprof serves Go's profiles at /debug/pprof/ on the API address; with
	// Auth on, to the management token only.
	Pprof bool
	// ShutdownTimeout bounds a shutdown: the open streams end at once, the
	// calls under way have this long to finish.
	ShutdownTimeout time.Duration
}

// maxImport is the largest import archive a request may carry: what a
// gRPC request may (the largest content and a margin).
func (s *Server) maxImport() int { return s.cfg.MaxContentSize + 1<<20 - 4<<10 }

// maxHistoryVersions bounds how many versions of each item a store may be
// told to keep.
const maxHistoryVersions = 10000

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Listen: DefaultListen, MaxContentSize: model.DefaultMaxContentSize, WatchHistory: 1024, Build: BuildInfo{Version: "dev"},
		HealthLease: 10 * time.Second, HealthScan: time.Second, BodyTimeout: 30 * time.Second,
		Audit: AuditConfig{MaxSizeMB: 100, MaxBackups: 10}, AuthFailureRate: 5, HistoryRetention: backends.DefaultRetention,
		ListenerPublish: 2 * time.Second, ShutdownTimeout: 10 * time.Second}
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.MaxContentSize < 1 || c.MaxContentSize > 64<<20:
		return model.Invalid("max-content-size", "%d is out of range 1..%d", c.MaxContentSize, 64<<20)
	case c.ShutdownTimeout < 0:
		return model.Invalid("shutdown-timeout", "must not be negative")
	case c.WatchHistory < 1:
		return model.Invalid("watch-history", "must be at least 1")
	case c.HealthLease < 100*time.Millisecond || c.HealthLease > 10*time.Minute:
		return model.Invalid("health-lease", "%v is out of range 100ms..10m", c.HealthLease)
	case c.HealthScan < 10*time.Millisecond || c.HealthScan > time.Minute:
		return model.Invalid("health-scan", "%v is out of range 10ms..1m", c.HealthScan)
	case c.BodyTimeout < 100*time.Millisecond || c.BodyTimeout > 10*time.Minute:
		return model.Invalid("body-timeout", "%v is out of range 100ms..10m", c.BodyTimeout)
	case c.HistoryRetention.Versions < 1 || c.HistoryRetention.Versions > maxHistoryVersions:
		return model.Invalid("config-history-versions", "%d is out of range 1..%d", c.HistoryRetention.Versions, maxHistoryVersions)
	case c.HistoryRetention.MaxAge < time.Minute:
		return model.Invalid("config-history-max-age", "%v is shorter than a minute", c.HistoryRetention.MaxAge)
	case c.ListenerPublish < 10*time.Millisecond || c.ListenerPublish > time.Minute:
		return model.Invalid("listener-publish", "%v is out of range 10ms..1m", c.ListenerPublish)
	case c.AuthFailureRate <= 0:
		return model.Invalid("auth-failure-rate", "must be positive")
	case c.Audit.File != "" && (c.Audit.MaxSizeMB < 1 || c.Audit.MaxBackups < 1):
		return model.Invalid("audit-log-max-size", "the audit log's size and backups must be at least 1")
	}
	return nil
}

// Server serves Junction's API over a backend.
type Server struct {
	b   backends.Backend
	cfg Config
	log *slog.Logger
	m   *metrics
	hub *hub
	// listeners tracks the config watches, for ListConfigListeners.
	listeners *listeners
	// grays is the gateway's copy of the gray releases.
	grays *grays
	grpc  *grpc.Server
	mem   *bufconn.Listener
	conn  *grpc.ClientConn
	rest  http.Handler

	fwd      *forwarding // the router New put over the backend, if it did
	acl      *aclCache
	auth     *authorizer
	health   *healthRunner
	lead     backends.Leadership // the store node's own, when it has one
	patches  *patcher
	checks   *recordSet // the health checks' records
	settings *settingsCache
	drain    *drainer
}

// New returns a server over b. The caller keeps ownership of b.
func New(b backends.Backend, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.GatewayID == "" {
		cfg.GatewayID = newGatewayID()
	}
	// Every call on the store, the API's and the gateway's own (health
	// checks, patches, watches), is routed to the leader where it must be.
	routed := Forwarding(b, cfg.Logger)
	s := &Server{b: routed, cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Build)}
	if g, ok := b.(backends.Gauges); ok {
		s.m.backendGauges(g)
	}
	lead, _ := b.(backends.Leadership)
	s.lead = lead
	s.acl = newACLCache(routed, lead, cfg.Logger)
	if f, ok := routed.(*forwarding); ok && routed != b {
		s.fwd = f // this server's own: released with it
		f.peer = s.acl.peerSecret
		if cfg.TLS != nil {
			f.creds = cfg.TLS.Credentials()
		}
	}
	s.auth = &authorizer{on: cfg.Auth, acl: s.acl, audit: newAuditLog(cfg.Audit, s.m), fails: newFailLimiter(cfg.AuthFailureRate), m: s.m, tls: cfg.TLS}
	b = routed
	s.checks = newRecordSet(b, checksGroup)
	s.patches = &patcher{b: b, requests: newRecordSet(b, patchesGroup), log: cfg.Logger.With("component", "patches"),
		scan: cfg.HealthScan, wait: max(10*time.Second, 2*cfg.HealthScan+readLag)}
	s.health = newHealthRunner(b, s.checks, s.patches, cfg, cfg.Logger, health.NewMetrics(s.m.reg))
	s.settings = newSettingsCache(b, time.Second)
	s.hub = newHub(b, cfg.WatchHistory, cfg.Logger, s.m)
	s.listeners = newListeners(b, cfg.GatewayID, cfg.ListenerPublish, cfg.Logger)
	s.grays = newGrays(b, cfg.Logger)
	maxMsg := cfg.MaxContentSize + 1<<20
	utf8 := newUTF8Guard()
	s.drain = newDrainer()
	// An export answers with up to maxArchiveTotal bytes of content, zipped.
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(max(maxMsg, maxArchiveTotal+maxArchiveTotal/4)), grpc.ForceServerCodecV2(utf8),
		grpc.ChainUnaryInterceptor(s.logUnary, s.m.unary, s.auth.unary, utf8.unary),
		grpc.ChainStreamInterceptor(s.logStream, s.m.stream, s.drain.stream, s.auth.stream, utf8.stream)}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(tlsInfoCreds{})) // the listener's TLS, reported to the calls
	}
	s.grpc = grpc.NewServer(opts...)
	reg, cfgs := &registryService{s: s}, &configService{s: s}
	pb.RegisterRegistryServiceServer(s.grpc, reg)
	pb.RegisterConfigServiceServer(s.grpc, cfgs)
	pb.RegisterWatchServiceServer(s.grpc, &watchService{reg: reg, cfg: cfgs})
	pb.RegisterStatusServiceServer(s.grpc, &statusService{s: s})
	pb.RegisterClusterServiceServer(s.grpc, &clusterService{s: s})
	pb.RegisterAclServiceServer(s.grpc, &aclService{s: s})

	// The REST mapping reaches the gRPC services through an in-memory
	// connection, so both surfaces share interceptors, metrics and errors.
	s.mem = bufconn.Listen(1 << 20)
	go func() { _ = s.grpc.Serve(s.mem) }()
	conn, err := grpc.NewClient("passthrough:///junction-in-process", append(utf8Client(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.mem.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))...)
	if err != nil {
		s.grpc.Stop()
		return nil, fmt.Errorf("in-process gRPC connection: %w", err)
	}
	s.conn = conn
	s.rest, err = s.restHandler()
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Serve serves on lis until ctx ends, then shuts down. Connections are split
// by their first request: gRPC (HTTP/2 with content-type application/grpc
// or application/grpc+CODEC) goes to gRPC's native transport, everything
// else to the HTTP server.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: s.rest, Protocols: protocols, ReadHeaderTimeout: 10 * time.Second, ConnContext: withConnTLS,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if s.cfg.TLS != nil {
		lis = tls.NewListener(lis, s.cfg.TLS.ServerConfig())
	}
	m := cmux.New(lis)
	grpcL := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldPrefixSendSettings("content-type", "application/grpc"))
	// The gRPC matcher answers an HTTP/2 client's preface with SETTINGS to
	// read its headers; an HTTP/2 REST client's ACK of them must not reach
	// the HTTP server, which never sent them.
	httpL := ackFilter{m.Match(cmux.Any())}
	errc := make(chan error, 3)
	hctx, hcancel := context.WithCancel(ctx)
	hdone := make(chan struct{})
	go func() { defer close(hdone); s.health.run(hctx) }()
	pdone := make(chan struct{})
	go func() { defer close(pdone); s.patches.runIfNeeded(hctx) }()
	adone := make(chan struct{})
	go func() { defer close(adone); s.acl.run(hctx, s.cfg.Auth) }()
	if s.cfg.TLS != nil {
		go s.cfg.TLS.Watch(hctx, 2*time.Second)
	}
	wdone := make(chan struct{})
	go func() { defer close(wdone); s.auth.watchACL(hctx) }()
	ldone := make(chan struct{})
	go func() { defer close(ldone); s.listeners.run(hctx) }()
	gdone := make(chan struct{})
	go func() { defer close(gdone); s.grays.run(hctx) }()
	defer func() {
		hcancel()
		for _, done := range []chan struct{}{hdone, pdone, adone, wdone, ldone, gdone} {
			<-done
		}
	}()
	if s.cfg.ACLBootstrapReset != "" {
		go s.resetBootstrap(hctx)
	}
	go func() { errc <- s.grpc.Serve(grpcL) }()
	go func() { errc <- srv.Serve(httpL) }()
	go func() { errc <- m.Serve() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serve %s: %w", lis.Addr(), err)
	}
	s.shutdown(srv)
	m.Close()
	return err
}

// shutdown stops a gateway within cfg.ShutdownTimeout: it ends the open
// streams, which never finish on their own, so that their clients
// reconnect elsewhere (drainer); stops accepting connections and calls;
// and lets the calls under way finish: the REST calls first, as they make
// their gRPC calls in process, then the gRPC ones. What still runs at the
// deadline is cut off.
func (s *Server) shutdown(srv *http.Server) {
	s.log.Info("shutting down: ending the open streams, finishing the calls under way", "within", s.cfg.ShutdownTimeout)
	s.drain.drain()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
	grpcDone := make(chan struct{})
	go func() {
		defer close(grpcDone)
		s.grpc.GracefulStop()
	}()
	select {
	case <-grpcDone:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		s.log.Warn("shutdown: calls still under way at the deadline are cut off", "within", s.cfg.ShutdownTimeout)
		s.grpc.Stop()
		<-grpcDone
	}
}

// resetBootstrap allows one more bootstrap (ACLBootstrapReset), as soon as
// the store takes the write.
func (s *Server) resetBootstrap(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.acl.resetBootstrap(ctx, s.cfg.ACLBootstrapReset)
		switch {
		case err == nil:
			s.log.Warn("ACL bootstrap reset: the next `junction acl bootstrap` creates a new management token; remove --acl-bootstrap-reset")
			return
		case errors.Is(err, model.ErrInvalidArgument):
			s.log.Warn("ACL bootstrap reset ignored", "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Backend returns the store as the gateway's own calls use it: routed to
// a built-in store cluster's leader where a call must be. Another front
// end over the same store (the Nacos protocols) calls it.
func (s *Server) Backend() backends.Backend { return s.b }

// ListenAndServe listens on cfg.Listen and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	lis, err := s.Listen()
	if err != nil {
		return err
	}
	return s.Serve(ctx, lis)
}

// Listen listens on cfg.Listen, for Serve, and logs where.
func (s *Server) Listen() (net.Listener, error) {
	lis, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.log.Info("junction serving", "addr", lis.Addr().String(), "auth", s.cfg.Auth)
	if s.cfg.UI {
		scheme := "http"
		if s.cfg.TLS != nil {
			scheme = "https"
		}
		s.log.Info("console at " + scheme + "://" + lis.Addr().String() + "/ui/")
	}
	if !s.cfg.Auth {
		s.log.Warn("access control is off: anyone who reaches " + lis.Addr().String() + " may do anything (--auth turns it on)")
	}
	return lis, nil
}

// Close stops the gRPC services and the in-process connection, and closes
// the connections to a cluster's leader; the backend stays open.
func (s *Server) Close() error {
	s.grpc.Stop()
	if s.fwd != nil {
		s.fwd.release()
	}
	s.auth.audit.Close()
	return s.conn.Close()
}

// Loopback is a gateway served in process on a free loopback port, for
// tools and tests: `junction bench --local`, the conformance runner and
// the gateway's own tests.
type Loopback struct {
	// Addr is the gateway's HOST:PORT; REST and gRPC share it.
	Addr string
	// Conn is a gRPC client connection to it.
	Conn *grpc.ClientConn

	srv    *Server
	cancel context.CancelFunc
	done   chan error
}

// Server returns the gateway serving on the loopback address.
func (l *Loopback) Server() *Server { return l.srv }

// ServeLoopback serves b through a new gateway on 127.0.0.1 and connects a
// gRPC client to it. Close stops both; it does not close b.
func ServeLoopback(b backends.Backend, cfg Config) (*Loopback, error) {
	srv, err := New(b, cfg)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = cfg.TLS.Credentials()
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		lis.Close()
		srv.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Loopback{Addr: lis.Addr().String(), Conn: conn, srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- srv.Serve(ctx, lis) }()
	return l, nil
}

// Close closes the client connection, stops the gateway and returns what
// serving it returned.
func (l *Loopback) Close() error {
	l.Conn.Close()
	l.cancel()
	err := <-l.done
	l.srv.Close()
	return err
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/remote"
	"github.com/junctionhq/junction/model"
)

// forwardedHeader marks a call that one gateway forwarded to the leader's.
// The receiving gateway serves it from its own store, never forwards it
// again: when it has lost the lead meanwhile, the store's error says so.
// Any client can send it; it only keeps the call from being forwarded, so
// that a client who sets it gets this node's store's answer (a refusal,
// on a follower), and it must never be taken as proof of anything.
const forwardedHeader = "junction-forwarded"

// readIndexGroup is a config group that never exists: listing it is the
// cheapest linearizable read a follower can ask the leader for.
const readIndexGroup = "junction-read-index"

// errForwardingClosed is what a call to the leader gets once the gateway
// released its connections.
var errForwardingClosed = fmt.Errorf("forward to the leader: the gateway is closed: %w", model.ErrUnavailable)

// forwardWait is how long a forwarded call waits for a connection to the
// leader before it fails as UNAVAILABLE.
const forwardWait = 2 * time.Second

// catchUpWait bounds how long a watch on a follower waits for its replica
// to apply what the leader had acknowledged.
const catchUpWait = 10 * time.Second

// Forwarding routes the calls on b, when b is a store node that serves
// writes and linearizable reads only while it leads (backends.Leadership):
// on a follower, writes, linearizable reads, session keepalives and
// membership changes go to the leader's gateway, carrying the caller's
// identity; stale reads, status and membership lists are answered by the
// node itself; a watch is served from the node's own replica once it has
// caught up with the leader. Any other b is returned as it is.
//
// The gateway routes its own store through Forwarding: it is the one place
// where forwarding happens. Closing the result closes b.
func Forwarding(b backends.Backend, log *slog.Logger) backends.Backend {
	l, ok := b.(backends.Leadership)
	if !ok {
		return b
	}
	if log == nil {
		log = slog.Default()
	}
	return &forwarding{Backend: b, lead: l, log: log.With("component", "forwarding"), conns: map[string]leaderConn{}}
}

// forwarding is the decorator Forwarding returns. Each method names where
// its call goes; to decides which node that is.
type forwarding struct {
	backends.Backend // this node's store
	lead             backends.Leadership
	log              *slog.Logger

	// peer returns the store's peer secret, with which a forwarded call
	// proves it comes from a gateway over the same store ("" until the
	// ACL exists).
	peer func() string
	// creds, when set, is how the leader's gateway is dialed (TLS).
	creds credentials.TransportCredentials

	mu     sync.Mutex
	conns  map[string]leaderConn // leader id (its API address) → its connection
	closed bool                  // released: no new connections
}

var (
	_ backends.Cluster     = (*forwarding)(nil)
	_ backends.Snapshotter = (*forwarding)(nil)
)

// leaderConn is a connection to a leader's gateway and the backend over it.
type leaderConn struct {
	cc *grpc.ClientConn
	b  *remote.Backend
}

// to returns where a call that needs the leader goes: this node's store
// when it leads, when no node leads (its error says so), or when the call
// was forwarded here already; else the leader's gateway.
func (f *forwarding) to(ctx context.Context) backends.Backend {
	id, self := f.lead.Leader()
	if self || id == "" || forwarded(ctx) {
		return f.Backend
	}
	l, err := f.leader(id)
	if err != nil {
		if !errors.Is(err, errForwardingClosed) {
			f.log.Warn("cannot reach the leader; answering from this node", "leader", id, "err", err)
		}
		return f.Backend
	}
	return l
}

// toRead routes a read: a stale one is served here.
func (f *forwarding) toRead(ctx context.Context, opts backends.ReadOptions) backends.Backend {
	if opts.Stale {
		return f.Backend
	}
	return f.to(ctx)
}

// forwarded reports whether ctx carries a call another gateway forwarded.
func forwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(forwardedHeader)) > 0
}

// leader returns the leader id's gateway as a backend, connected on first
// use. The
// leader may have just (re)started: a forwarded call waits a moment for
// its connection rather than failing at once, and reconnection attempts
// stay frequent however long it was away (gRPC's default backoff grows to
// two minutes).
func (f *forwarding) leader(id string) (*remote.Backend, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, errForwardingClosed
	}
	if c, ok := f.conns[id]; ok {
		return c.b, nil
	}
	creds := insecure.NewCredentials()
	if f.creds != nil {
		creds = f.creds
	}
	c, err := grpc.NewClient(id, grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: time.Second,
			Backoff: grpcbackoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}}),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if err := awaitReady(ctx, cc, forwardWait); err != nil {
				return status.Errorf(codes.Unavailable, "the leader %s is unreachable: %v", id, err)
			}
			err := invoker(f.outgoing(ctx), method, req, reply, cc, opts...)
			if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
				// Say where: the leader, not this node, is unavailable.
				p := st.Proto()
				p.Message = fmt.Sprintf("forwarded to the leader %s: %s", id, p.Message)
				return status.FromProto(p).Err()
			}
			return err
		}))
	if err != nil {
		return nil, fmt.Errorf("forward to the leader %s: %w: %v", id, model.ErrUnavailable, err)
	}
	f.conns[id] = leaderConn{c, remote.New(c)}
	return f.conns[id].b, nil
}

// outgoing marks ctx's call as forwarded. The leader's gateway serves it
// as a peer's: this gateway has authorized it already, with the same ACL.
// The call proves it comes from a peer with the store's peer secret, and
// names the caller it serves for the leader's audit log; the caller's own
// secret does not travel between nodes.
func (f *forwarding) outgoing(ctx context.Context) context.Context {
	kv := []string{forwardedHeader, "1"}
	if f.peer != nil {
		if secret := f.peer(); secret != "" {
			kv = append(kv, "authorization", "Bearer "+secret)
		}
	}
	if c, ok := callerOf(ctx); ok && c.p.AccessorID != "" {
		kv = append(kv, callerHeader, c.p.AccessorID)
	}
	// A call's incoming metadata never goes on as outgoing metadata (gRPC
	// keeps them apart), so nothing the caller sent is carried but this.
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// awaitReady waits up to limit (and ctx) until cc is connected.
func awaitReady(ctx context.Context, cc *grpc.ClientConn, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		st := cc.GetState()
		switch st {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			cc.Connect()
		}
		if !cc.WaitForStateChange(ctx, st) {
			return fmt.Errorf("not connected (%s): %w", st, ctx.Err())
		}
	}
}

// CreateSession implements backends.Sessions.
func (f *forwarding) CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error) {
	return f.to(ctx).CreateSession(ctx, ttl)
}

// KeepAlive implements backends.Sessions: the leader keeps the deadlines.
func (f *forwarding) KeepAlive(ctx context.Context, id string) (model.Session, error) {
	return f.to(ctx).KeepAlive(ctx, id)
}

// CloseSession implements backends.Sessions.
func (f *forwarding) CloseSession(ctx context.Context, id string) (int64, error) {
	return f.to(ctx).CloseSession(ctx, id)
}

// Register implements backends.Registry.
func (f *forwarding) Register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error) {
	return f.to(ctx).Register(ctx, svc, inst)
}

// PatchInstance implements backends.Registry.
func (f *forwarding) PatchInstance(ctx context.Context, svc model.ServiceKey, id string, p model.InstancePatch) (model.Instance, error) {
	return f.to(ctx).PatchInstance(ctx, svc, id, p)
}

// Deregister implements backends.Registry.
func (f *forwarding) Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error) {
	return f.to(ctx).Deregister(ctx, svc, id)
}

// Instances implements backends.Registry.
func (f *forwarding) Instances(ctx context.Context, svc model.ServiceKey, opts backends.ReadOptions) ([]model.Instance, backends.ReadInfo, error) {
	return f.toRead(ctx, opts).Instances(ctx, svc, opts)
}

// Services implements backends.Registry.
func (f *forwarding) Services(ctx context.Context, namespace, group string, after model.ServiceKey, limit int, opts backends.ReadOptions) ([]model.ServiceSummary, backends.ReadInfo, error) {
	return f.toRead(ctx, opts).Services(ctx, namespace, group, after, limit, opts)
}

// GetConfig implements backends.Configs.
func (f *forwarding) GetConfig(ctx context.Context, key model.ConfigKey, opts backends.ReadOptions) (model.Config, backends.ReadInfo, error) {
	return f.toRead(ctx, opts).GetConfig(ctx, key, opts)
}

// PutConfig implements backends.Configs.
func (f *forwarding) PutConfig(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, error) {
	return f.to(ctx).PutConfig(ctx, cfg, cond)
}

// DeleteConfig implements backends.Configs.
func (f *forwarding) DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error) {
	return f.to(ctx).DeleteConfig(ctx, key, cond)
}

// ConfigHistory implements backends.History.
func (f *forwarding) ConfigHistory(ctx context.Context, key model.ConfigKey, opts backends.ReadOptions) ([]model.ConfigVersion, backends.ReadInfo, error) {
	return f.toRead(ctx, opts).ConfigHistory(ctx, key, opts)
}

// ConfigVersion implements backends.History.
func (f *forwarding) ConfigVersion(ctx context.Context, key model.ConfigKey, number int64, opts backends.ReadOptions) (model.ConfigVersion, error) {
	return f.toRead(ctx, opts).ConfigVersion(ctx, key, number, opts)
}

// ListConfigs implements backends.Configs.
func (f *forwarding) ListConfigs(ctx context.Context, namespace, group string, opts backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	return f.toRead(ctx, opts).ListConfigs(ctx, namespace, group, opts)
}

// Watch implements backends.Watches. A follower serves the watch from its
// replica after catching up with the leader: it asks the leader for its
// revision with a linearizable read (a read index) and waits until its
// replica has applied it, so that the watch starts at or after everything
// the client has seen, as a watch on the leader would.
//
// Without a leader to ask, the watch is refused as UNAVAILABLE rather than
// started from a replica that may be behind.
func (f *forwarding) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	id, self := f.lead.Leader()
	if !self {
		if id == "" {
			return nil, fmt.Errorf("watch on a follower: no leader to catch up with: %w", model.ErrUnavailable)
		}
		l, err := f.leader(id)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, catchUpWait)
		defer cancel()
		_, info, err := l.ListConfigs(cctx, model.DefaultNamespace, readIndexGroup, backends.ReadOptions{})
		if err != nil {
			return nil, fmt.Errorf("watch on a follower: read index from the leader %s: %w", id, err)
		}
		if err := f.lead.WaitApplied(cctx, info.Revision); err != nil {
			return nil, fmt.Errorf("watch on a follower: %w", err)
		}
	}
	return f.Backend.Watch(ctx, req)
}

// Members implements backends.Cluster, from this node's configuration.
func (f *forwarding) Members(ctx context.Context) ([]backends.Member, string, error) {
	cl, err := cluster(f.Backend)
	if err != nil {
		return nil, "", err
	}
	return cl.Members(ctx)
}

// AddMember implements backends.Cluster, on the leader.
func (f *forwarding) AddMember(ctx context.Context, id, address string) error {
	cl, err := cluster(f.to(ctx))
	if err != nil {
		return err
	}
	return cl.AddMember(ctx, id, address)
}

// RemoveMember implements backends.Cluster, on the leader.
func (f *forwarding) RemoveMember(ctx context.Context, id string) error {
	cl, err := cluster(f.to(ctx))
	if err != nil {
		return err
	}
	return cl.RemoveMember(ctx, id)
}

// SaveSnapshot implements backends.Snapshotter, on this node: a snapshot
// is a stream the API serves over REST only, so it is not forwarded, and
// a follower's store refuses it naming the leader.
func (f *forwarding) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	sn, err := snapshotter(f.Backend)
	if err != nil {
		return 0, err
	}
	return sn.SaveSnapshot(ctx, w)
}

// RestoreSnapshot implements backends.Snapshotter, on this node.
func (f *forwarding) RestoreSnapshot(ctx context.Context, r io.Reader) (int64, error) {
	sn, err := snapshotter(f.Backend)
	if err != nil {
		return 0, err
	}
	return sn.RestoreSnapshot(ctx, r)
}

// Close closes the connections to leaders, then the store.
func (f *forwarding) Close() error {
	f.release()
	return f.Backend.Close()
}

// release closes the connections to leaders; the store stays open.
func (f *forwarding) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for id, c := range f.conns {
		c.cc.Close()
		delete(f.conns, id)
	}
}

// cluster returns b's membership, or an UNSUPPORTED error that says what
// to use instead.
func cluster(b backends.Backend) (backends.Cluster, error) {
	if cl, ok := b.(backends.Cluster); ok {
		return cl, nil
	}
	return nil, fmt.Errorf("this backend's servers are not managed through Junction; use the store's own tools: %w", model.ErrUnsupported)
}

// snapshotter returns b's Snapshotter, or an UNSUPPORTED error that says
// what to use instead.
func snapshotter(b backends.Backend) (backends.Snapshotter, error) {
	if sn, ok := b.(backends.Snapshotter); ok {
		return sn, nil
	}
	return nil, fmt.Errorf("snapshots are taken of the built-in store; back this store up with its own tool "+
		"(etcdctl snapshot save, consul snapshot save, a copy of ZooKeeper's data directory): %w", model.ErrUnsupported)
}

// Joiner returns the raftstore.Joiner of a node that joins with token (the
// management token, needed when access control is on; "" for none),
// dialing the member over TLS when t is set.
func Joiner(token string, t *TLS) func(ctx context.Context, member, id, address string) error {
	return func(ctx context.Context, member, id, address string) error {
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		creds := insecure.NewCredentials()
		if t != nil {
			creds = t.Credentials()
		}
		return joinCluster(ctx, member, id, address, creds)
	}
}

// JoinCluster asks the member of a built-in store cluster at the Junction
// API address member to add the node id, whose Raft transport listens on
// address: the raftstore.Joiner of a node that joins. A follower's gateway
// forwards the request to the leader.
func JoinCluster(ctx context.Context, member, id, address string) error {
	return joinCluster(ctx, member, id, address, insecure.NewCredentials())
}

func joinCluster(ctx context.Context, member, id, address string, creds credentials.TransportCredentials) error {
	conn, err := grpc.NewClient(member, grpc.WithTransportCredentials(creds))
	if err != nil {
		return model.Invalid("join", "%v", err)
	}
	defer conn.Close()
	return remote.New(conn).AddMember(ctx, id, address)
}

package guarantees

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/consul"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/nacos"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/backends/remote"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance/faults"
	"github.com/junctionhq/junction/conformance/localcluster"
	"github.com/junctionhq/junction/conformance/ports"
	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/gateway"
	frontnacos "github.com/junctionhq/junction/gateway/nacos"
)

// Target is a backend under measurement and the faults the runner may
// inject into it. A nil fault is one the target does not support; the
// scenarios that need it report "n/a".
type Target struct {
	// Name heads the target's column: raft, etcd, zookeeper, consul, nacos.
	Name string
	// Label says exactly what was measured, e.g. "etcd 3.7.3 (embedded)".
	Label string
	// Open returns a new driver connected to the store (through the fault
	// proxy, when there is one).
	Open func(ctx context.Context) (backends.Backend, error)
	// Restart kills the store and starts it again with its data.
	Restart func(ctx context.Context) error
	// RestartIs says what Restart does when it is not the whole store
	// (default "store killed and restarted").
	RestartIs string
	// Stop and Start make an outage.
	Stop  func() error
	Start func(ctx context.Context) error
	// Cut and Heal partition the network between driver and store.
	Cut, Heal func()
	// Pause freezes the store's process (SIGSTOP); Resume thaws it.
	Pause, Resume func() error
	// Compact discards the store's history up to now, where it keeps one.
	Compact func(ctx context.Context) error
	// Close releases the target.
	Close func()
	// NoProcessFaults says why Restart, Stop and Start are unavailable.
	NoProcessFaults string
	// BeforeRun, when set, runs before the target's scenarios: a store that
	// one target's faults leave broken is made whole for the next.
	BeforeRun func(ctx context.Context) error
	// BeforeRunIs says what BeforeRun does and why, for the report.
	BeforeRunIs string
	// Forwards says that writes pass through a gateway, which applies its
	// own configuration (the history's retention) to them.
	Forwards bool
}

// RaftTarget is the built-in store, in process, in dir. It keeps a small
// watch history (256 events) so that the history window can be measured.
func RaftTarget(dir string) (*Target, error) {
	cfg := raftstore.DefaultConfig(dir)
	cfg.History = 256
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := raftstore.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Target{Name: "raft", Label: "built-in Raft store (single node, in process)",
		Open:            func(context.Context) (backends.Backend, error) { return shared{s}, nil },
		NoProcessFaults: "the store runs in the gateway's process: its outage is a gateway restart (covered by the SDK tests)",
		Close:           func() { s.Close() }}, nil
}

// RaftClusterTarget is a three-node built-in store cluster in this process
// (loopback TCP between the nodes, a gateway on each), measured through a
// follower: its writes and linearizable reads are forwarded to the leader,
// its watches served from its own replica. The fault is the leader's crash
// and restart; a quorum outage is not injected (TestMinorityPartition
// covers it).
func RaftClusterTarget(dir string) (*Target, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localcluster.Start(ctx, dir, 3, func(cfg *raftstore.Config) { cfg.History = 256 })
	if err != nil {
		return nil, err
	}
	follower, err := c.Follower(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Target{Name: "raft-3", Label: "built-in Raft store, three nodes in process over loopback TCP, through one node (a follower when the run starts)",
		Forwards: true, // to the leader's gateway
		Open:     func(context.Context) (backends.Backend, error) { return follower.Routed(), nil },
		Restart: func(ctx context.Context) error {
			l, err := c.Leader(ctx)
			if err != nil {
				return err
			}
			if l == follower { // the node measured must survive: hand over first
				if err := l.Store.TransferLeadership(ctx); err != nil {
					return err
				}
				if l, err = waitLeader(ctx, c, follower); err != nil {
					return err
				}
			}
			return l.Restart(ctx)
		},
		RestartIs:       "the cluster's leader killed and restarted",
		NoProcessFaults: "the nodes run in the runner's process: the fault injected is the leader's crash (a quorum outage is TestMinorityPartition's)",
		Close:           func() { c.Close() }}, nil
}

// waitLeader waits until a node other than not leads.
func waitLeader(ctx context.Context, c *localcluster.Cluster, not *localcluster.Node) (*localcluster.Node, error) {
	for {
		if l, err := c.Leader(ctx); err == nil && l != not {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no new leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// shared lends one in-process store to several users; Close is a no-op.
type shared struct{ backends.Backend }

func (shared) Close() error { return nil }

// EtcdTarget starts etcd embedded in this process, with its data in dir,
// reached through a fault proxy.
func EtcdTarget(dir string) (*Target, error) {
	srv, err := servers.StartEtcd(dir)
	if err != nil {
		return nil, err
	}
	proxy, err := faults.NewProxy(srv.Addr)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return &Target{Name: "etcd", Label: "etcd 3.7.3 (embedded in the runner)",
		Open: func(ctx context.Context) (backends.Backend, error) {
			return openURL(ctx, "etcd://"+proxy.Addr()+"?prefix=/guarantees&dial-timeout=3s", etcdOpen)
		},
		Restart: func(ctx context.Context) error { srv.Stop(); return srv.Start() },
		Stop:    func() error { srv.Stop(); return nil },
		Start:   func(context.Context) error { return srv.Start() },
		Cut:     proxy.Cut, Heal: proxy.Heal,
		Compact: func(ctx context.Context) error { return compactEtcd(ctx, srv.Addr) },
		Close:   func() { proxy.Close(); srv.Stop() }}, nil
}

// ZooKeeperTarget starts Debian's ZooKeeper as a child process, with its
// data in dir, reached through a fault proxy.
func ZooKeeperTarget(dir string) (*Target, error) {
	z, err := servers.StartZooKeeper(dir)
	if err != nil {
		return nil, err
	}
	proxy, err := faults.NewProxy(z.Addr)
	if err != nil {
		z.Kill()
		return nil, err
	}
	return &Target{Name: "zookeeper", Label: "ZooKeeper 3.8.0 (Debian package, child process)",
		Open: func(ctx context.Context) (backends.Backend, error) {
			return openURL(ctx, "zk://"+proxy.Addr()+"?prefix=/guarantees&session-timeout=4s", zkOpen)
		},
		Restart: func(ctx context.Context) error { z.Kill(); return z.Start() },
		Pause:   z.Pause, Resume: z.Resume,
		Stop:  func() error { z.Kill(); return nil },
		Start: func(context.Context) error { return z.Start() },
		Cut:   proxy.Cut, Heal: proxy.Heal,
		Close: func() { proxy.Close(); z.Kill() }}, nil
}

// ConsulTarget starts Consul (the binary .ci/consul builds) as a
// single server keeping its data in dir, reached through a fault proxy on
// its HTTP API.
func ConsulTarget(dir string) (*Target, error) {
	c, err := servers.StartConsul(dir)
	if err != nil {
		return nil, err
	}
	proxy, err := faults.NewProxy(c.HTTPAddr)
	if err != nil {
		c.Kill()
		return nil, err
	}
	return &Target{Name: "consul", Label: "Consul " + servers.ConsulVersion + " (single server, child process)",
		Open: func(ctx context.Context) (backends.Backend, error) {
			return openURL(ctx, "consul://"+proxy.Addr()+"?prefix=guarantees&check-ttl=4s&watch-wait=2s", consulOpen)
		},
		Restart: func(ctx context.Context) error { c.Kill(); return c.Start() },
		Pause:   c.Pause, Resume: c.Resume,
		Stop:  func() error { c.Kill(); return nil },
		Start: func(context.Context) error { return c.Start() },
		Cut:   proxy.Cut, Heal: proxy.Heal,
		Close: func() { proxy.Close(); c.Kill() }}, nil
}

// NacosTarget starts Polaris, which serves the Nacos protocols, as a child
// process keeping its data in dir, reached through a pair of fault proxies
// (Nacos clients dial the gRPC port as the HTTP port + 1000). It must run in
// a private network namespace (servertest.InPrivateNetwork): Polaris' ports
// are fixed. The driver runs with cas=check: Polaris drops casMd5.
func NacosTarget(dir string) (*Target, error) {
	p, err := servers.StartPolaris(dir)
	if err != nil {
		return nil, err
	}
	var proxies []*faults.Proxy
	closeAll := func() {
		for _, x := range proxies {
			x.Close()
		}
	}
	var addr string
	for try := 0; try < 20 && len(proxies) < 2; try++ {
		closeAll()
		proxies = proxies[:0]
		httpP, err := faults.NewProxy(p.Addr)
		if err != nil {
			continue
		}
		proxies = append(proxies, httpP)
		_, port, _ := net.SplitHostPort(httpP.Addr())
		n, _ := strconv.Atoi(port)
		grpcP, err := faults.NewProxyAt(fmt.Sprintf("127.0.0.1:%d", n+1000), fmt.Sprintf("127.0.0.1:%d", servers.NacosGRPCPort))
		if err != nil {
			continue
		}
		proxies = append(proxies, grpcP)
		addr = httpP.Addr()
	}
	if len(proxies) < 2 {
		closeAll()
		p.Kill()
		return nil, errors.New("no pair of free loopback ports PORT and PORT+1000 for the nacos proxies")
	}
	return &Target{Name: "nacos", Label: "Nacos protocol served by Polaris " + servers.PolarisVersion + " (child process)",
		Open: func(ctx context.Context) (backends.Backend, error) {
			return openURL(ctx, "nacos://"+addr+"?cas=check&timeout=3s", nacosOpen)
		},
		Restart: func(ctx context.Context) error { p.Kill(); return p.Start() },
		// Polaris 1.18.1 stops answering Nacos gRPC requests, even from new
		// clients, after the partition scenario (backends/nacos
		// TestPolarisWedgesAfterPartition); a restart clears it.
		BeforeRun: func(context.Context) error { p.Kill(); return p.Start() },
		BeforeRunIs: "Polaris is restarted before the target: after a partition it stops answering Nacos gRPC requests, " +
			"even from new clients, until restarted (a server fault, reproduced by backends/nacos TestPolarisWedgesAfterPartition)",
		Pause: p.Pause, Resume: p.Resume,
		Stop:  func() error { p.Kill(); return nil },
		Start: func(context.Context) error { return p.Start() },
		Cut: func() {
			for _, x := range proxies {
				x.Cut()
			}
		},
		Heal: func() {
			for _, x := range proxies {
				x.Heal()
			}
		},
		Close: func() { closeAll(); p.Kill() }}, nil
}

// ExternalTarget measures a store the operator runs, by backend URL
// (etcd://… or zk://…), through a fault proxy for network faults; the
// store's process is not touched.
func ExternalTarget(name, rawURL string) (*Target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	proxy, err := faults.NewProxy(u.Host)
	if err != nil {
		return nil, err
	}
	viaProxy := *u
	viaProxy.Host = proxy.Addr()
	return &Target{Name: name, Label: fmt.Sprintf("%s at %s (external)", u.Scheme, u.Host),
		Open: func(ctx context.Context) (backends.Backend, error) {
			return backends.Open(ctx, viaProxy.String())
		},
		Cut: proxy.Cut, Heal: proxy.Heal, Close: func() { proxy.Close() },
		NoProcessFaults: "an external store: the runner does not stop processes it does not own"}, nil
}

func compactEtcd(ctx context.Context, addr string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, "/")
	if err != nil {
		return err
	}
	_, err = cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	return err
}

type opener func(ctx context.Context, u *url.URL) (backends.Backend, error)

func etcdOpen(ctx context.Context, u *url.URL) (backends.Backend, error) {
	cfg, err := etcd.ConfigFromURL(u)
	if err != nil {
		return nil, err
	}
	return etcd.Open(ctx, cfg)
}

func zkOpen(ctx context.Context, u *url.URL) (backends.Backend, error) {
	cfg, err := zookeeper.ConfigFromURL(u)
	if err != nil {
		return nil, err
	}
	return zookeeper.Open(ctx, cfg)
}

func consulOpen(ctx context.Context, u *url.URL) (backends.Backend, error) {
	cfg, err := consul.ConfigFromURL(u)
	if err != nil {
		return nil, err
	}
	return consul.Open(ctx, cfg)
}

// JunctionNacosTarget is Junction's own Nacos front end (gateway/nacos)
// over the built-in store, in this process, measured through the nacos://
// driver: the Nacos protocol served by Junction, never to be read as
// Nacos. Its HTTP port and its gRPC port (HTTP + 1000, where Nacos clients
// look for it) are a free pair on loopback.
func JunctionNacosTarget(dir string) (*Target, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store, err := raftstore.Open(ctx, raftstore.DefaultConfig(dir))
	if err != nil {
		return nil, err
	}
	l, err := gateway.ServeLoopback(store, gateway.DefaultConfig())
	if err != nil {
		store.Close()
		return nil, err
	}
	httpLis, grpcLis, err := ports.ListenPair(1000)
	if err != nil {
		l.Close()
		store.Close()
		return nil, err
	}
	nc := frontnacos.DefaultConfig()
	nc.Authorizer, nc.Thresholds, nc.Grays, nc.Logins, nc.Watches = l.Server(), l.Server(), l.Server(), l.Server(), l.Server()
	nc.Logger = slog.New(slog.DiscardHandler)
	front := frontnacos.New(l.Server().Backend(), nc)
	serveCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- front.Serve(serveCtx, grpcLis, httpLis) }()
	addr := httpLis.Addr().String()
	return &Target{Name: "nacos-junction", Label: "Nacos protocol served by Junction (its Nacos front end over the built-in store, in process), through the nacos:// driver",
		Open: func(ctx context.Context) (backends.Backend, error) {
			return openURL(ctx, "nacos://"+addr+"?cas=native&timeout=3s&system-namespace=nacos-junction-system", nacosOpen)
		},
		NoProcessFaults: "the front end and its store run in the runner's process",
		Close: func() {
			stop()
			<-done
			l.Close()
			store.Close()
		}}, nil
}

func nacosOpen(ctx context.Context, u *url.URL) (backends.Backend, error) {
	cfg, err := nacos.ConfigFromURL(u)
	if err != nil {
		return nil, err
	}
	return nacos.Open(ctx, cfg)
}

func openURL(ctx context.Context, raw string, open opener) (backends.Backend, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	return open(ctx, u)
}

// DefaultTargets are the targets a run measures when it names none.
var DefaultTargets = []string{"raft", "raft-3", "etcd", "zookeeper", "consul", "nacos", "nacos-junction"}

// LocalTargets starts every target this machine can run, in temporary
// directories under base; it returns the ones that started and why the
// others did not.
func LocalTargets(base string, names ...string) ([]*Target, error) {
	if len(names) == 0 {
		names = DefaultTargets
	}
	var (
		out  []*Target
		errs []error
	)
	for _, n := range names {
		dir, err := os.MkdirTemp(base, n+"-")
		if err != nil {
			return out, err
		}
		var t *Target
		switch n {
		case "raft":
			t, err = RaftTarget(dir)
		case "raft-3":
			t, err = RaftClusterTarget(dir)
		case "etcd":
			t, err = EtcdTarget(dir)
		case "zookeeper", "zk":
			t, err = ZooKeeperTarget(dir)
		case "consul":
			t, err = ConsulTarget(dir)
		case "nacos":
			t, err = NacosTarget(dir)
		case "nacos-junction":
			t, err = JunctionNacosTarget(dir)
		default:
			err = fmt.Errorf("unknown backend %q (raft, raft-3, etcd, zookeeper, consul, nacos, nacos-junction, or NAME=URL)", n)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// ThroughGateway measures t as clients reach it: a Junction gateway runs
// over t's driver on loopback and the scenarios use its gRPC API. Faults
// still hit t's store. Closing it leaves t open.
func ThroughGateway(t *Target) *Target {
	gw := *t
	gw.Name = t.Name + "+gateway"
	gw.Label = t.Label + ", through the Junction gateway's gRPC API"
	var closers []func()
	gw.Open = func(ctx context.Context) (backends.Backend, error) {
		b, err := t.Open(ctx)
		if err != nil {
			return nil, err
		}
		l, err := gateway.ServeLoopback(b, gateway.DefaultConfig())
		if err != nil {
			b.Close()
			return nil, err
		}
		closers = append(closers, func() { l.Close(); b.Close() })
		return remote.New(l.Conn), nil
	}
	gw.Close = func() { // t itself is closed by its owner
		for _, c := range closers {
			c()
		}
	}
	return &gw
}

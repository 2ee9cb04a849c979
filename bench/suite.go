package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/consul"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance/localcluster"
	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/sdk"
)

// Paths are the ways a workload can reach a store: gateway (Junction's
// gRPC API), auth (the same with access control on, as a token holding a
// policy), driver (in process) and client (the store's own).
var Paths = []string{"gateway", "auth", "driver", "client"}

// Store is a store under a run: the URL Junction opens it by, and how to
// reach it with its own client.
type Store struct {
	// Name heads the store's column: raft, etcd, zookeeper, consul.
	Name string
	// Label says exactly what runs, e.g. "etcd 3.7.3 (embedded)".
	Label string
	// URL is the backend URL Junction opens.
	URL string
	// Client connects the store's own Go client; nil for the built-in store,
	// whose own client is the driver.
	Client func(ctx context.Context) (Client, error)
	// Open, when set, opens the backend instead of URL.
	Open  func(ctx context.Context) (backends.Backend, error)
	close func()
	// mgmt is the management token of the store's ACL, once the auth path
	// bootstrapped it.
	mgmt string
}

// Close stops the store if the run started it.
func (s *Store) Close() {
	if s.close != nil {
		s.close()
	}
}

// StartStore starts a store on loopback for a run, with its data under
// dir: raft (the built-in store, in process), etcd (embedded in this
// process), zookeeper (Debian's package) or consul (the binary .ci/consul
// builds), the last two as child processes.
func StartStore(dir, name string) (*Store, error) {
	dir, err := os.MkdirTemp(dir, name+"-")
	if err != nil {
		return nil, err
	}
	switch name {
	case "raft":
		return &Store{Name: name, Label: "built-in Raft store (single node, in process)", URL: "raft://" + dir}, nil
	case "raft-3":
		s := &Store{Name: name, Label: "built-in Raft store, three nodes in this process replicating over loopback TCP " +
			"(the workload goes to the leader's gateway; every write is on a quorum's disk before it is acknowledged)"}
		var c *localcluster.Cluster
		s.Open = func(ctx context.Context) (backends.Backend, error) {
			var err error
			if c, err = localcluster.Start(ctx, dir, 3, nil); err != nil {
				return nil, err
			}
			l, err := c.Leader(ctx)
			if err != nil {
				return nil, err
			}
			return l.Store, nil
		}
		s.close = func() {
			if c != nil {
				c.Close()
			}
		}
		return s, nil
	case "etcd":
		srv, err := servers.StartEtcd(dir)
		if err != nil {
			return nil, err
		}
		s, err := StoreFromURL("etcd://" + srv.Addr)
		if err != nil {
			srv.Stop()
			return nil, err
		}
		s.Label, s.close = "etcd 3.7.3 (embedded in this process)", srv.Stop
		return s, nil
	case "zookeeper", "zk":
		z, err := servers.StartZooKeeper(dir)
		if err != nil {
			return nil, err
		}
		s, err := StoreFromURL("zk://" + z.Addr)
		if err != nil {
			z.Kill()
			return nil, err
		}
		s.Label, s.close = "ZooKeeper 3.8.0 (Debian package, child process)", z.Kill
		return s, nil
	case "consul":
		c, err := servers.StartConsul(dir)
		if err != nil {
			return nil, err
		}
		s, err := StoreFromURL("consul://" + c.HTTPAddr)
		if err != nil {
			c.Kill()
			return nil, err
		}
		s.Label, s.close = "Consul "+servers.ConsulVersion+" (single server, child process)", c.Kill
		return s, nil
	}
	return nil, fmt.Errorf("unknown store %q: raft, raft-3, etcd, zookeeper, consul or a backend URL", name)
}

// StoreFromURL describes a store somebody else runs, by backend URL.
func StoreFromURL(raw string) (*Store, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	s := &Store{Name: u.Scheme, Label: u.Scheme + " at " + u.Host, URL: raw}
	switch u.Scheme {
	case "raft":
		s.Label = "built-in Raft store in " + u.Path
	case "etcd", "etcds":
		cfg, err := etcd.ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		s.Name = "etcd"
		s.Client = func(context.Context) (Client, error) { return NewEtcd(cfg) }
	case "zk", "zookeeper":
		cfg, err := zookeeper.ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		s.Name = "zookeeper"
		s.Client = func(ctx context.Context) (Client, error) { return NewZooKeeper(ctx, cfg) }
	case "consul", "consul+https":
		cfg, err := consul.ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		s.Name = "consul"
		s.Client = func(context.Context) (Client, error) { return NewConsul(cfg) }
	}
	return s, nil
}

// SuiteOptions shape RunSuite.
type SuiteOptions struct {
	Options
	// Workloads to run, in order.
	Workloads []string
	// Paths to run each workload through: gateway, driver, client.
	Paths []string
	// Log receives a line per step (nil: none).
	Log io.Writer
}

// RunSuite runs every workload through every path on every store, store by
// store, and workload by workload through the paths side by side.
func RunSuite(ctx context.Context, stores []*Store, o SuiteOptions) ([]Result, error) {
	var out []Result
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	for _, s := range stores {
		rs, err := runStore(ctx, s, o, logf)
		if err != nil {
			return out, fmt.Errorf("%s: %w", s.Name, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

func runStore(ctx context.Context, s *Store, o SuiteOptions, logf func(string, ...any)) ([]Result, error) {
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	open := s.Open
	if open == nil {
		open = func(ctx context.Context) (backends.Backend, error) { return backends.Open(ctx, s.URL) }
	}
	b, err := open(octx)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	clients := map[string]Client{}
	if slices.Contains(o.Paths, "gateway") {
		cfg := gateway.DefaultConfig()
		cfg.Logger = slog.New(slog.DiscardHandler)
		l, err := gateway.ServeLoopback(b, cfg)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		clients["gateway"] = NewGateway(l.Conn, "", "")
	}
	if slices.Contains(o.Paths, "auth") {
		cfg := gateway.DefaultConfig()
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.Auth = true
		l, err := gateway.ServeLoopback(b, cfg)
		if err != nil {
			return nil, err
		}
		defer l.Close()
		conn, err := tokenConn(octx, l, s, o.Service)
		if err != nil {
			return nil, fmt.Errorf("access control for the auth path: %w", err)
		}
		defer conn.Close()
		clients["auth"] = NewGateway(conn, "", "")
	}
	if slices.Contains(o.Paths, "driver") {
		clients["driver"] = NewDriver(b, "", "")
	}
	if slices.Contains(o.Paths, "client") && s.Client != nil {
		c, err := s.Client(octx)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients["client"] = c
	}
	var out []Result
	for _, w := range o.Workloads {
		for _, p := range o.Paths {
			c, ok := clients[p]
			if !ok {
				continue
			}
			po := o.Options
			po.Service = o.Service + "-" + p
			logf("%s via %s: %s", s.Name, p, w)
			po.MeasureMemory = p == "gateway" || p == "auth"
			ls, _ := b.(logStater)
			var a0, e0 uint64
			if ls != nil {
				a0, e0 = ls.LogStats()
			}
			r, err := Run(ctx, c, w, po)
			if err != nil {
				return out, fmt.Errorf("%s via %s: %w", w, p, err)
			}
			if ls != nil {
				if a1, e1 := ls.LogStats(); a1 > a0 {
					r.EntriesPerAppend = float64(e1-e0) / float64(a1-a0)
				}
			}
			r.Target, r.Path = s.Name, p
			out = append(out, r)
		}
	}
	return out, nil
}

// benchPolicy is what the auth path's token holds: the grants the
// workloads on services and configs named after service need, among rules
// that do not match them, so that each request is decided over a policy of
// a realistic size.
func benchPolicy(service string) string {
	return `name: bench
description: the benchmark's workloads
rules:
  - namespace: "*"
    service: "` + service + `*"
    access: write
  - namespace: "*"
    config: "` + service + `*"
    access: write
  - session: "*"
    access: write
  - namespace: prod
    service: "*"
    access: deny
  - namespace: prod
    config: "*"
    access: deny
  - namespace: public
    group: internal
    config: "secret*"
    access: deny
`
}

// tokenConn bootstraps the ACL of s behind l (the first time), and
// connects to l with a token holding benchPolicy.
func tokenConn(ctx context.Context, l *gateway.Loopback, s *Store, service string) (*grpc.ClientConn, error) {
	a := pb.NewAclServiceClient(l.Conn)
	for s.mgmt == "" && ctx.Err() == nil { // the gateway creates the ACL record as it starts
		boot, err := a.Bootstrap(ctx, &pb.BootstrapRequest{})
		if err == nil {
			s.mgmt = boot.Secret
			break
		}
		if status.Code(err) != codes.Unavailable {
			return nil, fmt.Errorf("bootstrap (the auth path needs a store whose ACL it bootstraps): %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mctx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.mgmt)
	_, err := a.CreatePolicy(mctx, &pb.CreatePolicyRequest{Rules: benchPolicy(service)})
	if status.Code(err) == codes.Aborted { // a run before this one made it
		_, err = a.UpdatePolicy(mctx, &pb.UpdatePolicyRequest{Name: "bench", Rules: benchPolicy(service)})
	}
	if err != nil {
		return nil, err
	}
	ts, err := a.CreateToken(mctx, &pb.CreateTokenRequest{Description: "junction bench", Policies: []string{"bench"}})
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(l.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(sdk.BearerToken(ts.Secret)))
}

// logStater is the built-in store's count of log appends and entries.
type logStater interface {
	LogStats() (appends, entries uint64)
}

// ratio is the ratio of one result's throughput to another's.
func ratio(a, b Result) string {
	if a.Unsupported != "" || b.Unsupported != "" || b.OpsPerSec == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.OpsPerSec/b.OpsPerSec)
}

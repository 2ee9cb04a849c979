package remote_test

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/backends/remote"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
)

type harness struct {
	b       backends.Backend
	window  int
	compact func(ctx context.Context, t *testing.T, rev int64)
	// peer serves the same store through a second gateway (and, for
	// stores whose sessions a driver holds, a second driver).
	peer func(t *testing.T) backends.Backend
}

func (h *harness) Backend(*testing.T) backends.Backend { return h.b }
func (h *harness) HistoryWindow() int                  { return h.window }

// Peer implements conformance.Peers.
func (h *harness) Peer(t *testing.T) backends.Backend { return h.peer(t) }

type compacting struct{ *harness }

func (c compacting) Compact(ctx context.Context, t *testing.T, rev int64) { c.compact(ctx, t, rev) }

// serve runs a gateway over store and returns the API as a backend.
func serve(t *testing.T, store backends.Backend) backends.Backend {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.WatchHistory = 64
	srv, err := gateway.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); cancel(); <-done; srv.Close() })
	return remote.New(conn)
}

// The conformance suite through the whole stack: gRPC API → gateway (hub,
// validation, error mapping) → driver → real store.
func TestConformanceThroughGateway(t *testing.T) {
	t.Run("raft", func(t *testing.T) {
		cfg := raftstore.DefaultConfig(t.TempDir())
		cfg.History = 64
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := raftstore.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		conformance.Run(t, &harness{b: serve(t, s), window: 64, peer: func(t *testing.T) backends.Backend { return serve(t, s) }})
	})
	t.Run("etcd", func(t *testing.T) {
		ep, _ := servertest.Etcd(t)
		u, _ := url.Parse("etcd://" + ep + "?prefix=/e2e")
		cfg, _ := etcd.ConfigFromURL(u)
		open := func(t *testing.T) *etcd.Driver {
			d, err := etcd.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		}
		d := open(t)
		h := &harness{b: serve(t, d), peer: func(t *testing.T) backends.Backend { return serve(t, open(t)) }, compact: func(ctx context.Context, t *testing.T, rev int64) {
			if _, err := d.Client().Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
				t.Fatal(err)
			}
		}}
		conformance.Run(t, compacting{h})
	})
	t.Run("zookeeper", func(t *testing.T) {
		z := servertest.ZooKeeper(t)
		u, _ := url.Parse("zk://" + z.Addr)
		cfg, _ := zookeeper.ConfigFromURL(u)
		open := func(t *testing.T) *zookeeper.Driver {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			d, err := zookeeper.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		}
		conformance.Run(t, &harness{b: serve(t, open(t)), peer: func(t *testing.T) backends.Backend { return serve(t, open(t)) }})
	})
}

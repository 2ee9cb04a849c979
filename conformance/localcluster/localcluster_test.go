package localcluster_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/backends/remote"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/localcluster"
)

// clusterHarness runs the conformance suite against a follower's gateway
// in a three-node cluster on TCP, as a client of a cluster reaches it: the
// follower's gateway forwards writes and linearizable reads to the
// leader's and serves watches and stale reads from its own replica. The
// second driver the suite asks for is another node's gateway.
type clusterHarness struct {
	c        *localcluster.Cluster
	follower *localcluster.Node
}

func (h *clusterHarness) Backend(t *testing.T) backends.Backend { return h.client(t, h.follower) }
func (h *clusterHarness) HistoryWindow() int                    { return 64 }

func (h *clusterHarness) Peer(t *testing.T) backends.Backend {
	for _, nd := range h.c.Nodes {
		if nd != h.follower {
			return h.client(t, nd)
		}
	}
	t.Fatal("no other node")
	return nil
}

func (h *clusterHarness) client(t *testing.T, nd *localcluster.Node) backends.Backend {
	conn, err := grpc.NewClient(nd.ID, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return remote.New(conn)
}

func TestConformanceOnThreeNodes(t *testing.T) {
	ctx := context.Background()
	c, err := localcluster.Start(ctx, t.TempDir(), 3, func(cfg *raftstore.Config) { cfg.History = 64 })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	follower, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, &clusterHarness{c: c, follower: follower})
}

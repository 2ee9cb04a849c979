// Package localcluster runs a built-in store cluster inside one process:
// nodes on loopback TCP transports, each behind its own gateway at its node
// id, so that a follower's gateway forwards to the leader's exactly as
// separate servers do.
// Tests and benchmarks use it; production clusters are `junction server
// --raft-addr --peers` processes.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/ports"
	"github.com/junctionhq/junction/gateway"
)

// Node is one member of a Cluster.
type Node struct {
	// ID is the node id, the address its gateway serves on.
	ID string
	// Store is the node's store; Restart replaces it.
	Store *raftstore.Store

	cfg    raftstore.Config
	gw     func(*gateway.Config)
	srv    *gateway.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Routed returns the node's store as its gateway uses it: calls that need
// the leader are forwarded to the leader's gateway (gateway.Forwarding).
// Closing it leaves the node running; a Restart makes it stale.
func (nd *Node) Routed() backends.Backend {
	return gateway.Forwarding(noClose{nd.Store}, nil)
}

// noClose is a node's store that its node closes, not its user.
type noClose struct{ *raftstore.Store }

func (noClose) Close() error { return nil }

// Cluster is a running local cluster.
type Cluster struct {
	// Nodes are the members, in start order.
	Nodes []*Node
}

// Option adjusts a cluster Start makes.
type Option func(*Node)

// WithGateway adjusts the configuration of every node's gateway (access
// control, for instance).
func WithGateway(tune func(*gateway.Config)) Option { return func(nd *Node) { nd.gw = tune } }

// Start starts n nodes with data under dir and waits until they have a
// leader; tune, if not nil, adjusts each node's configuration.
func Start(ctx context.Context, dir string, n int, tune func(*raftstore.Config), opts ...Option) (*Cluster, error) {
	peers := map[string]string{}
	var apis []net.Listener
	closeAll := func() {
		for _, l := range apis {
			l.Close()
		}
	}
	for range n {
		api, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll()
			return nil, err
		}
		apis = append(apis, api)
		raftAddr, err := ports.Addr() // the node's Raft transport listens here
		if err != nil {
			closeAll()
			return nil, err
		}
		peers[api.Addr().String()] = raftAddr
	}
	c := &Cluster{Nodes: make([]*Node, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, api := range apis {
		cfg := raftstore.DefaultConfig(filepath.Join(dir, "node"+strconv.Itoa(i)))
		cfg.NodeID = api.Addr().String()
		cfg.RaftAddr, cfg.Peers = peers[cfg.NodeID], peers
		if tune != nil {
			tune(&cfg)
		}
		wg.Go(func() {
			s, err := raftstore.Open(ctx, cfg)
			nd := &Node{ID: cfg.NodeID, Store: s, cfg: cfg}
			for _, o := range opts {
				o(nd)
			}
			c.Nodes[i], errs[i] = nd, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeAll()
		for _, nd := range c.Nodes {
			if nd.Store != nil {
				nd.Store.Close()
			}
		}
		return nil, err
	}
	for i, nd := range c.Nodes {
		if err := nd.serve(apis[i]); err != nil {
			c.Close()
			closeAll()
			return nil, err
		}
	}
	return c, nil
}

// serve starts the node's gateway on lis.
func (nd *Node) serve(lis net.Listener) error {
	cfg := gateway.DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	if nd.gw != nil {
		nd.gw(&cfg)
	}
	srv, err := gateway.New(nd.Store, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.srv, nd.cancel, nd.done = srv, cancel, make(chan struct{})
	go func() { defer close(nd.done); _ = srv.Serve(ctx, lis) }()
	return nil
}

// stop stops the node's gateway and store.
func (nd *Node) stop() error {
	var errs []error
	if nd.cancel != nil {
		nd.cancel()
		<-nd.done
		errs = append(errs, nd.srv.Close())
		nd.cancel = nil
	}
	if nd.Store != nil {
		errs = append(errs, nd.Store.Close())
	}
	return errors.Join(errs...)
}

// Restart stops the node, as a crash would (nothing is flushed beyond what
// every acknowledged write already is), and starts it again with its data
// on the same addresses; it returns once the node knows a leader.
func (nd *Node) Restart(ctx context.Context) error {
	if err := nd.stop(); err != nil {
		return err
	}
	// Listen first: the node may lead as soon as it opens, and the others
	// then forward to this address.
	lis, err := net.Listen("tcp", nd.ID)
	if err != nil {
		return err
	}
	s, err := raftstore.Open(ctx, nd.cfg)
	if err != nil {
		lis.Close()
		return err
	}
	nd.Store = s
	return nd.serve(lis)
}

// Leader returns the node that leads, as the nodes report it.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	for _, nd := range c.Nodes {
		st, err := nd.Store.Status(ctx)
		if err != nil || st.Leader == "" {
			continue
		}
		for _, l := range c.Nodes {
			if l.ID == st.Leader {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no leader among %d nodes", len(c.Nodes))
}

// Follower returns a node that does not lead.
func (c *Cluster) Follower(ctx context.Context) (*Node, error) {
	l, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	for _, nd := range c.Nodes {
		if nd != l {
			return nd, nil
		}
	}
	return nil, errors.New("a single node has no follower")
}

// Close stops every gateway, then every store.
func (c *Cluster) Close() error {
	for _, nd := range c.Nodes {
		if nd != nil && nd.cancel != nil {
			nd.cancel() // all at once: none waits for a quorum the others left
		}
	}
	var errs []error
	for _, nd := range c.Nodes {
		if nd != nil {
			errs = append(errs, nd.stop())
		}
	}
	return errors.Join(errs...)
}

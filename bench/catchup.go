package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/ports"
)

// CatchUpPoint is what one size measured of a new follower's catch-up: a
// 3-node cluster of the built-in store is loaded through one node, then a
// fourth node joins it with an empty data dir.
type CatchUpPoint struct {
	Size ScaleSize
	// LoadSeconds is how long loading the cluster took, at Concurrency
	// callers, through a node that forwards to the leader.
	LoadSeconds float64
	// Revision is the cluster's once loaded: what the new node must apply.
	Revision int64
	// ReadySeconds runs from the new node's process start to its /readyz;
	// CatchUpSeconds to its having applied Revision, read from its own
	// status.
	ReadySeconds, CatchUpSeconds float64
}

// catchUpTimeout bounds a new node's catch-up.
const catchUpTimeout = 10 * time.Minute

// catchUpPoint starts a 3-node cluster in dir, loads it with z through its
// first node, then joins a fourth node and times its catch-up.
func catchUpPoint(ctx context.Context, bin, dir string, z ScaleSize, o ScaleOptions, progress io.Writer) (CatchUpPoint, error) {
	pt := CatchUpPoint{Size: z}
	c, err := startScaleCluster(ctx, bin, dir)
	if err != nil {
		return pt, err
	}
	defer c.stop()
	cc, err := grpc.NewClient(c.nodes[0].addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return pt, err
	}
	defer cc.Close()
	start := time.Now()
	if err := loadInstances(ctx, pb.NewRegistryServiceClient(cc), z, o, progress); err != nil {
		return pt, err
	}
	if err := loadConfigs(ctx, pb.NewConfigServiceClient(cc), z, o, progress); err != nil {
		return pt, err
	}
	pt.LoadSeconds = time.Since(start).Seconds()
	for _, n := range c.nodes {
		rev, err := appliedRevision(ctx, n.addr)
		if err != nil {
			return pt, err
		}
		pt.Revision = max(pt.Revision, rev)
	}

	api, raft, err := addrPair()
	if err != nil {
		return pt, err
	}
	start = time.Now()
	d := filepath.Join(dir, "node-3")
	joined, _, err := launchScaleServer(ctx, bin, d, api, "--data-dir", d, "--raft-addr", raft, "--join", c.nodes[0].addr)
	if err != nil {
		return pt, fmt.Errorf("the new node: %w", err)
	}
	defer joined.stop()
	pt.ReadySeconds = time.Since(start).Seconds()
	deadline := time.Now().Add(catchUpTimeout)
	for {
		rev, err := appliedRevision(ctx, api)
		if err == nil && rev >= pt.Revision {
			break
		}
		if time.Now().After(deadline) {
			return pt, fmt.Errorf("the new node is at revision %d (%v) after %v, not %d", rev, err, catchUpTimeout, pt.Revision)
		}
		select {
		case <-ctx.Done():
			return pt, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	pt.CatchUpSeconds = time.Since(start).Seconds()
	if err := checkReplica(ctx, api, z); err != nil {
		return pt, fmt.Errorf("the new node, caught up: %w", err)
	}
	fmt.Fprintf(progress, "%s, %s: a new follower caught up to revision %d in %s (ready in %s)\n",
		filepath.Base(bin), z, pt.Revision, secs(pt.CatchUpSeconds), secs(pt.ReadySeconds))
	return pt, nil
}

// scaleCluster is a 3-node cluster of the built-in store, each node a
// `junction server` process.
type scaleCluster struct {
	nodes []*scaleServer
}

// startScaleCluster starts the three nodes together (each waits for the
// others to elect) and returns once each is ready.
func startScaleCluster(ctx context.Context, bin, dir string) (*scaleCluster, error) {
	var api, raft, peers [3]string
	for i := range 3 {
		var err error
		if api[i], raft[i], err = addrPair(); err != nil {
			return nil, err
		}
		peers[i] = api[i] + "=" + raft[i]
	}
	nodes := make([]*scaleServer, 3)
	var errs [3]error
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			d := filepath.Join(dir, "node-"+strconv.Itoa(i))
			nodes[i], _, errs[i] = launchScaleServer(ctx, bin, d, api[i], "--data-dir", d,
				"--raft-addr", raft[i], "--peers", strings.Join(peers[:], ","))
		})
	}
	wg.Wait()
	c := &scaleCluster{}
	for _, n := range nodes {
		if n != nil {
			c.nodes = append(c.nodes, n)
		}
	}
	if err := errors.Join(errs[:]...); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *scaleCluster) stop() {
	for _, n := range c.nodes {
		n.stop()
	}
}

// appliedRevision is the revision node addr has applied, from its status.
func appliedRevision(ctx context.Context, addr string) (int64, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := pb.NewStatusServiceClient(cc).GetStatus(ctx, &pb.GetStatusRequest{})
	if err != nil {
		return 0, err
	}
	return st.GetRevision(), nil
}

// checkReplica reads, from node addr's own replica (stale reads), the last
// service's instances and the last config item of size z.
func checkReplica(ctx context.Context, addr string, z ScaleSize) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	perService := max(z.Instances/max(z.Services, 1), 1)
	if z.Services > 0 {
		svc := scaleService(z.Services - 1)
		r, err := pb.NewRegistryServiceClient(cc).ListInstances(ctx, &pb.ListInstancesRequest{Service: svc, Stale: true})
		if err != nil || (z.Instances%z.Services == 0 && len(r.GetInstances()) != perService) {
			return fmt.Errorf("%s has %d instances (%v), want %d", svc, len(r.GetInstances()), err, perService)
		}
	}
	if z.Configs > 0 {
		if _, err := pb.NewConfigServiceClient(cc).GetConfig(ctx, &pb.GetConfigRequest{DataId: scaleConfig(z.Configs - 1), Stale: true}); err != nil {
			return fmt.Errorf("the last config: %w", err)
		}
	}
	return nil
}

// addrPair is two free loopback addresses: a node's API and its Raft
// transport.
func addrPair() (api, raft string, err error) {
	if api, err = ports.Addr(); err != nil {
		return "", "", err
	}
	raft, err = ports.Addr()
	return api, raft, err
}

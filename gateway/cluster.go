package gateway

import (
	"context"
	"net"
	"sync"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
)

// clusterService serves the membership of a built-in store cluster.
type clusterService struct {
	pb.UnimplementedClusterServiceServer
	s *Server
}

func (c *clusterService) cluster() (backends.Cluster, error) {
	return cluster(c.s.b)
}

func (c *clusterService) list(ctx context.Context, cl backends.Cluster) (*pb.ListMembersResponse, error) {
	ms, leader, err := cl.Members(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListMembersResponse{Leader: leader}
	// The node under this gateway is reachable: it answered. (A single
	// node's id is a name, not an address to dial.)
	var self string
	if c.s.lead != nil {
		if id, isSelf := c.s.lead.Leader(); isSelf {
			self = id
		}
	}
	var wg sync.WaitGroup
	for _, m := range ms {
		pm := &pb.Member{Id: m.ID, RaftAddress: m.Address, Voter: m.Voter, Leader: m.Leader}
		resp.Members = append(resp.Members, pm)
		if m.ID == self {
			pm.Reachable = true
			continue
		}
		wg.Go(func() { pm.Reachable = reachable(ctx, m.ID) })
	}
	wg.Wait()
	return resp, nil
}

// reachable reports whether a member's API address (its id) accepts a
// connection within half a second.
func reachable(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func (c *clusterService) ListMembers(ctx context.Context, _ *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	cl, err := c.cluster()
	if err != nil {
		return nil, err
	}
	return c.list(ctx, cl)
}

func (c *clusterService) AddMember(ctx context.Context, req *pb.AddMemberRequest) (*pb.ListMembersResponse, error) {
	cl, err := c.cluster()
	if err != nil {
		return nil, err
	}
	if err := cl.AddMember(ctx, req.Id, req.RaftAddress); err != nil {
		return nil, err
	}
	return c.list(ctx, cl)
}

func (c *clusterService) RemoveMember(ctx context.Context, req *pb.RemoveMemberRequest) (*pb.ListMembersResponse, error) {
	cl, err := c.cluster()
	if err != nil {
		return nil, err
	}
	if err := cl.RemoveMember(ctx, req.Id); err != nil {
		return nil, err
	}
	return c.list(ctx, cl)
}

package gateway

import (
	"context"

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
	for _, m := range ms {
		resp.Members = append(resp.Members, &pb.Member{Id: m.ID, RaftAddress: m.Address, Voter: m.Voter, Leader: m.Leader})
	}
	return resp, nil
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

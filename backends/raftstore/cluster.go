package raftstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

var _ backends.Cluster = (*Store)(nil)

// Members implements backends.Cluster: the Raft configuration as this node
// knows it, which a follower learns from the leader's log.
func (s *Store) Members(ctx context.Context) ([]backends.Member, string, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, "", fmt.Errorf("read the raft configuration: %w: %v", model.ErrUnavailable, err)
	}
	_, leader := s.raft.LeaderWithID()
	var out []backends.Member
	for _, srv := range f.Configuration().Servers {
		out = append(out, backends.Member{ID: string(srv.ID), Address: string(srv.Address),
			Voter: srv.Suffrage == raft.Voter, Leader: srv.ID == leader})
	}
	return out, string(leader), nil
}

// clustered fails for a node that runs alone on an in-memory transport.
func (s *Store) clustered() error {
	if s.cfg.RaftAddr == "" {
		return model.Invalid("raft-addr", "this node runs alone; start it with --raft-addr (and --peers or --join) to form a cluster")
	}
	return nil
}

// AddMember implements backends.Cluster; only the leader adds members.
func (s *Store) AddMember(ctx context.Context, id, raftAddress string) error {
	if err := s.clustered(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(id); err != nil {
		return model.Invalid("id", "a node id is the node's Junction API address HOST:PORT, got %q", id)
	}
	if _, _, err := net.SplitHostPort(raftAddress); err != nil {
		return model.Invalid("raft_address", "%q is not HOST:PORT", raftAddress)
	}
	if !s.ready.Load() {
		return s.leaderErr()
	}
	members, _, err := s.Members(ctx)
	if err != nil {
		return err
	}
	for _, m := range members {
		switch {
		case m.ID == id && m.Address == raftAddress && m.Voter:
			return nil // already a member: joining again after a restart
		case m.ID != id && m.Address == raftAddress:
			return model.Invalid("raft_address", "%s is the Raft address of member %s", raftAddress, m.ID)
		}
	}
	if err := s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddress), 0, s.timeout(ctx)).Error(); err != nil {
		return fmt.Errorf("add member %s: %w", id, raftErr(err))
	}
	s.log.Info("member added", "id", id, "raft_address", raftAddress)
	return nil
}

// RemoveMember implements backends.Cluster; only the leader removes
// members. The removed node stops taking part; stop its process.
func (s *Store) RemoveMember(ctx context.Context, id string) error {
	if err := s.clustered(); err != nil {
		return err
	}
	if !s.ready.Load() {
		return s.leaderErr()
	}
	members, _, err := s.Members(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, m := range members {
		found = found || m.ID == id
	}
	switch {
	case !found:
		return fmt.Errorf("member %s: %w", id, model.ErrNotFound)
	case len(members) == 1:
		return model.Invalid("id", "%s is the last member; a cluster cannot remove all its members", id)
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, s.timeout(ctx)).Error(); err != nil {
		return fmt.Errorf("remove member %s: %w", id, raftErr(err))
	}
	s.log.Info("member removed", "id", id)
	return nil
}

// timeout is how long a Raft call may wait: ctx's deadline, else 10s.
func (s *Store) timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 10 * time.Second
}

// raftErr makes a Raft error portable.
func raftErr(err error) error {
	return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
}

// Joiner asks a member of a running cluster, at its Junction API address,
// to add the node id whose Raft transport listens on raftAddress. The
// gateway provides one (gateway.JoinCluster); the store itself speaks only
// Raft.
type Joiner func(ctx context.Context, member, id, raftAddress string) error

// join asks the member at cfg.Join to add this node, retrying while the
// cluster cannot answer (no leader yet, the member not up) until ctx ends.
func (s *Store) join(ctx context.Context, self raft.ServerAddress) error {
	if s.cfg.Joiner == nil {
		return model.Invalid("join", "joining a cluster needs a Joiner to reach %s (the server sets gateway.JoinCluster)", s.cfg.Join)
	}
	for {
		err := s.cfg.Joiner(ctx, s.cfg.Join, s.nodeID, string(self))
		if err == nil {
			s.log.Info("joined the cluster", "through", s.cfg.Join, "id", s.nodeID, "raft_address", self)
			return nil
		}
		if !errors.Is(err, model.ErrUnavailable) {
			return fmt.Errorf("join the cluster through %s: %w", s.cfg.Join, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join the cluster through %s: %w", s.cfg.Join, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TransferLeadership asks this node, if it leads, to hand leadership to
// another voter and waits for it to step down; on a follower it does
// nothing. Use it before taking the leader down for maintenance.
func (s *Store) TransferLeadership(ctx context.Context) error {
	if !s.ready.Load() {
		return nil
	}
	if err := s.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("transfer leadership: %w", raftErr(err))
	}
	return nil
}

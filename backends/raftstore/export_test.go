package raftstore

import (
	"time"

	"github.com/hashicorp/raft"

	"github.com/junctionhq/junction/model"
)

// WithTransport returns cfg running on t instead of a TCP transport.
func WithTransport(cfg Config, t raft.Transport) Config {
	cfg.transport = t
	return cfg
}

// SweepEvery sets how often config writes sweep expired versions, until
// the returned function restores it.
func SweepEvery(d time.Duration) (restore func()) {
	old := sweepEvery
	sweepEvery = d
	return func() { sweepEvery = old }
}

// StoredVersions returns how many versions of key the state machine holds,
// expired or not, and the number it gave out last.
func StoredVersions(s *Store, key model.ConfigKey) (stored int, last int64) {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	if h := s.fsm.hist[key]; h != nil {
		return len(h.Versions), h.Last
	}
	return 0, 0
}

// TakeSnapshot makes the store take a Raft snapshot now.
func TakeSnapshot(s *Store) error {
	return s.raft.Snapshot().Error()
}

// ExpiryState returns how many session deadlines and proposed expiries
// the leader's expiry loop holds.
func ExpiryState(s *Store) (deadlines, expiring int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.deadlines), len(s.expiring)
}

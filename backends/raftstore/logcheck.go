package raftstore

import (
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// ErrLogDamaged is returned by Open when the node's Raft log or snapshots
// cannot be read: the node cannot start on its data, and must be rebuilt
// from the other members (see DamagedError).
var ErrLogDamaged = errors.New("the Raft log cannot be read")

// DamagedError is the error Open returns for a data directory it cannot
// start on. Its message names the directory and the recovery.
type DamagedError struct {
	Dir     string // the node's data directory
	NodeID  string // the node's id (in a cluster, its API address)
	Cluster bool   // the node is a member of a cluster
	Err     error  // what could not be read
}

func (e *DamagedError) Error() string {
	msg := fmt.Sprintf("%v in %s: %v. This node cannot start on this data. ", ErrLogDamaged, e.Dir, e.Err)
	if e.Cluster {
		return msg + fmt.Sprintf("To recover it: remove it from the cluster through another member "+
			"(junction members remove %s), delete %s, and start it again with the same --listen and --raft-addr "+
			"and --join API-ADDR-OF-A-MEMBER in place of --peers: it receives the whole state from the leader",
			e.NodeID, e.Dir)
	}
	return msg + fmt.Sprintf("To recover it: move %s aside, start on an empty data directory "+
		"and load the last backup (junction snapshot restore)", e.Dir)
}

// Unwrap makes errors.Is(err, ErrLogDamaged) hold, and exposes the cause.
func (e *DamagedError) Unwrap() []error { return []error{ErrLogDamaged, e.Err} }

// checkLog reads every entry raft.NewRaft reads when it starts, those after
// the newest snapshot: NewRaft panics on one it cannot read (as a raft-wal
// v0.4.0 log could be left after a change of leader), and a node should
// exit with an error that says what to do instead.
func checkLog(logs raft.LogStore, snaps raft.SnapshotStore) error {
	last, err := logs.LastIndex()
	if err != nil {
		return fmt.Errorf("last index: %w", err)
	}
	from := uint64(1)
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) > 0 { // newest first
		from = list[0].Index + 1
	}
	var entry raft.Log
	for i := from; i <= last; i++ {
		if err := logs.GetLog(i, &entry); err != nil {
			return fmt.Errorf("entry %d of %d: %w", i, last, err)
		}
	}
	return nil
}

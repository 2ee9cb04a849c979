package faults

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// SealLogWithoutIndex damages the raft-wal log in walDir, a stopped node's,
// the way raft-wal v0.4.0 did when a change of leader truncated the tail of
// a follower's log: the tail segment is recorded as sealed but without its
// index block, and the log goes on in a new segment. The log still opens
// and its last entry still reads, but every earlier entry of the damaged
// segment fails with "sealed segment has no index block": the state in
// which raft.NewRaft panics. It returns the first and last index damaged.
func SealLogWithoutIndex(walDir string) (first, last uint64, err error) {
	w, err := wal.Open(walDir)
	if err != nil {
		return 0, 0, fmt.Errorf("open the log: %w", err)
	}
	n, err := w.LastIndex()
	var entry raft.Log
	if err == nil {
		err = w.GetLog(n, &entry)
	}
	if err = errors.Join(err, w.Close()); err != nil {
		return 0, 0, fmt.Errorf("read the last entry: %w", err)
	}

	var meta metadb.BoltMetaDB
	state, err := meta.Load(walDir)
	if err != nil {
		return 0, 0, fmt.Errorf("load the log's metadata: %w", err)
	}
	tail := &state.Segments[len(state.Segments)-1]
	if !tail.SealTime.IsZero() || n < tail.BaseIndex+1 {
		meta.Close()
		return 0, 0, fmt.Errorf("the tail segment holds too few entries to damage (%d from %d)", n, tail.BaseIndex)
	}
	now := time.Now()
	tail.SealTime, tail.IndexStart, tail.MaxIndex = now, 0, n-1
	next := *tail
	next.ID, next.BaseIndex, next.MinIndex, next.MaxIndex = state.NextSegmentID, n, n, 0
	next.CreateTime, next.SealTime = now, time.Time{}
	state.NextSegmentID++
	state.Segments = append(state.Segments, next)
	first = max(tail.MinIndex, tail.BaseIndex)
	err = meta.CommitState(state)
	if err = errors.Join(err, meta.Close()); err != nil {
		return 0, 0, fmt.Errorf("commit the damaged metadata: %w", err)
	}

	// The last entry again, in the new tail.
	if w, err = wal.Open(walDir); err != nil {
		return 0, 0, fmt.Errorf("reopen the damaged log: %w", err)
	}
	if err = errors.Join(w.StoreLog(&entry), w.Close()); err != nil {
		return 0, 0, fmt.Errorf("append to the damaged log: %w", err)
	}
	return first, n - 1, nil
}

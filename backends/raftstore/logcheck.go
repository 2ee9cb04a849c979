package raftstore

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"syscall"

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
		return msg + fmt.Sprintf("To recover it while the other members have a leader "+
			"(junction --addr OTHER-MEMBER members list): remove it from the cluster through another member "+
			"(junction --addr OTHER-MEMBER members remove %s), move %s aside, and start it again with the same "+
			"--listen and --raft-addr and --join OTHER-MEMBER in place of --peers: it receives the whole state "+
			"from the leader. Without a leader (a majority damaged), restore the last backup instead",
			e.NodeID, e.Dir)
	}
	return msg + fmt.Sprintf("To recover it: move %s aside, start on an empty data directory "+
		"and load the last backup (junction snapshot restore)", e.Dir)
}

// Unwrap makes errors.Is(err, ErrLogDamaged) hold, and exposes the cause.
func (e *DamagedError) Unwrap() []error { return []error{ErrLogDamaged, e.Err} }

// dataErr is the error for data in cfg.Dir that the store could not read:
// one from the operating system (a permission, a full or read-only disk,
// too many open files) says so and names the directory, for it is no
// damage and wiping the data would not help; anything else is damage.
func dataErr(cfg Config, nodeID string, err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("raft data in %s: %w", cfg.Dir, err)
	}
	return &DamagedError{Dir: cfg.Dir, NodeID: nodeID, Cluster: cfg.RaftAddr != "", Err: err}
}

// checkLog reads every entry the log holds: raft.NewRaft reads those after
// the newest snapshot and panics on one it cannot read (as a raft-wal
// v0.4.0 log could be left after a change of leader), and a leader that
// cannot read an older one can never bring a lagging follower up to date.
// The entries after the newest snapshot, which raft applies once elected,
// are kept in logs for that, read from disk once.
func checkLog(logs *startLogs, snaps raft.SnapshotStore) error {
	first, err := logs.FirstIndex()
	if err != nil {
		return fmt.Errorf("first index: %w", err)
	}
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
	tail := from
	if first > 0 {
		from = min(from, first)
	}
	var entry raft.Log
	kept := 0
	for i := from; i <= last; i++ {
		e := &entry
		if i >= tail && kept < maxStartBytes {
			e = new(raft.Log)
		}
		if err := logs.LogStore.GetLog(i, e); err != nil {
			return fmt.Errorf("entry %d of %d..%d: %w", i, from, last, err)
		}
		if e != &entry {
			logs.keep(e)
			kept += len(e.Data)
		}
	}
	return nil
}

// maxStartBytes bounds the entries startLogs keeps (the log's tail after
// a snapshot is at most Config.SnapshotBytes, 64 MiB by default).
const maxStartBytes = 256 << 20

// startLogs is the Raft log, with the entries checkLog read for raft to
// read again at start: NewRaft scans them for configuration changes, then
// applies them once elected. The WAL reads at least 64 KiB from its file
// for every entry asked for, which made these reads most of a restart. The
// kept entries are served until drop (once the store is ready), and one
// the log overwrites or deletes is forgotten.
type startLogs struct {
	raft.LogStore
	mu     sync.Mutex
	kept   map[uint64]*raft.Log
	lo, hi uint64 // the indexes kept lie in lo..hi
}

func (l *startLogs) keep(e *raft.Log) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kept == nil {
		l.kept, l.lo = map[uint64]*raft.Log{}, e.Index
	}
	l.kept[e.Index] = e
	l.lo, l.hi = min(l.lo, e.Index), max(l.hi, e.Index)
}

// GetLog implements raft.LogStore.
func (l *startLogs) GetLog(index uint64, out *raft.Log) error {
	l.mu.Lock()
	e, found := l.kept[index]
	l.mu.Unlock()
	if found {
		*out = *e
		return nil
	}
	return l.LogStore.GetLog(index, out)
}

// StoreLog implements raft.LogStore.
func (l *startLogs) StoreLog(e *raft.Log) error { return l.StoreLogs([]*raft.Log{e}) }

// StoreLogs implements raft.LogStore: an entry written over a kept one
// (and every later one, which the write truncates) is forgotten.
func (l *startLogs) StoreLogs(logs []*raft.Log) error {
	if len(logs) > 0 {
		l.forget(logs[0].Index, math.MaxUint64)
	}
	return l.LogStore.StoreLogs(logs)
}

// DeleteRange implements raft.LogStore.
func (l *startLogs) DeleteRange(min, max uint64) error {
	l.forget(min, max)
	return l.LogStore.DeleteRange(min, max)
}

// drop forgets every kept entry.
func (l *startLogs) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kept = nil
}

func (l *startLogs) forget(from, to uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kept == nil || from > l.hi || to < l.lo {
		return
	}
	for i := max(from, l.lo); i <= min(to, l.hi); i++ {
		delete(l.kept, i)
	}
}

// newRaft is raft.NewRaft, with a panic on data it cannot read (an entry
// checkLog could not foresee, such as a configuration entry that reads but
// does not decode) returned as an error. NewRaft panics before it starts
// any goroutine, so nothing is left running.
func newRaft(rc *raft.Config, fsm raft.FSM, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore,
	trans raft.Transport) (r *raft.Raft, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("raft refused the data at start: %v", p)
		}
	}()
	return raft.NewRaft(rc, fsm, logs, stable, snaps, trans)
}

// Package raftstore is Junction's built-in store: a replicated state machine
// on hashicorp/raft with a durable write-ahead log (raft-wal) and file
// snapshots. The Raft log index is the revision.
//
// Open it with a URL:
//
//	raft://DATA_DIR?history=10000&snapshot-threshold=8192
//
// Options (query string):
//   - history: watch events kept in memory for resumable watches (default 10000);
//     a watch from an older revision starts with a RESET.
//   - snapshot-threshold: log entries between snapshots (default 8192).
//   - node-id: this node's Raft server id (default: generated once and kept in
//     DATA_DIR/node-id).
//
// Sessions are kept alive by the leader in memory and expired by log entries
// it proposes, so every replica removes a session's instances at the same
// revision. After a restart or a leader change every session gets a fresh
// TTL, as etcd does with leases.
package raftstore

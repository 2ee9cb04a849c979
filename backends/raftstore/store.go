package raftstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

func init() { backends.RegisterURL("raft", ConfigFromURL, Open) }

// Config configures a Store.
type Config struct {
	// Dir holds the log, snapshots and node id. Required.
	Dir string
	// NodeID is the Raft server id; empty: generated once and kept in Dir.
	NodeID string
	// History is how many watch events are kept for resumable watches.
	History int
	// SnapshotThreshold is how many log entries trigger a snapshot.
	SnapshotThreshold uint64
	// SnapshotBytes is how many bytes of log entries trigger a snapshot,
	// whichever of the two comes first: a few large configs compact the
	// log as soon as many small writes do.
	SnapshotBytes uint64
	// TrailingLogs is how many log entries are kept after a snapshot, so
	// that a follower a little behind catches up from the log; one further
	// behind is sent the snapshot.
	TrailingLogs uint64
	// ExpiryInterval is how often the leader looks for expired sessions.
	ExpiryInterval time.Duration
	// HeartbeatTimeout is how long a follower waits without hearing from
	// the leader before it starts an election; ElectionTimeout is how long
	// a candidate waits for votes. The leader steps down when it has not
	// heard from a quorum for half the heartbeat timeout.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// Logger receives the store's logs; nil: slog.Default().
	Logger *slog.Logger

	// Cluster mode. RaftAddr is the address this node's Raft transport
	// listens on; empty runs a single node on an in-memory transport.
	RaftAddr string
	// Peers are the members a new cluster starts with, node ID → Raft
	// address, this node included. A node ID is the node's Junction API
	// address (HOST:PORT): the gateway over a follower forwards writes and
	// linearizable reads to the leader's (see backends.Leadership). A node
	// with existing state ignores Peers.
	Peers map[string]string
	// Join is the API address of any member of a running cluster, which
	// this new node asks, through Joiner, to add it. A node with existing
	// state ignores it: it is already a member.
	Join string
	// Joiner reaches the member at Join; a node that joins needs one.
	Joiner Joiner
	// PeerTLS, when set, runs the Raft transport over mutual TLS.
	PeerTLS *PeerTLS

	// transport replaces the TCP transport on RaftAddr: tests run a
	// cluster in one process on raft's in-memory transport and cut it.
	transport raft.Transport
}

// standaloneTimeout is a single node's heartbeat and election timeout.
const standaloneTimeout = 20 * time.Millisecond

// DefaultConfig returns the defaults for a store in dir.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, History: 10000, SnapshotThreshold: 8192, SnapshotBytes: 64 << 20, TrailingLogs: 10240, ExpiryInterval: 100 * time.Millisecond,
		HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond}
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return model.Invalid("dir", "the data directory must be set (raft://DIR)")
	case c.History < 1:
		return model.Invalid("history", "must be at least 1, got %d", c.History)
	case c.SnapshotThreshold < 1:
		return model.Invalid("snapshot-threshold", "must be at least 1")
	case c.SnapshotBytes < 4096:
		return model.Invalid("snapshot-bytes", "must be at least 4096, got %d", c.SnapshotBytes)
	case c.ExpiryInterval <= 0 || c.ExpiryInterval > time.Second:
		return model.Invalid("expiry-interval", "must be in (0, 1s], got %v", c.ExpiryInterval)
	case c.HeartbeatTimeout < 10*time.Millisecond || c.HeartbeatTimeout > time.Minute:
		return model.Invalid("heartbeat-timeout", "must be in [10ms, 1m], got %v", c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout || c.ElectionTimeout > time.Minute:
		return model.Invalid("election-timeout", "must be in [heartbeat-timeout (%v), 1m], got %v", c.HeartbeatTimeout, c.ElectionTimeout)
	case c.Join != "" && len(c.Peers) > 0:
		return model.Invalid("join", "a node either starts a cluster (peers) or joins one (join), not both")
	case (len(c.Peers) > 0 || c.Join != "") && c.NodeID == "":
		return model.Invalid("node-id", "a cluster node's id is its API address (HOST:PORT)")
	case (len(c.Peers) > 0 || c.Join != "") && c.RaftAddr == "":
		return model.Invalid("raft-addr", "a cluster node needs its Raft address")
	case len(c.Peers) > 0 && c.Peers[c.NodeID] != c.RaftAddr:
		return model.Invalid("peers", "must list this node (%s=%s)", c.NodeID, c.RaftAddr)
	}
	if c.RaftAddr != "" && c.NodeID != "" {
		host, _, err := net.SplitHostPort(c.NodeID)
		if ip := net.ParseIP(host); err != nil || host == "" || (ip != nil && ip.IsUnspecified()) {
			return model.Invalid("node-id", "%q cannot be reached by the other nodes: a cluster node's id is the API address "+
				"they forward to (listen on a reachable HOST:PORT, not 0.0.0.0)", c.NodeID)
		}
	}
	if c.Join != "" {
		if _, _, err := net.SplitHostPort(c.Join); err != nil {
			return model.Invalid("join", "%q is not the API HOST:PORT of a cluster member", c.Join)
		}
	}
	for id, addr := range c.Peers {
		if _, _, err := net.SplitHostPort(id); err != nil {
			return model.Invalid("peers", "node id %q is not the node's API HOST:PORT", id)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return model.Invalid("peers", "Raft address %q of %s is not HOST:PORT", addr, id)
		}
	}
	return nil
}

// ConfigFromURL reads a raft:// URL. raft://./data and raft:///abs/path both work.
func ConfigFromURL(u *url.URL) (Config, error) {
	dir := u.Host + u.Path
	if u.Opaque != "" {
		dir = u.Opaque
	}
	cfg := DefaultConfig(dir)
	q := u.Query()
	for k := range q {
		switch k {
		case "history", "snapshot-threshold", "snapshot-bytes", "trailing-logs", "node-id", "raft-addr", "peers", "join",
			"heartbeat-timeout", "election-timeout":
		default:
			return cfg, model.Invalid(k, "unknown raft:// option; known: history, snapshot-threshold, snapshot-bytes, trailing-logs, "+
				"node-id, raft-addr, peers, join, heartbeat-timeout, election-timeout")
		}
	}
	for k, d := range map[string]*time.Duration{"heartbeat-timeout": &cfg.HeartbeatTimeout, "election-timeout": &cfg.ElectionTimeout} {
		if v := q.Get(k); v != "" {
			var err error
			if *d, err = time.ParseDuration(v); err != nil {
				return cfg, model.Invalid(k, "%q is not a duration (500ms, 2s)", v)
			}
		}
	}
	for k, n := range map[string]*uint64{"snapshot-bytes": &cfg.SnapshotBytes, "trailing-logs": &cfg.TrailingLogs,
		"snapshot-threshold": &cfg.SnapshotThreshold} {
		if v := q.Get(k); v != "" {
			var err error
			if *n, err = strconv.ParseUint(v, 10, 64); err != nil {
				return cfg, model.Invalid(k, "%q is not a whole number", v)
			}
		}
	}
	if v := q.Get("history"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, model.Invalid("history", "%q is not a number", v)
		}
		cfg.History = n
	}
	cfg.NodeID = q.Get("node-id")
	cfg.RaftAddr = q.Get("raft-addr")
	cfg.Join = q.Get("join")
	if v := q.Get("peers"); v != "" {
		cfg.Peers = map[string]string{}
		for _, p := range strings.Split(v, ",") {
			id, addr, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok {
				return cfg, model.Invalid("peers", "%q is not API-ADDR=RAFT-ADDR", p)
			}
			cfg.Peers[id] = addr
		}
	}
	return cfg, cfg.Validate()
}

// Store is the built-in backend.
type Store struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	wal    *wal.WAL
	fsm    *fsm
	nodeID string

	// ready is true while this node leads and has applied everything
	// committed before its term (a barrier), so local reads are current.
	ready atomic.Bool

	mu        sync.Mutex
	deadlines map[string]time.Time // session → expiry, kept by the leader
	expiring  map[string]bool      // expiry proposed, not yet applied
	rescan    bool                 // deadlines were cleared: every session needs one

	appends, entries atomic.Uint64 // log writes (one fsync each) and the entries they carried
	logBytes         atomic.Uint64 // bytes of log entries written

	stop chan struct{}
	wg   sync.WaitGroup
}

// LogStats reports how many times this node appended to its Raft log (each
// append is one write and one fsync) and how many entries those appends
// carried: their ratio is how many writes share an fsync.
func (s *Store) LogStats() (appends, entries uint64) {
	return s.appends.Load(), s.entries.Load()
}

// walMetrics counts the log's appends for LogStats.
type walMetrics struct{ s *Store }

func (m walMetrics) IncrementCounter(name string, delta uint64) {
	switch name {
	case "log_appends":
		m.s.appends.Add(delta)
	case "log_entries_written":
		m.s.entries.Add(delta)
	case "log_entry_bytes_written":
		m.s.logBytes.Add(delta)
	}
}

func (m walMetrics) SetGauge(string, uint64) {}

var _ backends.Backend = (*Store)(nil)

var _ backends.Leadership = (*Store)(nil)

// Leader implements backends.Leadership. A single node always serves; a
// cluster node serves while it leads and has applied everything committed
// before its term.
func (s *Store) Leader() (string, bool) {
	if s.ready.Load() || s.cfg.RaftAddr == "" {
		return s.nodeID, true
	}
	_, id := s.raft.LeaderWithID()
	if string(id) == s.nodeID { // elected, not serving yet
		return "", false
	}
	return string(id), false
}

// WaitApplied implements backends.Leadership.
func (s *Store) WaitApplied(ctx context.Context, rev int64) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		s.fsm.mu.RLock()
		applied := s.fsm.applied
		s.fsm.mu.RUnlock()
		if applied >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("catch up to revision %d (at %d): %w: %w", rev, applied, model.ErrUnavailable, ctx.Err())
		case <-s.stop:
			return fmt.Errorf("raft store is closed: %w", model.ErrUnavailable)
		case <-t.C:
		}
	}
}

// Open opens (or creates) a single-node store in cfg.Dir and waits until it
// leads, or ctx ends.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	nodeID, err := loadNodeID(cfg.Dir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("backend", "raft"), fsm: newFSM(cfg.History), nodeID: nodeID,
		deadlines: map[string]time.Time{}, expiring: map[string]bool{}, rescan: true, stop: make(chan struct{})}

	hlog := raftLogger(s.log)
	walDir := filepath.Join(cfg.Dir, "wal")
	if err := os.MkdirAll(walDir, 0o750); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	// The WAL closes its metadata database when it is closed, but not when
	// it fails to open: its file lock would keep this process from opening
	// the store again.
	meta := &metadb.BoltMetaDB{}
	s.wal, err = wal.Open(walDir, wal.WithLogger(hlog), wal.WithSegmentSize(16<<20), wal.WithMetaStore(meta),
		wal.WithMetricsCollector(walMetrics{s}))
	if err != nil {
		meta.Close()
		return nil, dataErr(cfg, nodeID, fmt.Errorf("open %s: %w", walDir, err))
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		s.closeLog()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(nodeID)
	rc.Logger = hlog
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.BatchApplyCh = true
	rc.TrailingLogs = cfg.TrailingLogs
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	// Followers learn that an entry committed from the leader's next
	// append; when no write follows, from the append raft sends after
	// CommitTimeout (50ms by default). Watches served by a follower wait
	// for it, so keep it short: an idle leader then sends each follower
	// about 100 small appends a second.
	rc.CommitTimeout = 10 * time.Millisecond
	if cfg.RaftAddr == "" && cfg.transport == nil {
		// A single node on the in-memory transport: no other node can
		// ever reach it, so its only election is its own, which it wins
		// alone. Waiting the heartbeat timeout for it is the bulk of an
		// empty store's start-up; no leader to miss, a short one costs
		// nothing (and no lease to lose: it is its own quorum).
		rc.HeartbeatTimeout = min(rc.HeartbeatTimeout, standaloneTimeout)
		rc.ElectionTimeout = min(rc.ElectionTimeout, standaloneTimeout)
		rc.LeaderLeaseTimeout = min(rc.LeaderLeaseTimeout, standaloneTimeout)
	}
	if err := raft.ValidateConfig(rc); err != nil {
		s.closeLog()
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var (
		addr      raft.ServerAddress
		transport raft.Transport
	)
	switch {
	case cfg.transport != nil:
		addr, transport = raft.ServerAddress(cfg.RaftAddr), cfg.transport
	case cfg.RaftAddr == "":
		addr, transport = raft.NewInmemTransport(raft.ServerAddress(nodeID))
	case cfg.PeerTLS != nil:
		layer, err := newTLSLayer(cfg.RaftAddr, cfg.PeerTLS)
		if err != nil {
			s.closeLog()
			return nil, err
		}
		nt := raft.NewNetworkTransportWithLogger(layer, 3, 5*time.Second, hlog)
		addr, transport = nt.LocalAddr(), nt
	default:
		tcp, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, nil, 3, 5*time.Second, hlog)
		if err != nil {
			s.closeLog()
			return nil, fmt.Errorf("raft transport on %s: %w", cfg.RaftAddr, err)
		}
		addr, transport = tcp.LocalAddr(), tcp
	}

	logs := &startLogs{LogStore: s.wal}
	existing, err := raft.HasExistingState(s.wal, s.wal, snaps)
	if err == nil {
		err = checkLog(logs, snaps)
	}
	if err == nil {
		// With a valid configuration, NewRaft fails only on data it cannot
		// read: the current term, the last entry, a snapshot.
		s.raft, err = newRaft(rc, s.fsm, logs, s.wal, snaps, transport)
	}
	if err != nil {
		if c, ok := transport.(raft.WithClose); ok && cfg.transport == nil {
			_ = c.Close() // the TCP listener, so that the node can be started again
		}
		s.closeLog()
		return nil, dataErr(cfg, nodeID, err)
	}
	if standalone := cfg.RaftAddr == "" && cfg.transport == nil; standalone && existing {
		// Data of a former cluster member, opened as a single node: its
		// other voters cannot be reached here, and elections every 20ms
		// would only spin (persisting a term each time). The configured
		// timeouts, then.
		if f := s.raft.GetConfiguration(); f.Error() == nil && len(f.Configuration().Servers) > 1 {
			_ = s.raft.ReloadConfig(raft.ReloadableConfig{TrailingLogs: rc.TrailingLogs, SnapshotInterval: rc.SnapshotInterval,
				SnapshotThreshold: rc.SnapshotThreshold, HeartbeatTimeout: cfg.HeartbeatTimeout, ElectionTimeout: cfg.ElectionTimeout})
		}
	}
	if !existing && cfg.Join != "" {
		if err := s.join(ctx, addr); err != nil {
			s.Close()
			return nil, err
		}
	} else if !existing {
		servers := []raft.Server{{ID: rc.LocalID, Address: addr}}
		if len(cfg.Peers) > 0 {
			servers = nil
			for _, id := range slices.Sorted(maps.Keys(cfg.Peers)) {
				servers = append(servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(cfg.Peers[id])})
			}
		}
		f := s.raft.BootstrapCluster(raft.Configuration{Servers: servers})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			s.Close()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	s.wg.Add(3)
	go s.watchLeadership()
	go s.expireSessions()
	go s.snapshotBySize()
	err = s.waitReady(ctx)
	logs.drop() // applied: a single node (or a leader) is ready once every entry is
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func loadNodeID(dir, want string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", model.Invalid("node-id", "data dir %s belongs to node %q, not %q", dir, have, want)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node id: %w", err)
	}
	if want == "" {
		want = "node-" + randomID()[:8]
	}
	if err := os.WriteFile(path, []byte(want+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return want, nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// watchLeadership issues a barrier whenever this node becomes leader, so that
// reads served locally reflect every entry committed in earlier terms.
func (s *Store) watchLeadership() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case leader := <-s.raft.LeaderCh():
			s.ready.Store(false)
			if !leader {
				continue
			}
			// A barrier enqueued as leadership is lost may never be
			// answered, even by Shutdown: wait for it only while the
			// store runs, or Close would wait on it forever.
			f := s.raft.Barrier(0)
			done := make(chan error, 1)
			go func() { done <- f.Error() }()
			var err error
			select {
			case err = <-done:
			case <-s.stop:
				return
			}
			if err != nil {
				s.log.Warn("barrier after election failed", "err", err)
				continue
			}
			s.mu.Lock()
			clear(s.deadlines) // a new term grants every session a fresh TTL
			s.rescan = true
			s.mu.Unlock()
			s.ready.Store(s.raft.State() == raft.Leader)
		}
	}
}

// snapshotBySize takes a snapshot whenever SnapshotBytes of log entries
// were written since the last one; raft itself counts only entries.
func (s *Store) snapshotBySize() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var base, lastIndex uint64
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if idx := s.lastSnapshotIndex(); idx != lastIndex {
			lastIndex, base = idx, s.logBytes.Load() // raft took one by its entry count
		}
		written := s.logBytes.Load()
		if written-base < s.cfg.SnapshotBytes {
			continue
		}
		if err := s.raft.Snapshot().Error(); err != nil {
			s.log.Warn("snapshot by log size failed", "bytes", written-base, "err", err)
			continue
		}
		lastIndex, base = s.lastSnapshotIndex(), written
		s.log.Debug("snapshot by log size", "bytes", written-base)
	}
}

// lastSnapshotIndex is the log index of the newest snapshot (0: none).
func (s *Store) lastSnapshotIndex() uint64 {
	n, _ := strconv.ParseUint(s.raft.Stats()["last_snapshot_index"], 10, 64)
	return n
}

// waitReady waits until this node leads (single node) or the cluster has a
// leader.
func (s *Store) waitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !s.ready.Load() {
		if _, id := s.raft.LeaderWithID(); s.cfg.RaftAddr != "" && id != "" && string(id) != s.nodeID {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the raft store to elect a leader: %w", model.ErrUnavailable)
		case <-t.C:
		}
	}
	return nil
}

// leaderErr is returned when this node cannot serve a write or a
// linearizable read.
func (s *Store) leaderErr() error {
	if s.raft.State() == raft.Shutdown {
		select {
		case <-s.stop:
			return fmt.Errorf("raft store is closed: %w", model.ErrUnavailable)
		default:
			return fmt.Errorf("this node is no longer a member of the cluster (removed with junction members remove): "+
				"stop it, or empty its data dir and start it with --join: %w", model.ErrUnavailable)
		}
	}
	addr, id := s.raft.LeaderWithID()
	if id == "" {
		return fmt.Errorf("raft store has no leader: %w", model.ErrUnavailable)
	}
	return fmt.Errorf("this node is not the leader (%s at %s): %w", id, addr, model.ErrUnavailable)
}

// propose replicates a command and returns its result once applied locally.
func (s *Store) propose(ctx context.Context, c command) (result, error) {
	if !s.ready.Load() {
		return result{}, s.leaderErr()
	}
	data, err := json.Marshal(c)
	if err != nil {
		return result{}, fmt.Errorf("encode command: %w", err)
	}
	f := s.raft.Apply(data, s.timeout(ctx))
	// Apply's timeout bounds only the enqueueing; the commit is waited for
	// until ctx ends or the store closes (raft does not answer an entry
	// still queued when it shuts down), and then the outcome is unknown.
	done := make(chan struct{})
	go func() { f.Error(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return result{}, fmt.Errorf("replicate %s: no answer from a quorum, the write may or may not be applied: %w: %w",
			c.Op, model.ErrUnavailable, ctx.Err())
	case <-s.stop:
		return result{}, fmt.Errorf("replicate %s: the store was closed: %w", c.Op, model.ErrUnavailable)
	}
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return result{}, fmt.Errorf("replicate %s: %w: %w", c.Op, model.ErrUnavailable, context.DeadlineExceeded)
		default:
			return result{}, fmt.Errorf("replicate %s: %w: %v", c.Op, model.ErrUnavailable, err)
		}
	}
	res, _ := f.Response().(result)
	return res, res.err
}

// read runs fn under the state lock after making sure the local state is
// current enough for the requested consistency.
func (s *Store) read(opts backends.ReadOptions, fn func()) (backends.ReadInfo, error) {
	consistency := model.Stale
	if !opts.Stale {
		if !s.ready.Load() {
			return backends.ReadInfo{}, s.leaderErr()
		}
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return backends.ReadInfo{}, fmt.Errorf("verify leadership: %w: %v", model.ErrUnavailable, err)
		}
		consistency = model.Linearizable
	}
	var staleness time.Duration
	if opts.Stale && !s.ready.Load() {
		if last := s.raft.LastContact(); !last.IsZero() {
			staleness = time.Since(last)
		}
	}
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	fn()
	return backends.ReadInfo{Revision: s.fsm.applied, Consistency: consistency, Staleness: staleness}, nil
}

// CreateSession implements backends.Sessions.
func (s *Store) CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error) {
	if err := model.ValidateTTL(ttl); err != nil {
		return model.Session{}, 0, err
	}
	sess := model.Session{ID: randomID(), TTL: ttl}
	res, err := s.propose(ctx, command{Op: opSessionCreate, Session: &sess})
	if err != nil {
		return model.Session{}, 0, err
	}
	s.mu.Lock()
	s.deadlines[sess.ID] = time.Now().Add(ttl)
	s.mu.Unlock()
	return sess, res.rev, nil
}

// KeepAlive implements backends.Sessions.
func (s *Store) KeepAlive(ctx context.Context, id string) (model.Session, error) {
	if !s.ready.Load() {
		return model.Session{}, s.leaderErr()
	}
	s.fsm.mu.RLock()
	ttl, ok := s.fsm.sessions[id]
	s.fsm.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok || s.expiring[id] {
		return model.Session{}, model.ErrUnknownSession
	}
	s.deadlines[id] = time.Now().Add(ttl)
	return model.Session{ID: id, TTL: ttl}, nil
}

// CloseSession implements backends.Sessions.
func (s *Store) CloseSession(ctx context.Context, id string) (int64, error) {
	res, err := s.propose(ctx, command{Op: opSessionClose, ID: id})
	return res.rev, err
}

// expireSessions is the leader's expiry loop: a session whose deadline passed
// is expired through the log, removing its instances on every replica.
//
// A session gets its deadline when it is created here (CreateSession), or
// when the loop first sees it: the state machine hands over the sessions
// created since its last look (takeAdded), and after a new term or a
// restore, which clear the deadlines, the loop walks every session once.
// The tick otherwise walks only the deadlines, under the store's own
// lock: not the state machine's, which every write's apply waits for (at
// 100k sessions that walk was most of each tick, and writes crawled).
func (s *Store) expireSessions() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		added, overflow := s.fsm.takeAdded()
		if !s.ready.Load() {
			continue
		}
		now := time.Now()
		s.mu.Lock()
		rescan := s.rescan || overflow
		s.rescan = false
		for _, sess := range added {
			if _, ok := s.deadlines[sess.ID]; !ok {
				s.deadlines[sess.ID] = now.Add(sess.TTL)
			}
		}
		s.mu.Unlock()
		if rescan {
			s.fsm.mu.RLock()
			s.mu.Lock()
			for id, ttl := range s.fsm.sessions {
				if _, ok := s.deadlines[id]; !ok {
					s.deadlines[id] = now.Add(ttl)
				}
			}
			s.mu.Unlock()
			s.fsm.mu.RUnlock()
		}
		var due []string
		s.mu.Lock()
		for id, d := range s.deadlines {
			if now.After(d) {
				due = append(due, id)
			}
		}
		s.mu.Unlock()
		if len(due) == 0 {
			continue
		}
		// Of those, the sessions that still exist expire (unless their
		// expiry is under way); the deadlines of the others (closed, or
		// expired) go.
		s.fsm.mu.RLock()
		s.mu.Lock()
		n := 0
		for _, id := range due {
			if _, ok := s.fsm.sessions[id]; !ok {
				delete(s.deadlines, id)
				delete(s.expiring, id)
				continue
			}
			if d, ok := s.deadlines[id]; ok && now.After(d) && !s.expiring[id] { // not kept alive meanwhile
				s.expiring[id] = true
				due[n] = id
				n++
			}
		}
		s.mu.Unlock()
		s.fsm.mu.RUnlock()
		for _, id := range due[:n] {
			go s.expire(id)
		}
	}
}

func (s *Store) expire(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.propose(ctx, command{Op: opSessionExpire, ID: id})
	if err != nil && !errors.Is(err, model.ErrSessionExpired) {
		s.log.Warn("session expiry not replicated; will retry", "session", id, "err", err)
		s.mu.Lock()
		delete(s.expiring, id)
		s.mu.Unlock()
		return
	}
	s.log.Debug("session expired", "session", id)
}

// Register implements backends.Registry.
func (s *Store) Register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error) {
	res, err := s.propose(ctx, command{Op: opRegister, Service: svc, Instance: &inst})
	return res.rev, err
}

// PatchInstance implements backends.Registry with a command of its own,
// applied to the instance as the log holds it.
func (s *Store) PatchInstance(ctx context.Context, svc model.ServiceKey, id string, p model.InstancePatch) (model.Instance, error) {
	res, err := s.propose(ctx, command{Op: opPatch, Service: svc, ID: id, Patch: &p})
	return res.instance, err
}

// Deregister implements backends.Registry.
func (s *Store) Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error) {
	res, err := s.propose(ctx, command{Op: opDeregister, Service: svc, ID: id})
	return res.rev, err
}

// Instances implements backends.Registry.
func (s *Store) Instances(ctx context.Context, svc model.ServiceKey, opts backends.ReadOptions) ([]model.Instance, backends.ReadInfo, error) {
	var out []model.Instance
	info, err := s.read(opts, func() { out = s.fsm.instances(svc) })
	return out, info, err
}

// Services implements backends.Registry.
func (s *Store) Services(ctx context.Context, namespace, group string, after model.ServiceKey, limit int, opts backends.ReadOptions) ([]model.ServiceSummary, backends.ReadInfo, error) {
	var out []model.ServiceSummary
	info, err := s.read(opts, func() {
		// From the first key of the scope, or after the previous page's
		// last, in order, until the scope ends or the page is full.
		from := model.ServiceKey{Namespace: namespace, Group: group}
		if compareService(after, from) > 0 {
			from = after
		}
		s.fsm.order.AscendGreaterOrEqual(from, func(k model.ServiceKey) bool {
			if k.Namespace != namespace || (group != "" && k.Group != group) {
				return false
			}
			if k == after {
				return true
			}
			insts := s.fsm.services[k]
			sum := model.ServiceSummary{Key: k, Instances: len(insts)}
			for _, i := range insts {
				if i.Healthy {
					sum.Healthy++
				}
			}
			out = append(out, sum)
			return limit <= 0 || len(out) < limit
		})
	})
	return out, info, err
}

func compareService(a, b model.ServiceKey) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Group, b.Group), cmp.Compare(a.Service, b.Service))
}

// GetConfig implements backends.Configs.
func (s *Store) GetConfig(ctx context.Context, key model.ConfigKey, opts backends.ReadOptions) (model.Config, backends.ReadInfo, error) {
	var (
		cfg model.Config
		ok  bool
	)
	info, err := s.read(opts, func() { cfg, ok = s.fsm.configs[key] })
	if err == nil && !ok {
		err = fmt.Errorf("config %s: %w", key, model.ErrNotFound)
	}
	return cfg, info, err
}

// PutConfig implements backends.Configs.
func (s *Store) PutConfig(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, error) {
	cfg.MD5 = model.ContentMD5(cfg.Content)
	ch := backends.ChangeFrom(ctx)
	res, err := s.propose(ctx, command{Op: opConfigPut, Config: &cfg, Cond: cond, Now: time.Now().UTC(), Change: &ch})
	return res.config, err
}

// DeleteConfig implements backends.Configs.
func (s *Store) DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error) {
	ch := backends.ChangeFrom(ctx)
	res, err := s.propose(ctx, command{Op: opConfigDelete, Key: key, Cond: cond, Now: time.Now().UTC(), Change: &ch})
	return res.rev, err
}

// ListConfigs implements backends.Configs.
func (s *Store) ListConfigs(ctx context.Context, namespace, group string, opts backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	var out []model.ConfigSummary
	info, err := s.read(opts, func() {
		for k, c := range s.fsm.configs {
			if k.Namespace == namespace && (group == "" || k.Group == group) {
				out = append(out, c.Summary())
			}
		}
	})
	slices.SortFunc(out, func(a, b model.ConfigSummary) int {
		return cmp.Or(cmp.Compare(a.Key.Group, b.Key.Group), cmp.Compare(a.Key.DataID, b.Key.DataID))
	})
	return out, info, err
}

// Status implements backends.Backend.
func (s *Store) Status(ctx context.Context) (backends.Status, error) {
	_, leader := s.raft.LeaderWithID()
	s.fsm.mu.RLock()
	rev := s.fsm.applied
	s.fsm.mu.RUnlock()
	return backends.Status{Backend: "raft", Revision: rev, Leader: string(leader), Capabilities: s.Capabilities()}, nil
}

// Capabilities reports what the built-in store provides.
func (s *Store) Capabilities() backends.Capabilities {
	return backends.Capabilities{NativeSessions: true, NativeRevisions: true, ResumableWatch: true,
		WatchHistory: s.cfg.History, LinearizableReads: true, NativeCAS: true, PatchAnyOwner: true,
		ConfigHistory: true, AtomicHistory: true}
}

// Close stops the store. Acknowledged writes are already on disk.
func (s *Store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	s.ready.Store(false)
	close(s.stop)
	err := s.raft.Shutdown().Error()
	s.wg.Wait()
	return errors.Join(err, s.closeLog())
}

// closeLog closes the Raft log (and with it its metadata database).
func (s *Store) closeLog() error {
	return s.wal.Close()
}

// SnapshotFormat names the format of the snapshots SaveSnapshot writes.
const SnapshotFormat = "junction-snapshot/1"

// MaxSnapshotSize bounds a snapshot RestoreSnapshot accepts: it is
// replicated as one log entry, which must fit in a log segment (16 MiB).
const MaxSnapshotSize = 8 << 20

// savedSnapshot is a snapshot as saved: JSON, self-describing.
type savedSnapshot struct {
	Format   string       `json:"format"`
	Revision int64        `json:"revision"`
	Saved    time.Time    `json:"saved"`
	State    snapshotData `json:"state"`
}

var _ backends.Snapshotter = (*Store)(nil)

// SaveSnapshot implements backends.Snapshotter.
func (s *Store) SaveSnapshot(ctx context.Context, w io.Writer) (int64, error) {
	// The read makes the local state at least as new as every write
	// acknowledged before it; the state is then frozen, and written out
	// of the lock.
	if _, err := s.read(backends.ReadOptions{}, func() {}); err != nil {
		return 0, err
	}
	fr := s.fsm.freeze()
	// savedSnapshot's JSON, {"format":…,"revision":…,"saved":…,"state":{…}},
	// its state written a service at a time.
	head, err := json.Marshal(struct {
		Format   string    `json:"format"`
		Revision int64     `json:"revision"`
		Saved    time.Time `json:"saved"`
	}{SnapshotFormat, fr.applied, time.Now().UTC()})
	if err == nil {
		_, err = w.Write(append(bytes.TrimSuffix(head, []byte("}")), `,"state":`...))
	}
	if err == nil {
		err = fr.writeJSON(w)
	}
	if err == nil {
		_, err = io.WriteString(w, "}\n")
	}
	if err != nil {
		return 0, fmt.Errorf("write snapshot: %w", err)
	}
	return fr.applied, nil
}

// RestoreSnapshot implements backends.Snapshotter: the saved state becomes
// the state, through one replicated log entry, so it is as durable as any
// write and reaches every replica. Sessions in the snapshot get a fresh TTL;
// sessions not in it are gone.
func (s *Store) RestoreSnapshot(ctx context.Context, r io.Reader) (int64, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxSnapshotSize+1))
	if err != nil {
		return 0, fmt.Errorf("read snapshot: %w", err)
	}
	if len(raw) > MaxSnapshotSize {
		return 0, model.TooLarge("snapshot", len(raw), MaxSnapshotSize)
	}
	var saved savedSnapshot
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&saved); err != nil {
		return 0, model.Invalid("snapshot", "not a Junction snapshot: %v", err)
	}
	if saved.Format != SnapshotFormat {
		return 0, model.Invalid("snapshot", "format %q is not %q", saved.Format, SnapshotFormat)
	}
	if err := saved.State.validate(); err != nil {
		return 0, err
	}
	res, err := s.propose(ctx, command{Op: opRestore, State: &saved.State})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	clear(s.deadlines) // restored sessions get a fresh TTL from the expiry loop
	clear(s.expiring)
	s.rescan = true
	s.mu.Unlock()
	return res.rev, nil
}

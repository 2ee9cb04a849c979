package backends

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/junctionhq/junction/model"
)

// ReadOptions tune a read.
type ReadOptions struct {
	// Stale allows the backend to answer from a replica that may lag.
	Stale bool
}

// ReadInfo describes what a read reflects.
type ReadInfo struct {
	// Revision is the store revision the read reflects.
	Revision int64
	// Consistency is the consistency the read actually got.
	Consistency model.Consistency
	// Staleness bounds how far behind a stale read may be, where the
	// backend knows it: for a follower of a built-in store cluster, the
	// time since it last heard from the leader. Zero otherwise.
	Staleness time.Duration
}

// Sessions create, keep alive and close sessions (contract line 5).
type Sessions interface {
	// CreateSession starts a session that expires ttl after its last keepalive.
	CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error)
	// KeepAlive renews a session. It fails with model.ErrSessionExpired when
	// the session is unknown or already expired.
	KeepAlive(ctx context.Context, id string) (model.Session, error)
	// CloseSession ends a session and removes its ephemeral instances.
	CloseSession(ctx context.Context, id string) (int64, error)
}

// Registry stores service instances.
type Registry interface {
	// Register creates or replaces an instance (matched by id) and returns
	// the revision of the write. inst is already normalized.
	Register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error)
	// Deregister removes an instance; model.ErrNotFound when it is absent.
	Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error)
	// PatchInstance changes the fields p sets on one instance, in place,
	// and returns the instance as stored. It never changes who owns the
	// instance: an ephemeral instance stays with its session, and still
	// goes when the session expires. It fails with model.ErrNotFound when
	// the instance is absent, model.ErrConflict when p.Cond does not hold,
	// and ErrNotOwner when the store cannot write an ephemeral instance
	// whose session another driver holds (Capabilities.PatchAnyOwner is
	// false): then the gateway holding the session applies it.
	PatchInstance(ctx context.Context, svc model.ServiceKey, id string, p model.InstancePatch) (model.Instance, error)
	// Instances lists every instance of a service (an empty list when none).
	Instances(ctx context.Context, svc model.ServiceKey, opts ReadOptions) ([]model.Instance, ReadInfo, error)
	// Services lists the services of a namespace that have instances,
	// optionally of one group, in key order, starting after the service
	// named by after, at most limit of them (0: no limit).
	Services(ctx context.Context, namespace, group string, after model.ServiceKey, limit int, opts ReadOptions) ([]model.ServiceSummary, ReadInfo, error)
}

// Configs stores configuration items (contract line 6 for the preconditions).
type Configs interface {
	// GetConfig reads one item; model.ErrNotFound when it is absent.
	GetConfig(ctx context.Context, key model.ConfigKey, opts ReadOptions) (model.Config, ReadInfo, error)
	// PutConfig writes an item if the precondition holds (model.ErrConflict
	// otherwise) and returns the stored item with its new revision. An empty
	// ContentType keeps the item's current type (text for a new item).
	PutConfig(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, error)
	// DeleteConfig removes an item if the precondition holds; it returns
	// model.ErrNotFound when the item is absent and no precondition is set.
	DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error)
	// ListConfigs lists the items of a namespace, optionally of one group.
	ListConfigs(ctx context.Context, namespace, group string, opts ReadOptions) ([]model.ConfigSummary, ReadInfo, error)
}

// History reads the versions a driver keeps of each configuration item.
// Every publish and every delete appends an immutable version (see
// model.ConfigVersion), written in the same transaction as the change
// where the store has transactions (Capabilities.AtomicHistory); the items
// of model.SystemNamespace keep none. A version is kept for the Retention
// of the write that made it, and beyond it never returned; a write drops
// from the store what its item no longer keeps.
type History interface {
	// ConfigHistory returns the retained versions of an item, oldest
	// first; an empty list when there are none. A driver may leave their
	// content out (a version's content is read with ConfigVersion).
	ConfigHistory(ctx context.Context, key model.ConfigKey, opts ReadOptions) ([]model.ConfigVersion, ReadInfo, error)
	// ConfigVersion reads one retained version; model.ErrNotFound when the
	// item has no such version.
	ConfigVersion(ctx context.Context, key model.ConfigKey, number int64, opts ReadOptions) (model.ConfigVersion, error)
}

// Retention bounds the history of each configuration item.
type Retention struct {
	// Versions is how many versions of an item are kept, the newest.
	Versions int
	// MaxAge is how long a version is kept.
	MaxAge time.Duration
}

// DefaultRetention keeps the last 100 versions of each item, for 30 days.
var DefaultRetention = Retention{Versions: 100, MaxAge: 30 * 24 * time.Hour}

// OrDefault returns r with DefaultRetention's value for each bound r does
// not set.
func (r Retention) OrDefault() Retention {
	if r.Versions <= 0 {
		r.Versions = DefaultRetention.Versions
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultRetention.MaxAge
	}
	return r
}

// Change says who makes a configuration write, why, and how long the store
// keeps the version it makes. The gateway attaches one to the context of
// every write it passes to a driver (WithChange).
type Change struct {
	Author    string
	Message   string
	Retention Retention
}

type changeKey struct{}

// WithChange returns ctx carrying c, for the driver that records the write.
func WithChange(ctx context.Context, c Change) context.Context {
	return context.WithValue(ctx, changeKey{}, c)
}

// ChangeFrom returns the change ctx carries, with the default retention
// where it sets none.
func ChangeFrom(ctx context.Context) Change {
	c, _ := ctx.Value(changeKey{}).(Change)
	c.Retention = c.Retention.OrDefault()
	return c
}

// WatchRequest says what to watch and from where. Exactly one of Service and
// Config is set.
type WatchRequest struct {
	Service *model.ServiceKey
	Config  *model.ConfigKey
	// FromRevision: deliver every change after this revision. 0 means "from
	// now": the watch begins with a RESET carrying the current state.
	FromRevision int64
}

// Watcher is a running watch.
type Watcher interface {
	// Next blocks until the next event, ctx ends or the watch fails. Events
	// come in revision order; a RESET replaces everything seen before it.
	Next(ctx context.Context) (model.Event, error)
	// Close releases the watch.
	Close() error
}

// Watches opens watches (contract lines 2–4).
//
// Watch starts a watch of one service or config from req.FromRevision; it
// ends when ctx ends or the watcher is closed.
type Watches interface {
	Watch(ctx context.Context, req WatchRequest) (Watcher, error)
}

// Status describes a backend.
type Status struct {
	Backend      string
	Revision     int64
	Leader       string
	Capabilities Capabilities
}

// Backend is a coordination store's driver: what Junction needs of a store.
type Backend interface {
	Sessions
	Registry
	Configs
	History
	Watches
	// Status reports the backend's name, current revision and leader.
	Status(ctx context.Context) (Status, error)
	// Close releases the backend's resources.
	Close() error
}

// Capabilities are what a driver declares about itself. The conformance
// suite measures behaviour instead of trusting them and reports both.
type Capabilities struct {
	// NativeSessions: the store expires sessions itself.
	NativeSessions bool `json:"nativeSessions"`
	// NativeRevisions: revisions come from the store; otherwise the driver
	// derives them.
	NativeRevisions bool `json:"nativeRevisions"`
	// ResumableWatch: a watch can resume from a past revision within a
	// retained window without a RESET.
	ResumableWatch bool `json:"resumableWatch"`
	// WatchHistory is how many past events a resumable watch can replay (0: unknown).
	WatchHistory int `json:"watchHistory"`
	// LinearizableReads: default reads are linearizable.
	LinearizableReads bool `json:"linearizableReads"`
	// NativeCAS: compare-and-set uses the store's own conditional writes.
	NativeCAS bool `json:"nativeCas"`
	// ConfigHistory: the driver keeps past versions of configuration items
	// (History).
	ConfigHistory bool `json:"configHistory"`
	// AtomicHistory: a version is written in the same transaction as the
	// change it records, so no change goes without its version and no
	// version is recorded for a change that failed.
	AtomicHistory bool `json:"atomicHistory"`
	// PatchAnyOwner: PatchInstance writes an ephemeral instance whatever
	// driver holds its session; otherwise only the holder can (ErrNotOwner).
	PatchAnyOwner bool `json:"patchAnyOwner"`
}

// ErrNotOwner is PatchInstance's error for an ephemeral instance whose
// session another driver holds, on a store that lets only the holder write
// it (Capabilities.PatchAnyOwner false).
var ErrNotOwner = errors.New("the instance's session is held by another driver")

// Gauges is implemented by a backend that holds state growing with use
// (the nacos driver's views of what it was asked about), each bounded:
// the gateway exports the figures as metrics.
type Gauges interface {
	Gauges() []Gauge
}

// Gauge is one figure of a backend's state, exported by the gateway as
// the metric junction_backend_NAME.
type Gauge struct {
	Name, Help string
	Value      func() float64
}

// Snapshotter is implemented by backends that can save their whole state
// and restore it (the built-in store); the other stores have their own
// tools (etcdctl snapshot, ZooKeeper's snapshot files, consul snapshot).
type Snapshotter interface {
	// SaveSnapshot writes the whole state, as of a linearizable read, to w
	// and returns the revision it reflects.
	SaveSnapshot(ctx context.Context, w io.Writer) (int64, error)
	// RestoreSnapshot replaces the whole state with one SaveSnapshot wrote
	// and returns the revision of the restore. Revisions keep growing, and
	// every watcher gets a RESET with the restored state.
	RestoreSnapshot(ctx context.Context, r io.Reader) (int64, error)
}

// Leadership is implemented by a store node that serves writes and
// linearizable reads only while it leads, as a built-in store cluster's
// nodes do; on a follower they fail with ErrUnavailable naming the leader.
// The gateway over such a node forwards those calls to the leader's
// gateway and serves stale reads and watches from the node's own replica.
type Leadership interface {
	// Leader returns the ID of the node that serves writes and
	// linearizable reads, which is its Junction API address, and whether
	// it is this node. The ID is "" while no node can serve them.
	Leader() (id string, self bool)
	// WaitApplied returns once this node's replica has applied every
	// write up to revision rev, or ctx ends. A watch served by a follower
	// starts after it, so that it begins at or after every write the
	// leader had acknowledged.
	WaitApplied(ctx context.Context, rev int64) error
}

// Member is one server of a replicated built-in store.
type Member struct {
	// ID is the node id, which is the node's Junction API address.
	ID string
	// Address is the address the members replicate over (the built-in
	// store's Raft transport).
	Address string
	// Voter says whether it votes and counts towards the quorum.
	Voter bool
	// Leader says whether it leads, as the answering node knows.
	Leader bool
}

// Cluster is implemented by backends whose membership Junction manages
// (the built-in store in cluster mode). Changes are made by the leader; on
// a follower they fail as other writes do (see Leadership).
type Cluster interface {
	// Members lists the servers and returns the leader's id ("" while
	// there is none).
	Members(ctx context.Context) ([]Member, string, error)
	// AddMember adds a voting server. Adding a member that is already
	// there with the same address does nothing.
	AddMember(ctx context.Context, id, address string) error
	// RemoveMember removes a server; removing one that is not a member
	// fails with ErrNotFound.
	RemoveMember(ctx context.Context, id string) error
}

// Client is who a call says it comes from, for a backend that serves
// clients differently by it (a gateway's gray releases): remote.Backend
// sends it as the client's headers.
type Client struct {
	ID     string
	Labels map[string]string
}

type clientKey struct{}

// WithClient returns ctx carrying c.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the client ctx carries.
func ClientFrom(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientKey{}).(Client)
	return c, ok
}

// Gray is implemented by backends that serve gray releases: a gateway
// (remote.Backend), which keeps them over any store. A gray release is a
// second content of an item that the clients a rule chooses get, from
// reads and watches, instead of the release.
type Gray interface {
	// PublishGray publishes content as key's gray release to the clients
	// rule chooses (model.ErrNotFound when the item does not exist).
	PublishGray(ctx context.Context, key model.ConfigKey, content []byte, contentType string, rule model.GrayRule) error
	// PromoteGray makes the gray release the release, as a new version.
	PromoteGray(ctx context.Context, key model.ConfigKey) (model.Config, error)
	// AbortGray ends the gray release.
	AbortGray(ctx context.Context, key model.ConfigKey) error
}

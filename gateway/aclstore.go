package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// aclKey is the record that holds a store's whole ACL (acl.State).
var aclKey = model.ConfigKey{Namespace: SystemNamespace, Group: "acl", DataID: "state"}

// aclPoll is how often a gateway reads the ACL record from its store: a
// revoke made at one gateway holds at every other within this plus the
// store's replication lag. The read is a stale one (a follower's own
// replica, etcd's serializable read), so it costs the store next to
// nothing.
const aclPoll = 200 * time.Millisecond

// aclFresh bounds how often an unknown token makes a gateway read the ACL
// from the leader at once (a token created a moment ago at another
// gateway); failed authentications are also rate-limited per client.
const aclFresh = 100 * time.Millisecond

// aclCache is a gateway's copy of its store's ACL. It polls the record,
// and tells whoever waits on changed() that it changed, so that watches
// opened by a token that lost its right are ended.
type aclCache struct {
	b    backends.Backend
	lead backends.Leadership // nil: not a store that elects a leader
	log  *slog.Logger

	mu      sync.Mutex
	view    *acl.View
	peer    string // this store's peer secret, once known
	rev     int64  // the record's revision (0: absent)
	raw     []byte // the record's content, as read
	loaded  bool
	changed chan struct{} // closed at the next change
	fresh   time.Time     // when the last linearizable read was made

	freshMu sync.Mutex
}

func newACLCache(b backends.Backend, lead backends.Leadership, log *slog.Logger) *aclCache {
	v, _ := acl.State{}.Compile()
	return &aclCache{b: b, lead: lead, log: log.With("component", "acl"), view: v, changed: make(chan struct{})}
}

// current returns the view and a channel closed when it changes.
func (c *aclCache) current() (*acl.View, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.view, c.changed
}

// peerSecret returns the secret gateways prove themselves to each other
// with ("" until the ACL record exists).
func (c *aclCache) peerSecret() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peer
}

// read returns the stored state, its revision and its encoding (0, an
// empty state and nil when there is none yet).
func (c *aclCache) read(ctx context.Context, stale bool) (acl.State, int64, []byte, error) {
	cfg, _, err := c.b.GetConfig(ctx, aclKey, backends.ReadOptions{Stale: stale})
	if errors.Is(err, model.ErrNotFound) {
		return acl.State{}, 0, nil, nil
	}
	if err != nil {
		return acl.State{}, 0, nil, err
	}
	st, err := acl.Decode(cfg.Content)
	return st, cfg.Revision, cfg.Content, err
}

// load reads the record and, when it changed, installs it. A stale read
// that differs from what is installed without being newer (a replica
// behind the one read before, or a store whose revisions went back with a
// snapshot restore) is confirmed by a linearizable read, which is
// installed whatever its revision.
func (c *aclCache) load(ctx context.Context, stale bool) error {
	st, rev, raw, err := c.read(ctx, stale)
	if err != nil {
		return err
	}
	if !c.install(st, rev, raw, !stale) {
		return c.load(ctx, false)
	}
	return nil
}

// install installs st unless it is what is installed; it refuses (false)
// a stale read that differs without being newer.
func (c *aclCache) install(st acl.State, rev int64, raw []byte, fresh bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded && bytes.Equal(raw, c.raw) {
		c.rev = rev
		return true
	}
	if c.loaded && !fresh && rev <= c.rev {
		return false
	}
	v, bad := st.Compile()
	for _, b := range bad {
		c.log.Warn("a stored policy does not parse; it grants nothing", "policy", b)
	}
	c.view, c.peer, c.rev, c.raw, c.loaded = v, st.PeerSecret, rev, raw, true
	close(c.changed)
	c.changed = make(chan struct{})
	return true
}

// refresh reads the record from the leader (a linearizable read), at most
// once per aclFresh, and returns the view after it.
func (c *aclCache) refresh(ctx context.Context) *acl.View {
	c.freshMu.Lock()
	defer c.freshMu.Unlock()
	c.mu.Lock()
	recent := time.Since(c.fresh) < aclFresh
	c.mu.Unlock()
	if !recent {
		if err := c.load(ctx, false); err != nil {
			c.log.Debug("reading the ACL from the store", "err", err)
		}
		c.mu.Lock()
		c.fresh = time.Now()
		c.mu.Unlock()
	}
	v, _ := c.current()
	return v
}

// update changes the state with fn by compare-and-set, retrying when
// another gateway changed it meanwhile, and installs the result.
func (c *aclCache) update(ctx context.Context, fn func(*acl.State) error) error {
	for {
		st, rev, _, err := c.read(ctx, false)
		if err != nil {
			return err
		}
		if rev == 0 {
			if st, err = acl.NewState(); err != nil {
				return err
			}
		}
		if err := fn(&st); err != nil {
			return err
		}
		content, err := st.Encode()
		if err != nil {
			return err
		}
		cfg, err := c.b.PutConfig(ctx, model.Config{Key: aclKey, Content: content, ContentType: model.ContentJSON}, model.IfRevision(rev))
		if errors.Is(err, model.ErrConflict) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("writing the ACL: %w", err)
		}
		c.install(st, cfg.Revision, content, true)
		return nil
	}
}

// leads reports whether this gateway's store node may write (any store
// that does not elect leaders, or a built-in store node that leads).
func (c *aclCache) leads() bool {
	if c.lead == nil {
		return true
	}
	_, self := c.lead.Leader()
	return self
}

// run keeps the cache current until ctx ends. With access control on, the
// gateway that can write creates the record (with the store's peer secret)
// when there is none, so that gateways can forward to each other before
// the bootstrap.
func (c *aclCache) run(ctx context.Context, create bool) {
	t := time.NewTicker(aclPoll)
	defer t.Stop()
	var lastCreate time.Time
	for {
		if err := c.load(ctx, true); err != nil && ctx.Err() == nil {
			c.log.Debug("reading the ACL from the store", "err", err)
		}
		c.mu.Lock()
		absent := c.loaded && c.rev == 0
		c.mu.Unlock()
		if create && absent && c.leads() && time.Since(lastCreate) > 2*time.Second {
			lastCreate = time.Now()
			if err := c.update(ctx, func(*acl.State) error { return nil }); err != nil && ctx.Err() == nil {
				c.log.Warn("creating the ACL record", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// resetBootstrap allows one more bootstrap when code is the current one's
// reset code (--acl-bootstrap-reset).
func (c *aclCache) resetBootstrap(ctx context.Context, code string) error {
	return c.update(ctx, func(st *acl.State) error { return st.ResetBootstrap(code) })
}

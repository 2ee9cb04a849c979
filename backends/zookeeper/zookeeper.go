package zookeeper

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/backends/internal/heldsessions"
	"github.com/junctionhq/junction/model"
)

func init() { backends.RegisterURL("zk", ConfigFromURL, Open) }

// Config configures the driver.
type Config struct {
	Servers        []string
	Root           string // base path of public/DEFAULT_GROUP services (Curator's)
	Prefix         string // base path of everything else
	SessionTimeout time.Duration
	Username       string
	Password       string
	ExpiryInterval time.Duration
	// Logger receives the driver's logs; nil: slog.Default().
	Logger *slog.Logger
}

// ConfigFromURL reads a zk:// URL.
func ConfigFromURL(u *url.URL) (Config, error) {
	cfg := Config{Root: "/services", Prefix: "/junction", SessionTimeout: 10 * time.Second, ExpiryInterval: 100 * time.Millisecond}
	for _, h := range strings.Split(u.Host, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Servers = append(cfg.Servers, h)
		}
	}
	if len(cfg.Servers) == 0 {
		return cfg, model.Invalid("backend", "zk:// needs at least one HOST:PORT")
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	for k, vs := range u.Query() {
		v := vs[0]
		switch k {
		case "root", "prefix":
			if !strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") || len(v) < 2 {
				return cfg, model.Invalid(k, "%q must start with / and not end with /", v)
			}
			if k == "root" {
				cfg.Root = v
			} else {
				cfg.Prefix = v
			}
		case "session-timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				return cfg, model.Invalid("session-timeout", "%q is not a duration of at least 1s", v)
			}
			cfg.SessionTimeout = d
		case "username":
			cfg.Username = v
		case "password":
			cfg.Password = v
		default:
			return cfg, model.Invalid(k, "unknown zk:// option; known: root, prefix, session-timeout, username, password")
		}
	}
	return cfg, nil
}

// Driver is the ZooKeeper backend.
type Driver struct {
	cfg  Config
	conn *zk.Conn
	log  *slog.Logger
	acl  []zk.ACL

	// sessions: Junction sessions and the ephemeral nodes (path → data)
	// each owns.
	sessions *heldsessions.Table[string, []byte]
	zkSID    atomic.Int64 // the ZooKeeper session our nodes belong to

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ backends.Backend = (*Driver)(nil)

type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }

// Open connects and waits for a ZooKeeper session before ctx ends.
func Open(ctx context.Context, cfg Config) (*Driver, error) {
	log := cmp.Or(cfg.Logger, slog.Default()).With("backend", "zk")
	conn, events, err := zk.Connect(cfg.Servers, cfg.SessionTimeout, zk.WithLogger(zkLogger{log}), zk.WithLogInfo(false),
		zk.WithDialer(dialer(handshakeLimit(cfg.SessionTimeout))))
	if err != nil {
		return nil, fmt.Errorf("zookeeper: %w", err)
	}
	d := &Driver{cfg: cfg, conn: conn, log: log, acl: zk.WorldACL(zk.PermAll), sessions: heldsessions.New[string, []byte](),
		stop: make(chan struct{})}
	if cfg.Username != "" {
		if err := conn.AddAuth("digest", []byte(cfg.Username+":"+cfg.Password)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("zookeeper auth: %w", mapErr(err))
		}
		d.acl = zk.DigestACL(zk.PermAll, cfg.Username, cfg.Password)
	}
	for conn.State() != zk.StateHasSession {
		select {
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("zookeeper at %s: no session: %w", strings.Join(cfg.Servers, ","), model.ErrUnavailable)
		case <-events:
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.zkSID.Store(conn.SessionID())
	d.wg.Add(2)
	go d.followSession(events)
	go d.expireSessions()
	return d, nil
}

func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, zk.ErrNoNode):
		return fmt.Errorf("%w: %v", model.ErrNotFound, err)
	case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrAuthFailed):
		return fmt.Errorf("%w: %v", model.ErrPermissionDenied, err)
	case errors.Is(err, zk.ErrConnectionClosed), errors.Is(err, zk.ErrSessionExpired), errors.Is(err, zk.ErrNoServer),
		errors.Is(err, zk.ErrClosing):
		return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
	}
	return fmt.Errorf("zookeeper: %w", err)
}

// followSession re-creates every live Junction session's nodes when the
// ZooKeeper session was replaced by a new one.
func (d *Driver) followSession(events <-chan zk.Event) {
	defer d.wg.Done()
	for {
		select {
		case <-d.stop:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Type != zk.EventSession || ev.State != zk.StateHasSession {
				continue
			}
			sid := d.conn.SessionID()
			old := d.zkSID.Swap(sid)
			changed := sid != old
			if changed {
				d.log.Warn("zookeeper session replaced; re-creating ephemeral nodes", "old", old, "new", sid)
				d.redo()
			}
		}
	}
}

func (d *Driver) redo() {
	d.sessions.Each(func(id string, ttl time.Duration, nodes map[string][]byte) {
		nodes[d.sessionPath(id)] = sessionData(ttl)
		for p, data := range nodes {
			if _, err := d.putEphemeral(p, data); err != nil {
				d.log.Warn("re-create ephemeral node failed", "path", p, "err", err)
			}
		}
	})
}

func (d *Driver) sessionPath(id string) string { return d.cfg.Prefix + "/sessions/" + id }

func sessionData(ttl time.Duration) []byte { return []byte(`{"ttl":"` + ttl.String() + `"}`) }

// ensureParents creates the missing ancestors of p as persistent nodes.
func (d *Driver) ensureParents(p string) error {
	dir := path.Dir(p)
	if dir == "/" {
		return nil
	}
	if ok, _, err := d.conn.Exists(dir); err != nil {
		return mapErr(err)
	} else if ok {
		return nil
	}
	if err := d.ensureParents(dir); err != nil {
		return err
	}
	if _, err := d.conn.Create(dir, nil, 0, d.acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return mapErr(err)
	}
	return nil
}

// putEphemeral creates or replaces an ephemeral node owned by the current
// ZooKeeper session. A node left by an earlier session, ours or another's,
// is deleted first: registering again never fails with NodeExists.
func (d *Driver) putEphemeral(p string, data []byte) (*zk.Stat, error) {
	return d.put(p, data, zk.FlagEphemeral)
}

func (d *Driver) put(p string, data []byte, flags int32) (*zk.Stat, error) {
	for attempt := 0; attempt < 10; attempt++ {
		_, err := d.conn.Create(p, data, flags, d.acl)
		switch {
		case err == nil:
			_, st, err := d.conn.Exists(p)
			return st, mapErr(err)
		case errors.Is(err, zk.ErrNoNode):
			if err := d.ensureParents(p); err != nil {
				return nil, err
			}
			continue
		case !errors.Is(err, zk.ErrNodeExists):
			return nil, mapErr(err)
		}
		_, st, err := d.conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, mapErr(err)
		}
		ephemeral := flags&zk.FlagEphemeral != 0
		if (ephemeral && st.EphemeralOwner == d.conn.SessionID()) || (!ephemeral && st.EphemeralOwner == 0) {
			st, err := d.conn.Set(p, data, st.Version)
			if errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
				continue
			}
			return st, mapErr(err)
		}
		// Owned by another (possibly expired) session, or of the other kind.
		if err := d.conn.Delete(p, st.Version); err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrBadVersion) {
			return nil, mapErr(err)
		}
	}
	return nil, fmt.Errorf("zookeeper: %s keeps changing under us: %w", p, model.ErrUnavailable)
}

// CreateSession implements backends.Sessions.
func (d *Driver) CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error) {
	if err := model.ValidateTTL(ttl); err != nil {
		return model.Session{}, 0, err
	}
	id := heldsessions.NewID()
	st, err := d.putEphemeral(d.sessionPath(id), sessionData(ttl))
	if err != nil {
		return model.Session{}, 0, err
	}
	d.sessions.Add(id, ttl)
	return model.Session{ID: id, TTL: ttl}, st.Mzxid, nil
}

// KeepAlive implements backends.Sessions.
func (d *Driver) KeepAlive(_ context.Context, id string) (model.Session, error) {
	return d.sessions.KeepAliveSession(id)
}

// CloseSession implements backends.Sessions.
func (d *Driver) CloseSession(ctx context.Context, id string) (int64, error) {
	return d.sessions.CloseSession(id, func(nodes map[string][]byte) (int64, error) {
		return d.removeSession(id, nodes)
	})
}

// removeSession deletes a session's nodes and returns the revision after.
func (d *Driver) removeSession(id string, nodes map[string][]byte) (int64, error) {
	var rev int64
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(nodes)) {
		if err := d.conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			errs = append(errs, mapErr(err))
			continue
		}
		if _, st, err := d.conn.Exists(path.Dir(p)); err == nil {
			rev = max(rev, st.Pzxid)
		}
	}
	if err := d.conn.Delete(d.sessionPath(id), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		errs = append(errs, mapErr(err))
	}
	return rev, errors.Join(errs...)
}

func (d *Driver) expireSessions() {
	defer d.wg.Done()
	d.sessions.Run(d.stop, d.cfg.ExpiryInterval, d.log, func(id string, nodes map[string][]byte) error {
		_, err := d.removeSession(id, nodes)
		return err
	})
}

// serviceDir is the znode of a service.
func (d *Driver) serviceDir(k model.ServiceKey) string {
	return d.baseDir(k.Namespace, k.Group) + "/" + k.Service
}

func (d *Driver) baseDir(ns, group string) string {
	if ns == model.DefaultNamespace && group == model.DefaultGroup {
		return d.cfg.Root
	}
	return d.cfg.Prefix + "/services/" + ns + "/" + group
}

func (d *Driver) configPath(k model.ConfigKey) string {
	return d.cfg.Prefix + "/configs/" + k.Namespace + "/" + k.Group + "/" + k.DataID
}

// Register implements backends.Registry.
func (d *Driver) Register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error) {
	p := d.serviceDir(svc) + "/" + inst.ID
	data, err := encodeInstance(svc.Service, inst)
	if err != nil {
		return 0, err
	}
	if !inst.Ephemeral {
		d.sessions.Forget(p)
		st, err := d.put(p, data, 0)
		if err != nil {
			return 0, err
		}
		return st.Mzxid, nil
	}
	if !d.sessions.Live(inst.Session) {
		return 0, model.ErrUnknownSession
	}
	d.sessions.Forget(p)
	st, err := d.putEphemeral(p, data)
	if err != nil {
		return 0, err
	}
	d.sessions.Own(inst.Session, p, data)
	return st.Mzxid, nil
}

// PatchInstance implements backends.Registry with a versioned Set, which
// keeps an ephemeral node's owner: the instance stays with the ZooKeeper
// session (and so the Junction session) of whichever driver created it.
// A concurrent write makes it start over on the new data (where a
// precondition then fails).
func (d *Driver) PatchInstance(ctx context.Context, svc model.ServiceKey, id string, patch model.InstancePatch) (model.Instance, error) {
	p := d.serviceDir(svc) + "/" + id
	for attempt := 0; attempt < 10 && ctx.Err() == nil; attempt++ {
		data, st, err := d.conn.Get(p)
		if errors.Is(err, zk.ErrNoNode) {
			return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
		}
		if err != nil {
			return model.Instance{}, mapErr(err)
		}
		cur := decodeInstance(id, data, st)
		if !patch.Cond.Holds(cur.Revision) {
			return model.Instance{}, model.PatchConflict(patch, cur.Revision)
		}
		inst := patch.Apply(cur)
		next, err := encodeInstance(svc.Service, inst)
		if err != nil {
			return model.Instance{}, err
		}
		st, err = d.conn.Set(p, next, st.Version)
		if errors.Is(err, zk.ErrBadVersion) {
			continue
		}
		if errors.Is(err, zk.ErrNoNode) {
			return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
		}
		if err != nil {
			return model.Instance{}, mapErr(err)
		}
		// The holder re-creates its nodes from what it keeps should its
		// ZooKeeper session be replaced: keep the patched data there.
		if sid, ok := d.sessions.Owner(p); ok {
			d.sessions.Own(sid, p, next)
		}
		inst.Revision = st.Mzxid
		return inst, nil
	}
	if err := ctx.Err(); err != nil {
		return model.Instance{}, err
	}
	return model.Instance{}, fmt.Errorf("zookeeper: %s keeps changing under us: %w", p, model.ErrUnavailable)
}

// Deregister implements backends.Registry.
func (d *Driver) Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error) {
	p := d.serviceDir(svc) + "/" + id
	d.sessions.Forget(p)
	if err := d.conn.Delete(p, -1); err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			return 0, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
		}
		return 0, mapErr(err)
	}
	_, st, err := d.conn.Exists(path.Dir(p))
	if err != nil {
		return 0, mapErr(err)
	}
	return st.Pzxid, nil
}

func (d *Driver) sync(p string, o backends.ReadOptions) (model.Consistency, error) {
	if o.Stale {
		return model.Stale, nil
	}
	if _, err := d.conn.Sync(p); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return "", mapErr(err)
	}
	return model.Linearizable, nil
}

// serviceState is a service's instances as read, with what proves continuity.
type serviceState struct {
	exists   bool
	cversion int32
	pzxid    int64
	czxid    int64 // of the service node
	rev      int64 // the revision the read reflects (see readService)
	newest   int64 // the newest zxid in what was read
	nodes    map[string]nodeState
}

type nodeState struct {
	inst    model.Instance
	version int32
	czxid   int64
	mzxid   int64
}

func (s serviceState) instances() []model.Instance {
	out := make([]model.Instance, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n.inst)
	}
	slices.SortFunc(out, func(a, b model.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// readService reads a service as it was at one moment. ZooKeeper reads one
// node at a time, so a pass can mix moments (an old version of one node
// beside a newer one of another), and the newest zxid read would then
// overstate what the state contains. After each pass the driver checks that
// the child list and every node are unchanged: if so, every node held the
// version read across a common interval, and the state and its revision are
// consistent. Otherwise it reads again, backing off, for up to about two
// seconds; a service that changes faster than that for longer is reported
// as ErrUnavailable rather than read inconsistently.
func (d *Driver) readService(dir string, w *zkWatcher) (serviceState, error) {
	pause := time.Millisecond
	for attempt := 0; ; attempt++ {
		st, err := d.readServiceOnce(dir, w)
		if err != nil || !st.exists {
			return st, err
		}
		same, err := d.unchanged(dir, st)
		if err != nil || same {
			return st, err
		}
		if attempt == 16 {
			return serviceState{}, fmt.Errorf("zookeeper: %s kept changing while being read: %w", dir, model.ErrUnavailable)
		}
		time.Sleep(pause)
		pause = min(2*pause, 250*time.Millisecond)
	}
}

// maxPipelined bounds the requests one read keeps in flight.
const maxPipelined = 64

// pipelined runs f(0)…f(n-1) concurrently, at most maxPipelined at a time.
// go-zookeeper pipelines concurrent requests on its one connection and
// ZooKeeper answers a session's requests in order, so n reads cost about one
// round trip instead of n, with the same ordering guarantees.
func pipelined(n int, f func(i int)) {
	if n == 1 {
		f(0)
		return
	}
	sem := make(chan struct{}, maxPipelined)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// unchanged reports whether dir and the nodes of st still are as read.
func (d *Driver) unchanged(dir string, st serviceState) (bool, error) {
	_, pst, err := d.conn.Exists(dir)
	if err != nil {
		return false, mapErr(err)
	}
	if pst == nil || pst.Pzxid != st.pzxid {
		return false, nil
	}
	names := slices.Collect(maps.Keys(st.nodes))
	type stat struct {
		ok  bool
		st  *zk.Stat
		err error
	}
	stats := make([]stat, len(names))
	pipelined(len(names), func(i int) {
		stats[i].ok, stats[i].st, stats[i].err = d.conn.Exists(dir + "/" + names[i])
	})
	for i, name := range names {
		if err := stats[i].err; err != nil {
			return false, mapErr(err)
		}
		if !stats[i].ok || stats[i].st.Mzxid != st.nodes[name].mzxid {
			return false, nil
		}
	}
	return true, nil
}

func (d *Driver) readServiceOnce(dir string, w *zkWatcher) (serviceState, error) {
	var (
		children []string
		pst      *zk.Stat
		err      error
	)
	if w != nil && !w.parentArmed {
		var ch <-chan zk.Event
		children, pst, ch, err = d.conn.ChildrenW(dir)
		if err == nil {
			w.arm(dir, ch)
			w.parentArmed = true
		}
	} else {
		children, pst, err = d.conn.Children(dir)
	}
	if errors.Is(err, zk.ErrNoNode) {
		if w != nil && !w.existsArmed {
			ok, _, ch, err := d.conn.ExistsW(dir)
			if err != nil {
				return serviceState{}, mapErr(err)
			}
			w.arm(dir, ch)
			w.existsArmed = true
			if ok {
				return d.readService(dir, w) // created meanwhile
			}
		}
		return serviceState{nodes: map[string]nodeState{}}, nil
	}
	if err != nil {
		return serviceState{}, mapErr(err)
	}
	st := serviceState{exists: true, cversion: pst.Cversion, pzxid: pst.Pzxid, czxid: pst.Czxid, rev: max(pst.Pzxid, pst.Czxid),
		nodes: map[string]nodeState{}}
	// The children are read concurrently: see pipelined.
	type read struct {
		data  []byte
		st    *zk.Stat
		ch    <-chan zk.Event
		watch bool
		err   error
	}
	reads := make([]read, len(children))
	for i, c := range children {
		reads[i].watch = w != nil && !w.childArmed[c]
	}
	pipelined(len(children), func(i int) {
		r, p := &reads[i], dir+"/"+children[i]
		if r.watch {
			r.data, r.st, r.ch, r.err = d.conn.GetW(p)
		} else {
			r.data, r.st, r.err = d.conn.Get(p)
		}
	})
	for i, c := range children {
		if reads[i].watch && reads[i].err == nil {
			w.arm(dir+"/"+c, reads[i].ch)
			w.childArmed[c] = true
		}
	}
	for i, c := range children {
		p, data, cst, err := dir+"/"+c, reads[i].data, reads[i].st, reads[i].err
		if errors.Is(err, zk.ErrNoNode) {
			// Deleted since the listing: the parent's cversion no longer
			// matches what we hold, so the next read proves or resets.
			st.cversion--
			continue
		}
		if err != nil {
			return serviceState{}, mapErr(err)
		}
		inst := decodeInstance(c, data, cst)
		if id, ok := d.sessions.Owner(p); ok {
			inst.Session = id
		}
		st.nodes[c] = nodeState{inst: inst, version: cst.Version, czxid: cst.Czxid, mzxid: cst.Mzxid}
		st.rev = max(st.rev, cst.Mzxid)
	}
	st.newest = st.rev
	return st, nil
}

// Instances implements backends.Registry.
func (d *Driver) Instances(ctx context.Context, svc model.ServiceKey, o backends.ReadOptions) ([]model.Instance, backends.ReadInfo, error) {
	dir := d.serviceDir(svc)
	c, err := d.sync(dir, o)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	st, err := d.readService(dir, nil)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	return st.instances(), backends.ReadInfo{Revision: st.rev, Consistency: c}, nil
}

// Services implements backends.Registry.
func (d *Driver) Services(ctx context.Context, namespace, group string, after model.ServiceKey, limit int, o backends.ReadOptions) ([]model.ServiceSummary, backends.ReadInfo, error) {
	var groups []string
	if group != "" {
		groups = []string{group}
	} else {
		if namespace == model.DefaultNamespace {
			groups = append(groups, model.DefaultGroup)
		}
		gs, _, err := d.conn.Children(d.cfg.Prefix + "/services/" + namespace)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return nil, backends.ReadInfo{}, mapErr(err)
		}
		groups = append(groups, gs...)
	}
	c, err := d.sync(d.cfg.Root, o)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	var (
		out []model.ServiceSummary
		rev int64
	)
	for _, g := range slices.Compact(slices.Sorted(slices.Values(groups))) {
		base := d.baseDir(namespace, g)
		names, bst, err := d.conn.Children(base)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, backends.ReadInfo{}, mapErr(err)
		}
		rev = max(rev, bst.Pzxid)
		for _, name := range names {
			k := model.ServiceKey{Namespace: namespace, Group: g, Service: name}
			if cmp.Or(cmp.Compare(k.Group, after.Group), cmp.Compare(k.Service, after.Service)) <= 0 {
				continue
			}
			st, err := d.readService(base+"/"+name, nil)
			if err != nil {
				return nil, backends.ReadInfo{}, err
			}
			if len(st.nodes) == 0 {
				continue
			}
			rev = max(rev, st.rev)
			sum := model.ServiceSummary{Key: k, Instances: len(st.nodes)}
			for _, n := range st.nodes {
				if n.inst.Healthy {
					sum.Healthy++
				}
			}
			out = append(out, sum)
		}
	}
	slices.SortFunc(out, func(a, b model.ServiceSummary) int {
		return cmp.Or(cmp.Compare(a.Key.Group, b.Key.Group), cmp.Compare(a.Key.Service, b.Key.Service))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, backends.ReadInfo{Revision: rev, Consistency: c}, nil
}

// configValue is the stored form of a config item.
type configValue struct {
	Content     string    `json:"content"`
	ContentType string    `json:"contentType"`
	MD5         string    `json:"md5"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

func decodeConfig(key model.ConfigKey, data []byte, st *zk.Stat) model.Config {
	var v configValue
	if err := json.Unmarshal(data, &v); err != nil || (v.MD5 == "" && v.ContentType == "") {
		v = configValue{Content: string(data), ContentType: model.ContentText} // written by another client
	}
	if v.MD5 == "" {
		v.MD5 = model.ContentMD5([]byte(v.Content))
	}
	if v.Created.IsZero() {
		v.Created = time.UnixMilli(st.Ctime).UTC()
		v.Updated = time.UnixMilli(st.Mtime).UTC()
	}
	return model.Config{Key: key, Content: []byte(v.Content), ContentType: v.ContentType, MD5: v.MD5,
		Revision: st.Mzxid, CreateRevision: st.Czxid, Version: int64(st.Version) + 1, Created: v.Created, Updated: v.Updated}
}

// absentRev is the revision a read that found no node at p reflects: the
// pzxid of its parent, 0 when the parent is absent too.
func (d *Driver) absentRev(p string) int64 {
	if _, pst, err := d.conn.Exists(path.Dir(p)); err == nil && pst != nil {
		return pst.Pzxid
	}
	return 0
}

// GetConfig implements backends.Configs.
func (d *Driver) GetConfig(ctx context.Context, key model.ConfigKey, o backends.ReadOptions) (model.Config, backends.ReadInfo, error) {
	p := d.configPath(key)
	c, err := d.sync(p, o)
	if err != nil {
		return model.Config{}, backends.ReadInfo{}, err
	}
	data, st, err := d.conn.Get(p)
	if errors.Is(err, zk.ErrNoNode) {
		return model.Config{}, backends.ReadInfo{Revision: d.absentRev(p), Consistency: c}, fmt.Errorf("config %s: %w", key, model.ErrNotFound)
	}
	if err != nil {
		return model.Config{}, backends.ReadInfo{}, mapErr(err)
	}
	return decodeConfig(key, data, st), backends.ReadInfo{Revision: st.Mzxid, Consistency: c}, nil
}

// PutConfig implements backends.Configs with version-checked writes, each
// in one multi with the version it makes (see change).
func (d *Driver) PutConfig(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, error) {
	p := d.configPath(cfg.Key)
	for {
		if err := ctx.Err(); err != nil {
			return model.Config{}, err
		}
		it, err := d.readItem(cfg.Key)
		if err != nil {
			return model.Config{}, err
		}
		cur := it.cur
		if !cond.Holds(cur.Revision) {
			return model.Config{}, model.ConfigConflict(cfg.Key, cond, cur.Revision)
		}
		now := time.Now().UTC()
		v := configValue{Content: string(cfg.Content), ContentType: cmp.Or(cfg.ContentType, cur.ContentType, model.ContentText),
			MD5: model.ContentMD5(cfg.Content), Created: now, Updated: now}
		if it.st != nil {
			v.Created = cur.Created
		}
		b, _ := json.Marshal(v)
		var op any = &zk.CreateRequest{Path: p, Data: b, Acl: d.acl}
		if it.st != nil {
			op = &zk.SetDataRequest{Path: p, Data: b, Version: it.st.Version}
		}
		stored := model.Config{Key: cfg.Key, Content: cfg.Content, ContentType: v.ContentType}
		res, ok, err := d.change(ctx, it, op, confighist.Op(it.st != nil), stored)
		if err != nil {
			return model.Config{}, err
		}
		if !ok {
			continue // changed between the read and the write: check again
		}
		st := res[0].Stat // the item's set
		if st == nil {
			if st, err = d.createdStat(p, zxidOf(res)); err != nil {
				return model.Config{}, err
			}
		}
		return decodeConfig(cfg.Key, b, st), nil
	}
}

// createdStat is the stat of the node at p, which a multi at zxid created;
// zxid is 0 when the multi did not report it (see zxidOf), and the node is
// read then.
func (d *Driver) createdStat(p string, zxid int64) (*zk.Stat, error) {
	if zxid != 0 {
		return &zk.Stat{Czxid: zxid, Mzxid: zxid, Pzxid: zxid}, nil
	}
	_, st, err := d.conn.Exists(p)
	return st, mapErr(err)
}

// DeleteConfig implements backends.Configs: like PutConfig, a multi at the
// version read, with the version that records the delete.
func (d *Driver) DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error) {
	p := d.configPath(key)
	for {
		it, err := d.readItem(key)
		if err != nil {
			return 0, err
		}
		if it.st == nil {
			if cond.Check {
				return 0, model.ConfigConflict(key, cond, 0)
			}
			return 0, fmt.Errorf("config %s: %w", key, model.ErrNotFound)
		}
		if !cond.Holds(it.st.Mzxid) {
			return 0, model.ConfigConflict(key, cond, it.st.Mzxid)
		}
		res, ok, err := d.change(ctx, it, &zk.DeleteRequest{Path: p, Version: it.st.Version}, model.OpDelete, it.cur)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		if zxid := zxidOf(res); zxid != 0 {
			return zxid, nil // the head's set, in the delete's own multi
		}
		_, pst, err := d.conn.Exists(path.Dir(p))
		if err != nil {
			return 0, mapErr(err)
		}
		return pst.Pzxid, nil
	}
}

// ListConfigs implements backends.Configs.
func (d *Driver) ListConfigs(ctx context.Context, namespace, group string, o backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	base := d.cfg.Prefix + "/configs/" + namespace
	c, err := d.sync(base, o)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	groups := []string{group}
	if group == "" {
		gs, _, err := d.conn.Children(base)
		if err != nil && !errors.Is(err, zk.ErrNoNode) {
			return nil, backends.ReadInfo{}, mapErr(err)
		}
		groups = slices.Sorted(slices.Values(gs))
	}
	var (
		out []model.ConfigSummary
		rev int64
	)
	for _, g := range groups {
		ids, gst, err := d.conn.Children(base + "/" + g)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, backends.ReadInfo{}, mapErr(err)
		}
		rev = max(rev, gst.Pzxid)
		for _, id := range slices.Sorted(slices.Values(ids)) {
			data, st, err := d.conn.Get(base + "/" + g + "/" + id)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return nil, backends.ReadInfo{}, mapErr(err)
			}
			out = append(out, decodeConfig(model.ConfigKey{Namespace: namespace, Group: g, DataID: id}, data, st).Summary())
			rev = max(rev, st.Mzxid)
		}
	}
	return out, backends.ReadInfo{Revision: rev, Consistency: c}, nil
}

// Status implements backends.Backend.
func (d *Driver) Status(ctx context.Context) (backends.Status, error) {
	if d.conn.State() != zk.StateHasSession {
		return backends.Status{}, fmt.Errorf("zookeeper: %v: %w", d.conn.State(), model.ErrUnavailable)
	}
	_, st, err := d.conn.Exists("/")
	if err != nil {
		return backends.Status{}, mapErr(err)
	}
	return backends.Status{Backend: "zookeeper", Revision: st.Pzxid, Leader: d.conn.Server(), Capabilities: d.Capabilities()}, nil
}

// Capabilities reports what the driver provides on ZooKeeper.
func (d *Driver) Capabilities() backends.Capabilities {
	return backends.Capabilities{NativeSessions: false, NativeRevisions: true, ResumableWatch: false,
		LinearizableReads: true, NativeCAS: true, PatchAnyOwner: true, ConfigHistory: true, AtomicHistory: true}
}

// Close removes this gateway's sessions and closes the connection (closing
// the ZooKeeper session deletes its ephemeral nodes at once).
func (d *Driver) Close() error {
	select {
	case <-d.stop:
		return nil
	default:
	}
	close(d.stop)
	d.conn.Close()
	d.wg.Wait()
	return nil
}

func parseBool(s string, def bool) bool {
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return def
}

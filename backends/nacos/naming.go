package nacos

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	nm "github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Metadata keys the driver adds to the instances it registers, and the
// prefix of those a Nacos-protocol server adds itself (Polaris); both are
// hidden from Junction's view.
const (
	metaID = "junction-id"
	// metaSession names the Junction session of an ephemeral instance, so
	// that every driver tells an instance another driver's session holds
	// from a persistent one (Polaris lists persistent instances as
	// ephemeral).
	metaSession    = "junction-session"
	internalPrefix = "internal-nacos-"
)

// instKey names an instance a session owns.
type instKey struct {
	svc model.ServiceKey
	id  string
}

// owned is what the driver needs to deregister an instance.
type owned struct {
	ip      string
	port    int
	cluster string
}

// fromNacos converts an instance the server lists.
func fromNacos(h nm.Instance) model.Instance {
	cluster := h.ClusterName
	if cluster == "" {
		cluster = model.DefaultCluster
	}
	i := model.Instance{IP: h.Ip, Port: int(h.Port), Cluster: cluster, Weight: h.Weight, Healthy: h.Healthy,
		Enabled: h.Enable, Ephemeral: h.Ephemeral, Metadata: map[string]string{}}
	for k, v := range h.Metadata {
		if k == metaID {
			i.ID = v
		} else if k == metaSession {
			i.Session = v
		} else if !strings.HasPrefix(k, internalPrefix) {
			i.Metadata[k] = v
		}
	}
	if len(i.Metadata) == 0 {
		i.Metadata = nil
	}
	if _, ours := h.Metadata[metaID]; ours {
		// Registered through Junction: ephemeral exactly when a session
		// owns it, whatever the server says (Polaris lists persistent
		// instances as ephemeral).
		i.Ephemeral = i.Session != ""
	}
	if i.ID == "" { // registered by a plain Nacos client
		i.ID = model.DefaultInstanceID(i.IP, i.Port)
		if cluster != model.DefaultCluster {
			i.ID += "#" + cluster
		}
	}
	return i
}

// sameWrite reports whether the server's listing of an instance reflects
// a registration of want: the fields a Nacos server keeps as sent (it
// decides health and, for Polaris, the ephemeral flag itself).
func sameWrite(got, want model.Instance) bool {
	return got.IP == want.IP && got.Port == want.Port && got.Cluster == want.Cluster && got.Weight == want.Weight &&
		got.Enabled == want.Enabled && maps.Equal(got.Metadata, want.Metadata)
}

// view is the driver's copy of one service, kept from the server's pushes
// (each a whole snapshot), with the changes it saw for watches.
type view struct {
	d       *Driver
	svc     model.ServiceKey
	created int64
	rev     int64     // revision of the view's last change (guarded by mu)
	used    time.Time // when it was last asked for (guarded by d.mu)

	mu      sync.Mutex
	ready   bool
	server  map[string]model.Instance // the server's last snapshot
	pending map[string]pendingWrite   // acknowledged writes it does not show yet
	insts   map[string]model.Instance // what the view shows
	log     []model.Event             // recent changes, oldest first
	reset   bool                      // the next snapshot cannot be proven continuous
	changed chan struct{}             // closed at every change
	subs    map[*watcher]struct{}
	param   *vo.SubscribeParam
	client  naming_client.INamingClient

	// resub serializes resubscribe and drop, the two that unsubscribe and
	// subscribe again a view that is already subscribed.
	resub sync.Mutex
}

// view returns the subscribed view of a service.
func (d *Driver) view(ctx context.Context, svc model.ServiceKey) (*view, error) {
	d.mu.Lock()
	for d.dropping[svc] != nil { // the view before, still unsubscribing
		ch := d.dropping[svc]
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the view of %s: %v", model.ErrUnavailable, svc, ctx.Err())
		}
		d.mu.Lock()
	}
	v, ok := d.views[svc]
	if !ok {
		now := d.clock.current()
		v = &view{d: d, svc: svc, created: now, rev: now, insts: map[string]model.Instance{}, server: map[string]model.Instance{}, pending: map[string]pendingWrite{}, changed: make(chan struct{}),
			subs: map[*watcher]struct{}{}}
		d.views[svc] = v
	}
	v.used = time.Now()
	d.mu.Unlock()
	if err := v.subscribe(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *view) subscribe(ctx context.Context) error {
	v.mu.Lock()
	if v.ready || v.param != nil {
		v.mu.Unlock()
		return v.waitReady(ctx)
	}
	p := &vo.SubscribeParam{ServiceName: v.svc.Service, GroupName: v.svc.Group, SubscribeCallback: func(hosts []nm.Instance, err error) {
		if err == nil {
			v.apply(hosts)
		}
	}}
	v.param = p
	v.mu.Unlock()
	c, err := v.d.namingClient(ctx, v.d.nacosNamespace(v.svc.Namespace))
	if err == nil {
		v.mu.Lock()
		v.client = c
		v.mu.Unlock()
		// A server that is slow for a moment (Polaris after a burst of
		// writes) times the request out: it is asked again while the
		// caller waits. A callback registered twice is harmless (a
		// snapshot applied twice changes nothing) and Unsubscribe
		// removes every copy.
		for {
			if err = c.Subscribe(p); err == nil || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		if err != nil {
			_ = c.Unsubscribe(p)
		}
	}
	if err != nil {
		v.mu.Lock()
		v.param, v.client = nil, nil
		v.mu.Unlock()
		return sdkError("subscribe", err)
	}
	return v.waitReady(ctx)
}

// waitReady waits for the subscription's first snapshot.
func (v *view) waitReady(ctx context.Context) error {
	for {
		v.mu.Lock()
		ready, ch := v.ready, v.changed
		v.mu.Unlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: no instance list of %s from nacos: %v", model.ErrUnavailable, v.svc, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// apply takes a snapshot the server pushed.
func (v *view) apply(hosts []nm.Instance) {
	next := make(map[string]model.Instance, len(hosts))
	for _, h := range hosts {
		i := fromNacos(h)
		next[i.ID] = i
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.server = next
	v.recompute()
	v.ready = true
	close(v.changed)
	v.changed = make(chan struct{})
}

// acknowledged records a write the server acknowledged: the view shows it
// at once, with its revision, and keeps showing it over older snapshots
// until the server's pushes include it (or, should they never, for
// WriteTimeout). inst is nil for a deregistration. It returns the write's
// revision.
func (v *view) acknowledged(id string, inst *model.Instance) int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	rev := v.d.clock.tick(v.d.salt)
	if inst != nil {
		c := inst.Clone()
		c.Revision = rev
		inst = &c
	}
	now := time.Now()
	v.pending[id] = pendingWrite{inst: inst, rev: rev, deadline: now.Add(v.d.cfg.WriteTimeout), settle: now.Add(settleTime)}
	v.recompute()
	// A server that pushes fast (Junction's own front end) may have shown
	// the write before its acknowledgement: the view then already holds
	// it, under an older revision, and no event follows. Reads from now on
	// are still at least as new as the write.
	v.rev = max(v.rev, rev)
	return rev
}

// pendingWrite is an acknowledged write the server's pushes do not show yet.
type pendingWrite struct {
	inst     *model.Instance
	rev      int64
	deadline time.Time
	settle   time.Time // a removal: when snapshots without it confirm it
	seen     bool      // a removal: a snapshot listed the instance since
}

// settleTime is how long a snapshot lacking an instance removed through
// the driver may be older than the removal (Polaris refreshes every
// second).
const settleTime = 3 * time.Second

// recompute derives the view from the last snapshot and the pending
// writes, and records the changes. v.mu is held.
func (v *view) recompute() {
	now := time.Now()
	next := maps.Clone(v.server)
	quiet := map[string]bool{} // changes that confirm a write already shown
	revs := map[string]int64{} // revisions of the acknowledged writes
	for id, p := range v.pending {
		got, there := next[id]
		revs[id] = p.rev
		switch {
		case p.inst != nil && there && sameWrite(got, *p.inst) && got.Healthy == p.inst.Healthy && now.After(p.settle):
			// A snapshot older than a change of health alone looks like
			// the write in every other field, and one older than the
			// write may even match it (health flipped twice): only a
			// matching snapshot past the settle time confirms it (or,
			// should the server decide health itself, the deadline below
			// ends the wait). Until then the view shows the write.
			delete(v.pending, id)
			quiet[id] = true
		case p.inst == nil && !there && (p.seen || now.After(p.settle)):
			// A snapshot without the instance confirms its removal once
			// the server listed it since, or after the settle time: an
			// older snapshot may still list it.
			delete(v.pending, id)
		case now.After(p.deadline):
			delete(v.pending, id)
			delete(revs, id)
			v.d.log.Warn("the server never listed an acknowledged write", "service", v.svc, "instance", id)
		case p.inst == nil:
			if there {
				p.seen = true
				v.pending[id] = p
			}
			delete(next, id)
		default:
			next[id] = *p.inst
		}
	}
	var events []model.Event
	if v.reset && v.ready {
		rev := v.d.clock.tick(v.d.salt)
		for id, i := range next {
			if old, ok := v.insts[id]; ok && sameWrite(old, i) && old.Healthy == i.Healthy {
				i.Revision = old.Revision
			} else {
				i.Revision = rev
			}
			next[id] = i
		}
		v.insts = next
		events = append(events, model.Event{Type: model.EventReset, Revision: rev, Service: v.svc, Instances: v.list()})
	} else {
		for _, id := range slices.Sorted(maps.Keys(v.insts)) {
			if _, ok := next[id]; !ok {
				last := v.withSession(v.insts[id])
				delete(v.insts, id)
				if quiet[id] {
					continue
				}
				rev, ok := revs[id]
				if !ok {
					rev = v.d.clock.tick(v.d.salt)
				}
				events = append(events, model.Event{Type: model.EventDelete, Revision: rev, Service: v.svc, Instance: &last})
			}
		}
		for _, id := range slices.Sorted(maps.Keys(next)) {
			i := next[id]
			old, had := v.insts[id]
			if had && sameWrite(old, i) && (quiet[id] || old.Healthy == i.Healthy && old.Ephemeral == i.Ephemeral) {
				i.Revision = old.Revision
				v.insts[id] = i
				continue
			}
			if rev, ok := revs[id]; ok {
				i.Revision = rev
			} else {
				i.Revision = v.d.clock.tick(v.d.salt)
			}
			v.insts[id] = i
			i = v.withSession(i)
			events = append(events, model.Event{Type: model.EventPut, Revision: i.Revision, Service: v.svc, Instance: &i})
		}
	}
	v.reset = false
	slices.SortFunc(events, func(a, b model.Event) int { return cmp.Compare(a.Revision, b.Revision) })
	if len(events) == 0 {
		return
	}
	v.rev = max(v.rev, events[len(events)-1].Revision)
	floor := v.d.hist.oldest()
	for _, e := range events {
		v.d.hist.add(e.Revision)
	}
	v.log = append(v.log, events...)
	if i := slices.IndexFunc(v.log, func(e model.Event) bool { return e.Revision > floor }); i > 0 {
		v.log = slices.Delete(v.log, 0, i)
	}
	for w := range v.subs {
		for _, e := range events {
			w.push(e)
		}
	}
}

// list returns the view's instances, sorted by id. v.mu is held.
func (v *view) list() []model.Instance {
	out := make([]model.Instance, 0, len(v.insts))
	for _, id := range slices.Sorted(maps.Keys(v.insts)) {
		out = append(out, v.withSession(v.insts[id].Clone()))
	}
	return out
}

// withSession returns i with the session that owns it, when a session of
// this driver does (the server knows connections, not sessions).
func (v *view) withSession(i model.Instance) model.Instance {
	if i.Ephemeral {
		if s, ok := v.d.sessions.Owner(instKey{v.svc, i.ID}); ok {
			i.Session = s
		}
	}
	return i
}

// idle reports whether nothing depends on the view: no watch, no write
// waiting to show. The pending writes are settled first, as a push
// would: the server may have shown them before their settle time, and
// pushes nothing more until the service changes.
func (v *view) idle() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.subs) > 0 || (v.param != nil && !v.ready) { // watched, or subscribing
		return false
	}
	if len(v.pending) > 0 && v.ready {
		v.recompute()
	}
	return len(v.pending) == 0
}

// drop ends the view's subscription to the server, once the driver has
// forgotten it (dropIdleViews).
func (v *view) drop() {
	v.resub.Lock()
	defer v.resub.Unlock()
	v.mu.Lock()
	p, c := v.param, v.client
	v.param, v.client = nil, nil
	v.mu.Unlock()
	if p != nil && c != nil {
		_ = c.Unsubscribe(p)
	}
}

func (v *view) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for w := range v.subs {
		w.fail(errClosed)
	}
}

func toParam(svc model.ServiceKey, inst model.Instance) vo.RegisterInstanceParam {
	md := maps.Clone(inst.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md[metaID] = inst.ID
	if inst.Ephemeral {
		md[metaSession] = inst.Session
	}
	return vo.RegisterInstanceParam{Ip: inst.IP, Port: uint64(inst.Port), Weight: inst.Weight, Enable: inst.Enabled,
		Healthy: inst.Healthy, Metadata: md, ClusterName: inst.Cluster, ServiceName: svc.Service, GroupName: svc.Group,
		Ephemeral: inst.Ephemeral}
}

// Register registers an instance and returns once the server lists it.
// A persistent instance goes through the shared client of its namespace;
// an ephemeral one through its session's own connection.
func (d *Driver) Register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error) {
	defer d.lockInstance(svc, inst.ID)()
	return d.register(ctx, svc, inst)
}

// lockInstance takes the write lock of an instance and returns its unlock.
func (d *Driver) lockInstance(svc model.ServiceKey, id string) func() {
	return lockStripe(d.writes[:], svc.String()+"\x00"+id)
}

func (d *Driver) register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error) {
	if err := checkMetadata(inst.Metadata); err != nil {
		return 0, err
	}
	v, err := d.view(ctx, svc)
	if err != nil {
		return 0, err
	}
	key := instKey{svc, inst.ID}
	v.mu.Lock()
	old, had := v.insts[inst.ID]
	var clash string
	for id, o := range v.insts {
		if id != inst.ID && o.IP == inst.IP && o.Port == inst.Port && o.Cluster == inst.Cluster {
			clash = id
		}
	}
	v.mu.Unlock()
	if clash != "" {
		return 0, model.Invalid("id", "nacos identifies an instance by ip, port and cluster, and instance %q of %s already has %s:%d in cluster %s", clash, svc, inst.IP, inst.Port, inst.Cluster)
	}
	// An instance held by another session leaves that session's connection.
	if sid, ok := d.sessions.Owner(key); ok && (!inst.Ephemeral || sid != inst.Session) && had {
		d.sessions.Forget(key)
		if err := d.dropFromSession(sid, key, owned{old.IP, old.Port, old.Cluster}); err != nil {
			return 0, err
		}
		had = false
	}
	var client naming_client.INamingClient
	if inst.Ephemeral {
		if client, err = d.sessionConn(ctx, inst.Session, svc, inst.ID); err != nil {
			return 0, err
		}
	} else {
		if client, err = d.namingClient(ctx, d.nacosNamespace(svc.Namespace)); err != nil {
			return 0, err
		}
	}
	ok, err := register(ctx, client, toParam(svc, inst))
	if err != nil || !ok {
		return 0, sdkError("register", fmt.Errorf("registration of %s refused: %v", inst.ID, err))
	}
	if inst.Ephemeral {
		if !d.sessions.Own(inst.Session, key, owned{inst.IP, inst.Port, inst.Cluster}) {
			// The session expired while the instance was registered:
			// take it back.
			_, _ = client.DeregisterInstance(vo.DeregisterInstanceParam{Ip: inst.IP, Port: uint64(inst.Port), Cluster: inst.Cluster,
				ServiceName: svc.Service, GroupName: svc.Group, Ephemeral: true})
			return 0, fmt.Errorf("%w: session %s", model.ErrSessionExpired, inst.Session)
		}
	} else {
		d.sessions.Forget(key)
	}
	// An instance that moved to another address leaves the old one.
	if had && (old.IP != inst.IP || old.Port != inst.Port || old.Cluster != inst.Cluster) {
		a := owned{old.IP, old.Port, old.Cluster}
		if old.Ephemeral && inst.Ephemeral {
			err = deregisterWith(client, svc, a, true)
		} else {
			err = d.deregisterAddr(ctx, svc, a, old.Ephemeral)
		}
		if err != nil {
			return 0, err
		}
	}
	// The server serves the write later (Polaris refreshes its caches every
	// second); the view shows it from now on.
	return v.acknowledged(inst.ID, &inst), nil
}

// checkMetadata refuses the metadata keys the driver or the server owns.
func checkMetadata(md map[string]string) error {
	for k := range md {
		if k == metaID || k == metaSession || strings.HasPrefix(k, internalPrefix) {
			return model.Invalid("metadata", "key %q is reserved by the nacos backend", k)
		}
	}
	return nil
}

func (d *Driver) deregisterAddr(ctx context.Context, svc model.ServiceKey, a owned, ephemeral bool) error {
	client, err := d.namingClient(ctx, d.nacosNamespace(svc.Namespace))
	if err != nil {
		return err
	}
	return deregisterWith(client, svc, a, ephemeral)
}

func deregisterWith(client naming_client.INamingClient, svc model.ServiceKey, a owned, ephemeral bool) error {
	ok, err := client.DeregisterInstance(vo.DeregisterInstanceParam{Ip: a.ip, Port: uint64(a.port), Cluster: a.cluster,
		ServiceName: svc.Service, GroupName: svc.Group, Ephemeral: ephemeral})
	if err != nil || !ok {
		return sdkError("deregister", fmt.Errorf("deregistration of %s:%d refused: %v", a.ip, a.port, err))
	}
	return nil
}

// Deregister removes an instance and returns once the server no longer
// lists it.
func (d *Driver) Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error) {
	defer d.lockInstance(svc, id)()
	v, err := d.view(ctx, svc)
	if err != nil {
		return 0, err
	}
	v.mu.Lock()
	inst, ok := v.insts[id]
	v.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w: instance %s of %s", model.ErrNotFound, id, svc)
	}
	key := instKey{svc, id}
	a := owned{inst.IP, inst.Port, inst.Cluster}
	if sid, ok := d.sessions.Owner(key); ok {
		d.sessions.Forget(key)
		if err := d.dropFromSession(sid, key, a); err != nil {
			return 0, err
		}
	} else if err := d.deregisterAddr(ctx, svc, a, inst.Ephemeral); err != nil {
		return 0, err
	}
	return v.acknowledged(id, nil), nil
}

// PatchInstance implements backends.Registry by registering the instance
// again with the patch applied, through the connection that holds it.
// Nacos ties an ephemeral instance to the connection that registered it,
// so one whose session another driver holds is ErrNotOwner. Nacos has no
// conditional registration: the precondition is checked against the
// driver's view just before the write.
func (d *Driver) PatchInstance(ctx context.Context, svc model.ServiceKey, id string, p model.InstancePatch) (model.Instance, error) {
	defer d.lockInstance(svc, id)()
	insts, _, err := d.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return model.Instance{}, err
	}
	i := slices.IndexFunc(insts, func(i model.Instance) bool { return i.ID == id })
	if i < 0 {
		return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
	}
	cur := insts[i]
	if !p.Cond.Holds(cur.Revision) {
		return model.Instance{}, model.PatchConflict(p, cur.Revision)
	}
	if cur.Ephemeral && !d.sessions.Live(cur.Session) {
		return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, backends.ErrNotOwner)
	}
	inst := p.Apply(cur)
	inst.Revision, err = d.register(ctx, svc, inst)
	return inst, err
}

// Instances lists a service's instances as the driver's view holds them:
// the server's last push, which includes every write through this driver.
func (d *Driver) Instances(ctx context.Context, svc model.ServiceKey, _ backends.ReadOptions) ([]model.Instance, backends.ReadInfo, error) {
	v, err := d.view(ctx, svc)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.list(), backends.ReadInfo{Revision: v.rev, Consistency: model.Stale}, nil
}

// Services lists the services of a namespace's group, from the server's
// service list and each service's instances.
func (d *Driver) Services(ctx context.Context, namespace, group string, after model.ServiceKey, limit int, opts backends.ReadOptions) ([]model.ServiceSummary, backends.ReadInfo, error) {
	if group == "" {
		group = model.DefaultGroup
	}
	c, err := d.namingClient(ctx, d.nacosNamespace(namespace))
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	rev := d.clock.current()
	var names []string
	const page = 500
	for no := uint32(1); ; no++ {
		l, err := c.GetAllServicesInfo(vo.GetAllServiceInfoParam{NameSpace: d.nacosNamespace(namespace), GroupName: group, PageNo: no, PageSize: page})
		if err != nil {
			return nil, backends.ReadInfo{}, sdkError("list services", err)
		}
		names = append(names, l.Doms...)
		if len(l.Doms) < page || int64(len(names)) >= l.Count {
			break
		}
	}
	slices.Sort(names)
	var out []model.ServiceSummary
	for _, name := range slices.Compact(names) {
		k := model.ServiceKey{Namespace: namespace, Group: group, Service: name}
		if after.Service != "" && k.String() <= after.String() {
			continue
		}
		list, _, err := d.Instances(ctx, k, opts)
		if err != nil {
			return nil, backends.ReadInfo{}, err
		}
		if len(list) == 0 {
			continue
		}
		s := model.ServiceSummary{Key: k, Instances: len(list)}
		for _, i := range list {
			if i.Healthy {
				s.Healthy++
			}
		}
		out = append(out, s)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, backends.ReadInfo{Revision: rev, Consistency: model.Stale}, nil
}

// register sends a registration. A connection whose stream the server has
// not set up yet answers false without an error: that is retried for a
// few seconds.
func register(ctx context.Context, c naming_client.INamingClient, p vo.RegisterInstanceParam) (bool, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := c.RegisterInstance(p)
		if ok || err != nil || time.Now().After(deadline) || ctx.Err() != nil {
			return ok, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

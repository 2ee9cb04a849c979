package zookeeper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/go-zookeeper/zk"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// zkWatcher follows a service or a config with one-shot ZooKeeper watches.
// After every fired watch it re-reads, re-arms only the watches that fired,
// and diffs against its view. ZooKeeper's counters prove whether it saw
// every change: the parent's cversion counts child creations and deletions,
// a node's version counts its updates. When the counts do not add up, a
// change happened between a watch firing and the re-read, and the watcher
// emits a RESET instead of pretending it saw everything.
type zkWatcher struct {
	d      *Driver
	req    backends.WatchRequest
	path   string
	ctx    context.Context
	cancel context.CancelFunc
	fired  chan zk.Event

	parentArmed bool
	existsArmed bool
	childArmed  map[string]bool

	started bool
	view    serviceState
	cfg     *model.Config // config watches: current value
	cfgVer  int32
	cfgCz   int64
	rev     int64
	reset   bool
	pending []model.Event
}

// Watch implements backends.Watches.
func (d *Driver) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	w := &zkWatcher{d: d, req: req, fired: make(chan zk.Event, 64), childArmed: map[string]bool{}}
	switch {
	case req.Service != nil && req.Config == nil:
		w.path = d.serviceDir(*req.Service)
	case req.Config != nil && req.Service == nil:
		w.path = d.configPath(*req.Config)
	default:
		return nil, model.Invalid("watch", "exactly one of service and config must be set")
	}
	w.ctx, w.cancel = context.WithCancel(ctx)
	// Read and arm now, so that changes made after Watch returns are seen
	// as events rather than as a difference found later.
	if err := w.step(ctx); err != nil {
		w.cancel()
		return nil, err
	}
	return w, nil
}

// arm forwards one watch's event to the watcher.
func (w *zkWatcher) arm(p string, ch <-chan zk.Event) {
	go func() {
		select {
		case ev := <-ch:
			if ev.Path == "" {
				ev.Path = p
			}
			select {
			case w.fired <- ev:
			case <-w.ctx.Done():
			}
		case <-w.ctx.Done():
		}
	}()
}

// disarm records that a watch fired and must be set again.
func (w *zkWatcher) disarm(ev zk.Event) {
	switch {
	case ev.Type == zk.EventNotWatching || ev.State == zk.StateExpired || ev.Err != nil:
		// Watches were lost with the session: set them all again and reset.
		w.parentArmed, w.existsArmed = false, false
		clear(w.childArmed)
		w.reset = true
	case ev.Path == w.path && ev.Type == zk.EventNodeChildrenChanged:
		w.parentArmed = false
	case ev.Path == w.path:
		w.parentArmed, w.existsArmed = false, false
	default:
		delete(w.childArmed, path.Base(ev.Path))
	}
}

// Next implements backends.Watcher.
func (w *zkWatcher) Next(ctx context.Context) (model.Event, error) {
	for len(w.pending) == 0 {
		if err := w.step(ctx); err != nil {
			return model.Event{}, err
		}
	}
	e := w.pending[0]
	w.pending = w.pending[1:]
	w.rev = max(w.rev, e.Revision)
	return e, nil
}

func (w *zkWatcher) step(ctx context.Context) error {
	if w.started && !w.reset {
		select {
		case ev := <-w.fired:
			w.disarm(ev)
		case <-ctx.Done():
			return ctx.Err()
		case <-w.ctx.Done():
			return fmt.Errorf("zookeeper: watch closed: %w", w.ctx.Err())
		}
		for drained := false; !drained; {
			select {
			case ev := <-w.fired:
				w.disarm(ev)
			default:
				drained = true
			}
		}
	}
	if w.req.Service != nil {
		return w.stepService()
	}
	return w.stepConfig()
}

func (w *zkWatcher) stepService() error {
	st, err := w.d.readService(w.path, w)
	if err != nil {
		return err
	}
	svc := *w.req.Service
	resetEvent := func() {
		w.pending = append(w.pending, model.Event{Type: model.EventReset, Revision: max(st.rev, w.rev), Service: svc,
			Instances: st.instances()})
	}
	first := !w.started
	w.started = true
	switch {
	case first && (w.req.FromRevision <= 0 || st.newest > w.req.FromRevision):
		// No history in ZooKeeper: a change since the asked revision means a RESET.
		resetEvent()
	case first:
		w.rev = w.req.FromRevision
	case w.reset:
		resetEvent()
	default:
		evs, ok := diff(svc, w.view, st)
		if ok {
			w.pending = append(w.pending, evs...)
		} else {
			resetEvent()
		}
	}
	w.reset = false
	w.view = st
	return nil
}

// diff returns the events that turn old into cur, and whether ZooKeeper's
// counters prove that they are all the changes that happened.
func diff(svc model.ServiceKey, old, cur serviceState) ([]model.Event, bool) {
	var evs []model.Event
	setChanges := int32(0)
	for name, o := range old.nodes {
		n, ok := cur.nodes[name]
		if ok && n.czxid == o.czxid {
			continue
		}
		last := o.inst
		evs = append(evs, model.Event{Type: model.EventDelete, Revision: cur.pzxid, Service: svc, Instance: &last})
		setChanges++
	}
	for name, n := range cur.nodes {
		o, ok := old.nodes[name]
		inst := n.inst
		switch {
		case !ok || o.czxid != n.czxid:
			if n.version != 0 {
				return nil, false // updated since its creation before we saw it
			}
			evs = append(evs, model.Event{Type: model.EventPut, Revision: n.mzxid, Service: svc, Instance: &inst})
			setChanges++
		case n.version == o.version:
		case n.version == o.version+1:
			evs = append(evs, model.Event{Type: model.EventPut, Revision: n.mzxid, Service: svc, Instance: &inst})
		default:
			return nil, false // more than one update collapsed into what we read
		}
	}
	switch {
	case old.exists && cur.exists && cur.cversion-old.cversion != setChanges:
		return nil, false // children came and went between two reads
	case !old.exists && cur.exists && cur.cversion != setChanges:
		return nil, false
	case old.exists && !cur.exists && len(old.nodes) > 0:
		return nil, false // the service node itself was removed
	}
	slices.SortStableFunc(evs, func(a, b model.Event) int {
		return cmp.Or(cmp.Compare(a.Revision, b.Revision), cmp.Compare(a.Instance.ID, b.Instance.ID))
	})
	return evs, true
}

func (w *zkWatcher) stepConfig() error {
	key := *w.req.Config
	var (
		data []byte
		st   *zk.Stat
		err  error
	)
	if !w.parentArmed {
		var ch <-chan zk.Event
		data, st, ch, err = w.d.conn.GetW(w.path)
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, ch, err = w.d.conn.ExistsW(w.path)
			if err == nil && ok { // created meanwhile: the watch is set, read it
				data, st, err = w.d.conn.Get(w.path)
				if errors.Is(err, zk.ErrNoNode) {
					err = nil
				}
			}
		}
		if err != nil {
			return mapErr(err)
		}
		w.arm(w.path, ch)
		w.parentArmed = true
	} else {
		data, st, err = w.d.conn.Get(w.path)
		if errors.Is(err, zk.ErrNoNode) {
			err = nil
		}
		if err != nil {
			return mapErr(err)
		}
	}
	var (
		cur *model.Config
		rev int64
	)
	if st != nil {
		c := decodeConfig(key, data, st)
		cur, rev = &c, st.Mzxid
	} else if _, pst, err := w.d.conn.Exists(path.Dir(w.path)); err == nil && pst != nil {
		rev = pst.Pzxid
	}
	resetEvent := func() {
		w.pending = append(w.pending, model.Event{Type: model.EventReset, Revision: max(rev, w.rev), ConfigKey: key, Config: cur})
	}
	first := !w.started
	w.started = true
	switch {
	case first && (w.req.FromRevision <= 0 || rev > w.req.FromRevision):
		resetEvent()
	case first:
		w.rev = w.req.FromRevision
	case w.reset:
		resetEvent()
	case w.cfg == nil && cur == nil:
	case w.cfg != nil && cur == nil:
		w.pending = append(w.pending, model.Event{Type: model.EventDelete, Revision: max(rev, w.rev+1), ConfigKey: key, Config: w.cfg})
	case w.cfg == nil && cur != nil && st.Version == 0:
		w.pending = append(w.pending, model.Event{Type: model.EventPut, Revision: rev, ConfigKey: key, Config: cur})
	case w.cfg != nil && cur != nil && st.Czxid == w.cfgCz && st.Version == w.cfgVer:
	case w.cfg != nil && cur != nil && st.Czxid == w.cfgCz && st.Version == w.cfgVer+1:
		w.pending = append(w.pending, model.Event{Type: model.EventPut, Revision: rev, ConfigKey: key, Config: cur})
	default:
		resetEvent() // recreated or updated more than once between reads
	}
	w.reset = false
	w.cfg = cur
	if st != nil {
		w.cfgVer, w.cfgCz = st.Version, st.Czxid
	}
	return nil
}

// Close implements backends.Watcher.
func (w *zkWatcher) Close() error {
	w.cancel()
	return nil
}

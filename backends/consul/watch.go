package consul

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/time/rate"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// watcher follows a service or a config with Consul blocking queries. A
// blocking query answers with the newest state only, so the watcher diffs
// it against its view and must prove it saw every change:
//
//   - services: a poll that finds exactly one instance added, changed or
//     removed is that one change; a poll that finds more emits a RESET,
//     since the changes between two polls cannot be ordered or told apart
//     from a collapsed sequence;
//   - configs: the value's flags count Junction's writes and its
//     CreateIndex tells a re-creation, so an update that skipped a version
//     or a delete-and-create between polls emits a RESET;
//   - an index that goes backwards (a restored or replaced server) resets
//     the index and emits a RESET, as Consul advises; after a failed poll
//     the next one does not block, so that a lower index is seen at once,
//     and a watcher that was idle sees it when its blocking query ends,
//     within Config.WatchWait (Consul blocks until the index passes ours).
//
// Errors back off with jitter, and the next successful poll is diffed as
// usual: the full state is always re-read, so nothing is lost, only
// collapsed, and collapsing is what the rules above detect. As Consul
// advises, polls are also rate-limited (Config.WatchRate per second, with
// as large a burst): a key that changes faster than that is delivered as
// RESETs of its newest state instead of one query per change.
type watcher struct {
	d      *Driver
	req    backends.WatchRequest
	ctx    context.Context
	cancel context.CancelFunc

	index   uint64
	view    map[string]model.Instance // services
	cfg     *model.Config             // configs: the current value, nil when absent
	pending []model.Event
	backoff time.Duration
	limit   *rate.Limiter
}

// Watch implements backends.Watches.
func (d *Driver) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	if (req.Service == nil) == (req.Config == nil) {
		return nil, model.Invalid("watch", "exactly one of service and config must be set")
	}
	w := &watcher{d: d, req: req, limit: rate.NewLimiter(rate.Limit(d.cfg.WatchRate), max(1, d.cfg.WatchRate))}
	w.ctx, w.cancel = context.WithCancel(ctx)
	if err := w.start(ctx); err != nil {
		w.cancel()
		return nil, err
	}
	return w, nil
}

// start reads the current state. A watch from a revision continues without
// a RESET only if nothing changed since that revision; Consul keeps no
// history to replay.
func (w *watcher) start(ctx context.Context) error {
	q := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
	if w.req.Service != nil {
		entries, meta, err := w.d.readService(q, w.req.Service.Service)
		if err != nil {
			return err
		}
		w.view = viewOf(*w.req.Service, entries)
		w.index = meta.LastIndex
		if w.req.FromRevision == 0 || uint64(w.req.FromRevision) < meta.LastIndex {
			w.pending = append(w.pending, w.serviceReset(int64(meta.LastIndex)))
		}
		w.index = max(w.index, uint64(max(w.req.FromRevision, 0)))
		return nil
	}
	c, exists, meta, err := w.d.readConfig(ctx, *w.req.Config, q)
	if err != nil {
		return err
	}
	rev := meta.LastIndex
	if exists {
		w.cfg = &c
		rev = uint64(c.Revision)
	}
	w.index = max(rev, 1)
	if w.req.FromRevision == 0 || uint64(w.req.FromRevision) < rev {
		w.pending = append(w.pending, w.configReset(int64(meta.LastIndex)))
	}
	w.index = max(w.index, uint64(max(w.req.FromRevision, 0)))
	return nil
}

func viewOf(svc model.ServiceKey, entries []*api.ServiceEntry) map[string]model.Instance {
	v := map[string]model.Instance{}
	for id, e := range instancesOf(svc, entries) {
		v[id] = e.inst
	}
	return v
}

func (w *watcher) serviceReset(rev int64) model.Event {
	list := make([]model.Instance, 0, len(w.view))
	for _, i := range w.view {
		list = append(list, i)
	}
	sortInstances(list)
	return model.Event{Type: model.EventReset, Revision: rev, Service: *w.req.Service, Instances: list}
}

func (w *watcher) configReset(rev int64) model.Event {
	e := model.Event{Type: model.EventReset, Revision: rev, ConfigKey: *w.req.Config}
	if w.cfg != nil {
		c := *w.cfg
		e.Config = &c
		e.Revision = max(e.Revision, c.Revision)
	}
	return e
}

// Next implements backends.Watcher.
func (w *watcher) Next(ctx context.Context) (model.Event, error) {
	for len(w.pending) == 0 {
		if err := w.poll(ctx); err != nil {
			return model.Event{}, err
		}
	}
	e := w.pending[0]
	w.pending = w.pending[1:]
	return e, nil
}

// poll runs one blocking query and queues what changed.
func (w *watcher) poll(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(w.ctx, cancel)
	defer stop()
	if err := w.limit.Wait(ctx); err != nil {
		if w.ctx.Err() != nil {
			return fmt.Errorf("consul: watch closed: %w", w.ctx.Err())
		}
		return ctx.Err()
	}
	q := (&api.QueryOptions{RequireConsistent: true, WaitIndex: w.index, WaitTime: w.d.cfg.WatchWait}).WithContext(ctx)
	if w.backoff > 0 {
		// After a failure, read at once: a server that came back with less
		// state has a lower index, and a blocking query would wait for the
		// index to pass ours before it let us see that.
		q.WaitIndex = 0
	}
	var err error
	if w.req.Service != nil {
		err = w.pollService(q)
	} else {
		err = w.pollConfig(ctx, q)
	}
	if err == nil {
		w.backoff = 0
		return nil
	}
	if w.ctx.Err() != nil {
		return fmt.Errorf("consul: watch closed: %w", w.ctx.Err())
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Back off with jitter and keep watching: the store may be restarting.
	w.backoff = min(max(2*w.backoff, 50*time.Millisecond), 5*time.Second)
	w.d.log.Debug("watch poll failed; retrying", "err", err, "after", w.backoff)
	select {
	case <-time.After(w.backoff/2 + rand.N(w.backoff/2+1)):
		return nil
	case <-ctx.Done():
		if w.ctx.Err() != nil {
			return fmt.Errorf("consul: watch closed: %w", w.ctx.Err())
		}
		return ctx.Err()
	}
}

func (w *watcher) pollService(q *api.QueryOptions) error {
	svc := *w.req.Service
	entries, meta, err := w.d.readService(q, svc.Service)
	if err != nil {
		return err
	}
	cur := viewOf(svc, entries)
	switch {
	case meta.LastIndex < w.index: // went backwards
		w.view, w.index = cur, max(meta.LastIndex, 1)
		w.pending = append(w.pending, w.serviceReset(int64(meta.LastIndex)))
		return nil
	case meta.LastIndex == w.index: // woke without a change
		return nil
	}
	var events []model.Event
	for id, i := range cur {
		if old, ok := w.view[id]; !ok || !reflect.DeepEqual(old, i) {
			events = append(events, model.Event{Type: model.EventPut, Revision: i.Revision, Service: svc, Instance: &i})
		}
	}
	for id, old := range w.view {
		if _, ok := cur[id]; !ok {
			events = append(events, model.Event{Type: model.EventDelete, Revision: int64(meta.LastIndex), Service: svc, Instance: &old})
		}
	}
	w.view, w.index = cur, meta.LastIndex
	switch {
	case len(events) == 1 && events[0].Revision > 0:
		w.pending = append(w.pending, events[0])
	case len(events) > 1:
		w.pending = append(w.pending, w.serviceReset(int64(meta.LastIndex)))
	}
	return nil
}

func (w *watcher) pollConfig(ctx context.Context, q *api.QueryOptions) error {
	key := *w.req.Config
	_, meta, err := w.d.client.KV().Get(w.d.valueKey(key), q)
	if err != nil {
		return mapErr(err)
	}
	if meta.LastIndex == w.index {
		return nil
	}
	backwards := meta.LastIndex < w.index
	// Read value and meta together for the event.
	c, exists, _, err := w.d.readConfig(ctx, key, (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return err
	}
	old := w.cfg
	w.index = max(meta.LastIndex, 1)
	if exists {
		w.cfg = &c
	} else {
		w.cfg = nil
	}
	switch {
	case backwards:
		w.pending = append(w.pending, w.configReset(int64(meta.LastIndex)))
	case old == nil && exists && c.Version == 1:
		w.pending = append(w.pending, model.Event{Type: model.EventPut, Revision: c.Revision, ConfigKey: key, Config: &c})
	case old != nil && exists && c.CreateRevision == old.CreateRevision && c.Version == old.Version+1:
		w.pending = append(w.pending, model.Event{Type: model.EventPut, Revision: c.Revision, ConfigKey: key, Config: &c})
	case old != nil && exists && c.Revision == old.Revision:
		// unchanged (another key under the same index)
	case old != nil && !exists:
		w.pending = append(w.pending, model.Event{Type: model.EventDelete, Revision: int64(meta.LastIndex), ConfigKey: key, Config: old})
	case old == nil && !exists:
	default:
		w.pending = append(w.pending, w.configReset(int64(meta.LastIndex)))
	}
	return nil
}

// Close implements backends.Watcher.
func (w *watcher) Close() error {
	w.cancel()
	return nil
}

package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// watcher follows one service (a key prefix) or config (one key) with an
// etcd watch from a revision. Compaction and an unexpected end of the watch
// turn into a RESET built from a fresh read, never a silent gap.
type watcher struct {
	d       *Driver
	req     backends.WatchRequest
	key     string
	prefix  bool
	ctx     context.Context // the watch's lifetime
	cancel  context.CancelFunc
	stop    context.CancelFunc // ends the current etcd watch stream
	wch     clientv3.WatchChan
	rev     int64 // revision delivered so far
	reset   bool
	pending []model.Event
}

// Watch implements backends.Watches.
func (d *Driver) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	w := &watcher{d: d, req: req}
	switch {
	case req.Service != nil && req.Config == nil:
		w.key, w.prefix = d.serviceDir(*req.Service), true
	case req.Config != nil && req.Service == nil:
		w.key = d.configKey(*req.Config)
	default:
		return nil, model.Invalid("watch", "exactly one of service and config must be set")
	}
	w.ctx, w.cancel = context.WithCancel(ctx)
	if req.FromRevision <= 0 {
		w.reset = true
	} else {
		w.rev = req.FromRevision
		w.open()
	}
	return w, nil
}

func (w *watcher) open() {
	opts := []clientv3.OpOption{clientv3.WithRev(w.rev + 1), clientv3.WithPrevKV()}
	if w.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if w.stop != nil {
		w.stop()
	}
	var sctx context.Context
	sctx, w.stop = context.WithCancel(w.ctx)
	w.wch = w.d.cli.Watch(clientv3.WithRequireLeader(sctx), w.key, opts...)
}

// Next implements backends.Watcher.
func (w *watcher) Next(ctx context.Context) (model.Event, error) {
	for len(w.pending) == 0 {
		if w.reset {
			e, err := w.snapshot(ctx)
			if err != nil {
				return model.Event{}, err
			}
			w.reset = false
			return e, nil
		}
		var (
			resp clientv3.WatchResponse
			ok   bool
		)
		select {
		case resp, ok = <-w.wch:
		case <-ctx.Done():
			return model.Event{}, ctx.Err()
		}
		switch {
		case !ok && w.ctx.Err() != nil:
			return model.Event{}, fmt.Errorf("etcd: watch closed: %w", w.ctx.Err())
		case !ok:
			w.open() // the client gave up on this watch: resume from what was delivered
		case resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted):
			w.reset = true
		case resp.Err() != nil:
			w.reset = true // cannot prove continuity after an error: start over from a read
		default:
			for _, ev := range resp.Events {
				if e, ok := w.convert(ev); ok {
					w.pending = append(w.pending, e)
				}
			}
		}
	}
	e := w.pending[0]
	w.pending = w.pending[1:]
	w.rev = max(w.rev, e.Revision)
	return e, nil
}

func (w *watcher) convert(ev *clientv3.Event) (model.Event, bool) {
	rev := ev.Kv.ModRevision
	if w.prefix {
		svc := *w.req.Service
		if strings.Contains(strings.TrimPrefix(string(ev.Kv.Key), w.key), "/") {
			return model.Event{}, false // not an instance key
		}
		if ev.Type == mvccpb.PUT {
			i, ok := decodeInstance(ev.Kv)
			return model.Event{Type: model.EventPut, Revision: rev, Service: svc, Instance: &i}, ok
		}
		last := model.Instance{ID: string(ev.Kv.Key[len(w.key):])}
		if ev.PrevKv != nil {
			if i, ok := decodeInstance(ev.PrevKv); ok {
				last = i
			}
		}
		return model.Event{Type: model.EventDelete, Revision: rev, Service: svc, Instance: &last}, true
	}
	key := *w.req.Config
	if ev.Type == mvccpb.PUT {
		c := decodeConfig(key, ev.Kv)
		return model.Event{Type: model.EventPut, Revision: rev, ConfigKey: key, Config: &c}, true
	}
	last := model.Config{Key: key}
	if ev.PrevKv != nil {
		last = decodeConfig(key, ev.PrevKv)
	}
	return model.Event{Type: model.EventDelete, Revision: rev, ConfigKey: key, Config: &last}, true
}

// snapshot reads the current state and restarts the watch right after it.
func (w *watcher) snapshot(ctx context.Context) (model.Event, error) {
	var e model.Event
	if w.prefix {
		insts, rev, err := w.d.instances(ctx, *w.req.Service)
		if err != nil {
			return e, err
		}
		e = model.Event{Type: model.EventReset, Revision: rev, Service: *w.req.Service, Instances: insts}
	} else {
		c, info, err := w.d.GetConfig(ctx, *w.req.Config, backends.ReadOptions{})
		switch {
		case errors.Is(err, model.ErrNotFound):
		case err != nil:
			return e, err
		default:
			e.Config = &c
		}
		e.Type, e.Revision, e.ConfigKey = model.EventReset, info.Revision, *w.req.Config
	}
	w.rev = e.Revision
	w.open()
	return e, nil
}

// Close implements backends.Watcher.
func (w *watcher) Close() error {
	w.cancel()
	return nil
}

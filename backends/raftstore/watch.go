package raftstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/eventlog"
	"github.com/junctionhq/junction/model"
)

// watcher follows one key's events with a cursor into the key's log. It
// holds no buffer of its own beyond one batch (and, when it starts from a
// revision before the key's log, the events it catches up on from the
// store's history), so a slow watcher costs nothing to writers; when it
// falls behind the log it sends a RESET.
type watcher struct {
	s       *Store
	req     backends.WatchRequest
	key     watchKey
	log     *eventlog.Log // the key's (keyedLog)
	match   func(*model.Event) bool
	cur     eventlog.Cursor
	reset   bool
	pending []model.Event
	ctx     context.Context // ends when the watch is closed or its context ends
	cancel  context.CancelFunc
}

// watchKey is what a watch follows: a service or a config item.
type watchKey struct {
	svc model.ServiceKey
	cfg model.ConfigKey
}

func keyOf(e *model.Event) watchKey {
	if e.Instance != nil {
		return watchKey{svc: e.Service}
	}
	return watchKey{cfg: e.ConfigKey}
}

// keyedLog is one watched key's events, appended with the store's history
// from the moment its first watch started (its floor) while any watch
// follows the key; it goes away with the key's last watch.
type keyedLog struct {
	log  *eventlog.Log
	refs int
}

// trimEvery is how many entries apply between two trims of the keys' logs.
const trimEvery = 1024

// trimKeyed drops, every trimEvery entries, what the keys' logs hold that
// the store's history no longer does: together they hold at most the
// history's events and trimEvery entries' more, however many keys are
// watched and however quiet they are. A watch behind the history gets a
// RESET, as it did when it read the history itself. The caller holds mu.
func (f *fsm) trimKeyed() {
	if f.sinceTrim++; f.sinceTrim < trimEvery {
		return
	}
	f.sinceTrim = 0
	if floor := f.history.Floor(); floor > 0 {
		for _, k := range f.keyed {
			k.log.Trim(floor)
		}
	}
}

// resetHistory drops the history before rev, the keys' logs with it: every
// watcher gets a RESET. The caller holds mu.
func (f *fsm) resetHistory(rev int64) {
	f.history.Reset(rev)
	for _, k := range f.keyed {
		k.log.Reset(rev)
	}
}

// Watch implements backends.Watches.
func (s *Store) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	w := &watcher{s: s, req: req}
	switch {
	// Events at or before FromRevision are never delivered, even when the
	// watch starts past the end of this replica's history.
	case req.Service != nil && req.Config == nil:
		svc := *req.Service
		w.key = watchKey{svc: svc}
		w.match = func(e *model.Event) bool {
			return e.Instance != nil && e.Service == svc && e.Revision > req.FromRevision
		}
	case req.Config != nil && req.Service == nil:
		key := *req.Config
		w.key = watchKey{cfg: key}
		w.match = func(e *model.Event) bool {
			return e.Instance == nil && e.ConfigKey == key && e.Revision > req.FromRevision
		}
	default:
		return nil, model.Invalid("watch", "exactly one of service and config must be set")
	}
	w.ctx, w.cancel = context.WithCancel(ctx)
	f := s.fsm
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keyed[w.key]
	if k == nil {
		k = &keyedLog{log: eventlog.New(f.historySize, f.applied)}
		f.keyed[w.key] = k
	}
	k.refs++
	w.log = k.log
	context.AfterFunc(w.ctx, w.release) // on Close, or when ctx ends
	if req.FromRevision <= 0 {
		w.reset = true
		return w, nil
	}
	// Under mu nothing is appended: the key's log holds every event of
	// the key after its floor, the store's history the ones before.
	floor := w.log.Floor()
	if req.FromRevision < floor {
		cur, err := f.history.After(req.FromRevision)
		if errors.Is(err, eventlog.ErrCompacted) {
			w.reset = true
			return w, nil
		}
		upTo := func(e *model.Event) bool { return e.Revision <= floor && w.match(e) }
		for {
			evs, next, _, err := f.history.Read(cur, 256, upTo)
			if err != nil {
				w.reset, w.pending = true, nil
				return w, nil
			}
			w.pending = append(w.pending, evs...)
			if next == cur || len(evs) == 0 {
				break
			}
			cur = next
		}
		w.cur, _ = w.log.After(floor)
		return w, nil
	}
	cur, err := w.log.After(req.FromRevision)
	if errors.Is(err, eventlog.ErrCompacted) {
		w.reset = true
		return w, nil
	}
	w.cur = cur
	return w, err
}

// Next implements backends.Watcher.
func (w *watcher) Next(ctx context.Context) (model.Event, error) {
	for len(w.pending) == 0 {
		if w.reset {
			w.reset = false
			return w.snapshot(), nil
		}
		evs, err := w.next(ctx)
		switch {
		case errors.Is(err, eventlog.ErrCompacted):
			w.reset = true
		case w.ctx.Err() != nil:
			return model.Event{}, fmt.Errorf("raftstore: watch closed: %w", w.ctx.Err())
		case err != nil:
			return model.Event{}, err
		}
		w.pending = evs
	}
	e := w.pending[0]
	w.pending = w.pending[1:]
	return e, nil
}

// next waits for events until ctx ends or the watch is closed.
func (w *watcher) next(ctx context.Context) ([]model.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.ctx, cancel)()
	return w.log.Next(ctx, &w.cur, 256, w.match)
}

// snapshot builds a RESET with the current state and moves the cursor to the
// end of the history, atomically: appends happen under the same lock.
func (w *watcher) snapshot() model.Event {
	f := w.s.fsm
	f.mu.RLock()
	defer f.mu.RUnlock()
	e := model.Event{Type: model.EventReset, Revision: f.applied}
	if w.req.Service != nil {
		e.Service = *w.req.Service
		e.Instances = f.instances(*w.req.Service)
	} else {
		e.ConfigKey = *w.req.Config
		if c, ok := f.configs[*w.req.Config]; ok {
			e.Config = &c
		}
	}
	w.cur = w.log.End()
	return e
}

// Close implements backends.Watcher.
func (w *watcher) Close() error {
	w.cancel()
	return nil
}

// release lets go of the key's log: the last watch of a key drops it.
func (w *watcher) release() {
	f := w.s.fsm
	f.mu.Lock()
	defer f.mu.Unlock()
	if k := f.keyed[w.key]; k != nil {
		if k.refs--; k.refs == 0 {
			delete(f.keyed, w.key)
		}
	}
}

// Gauges implements backends.Gauges.
func (s *Store) Gauges() []backends.Gauge {
	return []backends.Gauge{{Name: "watched_keys", Help: "Keys the built-in store keeps a log of for its watches (one per watched service or config item).",
		Value: func() float64 {
			s.fsm.mu.RLock()
			defer s.fsm.mu.RUnlock()
			return float64(len(s.fsm.keyed))
		}}}
}

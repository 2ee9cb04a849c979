package raftstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/eventlog"
	"github.com/junctionhq/junction/model"
)

// watcher follows the store's event history with a cursor. It holds no
// buffer of its own beyond one batch, so a slow watcher costs nothing to
// writers; when it falls behind the history it sends a RESET.
type watcher struct {
	s       *Store
	req     backends.WatchRequest
	match   func(*model.Event) bool
	cur     eventlog.Cursor
	reset   bool
	pending []model.Event
	ctx     context.Context // ends when the watch is closed or its context ends
	cancel  context.CancelFunc
}

// Watch implements backends.Watches.
func (s *Store) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	w := &watcher{s: s, req: req}
	w.ctx, w.cancel = context.WithCancel(ctx)
	switch {
	// Events at or before FromRevision are never delivered, even when the
	// watch starts past the end of this replica's history.
	case req.Service != nil && req.Config == nil:
		svc := *req.Service
		w.match = func(e *model.Event) bool {
			return e.Instance != nil && e.Service == svc && e.Revision > req.FromRevision
		}
	case req.Config != nil && req.Service == nil:
		key := *req.Config
		w.match = func(e *model.Event) bool {
			return e.Instance == nil && e.ConfigKey == key && e.Revision > req.FromRevision
		}
	default:
		return nil, model.Invalid("watch", "exactly one of service and config must be set")
	}
	if req.FromRevision <= 0 {
		w.reset = true
		return w, nil
	}
	cur, err := s.fsm.history.After(req.FromRevision)
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
	return w.s.fsm.history.Next(ctx, &w.cur, 256, w.match)
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
	w.cur = f.history.End()
	return e
}

// Close implements backends.Watcher.
func (w *watcher) Close() error {
	w.cancel()
	return nil
}

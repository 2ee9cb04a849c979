package nacos

import (
	"context"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// watcher is a running watch: a queue the views push events onto.
type watcher struct {
	mu     sync.Mutex
	queue  []model.Event
	err    error
	notify chan struct{}
	stop   func()
}

func newWatcher() *watcher { return &watcher{notify: make(chan struct{}, 1)} }

func (w *watcher) push(e model.Event) {
	w.mu.Lock()
	if e.Type == model.EventReset {
		w.queue = w.queue[:0] // a RESET replaces everything before it
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *watcher) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Next returns the next event.
func (w *watcher) Next(ctx context.Context) (model.Event, error) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			e := w.queue[0]
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return e, nil
		}
		err := w.err
		w.mu.Unlock()
		if err != nil {
			return model.Event{}, err
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return model.Event{}, ctx.Err()
		}
	}
}

// join adds w to subs, which mu guards and the caller holds, and releases
// mu; the watch ends when ctx does.
func (w *watcher) join(ctx context.Context, mu *sync.Mutex, subs map[*watcher]struct{}) {
	w.stop = func() {
		mu.Lock()
		delete(subs, w)
		mu.Unlock()
	}
	subs[w] = struct{}{}
	mu.Unlock()
	context.AfterFunc(ctx, func() { w.Close() })
}

// Close ends the watch.
func (w *watcher) Close() error {
	w.stop()
	w.fail(errClosed)
	return nil
}

// replay pushes to w the events of log after from, when from is a
// revision this driver issued at or after floor (where log begins); it
// reports whether it could, and otherwise the watch begins with a RESET.
func (d *Driver) replay(w *watcher, log []model.Event, floor, from int64) bool {
	if from <= 0 || from < floor || from > d.clock.current() {
		return false
	}
	for _, e := range log {
		if e.Revision > from {
			w.push(e)
		}
	}
	return true
}

// Watch starts a watch. A watch from a revision this driver issued within
// its history window replays the changes after it; any other begins with
// a RESET of the current state.
func (d *Driver) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	if req.Config != nil {
		return d.watchConfig(ctx, req)
	}
	v, err := d.view(ctx, *req.Service)
	if err != nil {
		return nil, err
	}
	w := newWatcher()
	v.mu.Lock()
	if !d.replay(w, v.log, max(v.created, d.hist.oldest()), req.FromRevision) {
		w.push(model.Event{Type: model.EventReset, Revision: v.rev, Service: v.svc, Instances: v.list()})
	}
	w.join(ctx, &v.mu, v.subs)
	return w, nil
}

// watchConnections notices when the shared connection of a namespace
// comes back after it was down: pushes may have been missed meanwhile, so
// every view of the namespace subscribes again and delivers what the
// server lists as a RESET.
func (d *Driver) watchConnections() {
	down := map[string]bool{}
	for {
		select {
		case <-d.stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
		d.mu.Lock()
		var views []*view
		for _, v := range d.views {
			views = append(views, v)
		}
		clients := make(map[string]bool, len(d.naming))
		for ns, c := range d.naming {
			clients[ns] = c.ServerHealthy()
		}
		d.mu.Unlock()
		for ns, healthy := range clients {
			if !healthy {
				down[ns] = true
				continue
			}
			if down[ns] {
				delete(down, ns)
				for _, v := range views {
					if d.nacosNamespace(v.svc.Namespace) == ns {
						v.resubscribe()
					}
				}
			}
		}
	}
}

// resubscribe subscribes the view again and delivers the server's answer
// as a RESET.
func (v *view) resubscribe() {
	v.resub.Lock()
	defer v.resub.Unlock()
	v.mu.Lock()
	v.reset = true
	p, c := v.param, v.client
	v.mu.Unlock()
	if p == nil || c == nil { // not subscribed, or dropped
		return
	}
	_ = c.Unsubscribe(p)
	if err := c.Subscribe(p); err != nil {
		// The SDK keeps the subscription for its own redo on reconnect.
		v.d.log.Info("subscribing again after the connection came back failed; the SDK retries", "service", v.svc, "err", brief(err))
	}
}

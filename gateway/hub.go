package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/eventlog"
	"github.com/junctionhq/junction/model"
)

// hub fans watches out: one backend watch per watched service or config,
// shared by any number of subscribers. A topic keeps a bounded log of recent
// events, and the current state once the backend has sent one; a subscriber
// is a cursor into that log, so a slow subscriber never stalls the others
// nor grows memory.
//
// A topic's backend watch starts from its first subscriber's revision, so
// that subscriber gets the exact events. A subscriber that falls behind the
// log, or asks for a revision before it, gets a RESET: built from the
// topic's state when it has one, otherwise fetched from the backend, with
// the events it already covers dropped.
type hub struct {
	b       backends.Backend
	history int
	log     *slog.Logger
	m       *metrics

	// sleep waits between attempts to re-open a failed watch (sleepCtx;
	// tests record the waits instead).
	sleep func(context.Context, time.Duration) bool

	mu     sync.Mutex
	topics map[topicKey]*topic
}

type topicKey struct {
	svc model.ServiceKey
	cfg model.ConfigKey
}

func (k topicKey) request(from int64) backends.WatchRequest {
	if k.svc.Service != "" {
		return backends.WatchRequest{Service: &k.svc, FromRevision: from}
	}
	return backends.WatchRequest{Config: &k.cfg, FromRevision: from}
}

type topic struct {
	key     topicKey
	history int
	refs    int
	cancel  context.CancelFunc
	ready   chan struct{} // closed once the log exists
	started chan struct{} // closed once the backend watch is established
	once    sync.Once

	mu       sync.RWMutex // guards what follows; log appends happen under it
	log      *eventlog.Log
	hasState bool
	view     model.View // the watched service's instances or config item
	rev      int64      // the backend watch's position
}

func newHub(b backends.Backend, history int, log *slog.Logger, m *metrics) *hub {
	return &hub{b: b, history: history, log: log, m: m, sleep: sleepCtx, topics: map[topicKey]*topic{}}
}

// subscribe returns a watcher of key from revision from (0: from now, with
// an initial RESET).
func (h *hub) subscribe(key topicKey, from int64) *subscriber {
	h.mu.Lock()
	t := h.topics[key]
	if t == nil {
		ctx, cancel := context.WithCancel(context.Background())
		t = &topic{key: key, history: h.history, cancel: cancel, ready: make(chan struct{}), started: make(chan struct{}),
			rev: max(from, 0)}
		if from > 0 {
			t.log = eventlog.New(h.history, from)
			close(t.ready)
		}
		h.topics[key] = t
		h.m.topics.Inc()
		go h.run(ctx, t)
	}
	t.refs++
	h.mu.Unlock()
	h.m.subscribers.Inc()
	return &subscriber{h: h, t: t, from: from}
}

func (h *hub) release(t *topic) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m.subscribers.Dec()
	if t.refs--; t.refs == 0 {
		t.cancel()
		delete(h.topics, t.key)
		h.m.topics.Dec()
	}
}

// run keeps the topic's backend watch going, re-opening it after failures
// from the last revision seen.
func (h *hub) run(ctx context.Context, t *topic) {
	retry := backoff{start: 100 * time.Millisecond, max: 5 * time.Second}
	for ctx.Err() == nil {
		t.mu.RLock()
		req := t.key.request(t.rev)
		t.mu.RUnlock()
		opened := time.Now()
		w, err := h.b.Watch(ctx, req)
		if err == nil {
			t.once.Do(func() { close(t.started) })
			var events int
			events, err = h.follow(ctx, t, w)
			w.Close()
			// A watch that delivered changes, or held for as long as the
			// longest wait, worked: the next outage starts over.
			if events > 0 || time.Since(opened) >= retry.max {
				retry.reset()
			}
		}
		if ctx.Err() != nil {
			return
		}
		wait := retry.next()
		h.log.Warn("backend watch failed; retrying", "topic", t.key, "err", err, "backoff", wait)
		if !h.sleep(ctx, wait) {
			return
		}
	}
}

// backoff is the wait between attempts to re-open a store watch: it starts
// at start, doubles after each failed attempt up to max, and returns to start
// after a reset.
type backoff struct {
	start, max time.Duration
	cur        time.Duration
}

func (b *backoff) next() time.Duration {
	b.cur = min(max(2*b.cur, b.start), b.max)
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits d, or less if ctx ends first; it reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// follow applies the watch's events to the topic until the watch fails; it
// returns how many changes (events other than RESETs, which some stores
// send on every re-opened watch) it applied.
func (h *hub) follow(ctx context.Context, t *topic, w backends.Watcher) (int, error) {
	n := 0
	for {
		e, err := w.Next(ctx)
		if err != nil {
			return n, err
		}
		t.apply(e)
		if e.Type == model.EventReset {
			h.m.resets.Inc()
		} else {
			n++
		}
	}
}

// apply updates the state and the log together.
func (t *topic) apply(e model.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rev = max(t.rev, e.Revision)
	t.view.Apply(e)
	if e.Type == model.EventReset {
		t.hasState = true
		if t.log == nil {
			t.log = eventlog.New(t.history, e.Revision)
			close(t.ready)
		}
		// Subscribers cannot know what changed: every cursor is compacted
		// and each subscriber sends its own RESET.
		t.log.Reset(e.Revision)
		return
	}
	t.log.Append(e)
}

// subscriber is one watch served from a topic.
type subscriber struct {
	h      *hub
	t      *topic
	from   int64
	cur    eventlog.Cursor
	minRev int64 // events at or below it are covered by a RESET already sent
	start  bool
	reset  bool
	batch  []model.Event // polled, not yet returned by Next
	once   sync.Once
}

var _ backends.Watcher = (*subscriber)(nil)

// Established waits until the topic's backend watch is in place: from then
// on every change reaches the subscriber as an event or a RESET.
func (s *subscriber) Established(ctx context.Context) error {
	select {
	case <-s.t.started:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Next implements backends.Watcher.
func (s *subscriber) Next(ctx context.Context) (model.Event, error) {
	for len(s.batch) == 0 {
		evs, wake, err := s.poll(ctx)
		if err != nil {
			return model.Event{}, err
		}
		if len(evs) == 0 {
			select {
			case <-wake:
			case <-ctx.Done():
				return model.Event{}, ctx.Err()
			}
		}
		s.batch = evs
	}
	e := s.batch[0]
	s.batch = s.batch[1:]
	return e, nil
}

// poll returns the events the subscriber has now, without waiting for
// more: when there are none, a channel closed once there may be. Only a
// RESET the backend must build (the topic has no state) waits, for the
// backend. A watch that parks on the channel parks shallow: its goroutine
// keeps a small stack (serveWatch).
func (s *subscriber) poll(ctx context.Context) ([]model.Event, <-chan struct{}, error) {
	if !s.start {
		select {
		case <-s.t.ready:
		default:
			return nil, s.t.ready, nil
		}
		s.start = true
		s.t.mu.RLock()
		cur, err := s.t.log.After(s.from)
		s.t.mu.RUnlock()
		s.cur, s.reset = cur, s.from <= 0 || errors.Is(err, eventlog.ErrCompacted)
		// The topic may lag behind the store, where the client learned its
		// revision: events up to it may still be on their way into the log.
		s.minRev = max(s.from, 0)
	}
	for {
		if s.reset {
			e, err := s.snapshot(ctx)
			if err != nil {
				return nil, nil, err
			}
			s.reset = false
			return []model.Event{e}, nil, nil
		}
		evs, cur, wake, err := s.t.log.Read(s.cur, 128, s.uncovered)
		if errors.Is(err, eventlog.ErrCompacted) {
			s.reset = true
			continue
		}
		s.cur = cur
		if len(evs) == 0 {
			return nil, wake, nil
		}
		return evs, nil, nil
	}
}

// uncovered reports whether e is news to the subscriber: not covered by a
// RESET it was sent.
func (s *subscriber) uncovered(e *model.Event) bool { return e.Revision > s.minRev }

// snapshot builds a RESET from the topic's state, or fetches one from the
// backend when the topic has none (it started from a revision).
func (s *subscriber) snapshot(ctx context.Context) (model.Event, error) {
	t := s.t
	s.h.m.subscriberResets.Inc()
	t.mu.RLock()
	s.cur = t.log.End()
	if t.hasState {
		defer t.mu.RUnlock()
		s.minRev = t.rev
		e := model.Event{Type: model.EventReset, Revision: t.rev}
		if t.key.svc.Service != "" {
			e.Service = t.key.svc
			e.Instances = slices.SortedFunc(maps.Values(t.view.Instances), func(a, b model.Instance) int {
				return cmp.Compare(a.ID, b.ID)
			})
			if e.Instances == nil {
				e.Instances = []model.Instance{}
			}
			return e, nil
		}
		e.ConfigKey, e.Config = t.key.cfg, t.view.Config
		return e, nil
	}
	t.mu.RUnlock()
	// The cursor was taken first: events appended while the snapshot is
	// fetched are delivered unless the snapshot already covers them.
	w, err := s.h.b.Watch(ctx, t.key.request(0))
	if err != nil {
		return model.Event{}, err
	}
	defer w.Close()
	e, err := w.Next(ctx)
	if err != nil {
		return model.Event{}, err
	}
	s.minRev = e.Revision
	return e, nil
}

// Close implements backends.Watcher.
func (s *subscriber) Close() error {
	s.once.Do(func() { s.h.release(s.t) })
	return nil
}

func (k topicKey) String() string {
	if k.svc.Service != "" {
		return fmt.Sprintf("service %s", k.svc)
	}
	return fmt.Sprintf("config %s", k.cfg)
}

// WatchEstablishedHeader is sent as response metadata once a watch stream's
// backend watch is in place; a client that waits for the stream's headers
// knows that every later change reaches it.
const WatchEstablishedHeader = "junction-watch-established"

// established waits for the backend watch, then calls ready (which, for a
// watch on its own stream, sends the stream's headers: headerReady).
func established(ctx context.Context, w *subscriber, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Established(ctx); err != nil {
		return fmt.Errorf("watch not established: %w: %v", model.ErrUnavailable, err)
	}
	return ready()
}

// headerReady says a watch served on its own stream is established: with
// the stream's headers.
func headerReady(stream grpc.ServerStream) func() error {
	return func() error { return stream.SendHeader(metadata.Pairs(WatchEstablishedHeader, "true")) }
}

// serveWatch sends a topic's events until ctx ends or send fails. It
// waits for events in its own frame, so that a goroutine it is the top of
// (a watch of a multiplexed stream) parks with a small stack.
func serveWatch(ctx context.Context, h *hub, key topicKey, from int64, ready func() error, send func(*model.Event) error) error {
	if from < 0 {
		return model.Invalid("revision", "must not be negative")
	}
	w := h.subscribe(key, from)
	defer w.Close()
	if err := established(ctx, w, ready); err != nil {
		return err
	}
	for {
		evs, wake, err := w.poll(ctx)
		if err != nil {
			return err
		}
		for i := range evs {
			if err := send(&evs[i]); err != nil {
				return err
			}
		}
		if wake != nil {
			select {
			case <-wake:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/eventlog"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/model"
)

// A subscriber that stops reading neither stalls writers nor other
// subscribers; when it reads again it gets a RESET with the full state.
func TestHubSlowSubscriber(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := openStore(ctx, t)
	h := newHub(store, 8, slog.Default(), newMetrics(BuildInfo{}))
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "hub"}
	first := model.Instance{IP: "10.0.0.1", Port: 1, Weight: 1, Healthy: true, Enabled: true}
	_ = first.Normalize()
	rev0, err := store.Register(ctx, svc, first)
	if err != nil {
		t.Fatal(err)
	}
	slow := h.subscribe(topicKey{svc: svc}, rev0)
	defer slow.Close()
	fast := h.subscribe(topicKey{svc: svc}, rev0)
	defer fast.Close()

	const n = 50
	view := model.View{Instances: map[string]model.Instance{first.ID: first}}
	done := make(chan error, 1)
	go func() {
		for len(view.Instances) < n+1 {
			e, err := fast.Next(ctx)
			if err != nil {
				done <- err
				return
			}
			view.Apply(e)
		}
		done <- nil
	}()
	for p := 2; p <= n+1; p++ {
		i := first
		i.Port, i.ID = p, ""
		_ = i.Normalize()
		if _, err := store.Register(ctx, svc, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("fast subscriber: %v", err)
	}
	e, err := slow.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != model.EventReset || len(e.Instances) != n+1 {
		t.Fatalf("slow subscriber got %v with %d instances, want RESET with %d", e.Type, len(e.Instances), n+1)
	}
	h.mu.Lock()
	topics := len(h.topics)
	h.mu.Unlock()
	if topics != 1 {
		t.Fatalf("%d backend watches for one service, want 1", topics)
	}
}

// The first subscriber of a topic, watching from the revision it listed,
// gets the exact events after it — not a RESET.
func TestHubFirstSubscriberGetsEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := openStore(ctx, t)
	h := newHub(store, 64, slog.Default(), newMetrics(BuildInfo{}))
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "exact"}
	other := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "other"}
	inst := func(port int) model.Instance {
		i := model.Instance{IP: "10.0.0.1", Port: port, Weight: 1, Healthy: true, Enabled: true}
		_ = i.Normalize()
		return i
	}
	if _, err := store.Register(ctx, svc, inst(1)); err != nil {
		t.Fatal(err)
	}
	_, info, err := store.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Writes elsewhere move the store's revision on.
	for p := range 5 {
		if _, err := store.Register(ctx, other, inst(p+1)); err != nil {
			t.Fatal(err)
		}
	}
	rev2, err := store.Register(ctx, svc, inst(2))
	if err != nil {
		t.Fatal(err)
	}
	sub := h.subscribe(topicKey{svc: svc}, info.Revision)
	defer sub.Close()
	e, err := sub.Next(ctx)
	if err != nil || e.Type != model.EventPut || e.Revision != rev2 {
		t.Fatalf("first event %v at %d (%v), want the PUT at %d", e.Type, e.Revision, err, rev2)
	}
}

// A subscriber that joins a topic which has not yet caught up with the
// revision the subscriber asks for never receives the events up to it.
func TestHubSubscriberAheadOfTopic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := openStore(ctx, t)
	h := newHub(store, 64, slog.Default(), newMetrics(BuildInfo{}))
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "ahead"}
	// A topic whose log stands still at revision 0: no backend events reach it.
	key := topicKey{svc: svc}
	tp := &topic{key: key, history: 64, cancel: func() {}, ready: make(chan struct{}), started: make(chan struct{}),
		log: eventlog.New(64, 0), hasState: true}
	close(tp.ready)
	close(tp.started)
	h.topics[key] = tp
	sub := h.subscribe(key, 10)
	defer sub.Close()
	type got struct {
		e   model.Event
		err error
	}
	first := make(chan got, 1)
	go func() { e, err := sub.Next(ctx); first <- got{e, err} }() // takes its cursor, then waits
	time.Sleep(100 * time.Millisecond)
	// Now the lagging topic catches up: events at or below 10 must not reach
	// the subscriber, the one after must.
	i := model.Instance{ID: "a", IP: "10.0.0.1", Port: 1}
	tp.apply(model.Event{Type: model.EventPut, Revision: 9, Service: svc, Instance: &i})
	tp.apply(model.Event{Type: model.EventPut, Revision: 10, Service: svc, Instance: &i})
	tp.apply(model.Event{Type: model.EventPut, Revision: 11, Service: svc, Instance: &i})
	if g := <-first; g.err != nil || g.e.Revision != 11 {
		t.Fatalf("first event at %d (%v), want 11", g.e.Revision, g.err)
	}
}

// flakyWatches fails the store's watches on a schedule: attempt i (from 0)
// fails to open when fail[i] is true, and otherwise opens a watch that fails
// after a RESET and a change, except for the last attempt, which holds. A
// watch that fails after a RESET alone does not count as working (some
// stores send one on every re-opened watch).
type flakyWatches struct {
	backends.Backend
	fail []bool

	mu    sync.Mutex
	calls int
}

func (f *flakyWatches) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	f.mu.Lock()
	i := f.calls
	f.calls++
	f.mu.Unlock()
	if i < len(f.fail) && f.fail[i] {
		return nil, fmt.Errorf("attempt %d: %w", i, model.ErrUnavailable)
	}
	w, err := f.Backend.Watch(ctx, req)
	if err != nil || i >= len(f.fail) {
		return w, err
	}
	return &oneEvent{Watcher: w}, nil
}

// oneEvent delivers its watch's first event (a RESET) and a change, then
// fails.
type oneEvent struct {
	backends.Watcher
	n int
}

func (w *oneEvent) Next(ctx context.Context) (model.Event, error) {
	switch w.n++; w.n {
	case 1:
		return w.Watcher.Next(ctx)
	case 2:
		i := model.Instance{ID: "a", IP: "10.0.0.1", Port: 1}
		return model.Event{Type: model.EventPut, Revision: 1 << 40, Instance: &i}, nil
	}
	return model.Event{}, fmt.Errorf("connection lost: %w", model.ErrUnavailable)
}

// The wait before re-opening a failed store watch grows with each failure
// and starts over once a watch has worked: an outage after a few early
// failures is retried at once, not after the longest wait.
func TestHubRetryBackoffResets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := openStore(ctx, t)
	// Three failed opens, a watch that works and then breaks, three more
	// failed opens, and a watch that holds.
	flaky := &flakyWatches{Backend: store, fail: []bool{true, true, true, false, true, true, true}}
	h := newHub(flaky, 8, slog.New(slog.DiscardHandler), newMetrics(BuildInfo{}))
	waits := make(chan time.Duration, 16)
	h.sleep = func(ctx context.Context, d time.Duration) bool {
		waits <- d
		return ctx.Err() == nil
	}
	sub := h.subscribe(topicKey{svc: model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "retry"}}, 0)
	defer sub.Close()
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms}
	var got []time.Duration
	for range want {
		select {
		case d := <-waits:
			got = append(got, d)
		case <-ctx.Done():
			t.Fatalf("waits %v, then none; want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("waits between attempts %v, want %v", got, want)
	}
	// The last watch holds: no further attempt.
	select {
	case d := <-waits:
		t.Fatalf("a watch that holds was retried after %v", d)
	case <-time.After(300 * ms):
	}
}

// openStore opens a built-in store for a test; it closes when the test ends.
func openStore(ctx context.Context, t *testing.T) *raftstore.Store {
	t.Helper()
	store, err := raftstore.Open(ctx, raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

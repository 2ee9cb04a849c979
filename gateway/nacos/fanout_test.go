package nacos_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
)

// Nacos clients' subscriptions go through the gateway's hub: any number
// of them to one service share one store watch with the gateway's own
// watchers, and the watches go when the connections do.
func TestNacosSubscriptionsShareStoreWatches(t *testing.T) {
	store := &countWatches{Backend: stores["raft"](t)}
	e := startOn(t, store)
	gauge := func(name string) float64 { t.Helper(); return servertest.Gauge(t, e.rest, name) }
	waitGauge := func(name string, want float64) { t.Helper(); servertest.WaitGauge(t, e.rest, name, want) }
	topics, subs, watches := gauge("junction_watch_topics"), gauge("junction_watch_subscribers"), store.open.Load()
	var conns []*raw
	for i := range 30 {
		r := dialRaw(t, e, true)
		service := "shared"
		if i >= 20 {
			service = fmt.Sprintf("own-%d", i)
		}
		if typ, m := r.call("SubscribeServiceRequest", `{"serviceName":"`+service+`","subscribe":true}`); typ != "SubscribeServiceResponse" || code(m) != 0 {
			t.Fatalf("subscribe: %s %v", typ, m)
		}
		conns = append(conns, r)
	}
	waitGauge("junction_watch_topics", topics+11) // shared, and own-20..29
	waitGauge("junction_watch_subscribers", subs+30)
	if n := store.open.Load() - watches; n != 11 {
		t.Errorf("%d store watches for 30 subscriptions to 11 services, want 11", n)
	}
	// And each subscriber hears of a change.
	e.restCall(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/shared/instances", `{"ip":"10.0.0.7","port":7}`)
	for _, r := range conns[:20] {
		if !r.pushed(t, "NotifySubscriberRequest", "10.0.0.7") {
			t.Fatal("a subscriber of shared was not pushed the new instance")
		}
	}
	for _, r := range conns {
		r.cc.Close()
	}
	waitGauge("junction_watch_topics", topics)
	waitGauge("junction_watch_subscribers", subs)
	deadline := time.Now().Add(10 * time.Second)
	for store.open.Load() != watches && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := store.open.Load(); n != watches {
		t.Errorf("%d store watches open after the connections closed, want %d", n, watches)
	}
}

// countWatches counts the store watches open.
type countWatches struct {
	backends.Backend
	open atomic.Int64
}

func (c *countWatches) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	w, err := c.Backend.Watch(ctx, req)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	return &countedWatch{Watcher: w, c: c}, nil
}

type countedWatch struct {
	backends.Watcher
	c    *countWatches
	once sync.Once
}

func (w *countedWatch) Close() error {
	w.once.Do(func() { w.c.open.Add(-1) })
	return w.Watcher.Close()
}

// pushed reports whether the connection is pushed a request of type typ
// whose body holds text, within 10 seconds.
func (r *raw) pushed(t *testing.T, typ, text string) bool {
	t.Helper()
	got := make(chan bool, 1)
	go func() {
		for {
			p, err := r.stream.Recv()
			if err != nil {
				got <- false
				return
			}
			if p.GetMetadata().GetType() == typ && strings.Contains(string(p.GetBody().GetValue()), text) {
				got <- true
				return
			}
		}
	}()
	select {
	case ok := <-got:
		return ok
	case <-time.After(10 * time.Second):
		return false
	}
}

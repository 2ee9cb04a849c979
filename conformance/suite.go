package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Run runs every contract test against the harness's backend.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		rule string
		fn   func(*testing.T, Harness)
	}{
		{"Revisions", "1: writes return growing revisions and reads reflect them", testRevisions},
		{"ListThenWatch", "2: a watch from a listed revision misses nothing, even with concurrent writers", testListThenWatch},
		{"WatchOrderedUnique", "3: watch events are ordered by revision and unique", testWatchOrdered},
		{"WatchResetAfterHistory", "3: a watch from before the retained history starts with a RESET of the full state", testWatchReset},
		{"DeleteEvents", "4: deletes are events carrying the last value; an empty set is delivered", testDeleteEvents},
		{"SessionExpiry", "5: an ephemeral instance is gone within its granted TTL+1s after heartbeats stop", testSessionExpiry},
		{"InstancePatch", "5, 10: a patch from another driver lands, keeps the owner's changes and session; expiry still removes the instance", testPatch},
		{"SessionKeepAlive", "5: a kept-alive session outlives its TTL; closing it removes its instances", testSessionKeepAlive},
		{"ConfigCAS", "6: compare-and-set on create, update and delete", testConfigCAS},
		{"ConfigWatch", "4, 6: config updates and deletes reach a watcher", testConfigWatch},
		{"Consistency", "7: reads are linearizable by default and say what they got", testConsistency},
		{"PortableErrors", "8: errors are the portable ones, testable with errors.Is", testErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Logf("contract line %s", tc.rule)
			tc.fn(t, h)
		})
	}
}

// capabilities returns what the backend declares.
func capabilities(t *testing.T, b backends.Backend) backends.Capabilities {
	t.Helper()
	st, err := b.Status(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st.Capabilities
}

func namespace() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "conf-" + hex.EncodeToString(b)
}

func service(name string) model.ServiceKey {
	return model.ServiceKey{Namespace: namespace(), Group: model.DefaultGroup, Service: name}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func inst(port int) model.Instance {
	i := model.Instance{IP: "10.0.0.1", Port: port, Weight: 1, Healthy: true, Enabled: true,
		Metadata: map[string]string{"zone": "a"}}
	if err := i.Normalize(); err != nil {
		panic(err)
	}
	return i
}

func mustRegister(t *testing.T, b backends.Backend, svc model.ServiceKey, i model.Instance) int64 {
	t.Helper()
	rev, err := b.Register(ctxT(t, 10*time.Second), svc, i)
	if err != nil {
		t.Fatalf("register %s %s: %v", svc, i.ID, err)
	}
	return rev
}

func watch(t *testing.T, b backends.Backend, req backends.WatchRequest) backends.Watcher {
	t.Helper()
	w, err := b.Watch(context.Background(), req)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func next(t *testing.T, w backends.Watcher, d time.Duration) model.Event {
	t.Helper()
	e, err := w.Next(ctxT(t, d))
	if err != nil {
		t.Fatalf("no watch event within %v: %v", d, err)
	}
	return e
}

// view is a subscriber's local copy of a service, kept by applying events.
type view map[string]model.Instance

func (v view) apply(e model.Event) {
	switch e.Type {
	case model.EventReset:
		clear(v)
		for _, i := range e.Instances {
			v[i.ID] = i
		}
	case model.EventPut:
		v[e.Instance.ID] = *e.Instance
	case model.EventDelete:
		delete(v, e.Instance.ID)
	}
}

func testRevisions(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("rev")
	var last int64
	for port := 1; port <= 5; port++ {
		rev := mustRegister(t, b, svc, inst(port))
		if rev <= last {
			t.Fatalf("write %d returned revision %d, not above the previous %d", port, rev, last)
		}
		last = rev
	}
	_, info, err := b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision < last {
		t.Fatalf("read reflects revision %d, before the last acknowledged write %d", info.Revision, last)
	}
	cfg, err := b.PutConfig(ctxT(t, 5*time.Second), model.Config{Key: model.ConfigKey{Namespace: svc.Namespace, Group: "g", DataID: "d"}, Content: []byte("x")}, model.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Revision <= last {
		t.Fatalf("config write revision %d is not above %d", cfg.Revision, last)
	}
}

func testListThenWatch(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("ltw")
	const writers, perWriter = 4, 15
	for i := range writers {
		mustRegister(t, b, svc, inst(100+i))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for wr := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for n := range perWriter {
				i := inst(100 + wr)
				i.Metadata = map[string]string{"n": fmt.Sprint(n)}
				if _, err := b.Register(context.Background(), svc, i); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	close(start)
	time.Sleep(5 * time.Millisecond) // list while the writers are busy
	list, info, err := b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := watch(t, b, backends.WatchRequest{Service: &svc, FromRevision: info.Revision})
	v := view{}
	for _, i := range list {
		v[i.ID] = i
	}
	wg.Wait()
	final, finfo, err := b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rev := info.Revision
	for rev < finfo.Revision {
		e := next(t, w, 5*time.Second)
		v.apply(e)
		rev = e.Revision
	}
	for _, want := range final {
		if got, ok := v[want.ID]; !ok || got.Metadata["n"] != want.Metadata["n"] {
			t.Fatalf("subscriber view of %s is %v, store has %v: an event was missed", want.ID, got.Metadata, want.Metadata)
		}
	}
	if len(v) != len(final) {
		t.Fatalf("subscriber sees %d instances, store has %d", len(v), len(final))
	}
}

func testWatchOrdered(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("order")
	first := mustRegister(t, b, svc, inst(1))
	w := watch(t, b, backends.WatchRequest{Service: &svc, FromRevision: first})
	var revs []int64
	for port := 2; port <= 11; port++ {
		revs = append(revs, mustRegister(t, b, svc, inst(port)))
	}
	seen := map[string]bool{}
	last := first
	for range revs {
		e := next(t, w, 5*time.Second)
		if e.Type == model.EventReset {
			t.Logf("backend sent a RESET at %d instead of events (allowed, measured)", e.Revision)
			return
		}
		if e.Revision <= last {
			t.Fatalf("event at revision %d after %d: out of order or duplicated", e.Revision, last)
		}
		k := fmt.Sprint(e.Revision, e.Instance.ID)
		if seen[k] {
			t.Fatalf("event %s delivered twice", k)
		}
		seen[k] = true
		last = e.Revision
	}
	if last != revs[len(revs)-1] {
		t.Fatalf("last event at %d, last write at %d", last, revs[len(revs)-1])
	}
}

func testWatchReset(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("reset")
	old := mustRegister(t, b, svc, inst(1))
	mustRegister(t, b, svc, inst(2))
	if c, ok := h.(Compactor); ok {
		c.Compact(ctxT(t, 10*time.Second), t, mustRegister(t, b, svc, inst(3)))
	} else {
		other := service("filler")
		for n := range h.HistoryWindow() + 10 {
			i := inst(1)
			i.Metadata = map[string]string{"n": fmt.Sprint(n)}
			mustRegister(t, b, other, i)
		}
		mustRegister(t, b, svc, inst(3))
	}
	w := watch(t, b, backends.WatchRequest{Service: &svc, FromRevision: old})
	e := next(t, w, 5*time.Second)
	if e.Type != model.EventReset {
		t.Fatalf("watch from compacted revision %d began with %v at %d, want RESET", old, e.Type, e.Revision)
	}
	if len(e.Instances) != 3 || e.Revision <= old {
		t.Fatalf("RESET carries %d instances at %d, want the full state of 3", len(e.Instances), e.Revision)
	}
	mustRegister(t, b, svc, inst(4))
	if e := next(t, w, 5*time.Second); e.Type != model.EventPut || e.Instance.Port != 4 {
		t.Fatalf("after the RESET: %v %+v, want PUT of port 4", e.Type, e.Instance)
	}
}

func testDeleteEvents(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("del")
	w := watch(t, b, backends.WatchRequest{Service: &svc})
	if e := next(t, w, 5*time.Second); e.Type != model.EventReset || len(e.Instances) != 0 {
		t.Fatalf("watch of an empty service began with %v (%d instances), want a RESET of the empty set", e.Type, len(e.Instances))
	}
	i := inst(1)
	i.Metadata = map[string]string{"version": "v7"}
	mustRegister(t, b, svc, i)
	if e := next(t, w, 5*time.Second); e.Type != model.EventPut {
		t.Fatalf("got %v, want PUT", e.Type)
	}
	rev, err := b.Deregister(ctxT(t, 5*time.Second), svc, i.ID)
	if err != nil {
		t.Fatal(err)
	}
	e := next(t, w, 5*time.Second)
	if e.Type != model.EventDelete || e.Revision != rev || e.Instance == nil || e.Instance.Metadata["version"] != "v7" {
		t.Fatalf("delete event %v at %d carries %+v; want DELETE at %d with the last value", e.Type, e.Revision, e.Instance, rev)
	}
	list, _, err := b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{})
	if err != nil || len(list) != 0 {
		t.Fatalf("after the last instance left: %v, %v; want an empty list", list, err)
	}
}

func testSessionExpiry(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("expiry")
	const asked = time.Second
	sess, _, err := b.CreateSession(ctxT(t, 5*time.Second), asked)
	if err != nil {
		t.Fatal(err)
	}
	ttl := sess.TTL // what the store granted: never less than asked
	if ttl < asked {
		t.Fatalf("asked for a %v session, granted %v", asked, ttl)
	}
	i := inst(1)
	i.Ephemeral, i.Session = true, sess.ID
	rev := mustRegister(t, b, svc, i)
	w := watch(t, b, backends.WatchRequest{Service: &svc, FromRevision: rev})
	lastBeat := time.Now()
	if _, err := b.KeepAlive(ctxT(t, 5*time.Second), sess.ID); err != nil {
		t.Fatal(err)
	}
	e := next(t, w, ttl+3*time.Second)
	gone := time.Since(lastBeat)
	if e.Type != model.EventDelete || e.Instance.ID != i.ID {
		t.Fatalf("got %v %+v, want the instance's DELETE", e.Type, e.Instance)
	}
	t.Logf("measured: instance gone %v after the last heartbeat (TTL asked %v, granted %v)", gone.Round(time.Millisecond), asked, ttl)
	if gone > ttl+time.Second {
		t.Fatalf("instance disappeared %v after the last heartbeat; the bound is TTL+1s = %v", gone, ttl+time.Second)
	}
	if _, err := b.KeepAlive(ctxT(t, 5*time.Second), sess.ID); !errors.Is(err, model.ErrSessionExpired) {
		t.Fatalf("keepalive of an expired session: %v, want ErrSessionExpired", err)
	}
}

func testSessionKeepAlive(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("keep")
	sess, _, err := b.CreateSession(ctxT(t, 5*time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	i := inst(1)
	i.Ephemeral, i.Session = true, sess.ID
	mustRegister(t, b, svc, i)
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := b.KeepAlive(ctxT(t, 5*time.Second), sess.ID); err != nil {
			t.Fatalf("keepalive: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	list, _, err := b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{})
	if err != nil || len(list) != 1 {
		t.Fatalf("kept-alive instance after 2.5×TTL: %v %v", list, err)
	}
	if _, err := b.CloseSession(ctxT(t, 5*time.Second), sess.ID); err != nil {
		t.Fatal(err)
	}
	list, _, err = b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{})
	if err != nil || len(list) != 0 {
		t.Fatalf("instances after closing their session: %v %v", list, err)
	}
}

func testConfigCAS(t *testing.T, h Harness) {
	b := h.Backend(t)
	ctx := ctxT(t, 20*time.Second)
	key := model.ConfigKey{Namespace: namespace(), Group: "g", DataID: "app.yaml"}
	put := func(content string, cond model.Precondition) (model.Config, error) {
		return b.PutConfig(ctx, model.Config{Key: key, Content: []byte(content), ContentType: model.ContentYAML}, cond)
	}
	c1, err := put("a: 1", model.IfRevision(0))
	if err != nil {
		t.Fatalf("create-only on an absent key: %v", err)
	}
	// A store without revisions of its own (Nacos) cannot count versions
	// and declares it; the driver then reports version 0, "unknown".
	native := capabilities(t, b).NativeRevisions
	if (c1.Version != 1 && native) || (c1.Version != 0 && !native) || c1.MD5 != model.ContentMD5([]byte("a: 1")) {
		t.Fatalf("created config: version %d md5 %s (native revisions: %v)", c1.Version, c1.MD5, native)
	}
	if _, err := put("a: 2", model.IfRevision(0)); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("create-only on an existing key: %v, want ErrConflict", err)
	}
	c2, err := put("a: 2", model.IfRevision(c1.Revision))
	if err != nil || (native && c2.Version != 2) || c2.Revision <= c1.Revision {
		t.Fatalf("update at the current revision: %+v %v", c2, err)
	}
	if _, err := put("a: 3", model.IfRevision(c1.Revision)); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("update at a stale revision: %v, want ErrConflict", err)
	}
	if _, err := b.DeleteConfig(ctx, key, model.IfRevision(c1.Revision)); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("delete at a stale revision: %v, want ErrConflict", err)
	}
	got, _, err := b.GetConfig(ctx, key, backends.ReadOptions{})
	if err != nil || string(got.Content) != "a: 2" {
		t.Fatalf("after failed CAS the value is %q (%v), want a: 2", got.Content, err)
	}
	if _, err := b.DeleteConfig(ctx, key, model.IfRevision(c2.Revision)); err != nil {
		t.Fatalf("delete at the current revision: %v", err)
	}
	if _, _, err := b.GetConfig(ctx, key, backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
}

func testConfigWatch(t *testing.T, h Harness) {
	b := h.Backend(t)
	ctx := ctxT(t, 20*time.Second)
	key := model.ConfigKey{Namespace: namespace(), Group: "g", DataID: "w.properties"}
	w := watch(t, b, backends.WatchRequest{Config: &key})
	if e := next(t, w, 5*time.Second); e.Type != model.EventReset || e.Config != nil {
		t.Fatalf("watch of an absent config began with %v %+v, want a RESET with no value", e.Type, e.Config)
	}
	c, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte("x=1")}, model.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, w, 5*time.Second); e.Type != model.EventPut || string(e.Config.Content) != "x=1" || e.Revision != c.Revision {
		t.Fatalf("update event: %v %+v", e.Type, e.Config)
	}
	if _, err := b.DeleteConfig(ctx, key, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if e := next(t, w, 5*time.Second); e.Type != model.EventDelete || e.Config == nil || string(e.Config.Content) != "x=1" {
		t.Fatalf("delete event: %v %+v, want DELETE with the last value", e.Type, e.Config)
	}
}

func testConsistency(t *testing.T, h Harness) {
	b := h.Backend(t)
	svc := service("cons")
	rev := mustRegister(t, b, svc, inst(1))
	_, info, err := b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A store that cannot serve linearizable reads (Nacos) declares it, and
	// its reads must say they are stale; through one gateway they still
	// reflect that gateway's acknowledged writes.
	want := model.Linearizable
	if !capabilities(t, b).LinearizableReads {
		want = model.Stale
	}
	if info.Consistency != want || info.Revision < rev {
		t.Fatalf("default read: %+v after a write at %d, want %s and current", info, rev, want)
	}
	if list, _, err := b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{}); err != nil || len(list) != 1 {
		t.Fatalf("default read after a write: %v %v, want the written instance", list, err)
	}
	_, info, err = b.Instances(ctxT(t, 5*time.Second), svc, backends.ReadOptions{Stale: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.Consistency != model.Stale && info.Consistency != model.Linearizable {
		t.Fatalf("stale read reports consistency %q", info.Consistency)
	}
}

func testErrors(t *testing.T, h Harness) {
	b := h.Backend(t)
	ctx := ctxT(t, 10*time.Second)
	svc := service("errs")
	if _, err := b.Deregister(ctx, svc, "10.9.9.9:1"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("deregister absent instance: %v, want ErrNotFound", err)
	}
	if _, _, err := b.GetConfig(ctx, model.ConfigKey{Namespace: svc.Namespace, Group: "g", DataID: "none"}, backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("get absent config: %v, want ErrNotFound", err)
	}
	if _, err := b.KeepAlive(ctx, "no-such-session"); !errors.Is(err, model.ErrSessionExpired) {
		t.Errorf("keepalive unknown session: %v, want ErrSessionExpired", err)
	}
	i := inst(1)
	i.Ephemeral, i.Session = true, "no-such-session"
	if _, err := b.Register(ctx, svc, i); !errors.Is(err, model.ErrSessionExpired) {
		t.Errorf("register with unknown session: %v, want ErrSessionExpired", err)
	}
	if list, _, err := b.Instances(ctx, svc, backends.ReadOptions{}); err != nil || len(list) != 0 {
		t.Errorf("a failed registration left %v (%v)", list, err)
	}
}

package consul_test

import (
	"context"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// The watcher polls only inside Next, so changes made between two Next
// calls reach it as one blocking-query answer: the cases below are exact.
func TestWatchProvesContinuityOrResets(t *testing.T) {
	c := servertest.ConsulAgent(t)
	d := open(t, c.HTTPAddr, "watch-wait=1s")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := func(w backends.Watcher) model.Event {
		t.Helper()
		e, err := w.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	reg := func(svc model.ServiceKey, port int) int64 {
		t.Helper()
		i := model.Instance{IP: "10.0.0.1", Port: port, Weight: 1, Healthy: true, Enabled: true}
		_ = i.Normalize()
		rev, err := d.Register(ctx, svc, i)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}

	t.Run("service", func(t *testing.T) {
		svc := model.ServiceKey{Namespace: "ns1", Group: "g", Service: "cont"}
		w, err := d.Watch(ctx, backends.WatchRequest{Service: &svc})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		next(w) // the initial RESET
		rev := reg(svc, 1)
		if e := next(w); e.Type != model.EventPut || e.Revision != rev {
			t.Fatalf("one change between polls: %v at %d, want PUT at %d", e.Type, e.Revision, rev)
		}
		reg(svc, 2)
		rev = reg(svc, 3)
		e := next(w)
		if e.Type != model.EventReset || len(e.Instances) != 3 || e.Revision < rev {
			t.Fatalf("two changes between polls: %v with %d instances at %d, want a RESET of 3 at ≥%d", e.Type, len(e.Instances), e.Revision, rev)
		}
	})

	t.Run("config", func(t *testing.T) {
		key := model.ConfigKey{Namespace: "ns1", Group: "g", DataID: "cont.yaml"}
		w, err := d.Watch(ctx, backends.WatchRequest{Config: &key})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		next(w)
		put := func(s string) model.Config {
			c, err := d.PutConfig(ctx, model.Config{Key: key, Content: []byte(s)}, model.Precondition{})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		put("a: 1")
		if e := next(w); e.Type != model.EventPut || e.Config.Version != 1 {
			t.Fatalf("create: %v v%d", e.Type, e.Config.Version)
		}
		put("a: 2")
		if e := next(w); e.Type != model.EventPut || e.Config.Version != 2 {
			t.Fatalf("one update: %v, want PUT of version 2", e.Type)
		}
		put("a: 3")
		last := put("a: 4")
		if e := next(w); e.Type != model.EventReset || e.Config == nil || string(e.Config.Content) != "a: 4" || e.Revision != last.Revision {
			t.Fatalf("two updates between polls: %v %+v, want a RESET to a: 4 at %d", e.Type, e.Config, last.Revision)
		}
		if _, err := d.DeleteConfig(ctx, key, model.Precondition{}); err != nil {
			t.Fatal(err)
		}
		put("b: 1") // deleted and created again between polls
		if e := next(w); e.Type != model.EventReset || string(e.Config.Content) != "b: 1" {
			t.Fatalf("delete and re-create between polls: %v %+v, want a RESET", e.Type, e.Config)
		}
	})

	t.Run("index goes backwards", func(t *testing.T) {
		svc := model.ServiceKey{Namespace: "ns1", Group: "g", Service: "restart"}
		reg(svc, 1)
		w, err := d.Watch(ctx, backends.WatchRequest{Service: &svc})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if e := next(w); len(e.Instances) != 1 {
			t.Fatalf("initial state %+v", e)
		}
		// A dev agent keeps nothing: after a restart the catalog is empty
		// and its index starts again below the watcher's.
		c.Kill()
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		e := next(w)
		if e.Type != model.EventReset || len(e.Instances) != 0 {
			t.Fatalf("after the store lost its state: %v with %d instances, want a RESET of the empty set", e.Type, len(e.Instances))
		}
	})
}

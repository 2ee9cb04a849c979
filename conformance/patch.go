package conformance

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// findIn reads one instance through b.
func findIn(t *testing.T, b backends.Backend, svc model.ServiceKey, id string) (model.Instance, bool) {
	t.Helper()
	list, _, err := b.Instances(ctxT(t, 10*time.Second), svc, backends.ReadOptions{})
	if err != nil {
		t.Fatalf("instances: %v", err)
	}
	for _, i := range list {
		if i.ID == id {
			return i, true
		}
	}
	return model.Instance{}, false
}

// eventually polls read until it reports done, for up to d: stores that
// serve reads from a cache show a write a moment later.
func eventually(d time.Duration, read func() (bool, string)) error {
	deadline := time.Now().Add(d)
	for {
		ok, why := read()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New(why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testPatch: a patch through a driver other than the session's holder
// lands (or the driver says ErrNotOwner, as its capabilities declare, and
// the holder's lands), changes only what it names, never takes the
// instance from its session, and never undoes a change the owner made
// meanwhile; the session's expiry still removes the instance.
func testPatch(t *testing.T, h Harness) {
	owner := h.Backend(t)
	peer := owner
	if p, ok := h.(Peers); ok {
		peer = p.Peer(t)
	} else {
		t.Log("the harness has no second driver: patches go through the owner's")
	}
	caps := capabilities(t, owner)
	svc := service("patch")
	sess, _, err := owner.CreateSession(ctxT(t, 5*time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var beats sync.WaitGroup
	var lastBeat time.Time
	beats.Go(func() {
		tick := time.NewTicker(sess.TTL / 4)
		defer tick.Stop()
		for {
			if _, err := owner.KeepAlive(ctxT(t, 5*time.Second), sess.ID); err != nil {
				t.Errorf("keepalive: %v", err)
				return
			}
			lastBeat = time.Now()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	i := inst(7)
	i.Ephemeral, i.Session = true, sess.ID
	mustRegister(t, owner, svc, i)
	// patch goes through the peer; a driver that cannot patch an instance
	// another driver's session holds says so, and the holder applies it, as
	// the gateway holding the session does.
	patch := func(p model.InstancePatch) (model.Instance, error) {
		got, err := peer.PatchInstance(ctxT(t, 10*time.Second), svc, i.ID, p)
		if errors.Is(err, backends.ErrNotOwner) {
			if caps.PatchAnyOwner {
				t.Fatalf("patch through a second driver: %v, but the driver declares PatchAnyOwner", err)
			}
			got, err = owner.PatchInstance(ctxT(t, 10*time.Second), svc, i.ID, p)
		}
		return got, err
	}
	shows := func(b backends.Backend, what string, want func(model.Instance) bool) {
		t.Helper()
		if err := eventually(5*time.Second, func() (bool, string) {
			got, ok := findIn(t, b, svc, i.ID)
			return ok && want(got), fmt.Sprintf("%s: instance is %+v (present %v)", what, got, ok)
		}); err != nil {
			t.Fatal(err)
		}
	}

	// A store whose reads may lag (Nacos) shows the peer the instance a
	// moment later.
	shows(peer, "registered, read by the second driver", func(model.Instance) bool { return true })

	// The patch changes the health and nothing else; the owner's session
	// still owns the instance.
	unhealthy := false
	got, err := patch(model.InstancePatch{Healthy: &unhealthy})
	if err != nil {
		t.Fatalf("patch healthy=false: %v", err)
	}
	if got.Healthy || got.Weight != 1 || got.Metadata["zone"] != "a" || !got.Ephemeral {
		t.Fatalf("patched instance %+v: want unhealthy and otherwise unchanged", got)
	}
	shows(owner, "after the patch, read by the owner", func(g model.Instance) bool {
		return !g.Healthy && g.Weight == 1 && g.Metadata["zone"] == "a" && g.Ephemeral && g.Session == sess.ID
	})

	// A change the owner makes is not undone by a later patch, and a patch
	// whose precondition is older than that change is refused.
	before, _ := findIn(t, owner, svc, i.ID)
	changed := before.Clone()
	changed.Weight, changed.Metadata = 5, map[string]string{"zone": "b"}
	mustRegister(t, owner, svc, changed)
	shows(owner, "after the owner's change", func(g model.Instance) bool { return g.Weight == 5 })
	healthy := true
	if _, err := patch(model.InstancePatch{Healthy: &healthy, Cond: model.IfRevision(before.Revision)}); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("a patch on a revision older than the owner's change: %v, want ErrConflict", err)
	}
	if _, err := patch(model.InstancePatch{Healthy: &healthy}); err != nil {
		t.Fatalf("patch healthy=true: %v", err)
	}
	shows(owner, "after the owner's change and a patch", func(g model.Instance) bool {
		return g.Healthy && g.Weight == 5 && g.Metadata["zone"] == "b" && g.Session == sess.ID
	})

	// Concurrently: the owner changes the weight while the peer flips the
	// health; the owner's last weight survives every patch.
	var flips sync.WaitGroup
	flips.Go(func() {
		for n := range 6 {
			h := n%2 == 0
			if _, err := patch(model.InstancePatch{Healthy: &h}); err != nil {
				t.Errorf("patch %d: %v", n, err)
			}
		}
	})
	for w := 2.0; w <= 7; w++ {
		changed.Weight = w
		mustRegister(t, owner, svc, changed)
	}
	flips.Wait()
	shows(owner, "after concurrent patches and owner changes", func(g model.Instance) bool {
		return g.Weight == 7 && g.Metadata["zone"] == "b" && g.Session == sess.ID
	})

	// Patching the absent instance is ErrNotFound.
	if _, err := peer.PatchInstance(ctxT(t, 10*time.Second), svc, "absent", model.InstancePatch{Healthy: &healthy}); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("patch of an absent instance: %v, want ErrNotFound", err)
	}

	// The session still owns it: when its heartbeats stop, it goes.
	close(stop)
	beats.Wait()
	ttl := sess.TTL
	if err := eventually(ttl+3*time.Second, func() (bool, string) {
		_, ok := findIn(t, owner, svc, i.ID)
		return !ok, "the patched instance outlived its session"
	}); err != nil {
		t.Fatal(err)
	}
	gone := time.Since(lastBeat)
	t.Logf("measured: patched instance gone %v after the last heartbeat (TTL %v)", gone.Round(time.Millisecond), ttl)
	if gone > ttl+time.Second+500*time.Millisecond { // +0.5s: this poll's own period and read
		t.Fatalf("the patched instance went %v after the last heartbeat; the bound is TTL+1s", gone)
	}
}

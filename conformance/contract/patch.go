package contract

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// instancePatch: a patch through a driver other than the session's holder
// lands (or the driver says ErrNotOwner, as its capabilities declare, and
// the holder's lands), changes only what it names, never takes the
// instance from its session, and never undoes a change the owner made
// meanwhile; the session's expiry still removes the instance.
func instancePatch(ctx context.Context, e *Env) Result {
	var c check
	owner := e.B
	peer := owner
	if e.Peer != nil {
		p, err := e.Peer(ctx)
		if err != nil {
			return c.fatal("open a second driver: %v", err)
		}
		defer p.Close()
		peer = p
	} else {
		c.note("no second driver: the patches go through the owner's")
	}
	caps, err := capabilities(ctx, owner)
	if err != nil {
		return c.fatal("%v", err)
	}
	svc := Service("patch")
	sess, _, err := owner.CreateSession(ctx, time.Second)
	if err != nil {
		return c.fatal("create session: %v", err)
	}
	var (
		beats    sync.WaitGroup
		mu       sync.Mutex
		lastBeat time.Time
		beatErr  error
	)
	stop := make(chan struct{})
	beats.Go(func() {
		tick := time.NewTicker(sess.TTL / 4)
		defer tick.Stop()
		for {
			sent := time.Now()
			kctx, cancel := within(ctx, 5*time.Second)
			_, err := owner.KeepAlive(kctx, sess.ID)
			cancel()
			mu.Lock()
			if err != nil {
				beatErr = err
				mu.Unlock()
				return
			}
			lastBeat = sent
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	stopBeats := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		beats.Wait()
	}
	defer stopBeats()
	i := Instance(7, "a")
	i.Ephemeral, i.Session = true, sess.ID
	if _, err := register(ctx, owner, svc, i); err != nil {
		return c.fatal("%v", err)
	}
	// patch goes through the peer; a driver that cannot patch an instance
	// another driver's session holds says so, and the holder applies it, as
	// the gateway holding the session does.
	patch := func(p model.InstancePatch) (model.Instance, error) {
		pctx, cancel := within(ctx, 10*time.Second)
		defer cancel()
		got, err := peer.PatchInstance(pctx, svc, i.ID, p)
		if errors.Is(err, backends.ErrNotOwner) {
			if caps.PatchAnyOwner {
				return got, fmt.Errorf("through a second driver: %w, but the driver declares PatchAnyOwner", err)
			}
			got, err = owner.PatchInstance(pctx, svc, i.ID, p)
		}
		return got, err
	}
	// shows waits until b reads the instance as want has it.
	shows := func(b backends.Backend, what string, want func(model.Instance) bool) bool {
		why, ok := eventually(ctx, 5*time.Second, func() (bool, string) {
			got, ok, err := find(ctx, b, svc, i.ID)
			return err == nil && ok && want(got), fmt.Sprintf("%s: the instance is %+v (present %v, %v)", what, got, ok, err)
		})
		if !ok {
			c.problem("%s", why)
		}
		return ok
	}

	// A store whose reads may lag (Nacos) shows the peer the instance a
	// moment later.
	if !shows(peer, "registered, read by the second driver", func(model.Instance) bool { return true }) {
		return c.done()
	}

	// The patch changes the health and nothing else; the owner's session
	// still owns the instance.
	unhealthy := false
	got, err := patch(model.InstancePatch{Healthy: &unhealthy})
	if err != nil {
		return c.fatal("patch healthy=false: %v", err)
	}
	if got.Healthy || got.Weight != 1 || got.Metadata["m"] != "a" || !got.Ephemeral {
		c.problem("the patched instance is %+v: want unhealthy and otherwise unchanged", got)
	}
	shows(owner, "after the patch, read by the owner", func(g model.Instance) bool {
		return !g.Healthy && g.Weight == 1 && g.Metadata["m"] == "a" && g.Ephemeral && g.Session == sess.ID
	})

	// A change the owner makes is not undone by a later patch, and a patch
	// whose precondition is older than that change is refused.
	before, _, err := find(ctx, owner, svc, i.ID)
	if err != nil {
		return c.fatal("read: %v", err)
	}
	changed := before.Clone()
	changed.Weight, changed.Metadata = 5, map[string]string{"m": "b"}
	if _, err := register(ctx, owner, svc, changed); err != nil {
		return c.fatal("%v", err)
	}
	shows(owner, "after the owner's change", func(g model.Instance) bool { return g.Weight == 5 })
	healthy := true
	if _, err := patch(model.InstancePatch{Healthy: &healthy, Cond: model.IfRevision(before.Revision)}); !errors.Is(err, model.ErrConflict) {
		c.problem("a patch on a revision older than the owner's change: %v, want ErrConflict", err)
	}
	if _, err := patch(model.InstancePatch{Healthy: &healthy}); err != nil {
		return c.fatal("patch healthy=true: %v", err)
	}
	shows(owner, "after the owner's change and a patch", func(g model.Instance) bool {
		return g.Healthy && g.Weight == 5 && g.Metadata["m"] == "b" && g.Session == sess.ID
	})

	// Concurrently: the owner changes the weight while the peer flips the
	// health; the owner's last weight survives every patch.
	var (
		flips   sync.WaitGroup
		flipErr error
	)
	flips.Go(func() {
		for n := range 6 {
			h := n%2 == 0
			if _, err := patch(model.InstancePatch{Healthy: &h}); err != nil {
				flipErr = fmt.Errorf("patch %d: %w", n, err)
				return
			}
		}
	})
	for w := 2.0; w <= 7; w++ {
		changed.Weight = w
		if _, err := register(ctx, owner, svc, changed); err != nil {
			flips.Wait()
			return c.fatal("%v", err)
		}
	}
	flips.Wait()
	if flipErr != nil {
		c.problem("%v", flipErr)
	}
	shows(owner, "after concurrent patches and owner changes", func(g model.Instance) bool {
		return g.Weight == 7 && g.Metadata["m"] == "b" && g.Session == sess.ID
	})

	// Patching the absent instance is ErrNotFound.
	pctx, cancel := within(ctx, 10*time.Second)
	defer cancel()
	if _, err := peer.PatchInstance(pctx, svc, "absent", model.InstancePatch{Healthy: &healthy}); !errors.Is(err, model.ErrNotFound) {
		c.problem("a patch of an absent instance: %v, want ErrNotFound", err)
	}

	// The session still owns it: when its heartbeats stop, it goes.
	stopBeats()
	mu.Lock()
	last, berr := lastBeat, beatErr
	mu.Unlock()
	if berr != nil {
		return c.fatal("keepalive: %v", berr)
	}
	ttl := sess.TTL
	if why, ok := eventually(ctx, ttl+3*time.Second, func() (bool, string) {
		_, ok, err := find(ctx, owner, svc, i.ID)
		return err == nil && !ok, fmt.Sprintf("the patched instance outlived its session (%v)", err)
	}); !ok {
		return c.fatal("%s", why)
	}
	gone := time.Since(last)
	c.fig("patched instance gone after", gone.Seconds(), "s")
	c.fig("TTL", ttl.Seconds(), "s")
	if gone > ttl+time.Second+500*time.Millisecond { // +0.5s: this poll's own period and read
		c.problem("the patched instance went %v after the last heartbeat; the bound is TTL + 1 s", gone.Round(time.Millisecond))
	}
	return c.done()
}

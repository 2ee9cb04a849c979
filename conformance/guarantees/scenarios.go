package guarantees

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Scenarios returns every scenario, in report order: those that inject
// faults (a store restart in linearizability, and every one after it) last.
func Scenarios() []Scenario {
	return []Scenario{
		{"list-then-watch", "2: a subscriber that lists at R and watches from R misses no change made by concurrent writers", listThenWatch},
		{"burst", "3: a burst of updates arrives as every event in order, or as a RESET — never as a silent gap", burst},
		{"delete-carries-value", "4: a delete event carries the last value of what was deleted", deleteCarriesValue},
		{"empty-set", "4: the last instance leaving is delivered, and an empty service is a RESET with no instances", emptySet},
		{"owner-crash", "5: an instance whose owner stops heartbeating disappears within its granted TTL + 1 s", ownerCrash},
		{"resume-old-revision", "3: a watch from a revision older than the history starts with a RESET of the full state", resumeOld},
		{"cas", "6: create-only, update-if-revision and delete-if-revision behave alike on every backend", casParity},
		{"notify-latency", "2: config changes reach a watcher; the time from acknowledged write to event", notifyLatency},
		{"health-check", "9: a failing HTTP check turns its instance unhealthy after fall × interval, back after rise × interval, each transition seen once", healthChecks},
		{"linearizability", "7: concurrent config get/put/CAS histories are linearizable, also across a store restart", linearizability},
		{"outage-recovery", "3: watchers attached through a store outage resume and see the changes made after it", outageRecovery},
		{"start-while-down", "8: opening a backend whose store is down fails within a bound, with ErrUnavailable", startWhileDown},
		{"partition-longer-than-ttl", "5: after a partition longer than the TTL, a client that keeps its registration sees it back", partition},
		{"store-pause", "5: after the store froze (SIGSTOP) for longer than its session timeout, the registration comes back", storePause},
	}
}

func listThenWatch(ctx context.Context, e *Env) Outcome {
	b, svc := e.B, svcKey("ltw")
	const writers = 4
	rounds := e.n(50, 20)
	for w := range writers {
		if _, err := b.Register(ctx, svc, instance(100+w, "0")); err != nil {
			return errOutcome(err)
		}
	}
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= rounds; n++ {
				if _, err := b.Register(ctx, svc, instance(100+w, fmt.Sprint(n))); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	time.Sleep(3 * time.Millisecond)
	list, info, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return errOutcome(err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: info.Revision})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	view := map[string]string{}
	for _, i := range list {
		view[i.ID] = i.Metadata["m"]
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return errOutcome(err)
	}
	final, finfo, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return errOutcome(err)
	}
	var events, resets int
	for rev := info.Revision; rev < finfo.Revision; {
		ev, err := nextEvent(ctx, w, 10*time.Second)
		if err != nil {
			return fail([]Figure{fig("events", float64(events), ""), fig("resets", float64(resets), "")},
				"watch stopped at revision %d before %d: %v", rev, finfo.Revision, err)
		}
		events++
		switch ev.Type {
		case model.EventReset:
			resets++
			clear(view)
			for _, i := range ev.Instances {
				view[i.ID] = i.Metadata["m"]
			}
		case model.EventPut:
			view[ev.Instance.ID] = ev.Instance.Metadata["m"]
		case model.EventDelete:
			delete(view, ev.Instance.ID)
		}
		rev = ev.Revision
	}
	missed := 0
	for _, i := range final {
		if view[i.ID] != i.Metadata["m"] {
			missed++
		}
	}
	figs := []Figure{fig("writes", float64(writers*rounds), ""), fig("events", float64(events), ""),
		fig("resets", float64(resets), ""), fig("missed", float64(missed), "")}
	if missed > 0 {
		return fail(figs, "%d instances differ from the store after the watch caught up", missed)
	}
	return pass(figs...)
}

func burst(ctx context.Context, e *Env) Outcome {
	b, key := e.B, cfgKey("burst")
	c0, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte("0")}, model.Precondition{})
	if err != nil {
		return errOutcome(err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Config: &key, FromRevision: c0.Revision})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	n := e.n(300, 100)
	// A live watcher reads while the burst is written.
	var (
		evs []model.Event
		cur atomic.Int64
	)
	cur.Store(c0.Revision)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ev, err := w.Next(cctx)
			if err != nil {
				return
			}
			evs = append(evs, ev)
			cur.Store(max(cur.Load(), ev.Revision))
		}
	}()
	revs := make([]int64, 0, n)
	for i := 1; i <= n; i++ {
		c, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte(fmt.Sprint(i))}, model.Precondition{})
		if err != nil {
			return errOutcome(err)
		}
		revs = append(revs, c.Revision)
	}
	last := revs[len(revs)-1]
	for deadline := time.Now().Add(10 * time.Second); cur.Load() < last && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
	if cur.Load() < last {
		return fail(nil, "the watcher stopped at revision %d before the last write %d", cur.Load(), last)
	}
	seen := map[int64]int{}
	var resets []int64
	reordered := 0
	prev := c0.Revision
	for _, ev := range evs {
		if ev.Type == model.EventReset {
			resets = append(resets, ev.Revision)
			continue
		}
		seen[ev.Revision]++
		if ev.Revision < prev {
			reordered++
		}
		prev = ev.Revision
	}
	lost, dup, asEvents := 0, 0, 0
	for _, r := range revs {
		switch {
		case seen[r] > 0:
			asEvents++
			dup += seen[r] - 1
		case !coveredByReset(r, resets):
			lost++
		}
	}
	figs := []Figure{fig("writes", float64(n), ""), fig("delivered as events", float64(asEvents), ""),
		fig("resets", float64(len(resets)), ""), fig("lost", float64(lost), ""),
		fig("duplicated", float64(dup), ""), fig("reordered", float64(reordered), "")}
	if lost+dup+reordered > 0 {
		return fail(figs, "%d lost, %d duplicated, %d reordered", lost, dup, reordered)
	}
	return pass(figs...)
}

func coveredByReset(rev int64, resets []int64) bool {
	for _, r := range resets {
		if r >= rev {
			return true
		}
	}
	return false
}

func deleteCarriesValue(ctx context.Context, e *Env) Outcome {
	b, svc, key := e.B, svcKey("del"), cfgKey("del")
	rev, err := b.Register(ctx, svc, instance(1, "last-value"))
	if err != nil {
		return errOutcome(err)
	}
	c, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte("last-value")}, model.Precondition{})
	if err != nil {
		return errOutcome(err)
	}
	ws, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: rev})
	if err != nil {
		return errOutcome(err)
	}
	defer ws.Close()
	wc, err := b.Watch(ctx, backends.WatchRequest{Config: &key, FromRevision: c.Revision})
	if err != nil {
		return errOutcome(err)
	}
	defer wc.Close()
	if _, err := b.Deregister(ctx, svc, instance(1, "").ID); err != nil {
		return errOutcome(err)
	}
	if _, err := b.DeleteConfig(ctx, key, model.Precondition{}); err != nil {
		return errOutcome(err)
	}
	ev, err := nextEvent(ctx, ws, 10*time.Second)
	if err != nil || ev.Type != model.EventDelete || ev.Instance == nil || ev.Instance.Metadata["m"] != "last-value" {
		return fail(nil, "instance delete event %v %+v (%v): want DELETE with the last value", ev.Type, ev.Instance, err)
	}
	ev, err = nextEvent(ctx, wc, 10*time.Second)
	if err != nil || ev.Type != model.EventDelete || ev.Config == nil || string(ev.Config.Content) != "last-value" {
		return fail(nil, "config delete event %v (%v): want DELETE with the last value", ev.Type, err)
	}
	return pass()
}

func emptySet(ctx context.Context, e *Env) Outcome {
	b, svc := e.B, svcKey("empty")
	w0, err := b.Watch(ctx, backends.WatchRequest{Service: &svc})
	if err != nil {
		return errOutcome(err)
	}
	defer w0.Close()
	ev, err := nextEvent(ctx, w0, 10*time.Second)
	if err != nil || ev.Type != model.EventReset || len(ev.Instances) != 0 {
		return fail(nil, "watch of an empty service began with %v (%d instances, %v), want an empty RESET", ev.Type, len(ev.Instances), err)
	}
	rev, err := b.Register(ctx, svc, instance(1, "x"))
	if err != nil {
		return errOutcome(err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: rev})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	if _, err := b.Deregister(ctx, svc, instance(1, "").ID); err != nil {
		return errOutcome(err)
	}
	ev, err = nextEvent(ctx, w, 10*time.Second)
	if err != nil {
		return fail(nil, "the last instance leaving was not delivered: %v", err)
	}
	if !(ev.Type == model.EventDelete || (ev.Type == model.EventReset && len(ev.Instances) == 0)) {
		return fail(nil, "the last instance leaving arrived as %v at revision %d with %d instances (registered at %d, watched from it)",
			ev.Type, ev.Revision, len(ev.Instances), rev)
	}
	return pass()
}

func ownerCrash(ctx context.Context, e *Env) Outcome {
	b, svc := e.B, svcKey("crash")
	const asked = 2 * time.Second
	sess, _, err := b.CreateSession(ctx, asked)
	if err != nil {
		return errOutcome(err)
	}
	i := instance(1, "x")
	i.Ephemeral, i.Session = true, sess.ID
	rev, err := b.Register(ctx, svc, i)
	if err != nil {
		return errOutcome(err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: rev})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	if _, err := b.KeepAlive(ctx, sess.ID); err != nil {
		return errOutcome(err)
	}
	lastBeat := time.Now() // the owner "crashes": no heartbeat after this one
	for {
		ev, err := nextEvent(ctx, w, sess.TTL+15*time.Second)
		if err != nil {
			return fail([]Figure{fig("granted TTL", sess.TTL.Seconds(), "s")}, "instance never disappeared: %v", err)
		}
		if ev.Type == model.EventDelete || (ev.Type == model.EventReset && len(ev.Instances) == 0) {
			gone := time.Since(lastBeat)
			figs := []Figure{fig("time to disappear", gone.Seconds(), "s"), fig("granted TTL", sess.TTL.Seconds(), "s"),
				fig("asked TTL", asked.Seconds(), "s")}
			if gone > sess.TTL+time.Second {
				return fail(figs, "gone after %v, bound %v", gone.Round(time.Millisecond), sess.TTL+time.Second)
			}
			return pass(figs...)
		}
	}
}

func resumeOld(ctx context.Context, e *Env) Outcome {
	b, svc := e.B, svcKey("resume")
	old, err := b.Register(ctx, svc, instance(1, "a"))
	if err != nil {
		return errOutcome(err)
	}
	recent, err := b.Register(ctx, svc, instance(2, "b"))
	if err != nil {
		return errOutcome(err)
	}
	if _, err := b.Register(ctx, svc, instance(3, "c")); err != nil {
		return errOutcome(err)
	}
	// A watch from a recent revision: resumed without RESET where the store keeps history.
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: recent})
	if err != nil {
		return errOutcome(err)
	}
	ev, err := nextEvent(ctx, w, 10*time.Second)
	w.Close()
	if err != nil {
		return errOutcome(err)
	}
	replayed := 0.0
	if ev.Type == model.EventPut && ev.Instance.Port == 3 {
		replayed = 1
	}
	// Push the old revision out of any history: compaction, or more events than kept.
	filler := svcKey("filler")
	for n := range e.n(400, 300) {
		if _, err := b.Register(ctx, filler, instance(1, fmt.Sprint(n))); err != nil {
			return errOutcome(err)
		}
	}
	if e.Target.Compact != nil {
		if err := e.Target.Compact(ctx); err != nil {
			return errOutcome(err)
		}
	}
	w, err = b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: old})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	ev, err = nextEvent(ctx, w, 10*time.Second)
	if err != nil {
		return errOutcome(err)
	}
	figs := []Figure{fig("recent revision resumed without RESET", replayed, "bool")}
	if ev.Type == model.EventReset && len(ev.Instances) == 3 {
		return pass(append(figs, fig("old revision answered with RESET", 1, "bool"))...)
	}
	if ev.Type == model.EventPut && ev.Instance.Port == 2 {
		// Still within the store's history: an exact replay is also correct.
		return pass(append(figs, fig("old revision answered with RESET", 0, "bool"))...)
	}
	return fail(figs, "watch from %d began with %v (%d instances)", old, ev.Type, len(ev.Instances))
}

func casParity(ctx context.Context, e *Env) Outcome {
	b, key := e.B, cfgKey("cas")
	put := func(v string, cond model.Precondition) (model.Config, error) {
		return b.PutConfig(ctx, model.Config{Key: key, Content: []byte(v)}, cond)
	}
	c1, err := put("1", model.IfRevision(0))
	if err != nil {
		return fail(nil, "create-only on an absent item: %v", err)
	}
	if _, err := put("x", model.IfRevision(0)); !errors.Is(err, model.ErrConflict) {
		return fail(nil, "create-only on an existing item: %v, want ErrConflict", err)
	}
	c2, err := put("2", model.IfRevision(c1.Revision))
	if err != nil {
		return fail(nil, "update at the current revision: %v", err)
	}
	if _, err := put("x", model.IfRevision(c1.Revision)); !errors.Is(err, model.ErrConflict) {
		return fail(nil, "update at a stale revision: %v, want ErrConflict", err)
	}
	if _, err := b.DeleteConfig(ctx, key, model.IfRevision(c1.Revision)); !errors.Is(err, model.ErrConflict) {
		return fail(nil, "delete at a stale revision: %v, want ErrConflict", err)
	}
	if _, err := b.DeleteConfig(ctx, key, model.IfRevision(c2.Revision)); err != nil {
		return fail(nil, "delete at the current revision: %v", err)
	}
	if _, _, err := b.GetConfig(ctx, key, backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		return fail(nil, "get after delete: %v, want ErrNotFound", err)
	}
	return pass()
}

func notifyLatency(ctx context.Context, e *Env) Outcome {
	b, key := e.B, cfgKey("latency")
	w, err := b.Watch(ctx, backends.WatchRequest{Config: &key})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	if _, err := nextEvent(ctx, w, 10*time.Second); err != nil { // the initial RESET
		return errOutcome(err)
	}
	var lat []time.Duration
	resets := 0
	for i := range e.n(100, 40) {
		start := time.Now()
		if _, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte(fmt.Sprint(i))}, model.Precondition{}); err != nil {
			return errOutcome(err)
		}
		ev, err := nextEvent(ctx, w, 10*time.Second)
		if err != nil {
			return fail(nil, "update %d not delivered: %v", i, err)
		}
		if ev.Type == model.EventReset {
			resets++
		}
		lat = append(lat, time.Since(start))
	}
	start := time.Now()
	if _, err := b.DeleteConfig(ctx, key, model.Precondition{}); err != nil {
		return errOutcome(err)
	}
	ev, err := nextEvent(ctx, w, 10*time.Second)
	if err != nil || (ev.Type != model.EventDelete && !(ev.Type == model.EventReset && ev.Config == nil)) {
		return fail(nil, "config delete not delivered: %v %v", ev.Type, err)
	}
	del := time.Since(start)
	return pass(fig("write→event p50", ms(percentile(lat, 0.5)), "ms"), fig("write→event p99", ms(percentile(lat, 0.99)), "ms"),
		fig("delete→event", ms(del), "ms"), fig("resets", float64(resets), ""))
}

func outageRecovery(ctx context.Context, e *Env) Outcome {
	t := e.Target
	if t.Stop == nil || t.Start == nil {
		return na(t.NoProcessFaults)
	}
	b, svc := e.B, svcKey("outage")
	rev, err := b.Register(ctx, svc, instance(1, "before"))
	if err != nil {
		return errOutcome(err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: rev})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	if err := t.Stop(); err != nil {
		return errOutcome(err)
	}
	time.Sleep(time.Duration(e.n(3, 2)) * time.Second)
	if err := t.Start(ctx); err != nil {
		return errOutcome(err)
	}
	back := time.Now()
	deadline := back.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = b.Register(wctx, svc, instance(2, "after"))
		cancel()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fail(nil, "no write accepted within 60s of the store's return: %v", err)
	}
	writable := time.Since(back)
	view := map[string]bool{instance(1, "").ID: true}
	resets := 0
	for !view[instance(2, "").ID] {
		ev, err := nextEvent(ctx, w, 30*time.Second)
		if err != nil {
			return fail([]Figure{fig("writable after", writable.Seconds(), "s")}, "the watcher did not see the change made after the outage: %v", err)
		}
		switch ev.Type {
		case model.EventReset:
			resets++
			clear(view)
			for _, i := range ev.Instances {
				view[i.ID] = true
			}
		case model.EventPut:
			view[ev.Instance.ID] = true
		case model.EventDelete:
			delete(view, ev.Instance.ID)
		}
	}
	if !view[instance(1, "").ID] {
		return fail(nil, "after the outage the watcher lost the instance registered before it")
	}
	return pass(fig("writable after", writable.Seconds(), "s"), fig("watcher caught up after", time.Since(back).Seconds(), "s"),
		fig("resets", float64(resets), ""))
}

func startWhileDown(ctx context.Context, e *Env) Outcome {
	t := e.Target
	if t.Stop == nil || t.Start == nil {
		return na(t.NoProcessFaults)
	}
	if err := t.Stop(); err != nil {
		return errOutcome(err)
	}
	defer func() { _ = t.Start(context.WithoutCancel(ctx)) }()
	const bound = 10 * time.Second
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	b, err := t.Open(octx)
	took := time.Since(start)
	figs := []Figure{fig("failed after", took.Seconds(), "s")}
	switch {
	case err == nil:
		b.Close()
		return fail(figs, "opened a backend whose store is down")
	case took > bound:
		return fail(figs, "took %v to fail", took)
	case !errors.Is(err, model.ErrUnavailable):
		return fail(figs, "error %q is not ErrUnavailable", err)
	}
	return Outcome{Verdict: Pass, Figures: figs, Detail: err.Error()}
}

func partition(ctx context.Context, e *Env) Outcome {
	t := e.Target
	if t.Cut == nil {
		return na("no network between gateway and store: the store is in process")
	}
	return keepThrough(ctx, e, "partition", t.Cut, t.Heal)
}

func storePause(ctx context.Context, e *Env) Outcome {
	t := e.Target
	if t.Pause == nil {
		return na("the runner cannot freeze this store (it runs in the runner's process, or is external)")
	}
	return keepThrough(ctx, e, "pause", func() { _ = t.Pause() }, func() { _ = t.Resume() })
}

// keepThrough registers an instance held by a well-behaved client (heartbeat
// every TTL/4; on a lost session, a new one and a new registration), breaks
// the path with fault for longer than the TTL and any store session
// timeout, repairs it, and measures how long until the registration is back.
func keepThrough(ctx context.Context, e *Env, what string, fault, repair func()) Outcome {
	b, svc := e.B, svcKey(what)
	const ttl = 2 * time.Second
	i := instance(1, "x")
	var (
		mu         sync.Mutex
		lost, redo int
	)
	register := func(ctx context.Context) error {
		sess, _, err := b.CreateSession(ctx, ttl)
		if err != nil {
			return err
		}
		mu.Lock()
		i.Ephemeral, i.Session = true, sess.ID
		inst := i
		mu.Unlock()
		_, err = b.Register(ctx, svc, inst)
		return err
	}
	if err := register(ctx); err != nil {
		return errOutcome(err)
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		expired := false
		for cctx.Err() == nil {
			time.Sleep(ttl / 4)
			mu.Lock()
			sess := i.Session
			mu.Unlock()
			if !expired {
				kctx, cancel := context.WithTimeout(cctx, ttl/4)
				_, err := b.KeepAlive(kctx, sess)
				cancel()
				if !errors.Is(err, model.ErrSessionExpired) {
					continue
				}
				expired = true
				mu.Lock()
				lost++
				mu.Unlock()
			}
			rctx, cancel := context.WithTimeout(cctx, 5*time.Second)
			if register(rctx) == nil {
				expired = false
				mu.Lock()
				redo++
				mu.Unlock()
			}
			cancel()
		}
	}()
	fault()
	time.Sleep(ttl + 5*time.Second) // longer than the TTL and ZooKeeper's session timeout
	repair()
	healed := time.Now()
	for time.Since(healed) < 30*time.Second {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		list, _, err := b.Instances(rctx, svc, backends.ReadOptions{})
		cancel()
		if err == nil && len(list) == 1 {
			mu.Lock()
			l, r := lost, redo
			mu.Unlock()
			return pass(fig("registration back after", time.Since(healed).Seconds(), "s"),
				fig("sessions lost", float64(l), ""), fig("re-registrations", float64(r), ""))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fail(nil, "the registration did not come back within 30s of the %s ending", what)
}

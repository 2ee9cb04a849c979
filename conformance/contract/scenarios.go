package contract

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

// Scenarios returns every scenario, in the order of the contract's lines.
func Scenarios() []Scenario {
	return []Scenario{
		{"revisions", "Revisions", "1: writes return growing revisions and reads reflect them", revisions},
		{"list-then-watch", "ListThenWatch", "2: a subscriber that lists at R and watches from R misses no change concurrent writers make after R", listThenWatch},
		{"burst", "WatchOrderedUnique", "3: a burst of updates arrives as every event in order, or as a RESET — never as a silent gap; a store that declares a resumable watch replays it without a RESET", burst},
		{"resume-old-revision", "WatchResetAfterHistory", "3: a watch from a recent revision resumes where the store declares it can; from a revision older than the history it starts with a RESET of the full state", resumeOld},
		{"delete-carries-value", "DeleteEvents", "4: a delete event carries the last value of what was deleted, at the delete's revision", deleteCarriesValue},
		{"empty-set", "EmptySet", "4: the last instance leaving is delivered, and an empty service is a RESET with no instances", emptySet},
		{"notify-latency", "ConfigWatch", "2, 4: config changes reach a watcher, each at its revision and a delete with the last value; the time from acknowledged write to event", notifyLatency},
		{"owner-crash", "SessionExpiry", "5: an instance whose owner stops heartbeating disappears no sooner than its granted TTL and within TTL + 1 s; its session is gone", ownerCrash},
		{"session-keepalive", "SessionKeepAlive", "5: a kept-alive session outlives its TTL; closing it removes its instances", sessionKeepAlive},
		{"instance-patch", "InstancePatch", "5, 10: a patch from another driver lands, keeps the owner's changes and session; expiry still removes the instance", instancePatch},
		{"cas", "ConfigCAS", "6: create-only, update-if-revision and delete-if-revision behave alike on every backend; a conflict names its field", cas},
		{"history", "ConfigHistory", "11: every publish and delete appends a version with its content, author and message, in the order of the changes; a refused compare-and-set adds none; a rollback is a new version; a deleted item keeps its history; retention drops the oldest and the expired", history},
		{"gray", "GrayRelease", "12: a gray release reaches, by read and by watch, the clients its rule chooses and never the others; promoted, every client gets it; aborted, its clients get the release again", gray},
		{"consistency", "Consistency", "7: reads are linearizable by default, or the store declares they are not, and say what they got", consistency},
		{"portable-errors", "PortableErrors", "8: errors are the portable ones, testable with errors.Is", portableErrors},
	}
}

// register writes one instance, bounded.
func register(ctx context.Context, b backends.Backend, svc model.ServiceKey, i model.Instance) (int64, error) {
	ctx, cancel := within(ctx, 10*time.Second)
	defer cancel()
	rev, err := b.Register(ctx, svc, i)
	if err != nil {
		return 0, fmt.Errorf("register %s %s: %w", svc, i.ID, err)
	}
	return rev, nil
}

func revisions(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("rev")
	var last int64
	for port := 1; port <= 5; port++ {
		rev, err := register(ctx, b, svc, Instance(port, "x"))
		if err != nil {
			return c.fatal("%v", err)
		}
		if rev <= last {
			c.problem("write %d returned revision %d, not above the previous %d", port, rev, last)
		}
		last = max(last, rev)
	}
	_, info, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return c.fatal("read: %v", err)
	}
	if info.Revision < last {
		c.problem("a read reflects revision %d, before the last acknowledged write %d", info.Revision, last)
	}
	cfg, err := b.PutConfig(ctx, model.Config{Key: model.ConfigKey{Namespace: svc.Namespace, Group: "g", DataID: "d"}, Content: []byte("x")}, model.Precondition{})
	if err != nil {
		return c.fatal("put config: %v", err)
	}
	if cfg.Revision <= last {
		c.problem("a config write's revision %d is not above the instances' %d", cfg.Revision, last)
	}
	return c.done()
}

// listThenWatch lists a service while writers change it, then watches
// from the list's revision. The writers write a first batch, during which
// the list is taken, and a second one once it is, so that the watch has
// changes after the list's revision to deliver: a run in which none
// landed after it proves nothing and is a failure.
func listThenWatch(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("ltw")
	const writers = 4
	before, after := e.n(25, 10), e.n(25, 10)
	for w := range writers {
		if _, err := register(ctx, b, svc, Instance(100+w, "0")); err != nil {
			return c.fatal("%v", err)
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		revs  []int64
		werr  error
		first = make(chan struct{}, writers)
	)
	listed := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			n := 0
			write := func() bool {
				n++
				rev, err := register(ctx, b, svc, Instance(100+w, fmt.Sprint(n)))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					werr = err
					return false
				}
				revs = append(revs, rev)
				return true
			}
			for m := range before {
				ok := write()
				if m == 0 {
					first <- struct{}{}
				}
				if !ok {
					return
				}
			}
			<-listed
			for range after {
				if !write() {
					return
				}
			}
		})
	}
	for range writers {
		<-first // list while the writers are busy
	}
	list, info, err := b.Instances(ctx, svc, backends.ReadOptions{})
	close(listed)
	if err != nil {
		wg.Wait()
		return c.fatal("list: %v", err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: info.Revision})
	if err != nil {
		wg.Wait()
		return c.fatal("watch from the list's revision %d: %v", info.Revision, err)
	}
	defer w.Close()
	view := model.View{Revision: info.Revision, Instances: map[string]model.Instance{}}
	for _, i := range list {
		view.Instances[i.ID] = i
	}
	wg.Wait()
	if werr != nil {
		return c.fatal("a writer failed: %v", werr)
	}
	final, finfo, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return c.fatal("list after the writes: %v", err)
	}
	afterList := 0
	for _, r := range revs {
		if r > info.Revision {
			afterList++
		}
	}
	var events, resets int
	for view.Revision < finfo.Revision {
		ev, err := NextEvent(ctx, w, 10*time.Second)
		if err != nil {
			c.fig("events", float64(events), "")
			return c.fatal("the watch stopped at revision %d before %d: %v", view.Revision, finfo.Revision, err)
		}
		events++
		if ev.Type == model.EventReset {
			resets++
		}
		view.Apply(ev)
	}
	missed := 0
	for _, i := range final {
		if got, ok := view.Instances[i.ID]; !ok || got.Metadata["m"] != i.Metadata["m"] {
			missed++
		}
	}
	c.fig("writes", float64(len(revs)), "")
	c.fig("writes after the list", float64(afterList), "")
	c.fig("events", float64(events), "")
	c.fig("resets", float64(resets), "")
	c.fig("missed", float64(missed), "")
	switch {
	case afterList == 0:
		c.problem("none of %d writes landed after the list's revision %d: the watch had nothing to prove", len(revs), info.Revision)
	case missed > 0:
		c.problem("%d instances differ from the store after the watch caught up: a change was missed", missed)
	case len(view.Instances) != len(final):
		c.problem("the subscriber sees %d instances, the store has %d", len(view.Instances), len(final))
	}
	return c.done()
}

// delivery is what a watcher received of a burst of writes.
type delivery struct {
	asEvents, lost, dup, reordered int
	resets                         []int64
}

// deliveryOf checks evs against the burst's revisions revs, written after
// revision from.
func deliveryOf(evs []model.Event, from int64, revs []int64) delivery {
	var d delivery
	seen := map[int64]int{}
	prev := from
	for _, ev := range evs {
		if ev.Type == model.EventReset {
			d.resets = append(d.resets, ev.Revision)
			continue
		}
		seen[ev.Revision]++
		if ev.Revision < prev {
			d.reordered++
		}
		prev = ev.Revision
	}
	for _, r := range revs {
		switch {
		case seen[r] > 0:
			d.asEvents++
			d.dup += seen[r] - 1
		case !coveredByReset(r, d.resets):
			d.lost++
		}
	}
	return d
}

func coveredByReset(rev int64, resets []int64) bool {
	for _, r := range resets {
		if r >= rev {
			return true
		}
	}
	return false
}

// collect reads w until it has seen revision last, for up to d.
func collect(ctx context.Context, w backends.Watcher, last int64, d time.Duration) ([]model.Event, int64) {
	var evs []model.Event
	var cur int64
	deadline := time.Now().Add(d)
	for cur < last && time.Now().Before(deadline) {
		ev, err := NextEvent(ctx, w, time.Until(deadline))
		if err != nil {
			break
		}
		evs = append(evs, ev)
		cur = max(cur, ev.Revision)
	}
	return evs, cur
}

// burst writes a burst of config updates while a watcher reads, then
// watches again from before the burst. A store that declares a resumable
// watch must deliver both as every event, without a RESET, as long as the
// burst fits in the history it declares.
func burst(ctx context.Context, e *Env) Result {
	var c check
	b, key := e.B, ConfigKey("burst")
	caps, err := capabilities(ctx, b)
	if err != nil {
		return c.fatal("%v", err)
	}
	n := e.n(300, 100)
	if caps.ResumableWatch && caps.WatchHistory > 0 {
		n = max(1, min(n, caps.WatchHistory/2))
	}
	c0, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte("0")}, model.Precondition{})
	if err != nil {
		return c.fatal("put: %v", err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Config: &key, FromRevision: c0.Revision})
	if err != nil {
		return c.fatal("watch: %v", err)
	}
	var (
		evs []model.Event
		cur atomic.Int64
	)
	cur.Store(c0.Revision)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { // a live watcher reads while the burst is written
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
		cfg, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte(fmt.Sprint(i))}, model.Precondition{})
		if err != nil {
			stop()
			<-done
			w.Close()
			return c.fatal("put %d: %v", i, err)
		}
		revs = append(revs, cfg.Revision)
	}
	last := revs[len(revs)-1]
	for deadline := time.Now().Add(10 * time.Second); cur.Load() < last && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
	w.Close()
	live := deliveryOf(evs, c0.Revision, revs)
	c.fig("writes", float64(n), "")
	c.fig("delivered as events", float64(live.asEvents), "")
	c.fig("resets", float64(len(live.resets)), "")
	c.fig("lost", float64(live.lost), "")
	c.fig("duplicated", float64(live.dup), "")
	c.fig("reordered", float64(live.reordered), "")
	if cur.Load() < last {
		return c.fatal("the live watcher stopped at revision %d before the last write %d", cur.Load(), last)
	}
	if live.lost+live.dup+live.reordered > 0 {
		c.problem("live watcher: %d lost, %d duplicated, %d reordered", live.lost, live.dup, live.reordered)
	}
	// The same burst, replayed from before it.
	rw, err := b.Watch(ctx, backends.WatchRequest{Config: &key, FromRevision: c0.Revision})
	if err != nil {
		return c.fatal("watch again from %d: %v", c0.Revision, err)
	}
	revts, rcur := collect(ctx, rw, last, 10*time.Second)
	rw.Close()
	replay := deliveryOf(revts, c0.Revision, revs)
	c.fig("replayed as events", float64(replay.asEvents), "")
	switch {
	case rcur < last:
		c.problem("the watch from %d stopped at revision %d before the last write %d", c0.Revision, rcur, last)
	case replay.lost+replay.dup+replay.reordered > 0:
		c.problem("replay from %d: %d lost, %d duplicated, %d reordered", c0.Revision, replay.lost, replay.dup, replay.reordered)
	}
	if caps.ResumableWatch {
		if len(live.resets) > 0 || len(replay.resets) > 0 {
			c.problem("the store declares a resumable watch (history %d), yet a burst of %d inside it came with %d RESETs live and %d replayed",
				caps.WatchHistory, n, len(live.resets), len(replay.resets))
		}
	} else if len(live.resets)+len(replay.resets) > 0 {
		c.note("the store declares no resumable watch: %d RESETs live, %d replayed, covering what they replaced", len(live.resets), len(replay.resets))
	}
	return c.done()
}

// resumeOld watches from a recent revision, then pushes an older one out
// of the history (compaction, or more events than the store keeps) and
// watches from it.
func resumeOld(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("resume")
	caps, err := capabilities(ctx, b)
	if err != nil {
		return c.fatal("%v", err)
	}
	old, err := register(ctx, b, svc, Instance(1, "a"))
	if err != nil {
		return c.fatal("%v", err)
	}
	recent, err := register(ctx, b, svc, Instance(2, "b"))
	if err != nil {
		return c.fatal("%v", err)
	}
	third, err := register(ctx, b, svc, Instance(3, "c"))
	if err != nil {
		return c.fatal("%v", err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: recent})
	if err != nil {
		return c.fatal("watch from %d: %v", recent, err)
	}
	ev, err := NextEvent(ctx, w, 10*time.Second)
	w.Close()
	if err != nil {
		return c.fatal("watch from the recent revision %d: %v", recent, err)
	}
	replayed := ev.Type == model.EventPut && ev.Instance != nil && ev.Instance.Port == 3
	c.fig("recent revision resumed without RESET", b2f(replayed), "bool")
	switch {
	case replayed:
	case caps.ResumableWatch:
		c.problem("the store declares a resumable watch, yet a watch from the recent revision %d began with %v at %d, not the PUT at %d",
			recent, ev.Type, ev.Revision, third)
	case ev.Type != model.EventReset || len(ev.Instances) != 3:
		c.problem("a watch from the recent revision %d began with %v (%d instances): neither the PUT at %d nor a RESET of the 3 instances",
			recent, ev.Type, len(ev.Instances), third)
	}
	// Push the old revision out of any history.
	if e.Compact != nil {
		if err := e.Compact(ctx, third); err != nil {
			return c.fatal("compact: %v", err)
		}
	} else {
		filler := Service("filler")
		for n := range e.HistoryWindow + 10 {
			if _, err := register(ctx, b, filler, Instance(1, fmt.Sprint(n))); err != nil {
				return c.fatal("%v", err)
			}
		}
	}
	w, err = b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: old})
	if err != nil {
		return c.fatal("watch from the old revision %d: %v", old, err)
	}
	defer w.Close()
	ev, err = NextEvent(ctx, w, 10*time.Second)
	if err != nil {
		return c.fatal("watch from the old revision %d: %v", old, err)
	}
	switch {
	case ev.Type == model.EventReset && len(ev.Instances) == 3 && ev.Revision > old:
		c.fig("old revision answered with RESET", 1, "bool")
	case ev.Type == model.EventPut && ev.Instance != nil && ev.Instance.Port == 2 && e.Compact == nil:
		// Still within the store's history: an exact replay is also correct.
		c.fig("old revision answered with RESET", 0, "bool")
		c.note("the old revision %d is still in the store's history: replayed", old)
		return c.done()
	default:
		return c.fatal("a watch from the old revision %d began with %v at %d (%d instances), want a RESET of the full state of 3",
			old, ev.Type, ev.Revision, len(ev.Instances))
	}
	rev4, err := register(ctx, b, svc, Instance(4, "d"))
	if err != nil {
		return c.fatal("%v", err)
	}
	if ev, err := NextEvent(ctx, w, 10*time.Second); err != nil || ev.Type != model.EventPut || ev.Instance == nil || ev.Instance.Port != 4 {
		c.problem("after the RESET: %v %+v (%v), want the PUT of port 4 at %d", ev.Type, ev.Instance, err, rev4)
	}
	return c.done()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func deleteCarriesValue(ctx context.Context, e *Env) Result {
	var c check
	b, svc, key := e.B, Service("del"), ConfigKey("del")
	rev, err := register(ctx, b, svc, Instance(1, "last-value"))
	if err != nil {
		return c.fatal("%v", err)
	}
	cfg, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte("last-value")}, model.Precondition{})
	if err != nil {
		return c.fatal("put: %v", err)
	}
	ws, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: rev})
	if err != nil {
		return c.fatal("watch: %v", err)
	}
	defer ws.Close()
	wc, err := b.Watch(ctx, backends.WatchRequest{Config: &key, FromRevision: cfg.Revision})
	if err != nil {
		return c.fatal("watch: %v", err)
	}
	defer wc.Close()
	drev, err := b.Deregister(ctx, svc, Instance(1, "").ID)
	if err != nil {
		return c.fatal("deregister: %v", err)
	}
	if _, err := b.DeleteConfig(ctx, key, model.Precondition{}); err != nil {
		return c.fatal("delete config: %v", err)
	}
	ev, err := NextEvent(ctx, ws, 10*time.Second)
	if err != nil || ev.Type != model.EventDelete || ev.Instance == nil || ev.Instance.Metadata["m"] != "last-value" || ev.Revision != drev {
		c.problem("instance delete event %v at %d carries %+v (%v): want DELETE at %d with the last value", ev.Type, ev.Revision, ev.Instance, err, drev)
	}
	ev, err = NextEvent(ctx, wc, 10*time.Second)
	if err != nil || ev.Type != model.EventDelete || ev.Config == nil || string(ev.Config.Content) != "last-value" {
		c.problem("config delete event %v (%v): want DELETE with the last value", ev.Type, err)
	}
	if list, _, err := b.Instances(ctx, svc, backends.ReadOptions{}); err != nil || len(list) != 0 {
		c.problem("after the last instance left: %v, %v; want an empty list", list, err)
	}
	return c.done()
}

func emptySet(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("empty")
	w0, err := b.Watch(ctx, backends.WatchRequest{Service: &svc})
	if err != nil {
		return c.fatal("watch: %v", err)
	}
	defer w0.Close()
	ev, err := NextEvent(ctx, w0, 10*time.Second)
	if err != nil || ev.Type != model.EventReset || len(ev.Instances) != 0 {
		c.problem("a watch of an empty service began with %v (%d instances, %v), want an empty RESET", ev.Type, len(ev.Instances), err)
	}
	rev, err := register(ctx, b, svc, Instance(1, "x"))
	if err != nil {
		return c.fatal("%v", err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: rev})
	if err != nil {
		return c.fatal("watch: %v", err)
	}
	defer w.Close()
	if _, err := b.Deregister(ctx, svc, Instance(1, "").ID); err != nil {
		return c.fatal("deregister: %v", err)
	}
	ev, err = NextEvent(ctx, w, 10*time.Second)
	switch {
	case err != nil:
		c.problem("the last instance leaving was not delivered: %v", err)
	case !(ev.Type == model.EventDelete || (ev.Type == model.EventReset && len(ev.Instances) == 0)):
		c.problem("the last instance leaving arrived as %v at revision %d with %d instances (registered at %d, watched from it)",
			ev.Type, ev.Revision, len(ev.Instances), rev)
	}
	return c.done()
}

func notifyLatency(ctx context.Context, e *Env) Result {
	var c check
	b, key := e.B, ConfigKey("latency")
	caps, err := capabilities(ctx, b)
	if err != nil {
		return c.fatal("%v", err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Config: &key})
	if err != nil {
		return c.fatal("watch: %v", err)
	}
	defer w.Close()
	if ev, err := NextEvent(ctx, w, 10*time.Second); err != nil || ev.Type != model.EventReset || ev.Config != nil {
		return c.fatal("a watch of an absent config began with %v %+v (%v), want a RESET with no value", ev.Type, ev.Config, err)
	}
	var lat []time.Duration
	resets := 0
	var last string
	for i := range e.n(100, 40) {
		last = fmt.Sprint(i)
		start := time.Now()
		cfg, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte(last)}, model.Precondition{})
		if err != nil {
			return c.fatal("put %d: %v", i, err)
		}
		ev, err := NextEvent(ctx, w, 10*time.Second)
		if err != nil {
			return c.fatal("update %d not delivered: %v", i, err)
		}
		lat = append(lat, time.Since(start))
		switch {
		case ev.Type == model.EventReset:
			resets++
			if ev.Config == nil || string(ev.Config.Content) != last {
				c.problem("update %d arrived as a RESET with %+v, want the value %q", i, ev.Config, last)
			}
		case ev.Type != model.EventPut || ev.Config == nil || string(ev.Config.Content) != last || ev.Revision != cfg.Revision:
			c.problem("update %d arrived as %v at %d with %+v, want a PUT of %q at %d", i, ev.Type, ev.Revision, ev.Config, last, cfg.Revision)
		}
	}
	start := time.Now()
	if _, err := b.DeleteConfig(ctx, key, model.Precondition{}); err != nil {
		return c.fatal("delete: %v", err)
	}
	ev, err := NextEvent(ctx, w, 10*time.Second)
	del := time.Since(start)
	switch {
	case err != nil:
		c.problem("the delete was not delivered: %v", err)
	case ev.Type == model.EventReset && ev.Config == nil && !caps.ResumableWatch:
		c.note("the delete arrived as an empty RESET")
	case ev.Type != model.EventDelete || ev.Config == nil || string(ev.Config.Content) != last:
		c.problem("the delete arrived as %v with %+v, want a DELETE with the last value %q", ev.Type, ev.Config, last)
	}
	c.fig("write→event p50", ms(percentile(lat, 0.5)), "ms")
	c.fig("write→event p99", ms(percentile(lat, 0.99)), "ms")
	c.fig("delete→event", ms(del), "ms")
	c.fig("resets", float64(resets), "")
	if resets > 0 && caps.ResumableWatch {
		c.problem("the store declares a resumable watch, yet %d updates arrived as RESETs", resets)
	}
	return c.done()
}

// ownerCrash stops heartbeating an instance's session and times its
// disappearance from the last heartbeat sent: no sooner than the TTL the
// store granted, no later than one second after it.
func ownerCrash(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("crash")
	// Two seconds, quick runs too: the session must outlive the
	// registration and the watch that come before its last heartbeat, and
	// on a loaded machine (CI: two test binaries with the race detector,
	// a store with TLS and authentication) they took over a second.
	asked := 2 * time.Second
	sess, _, err := b.CreateSession(ctx, asked)
	if err != nil {
		return c.fatal("create session: %v", err)
	}
	if sess.TTL < asked {
		c.problem("asked for a %v session, granted %v", asked, sess.TTL)
	}
	i := Instance(1, "x")
	i.Ephemeral, i.Session = true, sess.ID
	rev, err := register(ctx, b, svc, i)
	if err != nil {
		return c.fatal("%v", err)
	}
	w, err := b.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: rev})
	if err != nil {
		return c.fatal("watch: %v", err)
	}
	defer w.Close()
	lastBeat := time.Now() // the owner "crashes": no heartbeat after this one
	if _, err := b.KeepAlive(ctx, sess.ID); err != nil {
		return c.fatal("keepalive: %v", err)
	}
	c.fig("granted TTL", sess.TTL.Seconds(), "s")
	for {
		ev, err := NextEvent(ctx, w, sess.TTL+15*time.Second)
		if err != nil {
			return c.fatal("the instance never disappeared: %v", err)
		}
		if !(ev.Type == model.EventDelete && ev.Instance != nil && ev.Instance.ID == i.ID) &&
			!(ev.Type == model.EventReset && len(ev.Instances) == 0) {
			continue
		}
		gone := time.Since(lastBeat)
		c.r.Figures = append([]Figure{{Name: "time to disappear", Value: gone.Seconds(), Unit: "s"}}, c.r.Figures...)
		c.fig("asked TTL", asked.Seconds(), "s")
		switch {
		case gone > sess.TTL+time.Second:
			c.problem("gone %v after the last heartbeat, bound %v (TTL + 1 s)", gone.Round(time.Millisecond), sess.TTL+time.Second)
		case gone < sess.TTL:
			c.problem("gone %v after the last heartbeat, before its TTL of %v", gone.Round(time.Millisecond), sess.TTL)
		}
		break
	}
	kctx, cancel := within(ctx, 10*time.Second)
	defer cancel()
	if _, err := b.KeepAlive(kctx, sess.ID); !errors.Is(err, model.ErrSessionExpired) {
		c.problem("a keepalive of the expired session: %v, want ErrSessionExpired", err)
	}
	return c.done()
}

func sessionKeepAlive(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("keep")
	sess, _, err := b.CreateSession(ctx, time.Second)
	if err != nil {
		return c.fatal("create session: %v", err)
	}
	i := Instance(1, "x")
	i.Ephemeral, i.Session = true, sess.ID
	if _, err := register(ctx, b, svc, i); err != nil {
		return c.fatal("%v", err)
	}
	kept := 5 * sess.TTL / 2
	for deadline := time.Now().Add(kept); time.Now().Before(deadline); {
		kctx, cancel := within(ctx, 5*time.Second)
		_, err := b.KeepAlive(kctx, sess.ID)
		cancel()
		if err != nil {
			return c.fatal("keepalive: %v", err)
		}
		time.Sleep(sess.TTL / 4)
	}
	list, _, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil || len(list) != 1 {
		c.problem("the kept-alive instance after %v (2.5 × its TTL): %v %v", kept, list, err)
	}
	if _, err := b.CloseSession(ctx, sess.ID); err != nil {
		return c.fatal("close session: %v", err)
	}
	list, _, err = b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil || len(list) != 0 {
		c.problem("instances after closing their session: %v %v, want none", list, err)
	}
	return c.done()
}

func cas(ctx context.Context, e *Env) Result {
	var c check
	b, key := e.B, ConfigKey("app.yaml")
	caps, err := capabilities(ctx, b)
	if err != nil {
		return c.fatal("%v", err)
	}
	put := func(content string, cond model.Precondition) (model.Config, error) {
		return b.PutConfig(ctx, model.Config{Key: key, Content: []byte(content), ContentType: model.ContentYAML}, cond)
	}
	// conflict checks that err is a conflict that names its field.
	conflict := func(what string, err error) {
		var fe *model.FieldError
		switch {
		case !errors.Is(err, model.ErrConflict):
			c.problem("%s: %v, want ErrConflict", what, err)
		case !errors.As(err, &fe) || fe.Field != "ifRevision":
			c.problem("%s: the conflict %q does not name its field ifRevision", what, err)
		}
	}
	c1, err := put("a: 1", model.IfRevision(0))
	if err != nil {
		return c.fatal("create-only on an absent item: %v", err)
	}
	// A store without revisions of its own (Nacos) cannot count versions
	// and declares it; the driver then reports version 0, "unknown".
	native := caps.NativeRevisions
	if (c1.Version != 1 && native) || (c1.Version != 0 && !native) || c1.MD5 != model.ContentMD5([]byte("a: 1")) {
		c.problem("the created config has version %d and md5 %s (native revisions: %v)", c1.Version, c1.MD5, native)
	}
	_, err = put("x", model.IfRevision(0))
	conflict("create-only on an existing item", err)
	c2, err := put("a: 2", model.IfRevision(c1.Revision))
	if err != nil {
		return c.fatal("update at the current revision: %v", err)
	}
	if (native && c2.Version != 2) || c2.Revision <= c1.Revision {
		c.problem("updated at the current revision: version %d, revision %d after %d", c2.Version, c2.Revision, c1.Revision)
	}
	_, err = put("x", model.IfRevision(c1.Revision))
	conflict("update at a stale revision", err)
	_, err = b.DeleteConfig(ctx, key, model.IfRevision(c1.Revision))
	conflict("delete at a stale revision", err)
	if got, _, err := b.GetConfig(ctx, key, backends.ReadOptions{}); err != nil || string(got.Content) != "a: 2" {
		c.problem("after the refused writes the value is %q (%v), want a: 2", got.Content, err)
	}
	if _, err := b.DeleteConfig(ctx, key, model.IfRevision(c2.Revision)); err != nil {
		return c.fatal("delete at the current revision: %v", err)
	}
	if _, _, err := b.GetConfig(ctx, key, backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		c.problem("get after delete: %v, want ErrNotFound", err)
	}
	return c.done()
}

func consistency(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("cons")
	caps, err := capabilities(ctx, b)
	if err != nil {
		return c.fatal("%v", err)
	}
	rev, err := register(ctx, b, svc, Instance(1, "x"))
	if err != nil {
		return c.fatal("%v", err)
	}
	list, info, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return c.fatal("read: %v", err)
	}
	// A store that cannot serve linearizable reads (Nacos) declares it, and
	// its reads must say they are stale; through one gateway they still
	// reflect that gateway's acknowledged writes.
	want := model.Linearizable
	if !caps.LinearizableReads {
		want = model.Stale
	}
	if info.Consistency != want || info.Revision < rev {
		c.problem("a default read: %+v after a write at %d, want %s and current", info, rev, want)
	}
	if len(list) != 1 {
		c.problem("a default read after a write: %v, want the written instance", list)
	}
	_, info, err = b.Instances(ctx, svc, backends.ReadOptions{Stale: true})
	if err != nil {
		return c.fatal("stale read: %v", err)
	}
	if info.Consistency != model.Stale && info.Consistency != model.Linearizable {
		c.problem("a stale read reports consistency %q", info.Consistency)
	}
	return c.done()
}

func portableErrors(ctx context.Context, e *Env) Result {
	var c check
	b, svc := e.B, Service("errs")
	if _, err := b.Deregister(ctx, svc, "10.9.9.9:1"); !errors.Is(err, model.ErrNotFound) {
		c.problem("deregister an absent instance: %v, want ErrNotFound", err)
	}
	if _, _, err := b.GetConfig(ctx, model.ConfigKey{Namespace: svc.Namespace, Group: "g", DataID: "none"}, backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		c.problem("get an absent config: %v, want ErrNotFound", err)
	}
	if _, err := b.KeepAlive(ctx, "no-such-session"); !errors.Is(err, model.ErrSessionExpired) {
		c.problem("keepalive of an unknown session: %v, want ErrSessionExpired", err)
	}
	i := Instance(1, "x")
	i.Ephemeral, i.Session = true, "no-such-session"
	if _, err := b.Register(ctx, svc, i); !errors.Is(err, model.ErrSessionExpired) {
		c.problem("register with an unknown session: %v, want ErrSessionExpired", err)
	}
	if list, _, err := b.Instances(ctx, svc, backends.ReadOptions{}); err != nil || len(list) != 0 {
		c.problem("a refused registration left %v (%v)", list, err)
	}
	return c.done()
}

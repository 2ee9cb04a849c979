package guarantees

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/contract"
	"github.com/junctionhq/junction/model"
)

// Scenarios returns every scenario, in report order: the contract's
// scenarios (conformance/contract, which the test suite runs too), then
// health checking, linearizability under a store restart, and the faults,
// which come last.
func Scenarios() []Scenario {
	var out []Scenario
	for _, s := range contract.Scenarios() {
		out = append(out, fromContract(s))
	}
	return append(out,
		Scenario{"health-check", "9: a failing HTTP check turns its instance unhealthy after fall × interval, back after rise × interval, each transition seen once", healthChecks},
		Scenario{"linearizability", "7: concurrent config get/put/CAS histories are linearizable, also across a store restart", linearizability},
		Scenario{"outage-recovery", "3: watchers attached through a store outage resume and see the changes made after it", outageRecovery},
		Scenario{"start-while-down", "8: opening a backend whose store is down fails within a bound, with ErrUnavailable", startWhileDown},
		Scenario{"partition-longer-than-ttl", "5: after a partition longer than the TTL, a client that keeps its registration sees it back", partition},
		Scenario{"store-pause", "5: after the store froze (SIGSTOP) for longer than its session timeout, the registration comes back", storePause},
	)
}

// fromContract measures a contract scenario on a target: the second
// driver it may ask for is another one the target opens (a new driver on
// the same store; through a new gateway, for a +gateway target; on
// raft-3, a second router over the same node), and the history is pushed
// out by the target's compaction where it has one.
func fromContract(s contract.Scenario) Scenario {
	return Scenario{Name: s.Name, Rule: s.Rule, Run: func(ctx context.Context, e *Env) Outcome {
		ce := &contract.Env{B: e.B, Peer: e.Target.Open, HistoryWindow: e.n(400, 300), Quick: e.Quick, Forwards: e.Target.Forwards}
		if e.Target.Compact != nil {
			ce.Compact = func(ctx context.Context, _ int64) error { return e.Target.Compact(ctx) }
		}
		r := s.Run(ctx, ce)
		if r.NotApplicable != "" {
			return na(r.NotApplicable)
		}
		if !r.OK() {
			return Outcome{Verdict: Fail, Figures: r.Figures, Detail: strings.Join(r.Problems, "; ")}
		}
		return Outcome{Verdict: Pass, Figures: r.Figures, Detail: strings.Join(r.Notes, "; ")}
	}}
}

func outageRecovery(ctx context.Context, e *Env) Outcome {
	t := e.Target
	if t.Stop == nil || t.Start == nil {
		return na(t.NoProcessFaults)
	}
	b, svc := e.B, contract.Service("outage")
	rev, err := b.Register(ctx, svc, contract.Instance(1, "before"))
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
		_, err = b.Register(wctx, svc, contract.Instance(2, "after"))
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
	view := model.View{Instances: map[string]model.Instance{contract.Instance(1, "").ID: contract.Instance(1, "before")}}
	resets := 0
	for _, ok := view.Instances[contract.Instance(2, "").ID]; !ok; _, ok = view.Instances[contract.Instance(2, "").ID] {
		ev, err := contract.NextEvent(ctx, w, 30*time.Second)
		if err != nil {
			return fail([]Figure{fig("writable after", writable.Seconds(), "s")}, "the watcher did not see the change made after the outage: %v", err)
		}
		if ev.Type == model.EventReset {
			resets++
		}
		view.Apply(ev)
	}
	if _, ok := view.Instances[contract.Instance(1, "").ID]; !ok {
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
	b, svc := e.B, contract.Service(what)
	const ttl = 2 * time.Second
	i := contract.Instance(1, "x")
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

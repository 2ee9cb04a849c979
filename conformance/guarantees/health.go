package guarantees

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/contract"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

// healthChecks measures Junction's health checking on the target: a gateway
// over it runs an HTTP check (every 100 ms, fall 2, rise 2) of a loopback
// target that starts failing and then recovers; a watcher on the store
// counts the health changes it receives.
func healthChecks(ctx context.Context, e *Env) Outcome {
	const interval, fall, rise = 100 * time.Millisecond, 2, 2
	var failing atomic.Bool
	probed := make(chan struct{})
	var once sync.Once
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(probed) })
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()
	cfg := gateway.DefaultConfig()
	cfg.HealthLease, cfg.HealthScan = time.Second, 50*time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)
	gw, err := gateway.ServeLoopback(e.B, cfg)
	if err != nil {
		return errOutcome(err)
	}
	defer gw.Close()
	reg := pb.NewRegistryServiceClient(gw.Conn)
	svc := contract.Service("health")
	registered := time.Now()
	resp, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: svc.Namespace, Group: svc.Group, Service: svc.Service,
		Ip: "10.0.0.1", Port: 80, Check: &pb.HealthCheck{Kind: "http", Target: target.URL,
			Interval: durationpb.New(interval), Rise: rise, Fall: fall}})
	if err != nil {
		if errors.Is(pb.Error(err), model.ErrUnsupported) {
			return na(pb.Error(err).Error())
		}
		return errOutcome(pb.Error(err))
	}
	defer func() {
		_, _ = reg.DeregisterInstance(context.Background(), &pb.DeregisterInstanceRequest{Namespace: svc.Namespace, Group: svc.Group,
			Service: svc.Service, Id: resp.GetInstance().GetId()})
	}()
	w, err := e.B.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: resp.GetRevision()})
	if err != nil {
		return errOutcome(err)
	}
	defer w.Close()
	// healthyAfter waits for the instance's healthy flag to become want and
	// counts the events that reported a change of it.
	healthyAfter := func(want bool) (time.Duration, int, error) {
		start, changes := time.Now(), 0
		last := !want
		for {
			ev, err := contract.NextEvent(ctx, w, 15*time.Second)
			if err != nil {
				return 0, changes, fmt.Errorf("no healthy=%v within 15s: %w", want, err)
			}
			var in *model.Instance
			switch {
			case ev.Instance != nil:
				in = ev.Instance
			case ev.Type == model.EventReset && len(ev.Instances) == 1:
				in = &ev.Instances[0]
			}
			if in == nil || in.Healthy == last {
				continue
			}
			changes++
			last = in.Healthy
			if in.Healthy == want {
				return time.Since(start), changes, nil
			}
		}
	}
	// The transitions are timed from the first probe: before it, the time
	// is the runner lease's handover (a gateway that held it may have been
	// killed by an earlier scenario and its lease must lapse first).
	select {
	case <-probed:
	case <-time.After(cfg.HealthLease + gateway.DefaultConfig().HealthLease + 5*time.Second):
		return fail(nil, "no gateway probed the check within %v of its registration", time.Since(registered).Round(time.Millisecond))
	case <-ctx.Done():
		return errOutcome(ctx.Err())
	}
	firstProbe := time.Since(registered)
	time.Sleep(rise * interval) // passing probes: the instance stays healthy
	failing.Store(true)
	down, downEvents, err := healthyAfter(false)
	if err != nil {
		return errOutcome(err)
	}
	failing.Store(false)
	up, upEvents, err := healthyAfter(true)
	if err != nil {
		return errOutcome(err)
	}
	// Nothing more may come: a transition is delivered once.
	extra := 0
	for {
		ev, err := contract.NextEvent(ctx, w, 5*interval)
		if err != nil {
			break
		}
		if ev.Instance != nil || ev.Type == model.EventReset {
			extra++
		}
	}
	figs := []Figure{fig("first probe after", firstProbe.Seconds()*1000, "ms"), fig("unhealthy after", down.Seconds()*1000, "ms"), fig("healthy again after", up.Seconds()*1000, "ms"),
		fig("events per transition", float64(downEvents+upEvents+extra)/2, "")}
	bound := time.Duration(max(fall, rise))*interval + time.Second
	switch {
	case down > bound || up > bound:
		return fail(figs, "transitions took %v and %v, bound %v (threshold × interval + 1 s)", down.Round(time.Millisecond), up.Round(time.Millisecond), bound)
	case downEvents != 1 || upEvents != 1 || extra != 0:
		return fail(figs, "a transition must reach a watcher once: %d and %d events, %d more after", downEvents, upEvents, extra)
	}
	return pass(figs...)
}

package sdk

import (
	"cmp"
	"context"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// Snapshot is a subscriber's view of a service after a change.
type Snapshot struct {
	Service model.ServiceKey
	// Instances is the whole current set, sorted by id; empty when the
	// service has none (an empty set is always delivered).
	Instances []model.Instance
	// Revision is the store revision the view reflects.
	Revision int64
	// Added, Updated and Removed are the difference from the previous snapshot.
	Added, Updated, Removed []model.Instance
	// Reset is true when the view was rebuilt from the full state because
	// the server could not prove continuity (the diff is still exact).
	Reset bool
	// Protected is true when the service has no instances but push-empty
	// protection (ProtectEmpty) kept the last non-empty set in Instances.
	Protected bool
}

// Subscription keeps an up-to-date view of a service: it lists the service
// at a revision and watches from that same revision, so no change made in
// between is missed; it follows RESETs and reconnects on its own.
type Subscription struct {
	c       *Client
	svc     model.ServiceKey
	protect bool
	updates chan Snapshot
	cancel  context.CancelFunc
	done    chan struct{}

	mu   sync.Mutex
	view map[string]model.Instance
	rev  int64
	last Snapshot
	err  error
}

// Subscribe starts following service. The first snapshot (possibly empty)
// is available from Updates as soon as Subscribe returns.
func (c *Client) Subscribe(ctx context.Context, service string, opts ...CallOption) (*Subscription, error) {
	o := c.call(opts)
	svc := o.service(service)
	if err := svc.Validate(); err != nil {
		return nil, err
	}
	insts, rev, err := c.Instances(ctx, service, opts...)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	s := &Subscription{c: c, svc: svc, protect: o.protectEmpty, updates: make(chan Snapshot, 1), cancel: cancel,
		done: make(chan struct{}), view: map[string]model.Instance{}}
	s.apply(insts, rev, true)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(s.done)
		select {
		case <-c.stop:
			cancel()
		case <-wctx.Done():
		}
	}()
	go s.follow(wctx)
	return s, nil
}

// Updates delivers snapshots. It holds at most one: a slow reader gets the
// latest view, never a stale backlog, and never slows the subscription.
func (s *Subscription) Updates() <-chan Snapshot { return s.updates }

// Current returns the latest snapshot.
func (s *Subscription) Current() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.cancel()
	<-s.done
}

// follow watches from the last revision seen, reconnecting with backoff.
// After an interruption it lists the service again and watches from that
// list's revision: the gateway it reaches may serve a different history
// (a restored or replaced store) whose revisions are not comparable with
// the old ones. The diff against the view keeps snapshots exact.
func (s *Subscription) follow(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for resync := false; ctx.Err() == nil; resync = true {
		var err error
		if resync {
			var insts []model.Instance
			var rev int64
			if insts, rev, err = s.c.Instances(ctx, s.svc.Service, InNamespace(s.svc.Namespace), InGroup(s.svc.Group)); err == nil {
				s.resync(insts, rev)
			}
		}
		s.mu.Lock()
		rev := s.rev
		s.mu.Unlock()
		var stream instanceStream
		stop := func() {}
		if err == nil {
			stream, stop, err = s.c.mux.watchInstances(ctx, &pb.WatchInstancesRequest{Namespace: s.svc.Namespace,
				Group: s.svc.Group, Service: s.svc.Service, Revision: rev})
		}
		for err == nil {
			var ev *pb.InstanceEvent
			if ev, err = stream.Recv(); err == nil {
				backoff = 100 * time.Millisecond
				s.event(ev)
			}
		}
		stop()
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.err = wireErr(err)
		s.mu.Unlock()
		s.c.log.Debug("subscription interrupted; resuming", "service", s.svc.String(), "revision", rev, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (s *Subscription) event(ev *pb.InstanceEvent) {
	switch ev.Type {
	case pb.EventType_RESET:
		s.apply(pb.ModelInstances(ev.Instances), ev.Revision, true)
	case pb.EventType_PUT, pb.EventType_DELETE:
		s.mu.Lock()
		next := maps.Clone(s.view)
		s.mu.Unlock()
		if ev.Type == pb.EventType_PUT {
			next[ev.Instance.Id] = ev.Instance.Model()
		} else {
			delete(next, ev.Instance.Id)
		}
		s.apply(slices.Collect(maps.Values(next)), ev.Revision, false)
	}
}

// resync applies a fresh list, whose revision replaces the old one.
func (s *Subscription) resync(insts []model.Instance, rev int64) {
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
	s.apply(insts, rev, true)
}

// apply replaces the view and publishes the snapshot with its diff.
func (s *Subscription) apply(insts []model.Instance, rev int64, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]model.Instance, len(insts))
	for _, i := range insts {
		next[i.ID] = i
	}
	snap := Snapshot{Service: s.svc, Revision: rev, Reset: reset}
	for id, i := range next {
		old, ok := s.view[id]
		switch {
		case !ok:
			snap.Added = append(snap.Added, i)
		case !sameInstance(old, i):
			snap.Updated = append(snap.Updated, i)
		}
	}
	for id, i := range s.view {
		if _, ok := next[id]; !ok {
			snap.Removed = append(snap.Removed, i)
		}
	}
	s.view, s.rev, s.err = next, max(s.rev, rev), nil
	snap.Instances = sorted(next)
	if len(snap.Instances) == 0 && s.protect && len(s.last.Instances) > 0 {
		snap.Instances, snap.Protected = s.last.Instances, true
	}
	s.last = snap
	select { // latest wins: drop an unread older snapshot
	case <-s.updates:
	default:
	}
	s.updates <- snap
}

func sameInstance(a, b model.Instance) bool {
	a.Revision, b.Revision = 0, 0
	return reflect.DeepEqual(a, b)
}

func sorted(m map[string]model.Instance) []model.Instance {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b model.Instance) int { return cmp.Compare(a.ID, b.ID) })
	if out == nil {
		out = []model.Instance{}
	}
	return out
}

// ErrNoInstance is returned by SelectOneHealthy when no instance is healthy
// and enabled; it matches model.ErrNotFound.
var ErrNoInstance = &model.FieldError{Field: "service", Reason: "no healthy, enabled instance", Kind: model.ErrNotFound}

// SelectOneHealthy picks one healthy, enabled instance of service at random,
// in proportion to the instances' weights, from a fresh list. A subscriber
// picks from its view instead, with Subscription.SelectOneHealthy.
func (c *Client) SelectOneHealthy(ctx context.Context, service string, opts ...CallOption) (model.Instance, error) {
	insts, _, err := c.Instances(ctx, service, opts...)
	if err != nil {
		return model.Instance{}, err
	}
	return pickWeighted(insts)
}

// SelectOneHealthy picks from the subscription's current view, without a call.
func (s *Subscription) SelectOneHealthy() (model.Instance, error) {
	return pickWeighted(s.Current().Instances)
}

func pickWeighted(insts []model.Instance) (model.Instance, error) {
	var total float64
	for _, i := range insts {
		if i.Healthy && i.Enabled && i.Weight > 0 {
			total += i.Weight
		}
	}
	if total == 0 {
		return model.Instance{}, ErrNoInstance
	}
	x := rand.Float64() * total
	var last model.Instance
	for _, i := range insts {
		if i.Healthy && i.Enabled && i.Weight > 0 {
			if x -= i.Weight; x < 0 {
				return i, nil
			}
			last = i
		}
	}
	return last, nil
}

// Err returns the error that interrupted the subscription's watch, if it is
// currently interrupted (it resumes on its own).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

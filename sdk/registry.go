package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
)

// State is the state of a Client's ephemeral registrations.
type State int

// Registration states, reported to WithStateListener.
const (
	// StateIdle: no ephemeral instance registered yet.
	StateIdle State = iota
	// StateRegistered: the session is alive and every instance is registered.
	StateRegistered
	// StateDisconnected: no gateway answers; the session may still be alive
	// and is kept until its TTL runs out.
	StateDisconnected
	// StateSessionLost: the session expired (a partition or an outage longer
	// than the TTL); the client is creating a new one and registering again.
	StateSessionLost
	// StateClosed: the client was closed.
	StateClosed
)

// String returns the state's name.
func (s State) String() string {
	return [...]string{"idle", "registered", "disconnected", "session-lost", "closed"}[s]
}

// Registration is an instance the client keeps registered.
type Registration struct {
	c          *Client
	key        regKey
	inst       model.Instance
	persistent bool
	check      *health.Check
	registered bool // under the current session
}

type regKey struct {
	svc model.ServiceKey
	id  string
}

// Instance returns the registered instance (id and cluster filled in).
func (r *Registration) Instance() model.Instance { return r.inst.Clone() }

// Service returns the service the instance belongs to.
func (r *Registration) Service() model.ServiceKey { return r.key.svc }

// Deregister removes the instance and stops keeping it registered.
func (r *Registration) Deregister(ctx context.Context) error {
	return r.c.keeper.deregister(ctx, r)
}

// registrar owns the client's session and its ephemeral registrations, and
// keeps them alive: it heartbeats the session and, when the session is lost,
// creates a new one and registers everything again ("redo").
type registrar struct {
	c     *Client
	mu    sync.Mutex
	sess  string
	owned map[regKey]*Registration
	state State
	wake  chan struct{}
}

func (r *registrar) init(c *Client) {
	r.c, r.owned, r.wake = c, map[regKey]*Registration{}, make(chan struct{}, 1)
	c.wg.Add(1)
	go r.keep()
}

func (r *registrar) setState(s State, err error) {
	r.mu.Lock()
	changed := r.state != s
	r.state = s
	r.mu.Unlock()
	if changed {
		r.c.log.Info("registration state", "state", s.String(), "err", err)
		if r.c.opts.onState != nil {
			r.c.opts.onState(s, err)
		}
	}
}

// State returns the current registration state.
func (c *Client) State() State {
	c.keeper.mu.Lock()
	defer c.keeper.mu.Unlock()
	return c.keeper.state
}

// Register registers an instance of service. The instance is enabled
// (unless Disabled() is given; Instance.Enabled and Healthy are not read:
// health comes from the server) and a zero Weight means 1. By default it is
// ephemeral: the client's session keeps it alive, and the client registers
// it again whenever the session is lost, so a registration is never left
// lost. With Persistent() it stays until deregistered. Register returns
// once the instance is registered, or with ctx's error.
func (c *Client) Register(ctx context.Context, service string, inst model.Instance, opts ...CallOption) (*Registration, error) {
	o := c.call(opts)
	svc := o.service(service)
	if err := svc.Validate(); err != nil {
		return nil, err
	}
	inst.Ephemeral, inst.Session, inst.Enabled, inst.Healthy = false, "", !o.disabled, true
	if inst.Weight == 0 {
		inst.Weight = 1
	}
	if err := inst.Normalize(); err != nil {
		return nil, err
	}
	reg := &Registration{c: c, key: regKey{svc, inst.ID}, inst: inst, persistent: o.persistent, check: o.check}
	if o.persistent {
		if err := c.sendRegister(ctx, reg, ""); err != nil {
			return nil, err
		}
		return reg, nil
	}
	reg.inst.Ephemeral = true
	r := &c.keeper
	r.mu.Lock()
	if old, ok := r.owned[reg.key]; ok {
		old.registered = false
	}
	r.owned[reg.key] = reg
	r.mu.Unlock()
	for {
		sess, err := r.session(ctx)
		if err == nil {
			err = c.sendRegister(ctx, reg, sess)
			if err == nil {
				r.mu.Lock()
				reg.registered = r.sess == sess
				r.mu.Unlock()
				r.setState(StateRegistered, nil)
				return reg, nil
			}
			if errors.Is(err, model.ErrSessionExpired) {
				r.lost(sess)
				continue
			}
		}
		if model.Kind(err) != model.ErrUnavailable || ctx.Err() != nil {
			r.mu.Lock()
			if r.owned[reg.key] == reg {
				delete(r.owned, reg.key)
			}
			r.mu.Unlock()
			return nil, err
		}
		select { // a gateway may come back: keep trying until ctx ends
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Client) sendRegister(ctx context.Context, reg *Registration, sess string) error {
	i := reg.inst
	ephemeral := !reg.persistent
	weight, enabled := i.Weight, i.Enabled
	req := &pb.RegisterInstanceRequest{Namespace: reg.key.svc.Namespace,
		Group: reg.key.svc.Group, Service: reg.key.svc.Service, Id: i.ID, Ip: i.IP, Port: int32(i.Port), Cluster: i.Cluster,
		Weight: &weight, Metadata: i.Metadata, Ephemeral: &ephemeral, Enabled: &enabled, Session: sess}
	if ck := reg.check; ck != nil {
		req.Check = &pb.HealthCheck{Kind: string(ck.Kind), Target: ck.Target, ExpectStatus: int32(ck.ExpectStatus),
			GrpcService: ck.GRPCService, Rise: int32(ck.Rise), Fall: int32(ck.Fall)}
		if ck.Interval != 0 {
			req.Check.Interval = durationpb.New(ck.Interval)
		}
		if ck.Timeout != 0 {
			req.Check.Timeout = durationpb.New(ck.Timeout)
		}
	}
	_, err := c.reg.RegisterInstance(ctx, req)
	return wireErr(err)
}

// session returns the current session, creating one if there is none.
func (r *registrar) session(ctx context.Context) (string, error) {
	r.mu.Lock()
	sess := r.sess
	r.mu.Unlock()
	if sess != "" {
		return sess, nil
	}
	s, err := r.c.reg.CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(r.c.opts.sessionTTL)})
	if err != nil {
		return "", wireErr(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess == "" {
		r.sess = s.Id
		for _, reg := range r.owned {
			reg.registered = false
		}
	}
	return r.sess, nil
}

// lost forgets a session the gateway no longer knows.
func (r *registrar) lost(sess string) {
	r.mu.Lock()
	if r.sess == sess {
		r.sess = ""
	}
	r.mu.Unlock()
	r.setState(StateSessionLost, model.ErrSessionExpired)
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *registrar) deregister(ctx context.Context, reg *Registration) error {
	r.mu.Lock()
	if r.owned[reg.key] == reg {
		delete(r.owned, reg.key)
	}
	r.mu.Unlock()
	_, err := r.c.reg.DeregisterInstance(ctx, &pb.DeregisterInstanceRequest{Namespace: reg.key.svc.Namespace,
		Group: reg.key.svc.Group, Service: reg.key.svc.Service, Id: reg.key.id})
	if err = wireErr(err); errors.Is(err, model.ErrNotFound) {
		return nil
	}
	return err
}

// keep heartbeats the session every TTL/3 (faster while it is not healthy)
// and registers again whatever the current session lacks.
func (r *registrar) keep() {
	defer r.c.wg.Done()
	every := r.c.opts.sessionTTL / 3
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-r.c.stop:
			return
		case <-t.C:
		case <-r.wake:
		}
		next := every
		if !r.tick() {
			next = min(every, 500*time.Millisecond)
		}
		t.Reset(next)
	}
}

// tick does one round of keeping alive; it reports whether all is well.
func (r *registrar) tick() bool {
	r.mu.Lock()
	sess, n := r.sess, len(r.owned)
	r.mu.Unlock()
	if n == 0 && sess == "" {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.c.opts.rpcTimeout)
	defer cancel()
	if sess != "" {
		_, err := r.c.reg.KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: sess})
		switch err = wireErr(err); {
		case errors.Is(err, model.ErrSessionExpired):
			r.lost(sess)
			sess = ""
		case err != nil:
			r.setState(StateDisconnected, err)
			return false
		}
	}
	if n == 0 {
		return true
	}
	sess, err := r.session(ctx)
	if err != nil {
		r.setState(StateDisconnected, err)
		return false
	}
	r.mu.Lock()
	var todo []*Registration
	for _, reg := range r.owned {
		if !reg.registered {
			todo = append(todo, reg)
		}
	}
	r.mu.Unlock()
	for _, reg := range todo {
		err := r.c.sendRegister(ctx, reg, sess)
		switch {
		case errors.Is(err, model.ErrSessionExpired):
			r.lost(sess)
			return false
		case err != nil:
			r.setState(StateDisconnected, err)
			return false
		}
		r.mu.Lock()
		reg.registered = r.sess == sess && r.owned[reg.key] == reg
		r.mu.Unlock()
		r.c.log.Info("registered again", "service", reg.key.svc.String(), "id", reg.key.id)
	}
	r.setState(StateRegistered, nil)
	return true
}

// close ends the session, which removes every ephemeral instance at once.
func (r *registrar) close() error {
	r.mu.Lock()
	sess := r.sess
	r.sess = ""
	clear(r.owned)
	r.mu.Unlock()
	defer r.setState(StateClosed, nil)
	if sess == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := r.c.reg.DeleteSession(ctx, &pb.DeleteSessionRequest{Id: sess})
	if err = wireErr(err); err != nil && !errors.Is(err, model.ErrSessionExpired) {
		return fmt.Errorf("close session: %w", err)
	}
	return nil
}

// Instances lists every instance of service and the revision the list
// reflects.
func (c *Client) Instances(ctx context.Context, service string, opts ...CallOption) ([]model.Instance, int64, error) {
	o := c.call(opts)
	resp, err := c.reg.ListInstances(ctx, &pb.ListInstancesRequest{Namespace: o.namespace, Group: o.group,
		Service: service, Stale: o.stale})
	if err != nil {
		return nil, 0, wireErr(err)
	}
	return pb.ModelInstances(resp.Instances), resp.Revision, nil
}

// Services lists the services of the namespace (of every group unless
// InGroup is given).
func (c *Client) Services(ctx context.Context, opts ...CallOption) ([]model.ServiceSummary, error) {
	o := callOptions{namespace: c.opts.namespace}
	for _, opt := range opts {
		opt(&o)
	}
	req := &pb.ListServicesRequest{Namespace: o.namespace, Group: o.group, PageSize: 1000, Stale: o.stale}
	var out []model.ServiceSummary
	for {
		resp, err := c.reg.ListServices(ctx, req)
		if err != nil {
			return nil, wireErr(err)
		}
		for _, s := range resp.Services {
			out = append(out, model.ServiceSummary{Key: model.ServiceKey{Namespace: s.Namespace, Group: s.Group,
				Service: s.Service}, Instances: int(s.Instances), Healthy: int(s.Healthy)})
		}
		if req.PageToken = resp.NextPageToken; req.PageToken == "" {
			return out, nil
		}
	}
}

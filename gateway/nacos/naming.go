package nacos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// groupSep joins a group and a service in Nacos' full service names.
const groupSep = "@@"

// serviceKey maps a request's namespace, group and service onto
// Junction's; a service name may carry its group ("GROUP@@name").
func serviceKey(namespace, group, service string) (model.ServiceKey, error) {
	if g, name, found := strings.Cut(service, groupSep); found {
		group, service = cmp.Or(group, g), name
	}
	k := model.ServiceKey{Namespace: namespace, Group: group, Service: service}.WithDefaults()
	if k.Namespace == model.SystemNamespace {
		return k, fmt.Errorf("namespace %s is Junction's own: %w", k.Namespace, model.ErrPermissionDenied)
	}
	return k, k.Validate()
}

// instanceID is the id Junction keeps a Nacos instance under: Nacos tells
// instances apart by address and cluster.
func instanceID(ip string, port uint64, cluster string) string {
	id := model.DefaultInstanceID(ip, int(port))
	if cluster != "" && cluster != model.DefaultCluster {
		id += "@" + cluster
	}
	return id
}

func toInstance(in instance) model.Instance {
	return model.Instance{ID: instanceID(in.IP, in.Port, in.ClusterName), IP: in.IP, Port: int(in.Port),
		Cluster: in.ClusterName, Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled,
		Ephemeral: in.Ephemeral, Metadata: in.Metadata}
}

func fromInstance(svc model.ServiceKey, i model.Instance) instance {
	cluster := cmp.Or(i.Cluster, model.DefaultCluster)
	if i.Metadata == nil {
		i.Metadata = map[string]string{} // clients expect an object, never null
	}
	return instance{InstanceID: i.ID, IP: i.IP, Port: uint64(i.Port), Weight: i.Weight, Healthy: i.Healthy,
		Enabled: i.Enabled, Ephemeral: i.Ephemeral, ClusterName: cluster,
		ServiceName: svc.Group + groupSep + svc.Service, Metadata: i.Metadata}
}

// info is what a client caches of a service: the instances of the
// clusters it asked for (all when none), healthy or not (it picks), or
// only the healthy ones when asked. Below the protect threshold's share of
// healthy instances, as Nacos does, every instance is returned as healthy
// and the answer says the threshold was reached.
func info(svc model.ServiceKey, clusters string, insts []model.Instance, healthyOnly bool, threshold float64, ref uint64) serviceInfo {
	want := map[string]bool{}
	for _, c := range strings.Split(clusters, ",") {
		if c = strings.TrimSpace(c); c != "" {
			want[c] = true
		}
	}
	out := serviceInfo{Name: svc.Service, GroupName: svc.Group, Clusters: clusters, CacheMillis: 10000,
		Hosts: []instance{}, LastRefTime: ref, Valid: true}
	var all []model.Instance
	healthy := 0
	for _, i := range insts {
		if len(want) > 0 && !want[cmp.Or(i.Cluster, model.DefaultCluster)] {
			continue
		}
		all = append(all, i)
		if i.Healthy {
			healthy++
		}
	}
	protect := len(all) > 0 && float64(healthy) < threshold*float64(len(all))
	out.ReachProtectionThreshold = protect
	for _, i := range all {
		if protect {
			i.Healthy = true
		} else if healthyOnly && !i.Healthy {
			continue
		}
		out.Hosts = append(out.Hosts, fromInstance(svc, i))
	}
	slices.SortFunc(out.Hosts, func(a, b instance) int { return cmp.Compare(a.InstanceID, b.InstanceID) })
	return out
}

// serviceOf names a naming request's service, and the resource decided.
func serviceOf(req *namingRequest) (model.ServiceKey, []acl.Resource, error) {
	svc, err := serviceKey(req.Namespace, req.GroupName, req.ServiceName)
	return svc, []acl.Resource{serviceRes(svc)}, err
}

func parseInstance(req *instanceRequest) (model.ServiceKey, []acl.Resource, error) {
	return serviceOf(&req.namingRequest)
}

func parseBatch(req *batchInstanceRequest) (model.ServiceKey, []acl.Resource, error) {
	return serviceOf(&req.namingRequest)
}

func parseSubscribe(req *subscribeRequest) (model.ServiceKey, []acl.Resource, error) {
	return serviceOf(&req.namingRequest)
}

func parseQuery(req *serviceQueryRequest) (model.ServiceKey, []acl.Resource, error) {
	return serviceOf(&req.namingRequest)
}

// parseList names a list's scope: a namespace and group; a token is
// needed, and each service is filtered (mayRead).
func parseList(req *serviceListRequest) (model.ServiceKey, []acl.Resource, error) {
	scope, err := serviceKey(req.Namespace, req.GroupName, "-")
	return scope, nil, err
}

func registerInstance(ctx context.Context, s *Server, req *instanceRequest, svc model.ServiceKey) (any, error) {
	return ok(), s.instanceOp(ctx, svc, req.Type, []instance{req.Instance})
}

func batchRegister(ctx context.Context, s *Server, req *batchInstanceRequest, svc model.ServiceKey) (any, error) {
	return ok(), s.instanceOp(ctx, svc, req.Type, req.Instances)
}

// instanceOp registers or deregisters instances: an ephemeral one with
// the session of the connection the request came on.
func (s *Server) instanceOp(ctx context.Context, svc model.ServiceKey, op string, insts []instance) (err error) {
	if len(insts) > maxBatch {
		return fmt.Errorf("%d instances in one request; at most %d: %w", len(insts), maxBatch, model.ErrInvalidArgument)
	}
	// This path is the ephemeral one: a connection's instances, owned by
	// its session (persistent ones come over HTTP, as Nacos has them).
	c, found := s.connOf(ctx)
	if !found {
		return errUnregisteredConn
	}
	var session string
	if op == "deregisterInstance" {
		c.mu.Lock()
		session = c.session // none yet: it owns nothing
		c.mu.Unlock()
		if session == "" {
			return nil
		}
	} else if session, err = c.sessionID(ctx); err != nil {
		return err
	}
	cur, _, err := s.b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return err
	}
	owner := map[string]string{} // id → session, "" for a persistent instance
	for _, i := range cur {
		owner[i.ID] = i.Session
	}
	switch op {
	case "registerInstance", "batchRegisterInstance":
		ids := map[string]bool{}
		for _, in := range insts {
			if !in.Ephemeral {
				return fmt.Errorf("instance %s:%d is persistent: register it over HTTP (the v1 open API), as Nacos clients do: %w", in.IP, in.Port, model.ErrInvalidArgument)
			}
			inst := toInstance(in)
			if o, exists := owner[inst.ID]; exists && o == "" {
				return fmt.Errorf("instance %s of %s is registered as persistent: %w", inst.ID, svc, model.ErrConflict)
			}
			inst.Session = session
			if err := inst.Normalize(); err != nil {
				return err
			}
			if _, err := s.b.Register(ctx, svc, inst); err != nil {
				return err
			}
			ids[inst.ID] = true
		}
		c.mu.Lock()
		c.grants[svc] = secretOf(ctx) // asked again at each keepalive
		c.mu.Unlock()
		if op == "batchRegisterInstance" {
			// A batch is the connection's whole set for the service.
			for id, o := range owner {
				if o == session && !ids[id] {
					if _, err := s.b.Deregister(ctx, svc, id); err != nil && !errors.Is(err, model.ErrNotFound) {
						return err
					}
				}
			}
		}
		return nil
	case "deregisterInstance":
		for _, in := range insts {
			// Only the connection's own: another client's instance, or a
			// persistent one, stays (and the request succeeds, as in Nacos).
			id := instanceID(in.IP, in.Port, in.ClusterName)
			if owner[id] != session {
				continue
			}
			if _, err := s.b.Deregister(ctx, svc, id); err != nil && !errors.Is(err, model.ErrNotFound) {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("instance request type %q: %w", op, model.ErrInvalidArgument)
}

// maxBatch bounds the instances of one batch request.
const maxBatch = 1000

func queryService(ctx context.Context, s *Server, req *serviceQueryRequest, svc model.ServiceKey) (any, error) {
	type queryServiceResponse struct {
		response
		ServiceInfo serviceInfo `json:"serviceInfo"`
	}
	insts, _, err := s.b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return nil, err
	}
	return queryServiceResponse{response: ok(),
		ServiceInfo: info(svc, req.Cluster, insts, req.HealthyOnly, s.threshold(ctx, svc), uint64(time.Now().UnixMilli()))}, nil
}

func listServices(ctx context.Context, s *Server, req *serviceListRequest, scope model.ServiceKey) (any, error) {
	type serviceListResponse struct {
		response
		Count        int      `json:"count"`
		ServiceNames []string `json:"serviceNames"`
	}
	ns, group := scope.Namespace, scope.Group
	list, _, err := s.b.Services(ctx, ns, group, model.ServiceKey{Namespace: ns}, 0, backends.ReadOptions{})
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, sv := range list {
		if s.mayRead(ctx, serviceRes(sv.Key)) {
			names = append(names, sv.Key.Service)
		}
	}
	return serviceListResponse{response: ok(), Count: len(names), ServiceNames: page(names, req.PageNo, req.PageSize)}, nil
}

// page returns page no (from 1) of size (1 to 1000, default 10) of names.
func page(names []string, no, size int) []string {
	if size <= 0 {
		size = 10
	}
	size = min(size, 1000)
	no = max(no, 1)
	if no-1 > len(names)/size {
		return []string{}
	}
	from := min((no-1)*size, len(names))
	return names[from:min(from+size, len(names))]
}

// subscription pushes a service's instances to one connection at each
// change.
type subscription struct {
	stop context.CancelFunc
}

func subscribe(ctx context.Context, s *Server, req *subscribeRequest, svc model.ServiceKey) (any, error) {
	type subscribeServiceResponse struct {
		response
		ServiceInfo serviceInfo `json:"serviceInfo"`
	}
	c, found := s.connOf(ctx)
	if !found {
		return nil, errUnregisteredConn
	}
	if !req.Subscribe {
		c.unsubscribe(svc)
		return subscribeServiceResponse{response: ok(), ServiceInfo: info(svc, req.Clusters, nil, false, 0, 0)}, nil
	}
	first, err := c.subscribe(ctx, svc, *req, secretOf(ctx))
	if err != nil {
		return nil, err
	}
	return subscribeServiceResponse{response: ok(), ServiceInfo: first}, nil
}

func (c *conn) unsubscribe(svc model.ServiceKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sub := c.subs[svc]; sub != nil {
		sub.stop()
		delete(c.subs, svc)
	}
}

// subscribe starts (or restarts) the connection's subscription to svc:
// the instances now, for the response, then a push after changes, for as
// long as the connection lives. Events that arrive together make one push.
func (c *conn) subscribe(ctx context.Context, svc model.ServiceKey, req subscribeRequest, secret string) (serviceInfo, error) {
	insts, rd, err := c.s.b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return serviceInfo{}, err
	}
	subCtx, stop := context.WithCancel(c.ctx)
	c.mu.Lock()
	if old := c.subs[svc]; old != nil {
		old.stop()
	} else if len(c.subs) >= maxPerConn {
		c.mu.Unlock()
		stop()
		return serviceInfo{}, fmt.Errorf("a connection subscribes to at most %d services: %w", maxPerConn, model.ErrInvalidArgument)
	}
	c.subs[svc] = &subscription{stop: stop}
	c.mu.Unlock()
	ref := &refTime{}
	first := info(svc, req.Clusters, insts, false, c.s.threshold(ctx, svc), ref.next())
	view := map[string]model.Instance{}
	for _, i := range insts {
		view[i.ID] = i
	}
	events := make(chan model.Event, 256)
	go c.s.follow(subCtx, backends.WatchRequest{Service: &svc}, rd.Revision, events)
	go func() {
		type notifySubscriberRequest struct {
			namingRequest
			Module      string      `json:"module"`
			ServiceInfo serviceInfo `json:"serviceInfo"`
		}
		apply := func(e model.Event) {
			switch e.Type {
			case model.EventReset:
				clear(view)
				for _, i := range e.Instances {
					view[i.ID] = i
				}
			case model.EventPut:
				if e.Instance != nil {
					view[e.Instance.ID] = *e.Instance
				}
			case model.EventDelete:
				if e.Instance != nil {
					delete(view, e.Instance.ID)
				}
			}
		}
		for {
			select {
			case <-subCtx.Done():
				return
			case e := <-events:
				apply(e)
			}
			for drained := false; !drained; { // the rest of a burst, into the same push
				select {
				case e := <-events:
					apply(e)
				default:
					drained = true
				}
			}
			// A token that lost the right (revoked, expired, a policy
			// changed) gets no more pushes.
			if !c.s.mayRead(withSecret(c.ctx, c.tokenFor(secret)), serviceRes(svc)) {
				c.unsubscribe(svc)
				return
			}
			now := make([]model.Instance, 0, len(view))
			for _, i := range view {
				now = append(now, i)
			}
			n := notifySubscriberRequest{namingRequest: namingRequest{request: request{RequestID: c.pushID()},
				Namespace: svc.Namespace, ServiceName: svc.Service, GroupName: svc.Group}, Module: "naming",
				ServiceInfo: info(svc, req.Clusters, now, false, c.s.threshold(c.ctx, svc), ref.next())}
			if err := c.push("NotifySubscriberRequest", n); err != nil {
				return
			}
		}
	}()
	return first, nil
}

// maxPerConn bounds one connection's subscriptions, and its listens.
const maxPerConn = 10000

// refTime gives a subscription's pushes increasing times: a client drops
// a push no newer than the last it has.
type refTime struct{ last uint64 }

func (r *refTime) next() uint64 {
	r.last = max(r.last+1, uint64(time.Now().UnixMilli()))
	return r.last
}

package nacos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
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
	return k, k.Validate()
}

// instanceID is the id Junction keeps a Nacos instance under: Nacos tells
// instances apart by address and cluster.
func instanceID(ip string, port uint64, cluster string) string {
	id := fmt.Sprintf("%s:%d", ip, port)
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
	return instance{InstanceID: i.ID, IP: i.IP, Port: uint64(i.Port), Weight: i.Weight, Healthy: i.Healthy,
		Enabled: i.Enabled, Ephemeral: i.Ephemeral, ClusterName: cluster,
		ServiceName: svc.Group + groupSep + svc.Service, Metadata: i.Metadata}
}

// info is what a client caches of a service: the instances of the
// clusters it asked for (all when none), healthy or not (it picks).
func info(svc model.ServiceKey, clusters string, insts []model.Instance, healthyOnly bool, ref uint64) serviceInfo {
	want := map[string]bool{}
	for _, c := range strings.Split(clusters, ",") {
		if c = strings.TrimSpace(c); c != "" {
			want[c] = true
		}
	}
	out := serviceInfo{Name: svc.Service, GroupName: svc.Group, Clusters: clusters, CacheMillis: 10000,
		Hosts: []instance{}, LastRefTime: ref, Valid: true}
	for _, i := range insts {
		if (len(want) > 0 && !want[cmp.Or(i.Cluster, model.DefaultCluster)]) || (healthyOnly && !i.Healthy) {
			continue
		}
		out.Hosts = append(out.Hosts, fromInstance(svc, i))
	}
	slices.SortFunc(out.Hosts, func(a, b instance) int { return cmp.Compare(a.InstanceID, b.InstanceID) })
	return out
}

func registerInstance(ctx context.Context, s *Server, body []byte) (string, any) {
	var req instanceRequest
	if err := decode(body, &req); err != nil {
		return "InstanceResponse", failure(err)
	}
	if err := s.instanceOp(ctx, req.namingRequest, req.Type, []instance{req.Instance}); err != nil {
		if errors.Is(err, errUnregisteredConn) {
			return "ErrorResponse", fail(errUnregistered, err.Error())
		}
		return "InstanceResponse", failure(err)
	}
	return "InstanceResponse", ok()
}

func batchRegister(ctx context.Context, s *Server, body []byte) (string, any) {
	var req batchInstanceRequest
	if err := decode(body, &req); err != nil {
		return "BatchInstanceResponse", failure(err)
	}
	if err := s.instanceOp(ctx, req.namingRequest, req.Type, req.Instances); err != nil {
		if errors.Is(err, errUnregisteredConn) {
			return "ErrorResponse", fail(errUnregistered, err.Error())
		}
		return "BatchInstanceResponse", failure(err)
	}
	return "BatchInstanceResponse", ok()
}

// instanceOp registers or deregisters instances: an ephemeral one with
// the session of the connection the request came on.
func (s *Server) instanceOp(ctx context.Context, req namingRequest, op string, insts []instance) error {
	svc, err := serviceKey(req.Namespace, req.GroupName, req.ServiceName)
	if err != nil {
		return err
	}
	switch op {
	case "registerInstance", "batchRegisterInstance":
		for _, in := range insts {
			inst := toInstance(in)
			if inst.Ephemeral {
				c, found := s.connOf(ctx)
				if !found {
					return errUnregisteredConn
				}
				if inst.Session, err = c.sessionID(ctx); err != nil {
					return err
				}
			}
			if err := inst.Normalize(); err != nil {
				return err
			}
			if _, err := s.b.Register(ctx, svc, inst); err != nil {
				return err
			}
		}
		return nil
	case "deregisterInstance":
		for _, in := range insts {
			_, err := s.b.Deregister(ctx, svc, instanceID(in.IP, in.Port, in.ClusterName))
			if err != nil && !errors.Is(err, model.ErrNotFound) {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("instance request type %q: %w", op, model.ErrInvalidArgument)
}

func queryService(ctx context.Context, s *Server, body []byte) (string, any) {
	type queryServiceResponse struct {
		response
		ServiceInfo serviceInfo `json:"serviceInfo"`
	}
	var req serviceQueryRequest
	if err := decode(body, &req); err != nil {
		return "QueryServiceResponse", failure(err)
	}
	svc, err := serviceKey(req.Namespace, req.GroupName, req.ServiceName)
	if err != nil {
		return "QueryServiceResponse", failure(err)
	}
	insts, _, err := s.b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return "QueryServiceResponse", failure(err)
	}
	return "QueryServiceResponse", queryServiceResponse{response: ok(),
		ServiceInfo: info(svc, req.Cluster, insts, req.HealthyOnly, uint64(time.Now().UnixMilli()))}
}

func listServices(ctx context.Context, s *Server, body []byte) (string, any) {
	type serviceListResponse struct {
		response
		Count        int      `json:"count"`
		ServiceNames []string `json:"serviceNames"`
	}
	var req serviceListRequest
	if err := decode(body, &req); err != nil {
		return "ServiceListResponse", failure(err)
	}
	ns := cmp.Or(req.Namespace, model.DefaultNamespace)
	group := cmp.Or(req.GroupName, model.DefaultGroup)
	list, _, err := s.b.Services(ctx, ns, group, model.ServiceKey{Namespace: ns}, 0, backends.ReadOptions{})
	if err != nil {
		return "ServiceListResponse", failure(err)
	}
	names := []string{}
	for _, sv := range list {
		names = append(names, sv.Key.Service)
	}
	size := cmp.Or(req.PageSize, 10)
	page := max(req.PageNo, 1)
	from := min((page-1)*size, len(names))
	return "ServiceListResponse", serviceListResponse{response: ok(), Count: len(names), ServiceNames: names[from:min(from+size, len(names))]}
}

// subscription pushes a service's instances to one connection at each
// change.
type subscription struct {
	stop context.CancelFunc
}

func subscribe(ctx context.Context, s *Server, body []byte) (string, any) {
	type subscribeServiceResponse struct {
		response
		ServiceInfo serviceInfo `json:"serviceInfo"`
	}
	var req subscribeRequest
	if err := decode(body, &req); err != nil {
		return "SubscribeServiceResponse", failure(err)
	}
	svc, err := serviceKey(req.Namespace, req.GroupName, req.ServiceName)
	if err != nil {
		return "SubscribeServiceResponse", failure(err)
	}
	c, found := s.connOf(ctx)
	if !found {
		return "ErrorResponse", fail(errUnregistered, errUnregisteredConn.Error())
	}
	if !req.Subscribe {
		c.unsubscribe(svc)
		return "SubscribeServiceResponse", subscribeServiceResponse{response: ok(), ServiceInfo: info(svc, req.Clusters, nil, false, 0)}
	}
	first, err := c.subscribe(ctx, svc, req)
	if err != nil {
		return "SubscribeServiceResponse", failure(err)
	}
	return "SubscribeServiceResponse", subscribeServiceResponse{response: ok(), ServiceInfo: first}
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
// the instances now, for the response, then a push at each change after
// them, for as long as the connection lives.
func (c *conn) subscribe(ctx context.Context, svc model.ServiceKey, req subscribeRequest) (serviceInfo, error) {
	insts, rd, err := c.s.b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return serviceInfo{}, err
	}
	w, err := c.s.b.Watch(c.ctx, backends.WatchRequest{Service: &svc, FromRevision: rd.Revision})
	if err != nil {
		return serviceInfo{}, err
	}
	subCtx, stop := context.WithCancel(c.ctx)
	c.mu.Lock()
	if old := c.subs[svc]; old != nil {
		old.stop()
	}
	c.subs[svc] = &subscription{stop: stop}
	c.mu.Unlock()
	ref := &refTime{}
	first := info(svc, req.Clusters, insts, false, ref.next())
	view := map[string]model.Instance{}
	for _, i := range insts {
		view[i.ID] = i
	}
	var once sync.Once
	go func() {
		defer once.Do(func() { w.Close() })
		for {
			e, err := w.Next(subCtx)
			if err != nil {
				if subCtx.Err() == nil {
					c.s.log.Warn("a subscription's watch ended: the client re-subscribes after a reconnect", "service", svc, "err", err)
					c.stop() // the client's redo subscribes again on a new connection
				}
				return
			}
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
			type notifySubscriberRequest struct {
				namingRequest
				Module      string      `json:"module"`
				ServiceInfo serviceInfo `json:"serviceInfo"`
			}
			now := make([]model.Instance, 0, len(view))
			for _, i := range view {
				now = append(now, i)
			}
			n := notifySubscriberRequest{namingRequest: namingRequest{request: request{RequestID: c.pushID()},
				Namespace: svc.Namespace, ServiceName: svc.Service, GroupName: svc.Group}, Module: "naming",
				ServiceInfo: info(svc, req.Clusters, now, false, ref.next())}
			if err := c.push("NotifySubscriberRequest", n); err != nil {
				return
			}
		}
	}()
	return first, nil
}

// refTime gives a subscription's pushes increasing times: a client drops
// a push no newer than the last it has.
type refTime struct{ last uint64 }

func (r *refTime) next() uint64 {
	r.last = max(r.last+1, uint64(time.Now().UnixMilli()))
	return r.last
}

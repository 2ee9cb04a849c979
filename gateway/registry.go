package gateway

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
)

// DefaultSessionTTL is the TTL of a session created without one.
const DefaultSessionTTL = 10 * time.Second

type registryService struct {
	pb.UnimplementedRegistryServiceServer
	s *Server
}

// listScope checks the namespace (default public) and optional group of a
// listing.
func listScope(ns, group string) (string, error) {
	if ns == "" {
		ns = model.DefaultNamespace
	}
	if err := model.ValidateName("namespace", ns, model.MaxNameLen); err != nil {
		return "", err
	}
	if group != "" {
		if err := model.ValidateName("group", group, model.MaxNameLen); err != nil {
			return "", err
		}
	}
	return ns, nil
}

func serviceKey(ns, group, svc string) (model.ServiceKey, error) {
	k := model.ServiceKey{Namespace: ns, Group: group, Service: svc}.WithDefaults()
	return k, k.Validate()
}

func (r *registryService) CreateSession(ctx context.Context, req *pb.CreateSessionRequest) (*pb.Session, error) {
	ttl := DefaultSessionTTL
	if req.Ttl != nil {
		if err := req.Ttl.CheckValid(); err != nil {
			return nil, model.Invalid("ttl", "%v", err)
		}
		ttl = req.Ttl.AsDuration()
	}
	if err := model.ValidateTTL(ttl); err != nil {
		return nil, err
	}
	sess, rev, err := r.s.b.CreateSession(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return pb.NewSession(sess, rev), nil
}

func (r *registryService) KeepAliveSession(ctx context.Context, req *pb.KeepAliveSessionRequest) (*pb.Session, error) {
	if req.Id == "" {
		return nil, model.Invalid("id", "must not be empty")
	}
	sess, err := r.s.b.KeepAlive(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	return pb.NewSession(sess, 0), nil
}

func (r *registryService) DeleteSession(ctx context.Context, req *pb.DeleteSessionRequest) (*pb.DeleteSessionResponse, error) {
	if req.Id == "" {
		return nil, model.Invalid("id", "must not be empty")
	}
	rev, err := r.s.b.CloseSession(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	return &pb.DeleteSessionResponse{Revision: rev}, nil
}

func (r *registryService) RegisterInstance(ctx context.Context, req *pb.RegisterInstanceRequest) (*pb.RegisterInstanceResponse, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	if err != nil {
		return nil, err
	}
	inst := model.Instance{ID: req.Id, IP: req.Ip, Port: int(req.Port), Cluster: req.Cluster, Weight: 1,
		Healthy: true, Enabled: true, Ephemeral: req.Session != "", Metadata: req.Metadata, Session: req.Session}
	if req.Weight != nil {
		inst.Weight = *req.Weight
	}
	if req.Enabled != nil {
		inst.Enabled = *req.Enabled
	}
	if req.Healthy != nil {
		inst.Healthy = *req.Healthy
	}
	if req.Ephemeral != nil {
		inst.Ephemeral = *req.Ephemeral
	}
	if err := inst.Normalize(); err != nil {
		return nil, err
	}
	var check health.Check
	if req.Check != nil {
		if check, err = checkFromPB(req.Check, inst); err != nil {
			return nil, err
		}
	}
	rev, err := r.s.b.Register(ctx, key, inst)
	if err != nil {
		return nil, err
	}
	inst.Revision = rev
	if req.Check != nil {
		if _, err := r.s.checks.put(ctx, checkKey(key, inst.ID), checkRecord{Service: key, ID: inst.ID, Check: check}, model.Precondition{}); err != nil {
			return nil, fmt.Errorf("instance registered, its health check not stored: %w", err)
		}
	}
	return &pb.RegisterInstanceResponse{Instance: pb.NewInstance(inst), Revision: rev}, nil
}

func (r *registryService) DeregisterInstance(ctx context.Context, req *pb.DeregisterInstanceRequest) (*pb.DeregisterInstanceResponse, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	if err != nil {
		return nil, err
	}
	if err := model.ValidateInstanceID(req.Id); err != nil {
		return nil, err
	}
	rev, err := r.s.b.Deregister(ctx, key, req.Id)
	if err != nil {
		return nil, err
	}
	if err := r.s.checks.remove(ctx, checkKey(key, req.Id), model.Precondition{}); err != nil {
		r.s.log.Warn("deregistered instance: removing its health check failed; the runner will", "err", err)
	}
	return &pb.DeregisterInstanceResponse{Revision: rev}, nil
}

func (r *registryService) ListInstances(ctx context.Context, req *pb.ListInstancesRequest) (*pb.ListInstancesResponse, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	if err != nil {
		return nil, err
	}
	clusters := map[string]bool{}
	for _, c := range req.Clusters {
		for _, name := range strings.Split(c, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if err := model.ValidateName("clusters", name, model.MaxNameLen); err != nil {
					return nil, err
				}
				clusters[name] = true
			}
		}
	}
	insts, info, err := r.s.b.Instances(ctx, key, backends.ReadOptions{Stale: req.Stale})
	if err != nil {
		return nil, err
	}
	all, healthy := make([]*pb.Instance, 0, len(insts)), make([]*pb.Instance, 0, len(insts))
	for _, i := range insts {
		if len(clusters) > 0 && !clusters[i.Cluster] {
			continue
		}
		p := pb.NewInstance(i)
		all = append(all, p)
		if i.Healthy && i.Enabled {
			healthy = append(healthy, p)
		}
	}
	resp := &pb.ListInstancesResponse{Instances: all, Revision: info.Revision, Consistency: string(info.Consistency), Staleness: staleness(info)}
	if req.HealthyOnly {
		resp.Instances = healthy
		if len(all) > 0 && len(healthy) < len(all) {
			// The protect threshold: below it, every instance is returned.
			set, err := r.s.settings.get(ctx, key)
			if err != nil {
				return nil, err
			}
			if float64(len(healthy)) < set.ProtectThreshold*float64(len(all)) {
				resp.Instances, resp.Protected = all, true
			}
		}
	}
	return resp, nil
}

func (r *registryService) WatchInstances(req *pb.WatchInstancesRequest, stream grpc.ServerStreamingServer[pb.InstanceEvent]) error {
	key, err := instancesTopic(req)
	if err != nil {
		return err
	}
	return serveWatch(stream.Context(), r.s.hub, key, req.Revision, headerReady(stream), func(e *model.Event) error {
		return stream.Send(pb.NewInstanceEvent(*e))
	})
}

// instancesTopic is the hub topic a watch of instances follows.
func instancesTopic(req *pb.WatchInstancesRequest) (topicKey, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	return topicKey{svc: key}, err
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func (r *registryService) ListServices(ctx context.Context, req *pb.ListServicesRequest) (*pb.ListServicesResponse, error) {
	ns, err := listScope(req.Namespace, req.Group)
	if err != nil {
		return nil, err
	}
	size := int(req.PageSize)
	switch {
	case size < 0 || size > maxPageSize:
		return nil, model.Invalid("pageSize", "%d is out of range 0..%d", size, maxPageSize)
	case size == 0:
		size = defaultPageSize
	}
	if len(req.Name) > model.MaxNameLen {
		return nil, model.TooLarge("name", len(req.Name), model.MaxNameLen)
	}
	name := acl.Pattern(req.Name)
	after := model.ServiceKey{Namespace: ns}
	if req.PageToken != "" {
		cursor, err := r.s.openPage(req.PageToken)
		if err != nil {
			return nil, err
		}
		group, svc, ok := strings.Cut(cursor, "/")
		if !ok {
			return nil, model.Invalid("pageToken", "is not a token returned by a previous page")
		}
		after.Group, after.Service = group, svc
	}
	// Read on until the page is full of services the caller may see (or
	// maxScan are read): the page, and its token, show nothing else.
	keep := visible(ctx)
	var list []model.ServiceSummary
	var rev int64
	for scanned := 0; ; {
		batch, info, err := r.s.b.Services(ctx, ns, req.Group, after, size+1, backends.ReadOptions{Stale: req.Stale})
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			rev = info.Revision
		}
		for _, s := range batch {
			if (req.Name == "" || name.Match(s.Key.Service)) &&
				keep(acl.Resource{Kind: acl.KindService, Namespace: s.Key.Namespace, Group: s.Key.Group, Name: s.Key.Service}) {
				list = append(list, s)
			}
		}
		scanned += len(batch)
		if len(batch) < size+1 || len(list) > size {
			break // the end, or a full page and one more
		}
		after = batch[len(batch)-1].Key
		if scanned >= maxScan {
			// A short page: the next one goes on from here.
			resp := &pb.ListServicesResponse{Revision: rev, NextPageToken: r.s.sealPage(after.Group + "/" + after.Service)}
			appendServices(resp, list)
			return resp, nil
		}
	}
	resp := &pb.ListServicesResponse{Revision: rev}
	if len(list) > size {
		list = list[:size]
		last := list[size-1].Key
		resp.NextPageToken = r.s.sealPage(last.Group + "/" + last.Service)
	}
	appendServices(resp, list)
	return resp, nil
}

// maxScan bounds the services one page reads to fill itself with visible
// ones.
const maxScan = 10 * maxPageSize

func appendServices(resp *pb.ListServicesResponse, list []model.ServiceSummary) {
	for _, s := range list {
		resp.Services = append(resp.Services, &pb.ServiceSummary{Namespace: s.Key.Namespace, Group: s.Key.Group,
			Service: s.Key.Service, Instances: int32(s.Instances), Healthy: int32(s.Healthy)})
	}
}

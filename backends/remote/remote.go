// Package remote implements the driver contract over Junction's gRPC API:
// a backend that is another Junction gateway. The conformance suite and the
// guarantee runner use it to measure a whole deployment — API, fan-out
// hub, driver and store — exactly as clients reach it, and the gateway over
// a built-in store cluster's follower forwards to the leader's through it
// (gateway.Forwarding).
package remote

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Backend is a backends.Backend served by a Junction gateway.
type Backend struct {
	reg pb.RegistryServiceClient
	cfg pb.ConfigServiceClient
	st  pb.StatusServiceClient
	cl  pb.ClusterServiceClient
}

var (
	_ backends.Backend = (*Backend)(nil)
	_ backends.Cluster = (*Backend)(nil)
	_ backends.Gray    = (*Backend)(nil)
)

// New returns a Backend over a connection to a gateway.
func New(conn grpc.ClientConnInterface) *Backend {
	return &Backend{reg: pb.NewRegistryServiceClient(conn), cfg: pb.NewConfigServiceClient(conn), st: pb.NewStatusServiceClient(conn),
		cl: pb.NewClusterServiceClient(conn)}
}

func consistency(s string) model.Consistency { return model.Consistency(s) }

// CreateSession implements backends.Sessions.
func (b *Backend) CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error) {
	s, err := b.reg.CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(ttl)})
	if err != nil {
		return model.Session{}, 0, pb.Error(err)
	}
	return model.Session{ID: s.Id, TTL: s.Ttl.AsDuration()}, s.Revision, nil
}

// KeepAlive implements backends.Sessions.
func (b *Backend) KeepAlive(ctx context.Context, id string) (model.Session, error) {
	s, err := b.reg.KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: id})
	if err != nil {
		return model.Session{}, pb.Error(err)
	}
	return model.Session{ID: s.Id, TTL: s.Ttl.AsDuration()}, nil
}

// CloseSession implements backends.Sessions.
func (b *Backend) CloseSession(ctx context.Context, id string) (int64, error) {
	r, err := b.reg.DeleteSession(ctx, &pb.DeleteSessionRequest{Id: id})
	if err != nil {
		return 0, pb.Error(err)
	}
	return r.Revision, nil
}

// Register implements backends.Registry.
func (b *Backend) Register(ctx context.Context, svc model.ServiceKey, i model.Instance) (int64, error) {
	r, err := b.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: svc.Namespace, Group: svc.Group,
		Service: svc.Service, Id: i.ID, Ip: i.IP, Port: int32(i.Port), Cluster: i.Cluster, Weight: &i.Weight,
		Metadata: i.Metadata, Ephemeral: &i.Ephemeral, Enabled: &i.Enabled, Healthy: &i.Healthy, Session: i.Session})
	if err != nil {
		return 0, pb.Error(err)
	}
	return r.Revision, nil
}

// PatchInstance implements backends.Registry with SetInstanceState.
func (b *Backend) PatchInstance(ctx context.Context, svc model.ServiceKey, id string, p model.InstancePatch) (model.Instance, error) {
	req := &pb.SetInstanceStateRequest{Namespace: svc.Namespace, Group: svc.Group, Service: svc.Service, Id: id,
		Healthy: p.Healthy, Enabled: p.Enabled, Weight: p.Weight}
	if p.Metadata != nil {
		req.Metadata = &pb.MetadataPatch{Entries: p.Metadata}
	}
	if p.Cond.Check {
		req.IfRevision = &p.Cond.Revision
	}
	r, err := b.reg.SetInstanceState(ctx, req)
	if err != nil {
		return model.Instance{}, pb.Error(err)
	}
	return r.Instance.Model(), nil
}

// Deregister implements backends.Registry.
func (b *Backend) Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error) {
	r, err := b.reg.DeregisterInstance(ctx, &pb.DeregisterInstanceRequest{Namespace: svc.Namespace, Group: svc.Group,
		Service: svc.Service, Id: id})
	if err != nil {
		return 0, pb.Error(err)
	}
	return r.Revision, nil
}

// Instances implements backends.Registry.
func (b *Backend) Instances(ctx context.Context, svc model.ServiceKey, o backends.ReadOptions) ([]model.Instance, backends.ReadInfo, error) {
	r, err := b.reg.ListInstances(ctx, &pb.ListInstancesRequest{Namespace: svc.Namespace, Group: svc.Group,
		Service: svc.Service, Stale: o.Stale})
	if err != nil {
		return nil, backends.ReadInfo{}, pb.Error(err)
	}
	return pb.ModelInstances(r.Instances), backends.ReadInfo{Revision: r.Revision, Consistency: consistency(r.Consistency), Staleness: r.Staleness.AsDuration()}, nil
}

// Services implements backends.Registry by reading every page.
func (b *Backend) Services(ctx context.Context, ns, group string, after model.ServiceKey, limit int, o backends.ReadOptions) ([]model.ServiceSummary, backends.ReadInfo, error) {
	req := &pb.ListServicesRequest{Namespace: ns, Group: group, PageSize: 1000, Stale: o.Stale}
	var (
		out []model.ServiceSummary
		rev int64
	)
	for {
		r, err := b.reg.ListServices(ctx, req)
		if err != nil {
			return nil, backends.ReadInfo{}, pb.Error(err)
		}
		rev = r.Revision
		for _, s := range r.Services {
			k := model.ServiceKey{Namespace: s.Namespace, Group: s.Group, Service: s.Service}
			if k.Group < after.Group || (k.Group == after.Group && k.Service <= after.Service) {
				continue
			}
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, model.ServiceSummary{Key: k, Instances: int(s.Instances), Healthy: int(s.Healthy)})
		}
		if req.PageToken = r.NextPageToken; req.PageToken == "" {
			return out, backends.ReadInfo{Revision: rev, Consistency: model.Linearizable}, nil
		}
	}
}

// GetConfig implements backends.Configs.
func (b *Backend) GetConfig(ctx context.Context, k model.ConfigKey, o backends.ReadOptions) (model.Config, backends.ReadInfo, error) {
	r, err := b.cfg.GetConfig(asClient(ctx), &pb.GetConfigRequest{Namespace: k.Namespace, Group: k.Group, DataId: k.DataID, Stale: o.Stale})
	if err != nil {
		return model.Config{}, backends.ReadInfo{}, pb.Error(err)
	}
	return r.Config.Model(), backends.ReadInfo{Revision: r.Revision, Consistency: consistency(r.Consistency), Staleness: r.Staleness.AsDuration()}, nil
}

// PutConfig implements backends.Configs.
func (b *Backend) PutConfig(ctx context.Context, c model.Config, cond model.Precondition) (model.Config, error) {
	ctx, msg := withAuthor(ctx)
	req := &pb.PutConfigRequest{Namespace: c.Key.Namespace, Group: c.Key.Group, DataId: c.Key.DataID,
		Content: string(c.Content), ContentType: c.ContentType, Message: msg,
		// A driver stores what it is given: the gateway that took the
		// write has validated it (or was told not to).
		NoValidate: true}
	if cond.Check {
		req.IfRevision = &cond.Revision
	}
	r, err := b.cfg.PutConfig(ctx, req)
	if err != nil {
		return model.Config{}, pb.Error(err)
	}
	return r.Config.Model(), nil
}

// DeleteConfig implements backends.Configs.
func (b *Backend) DeleteConfig(ctx context.Context, k model.ConfigKey, cond model.Precondition) (int64, error) {
	ctx, msg := withAuthor(ctx)
	req := &pb.DeleteConfigRequest{Namespace: k.Namespace, Group: k.Group, DataId: k.DataID, Message: msg}
	if cond.Check {
		req.IfRevision = &cond.Revision
	}
	r, err := b.cfg.DeleteConfig(ctx, req)
	if err != nil {
		return 0, pb.Error(err)
	}
	return r.Revision, nil
}

// asClient returns ctx sending the client's headers, when ctx carries one
// (backends.WithClient): the gateway serves a gray release by them.
func asClient(ctx context.Context) context.Context {
	c, ok := backends.ClientFrom(ctx)
	if !ok {
		return ctx
	}
	kv := []string{model.ClientIDHeader, c.ID}
	if len(c.Labels) > 0 {
		kv = append(kv, model.ClientLabelsHeader, model.FormatLabels(c.Labels))
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// PublishGray implements backends.Gray.
func (b *Backend) PublishGray(ctx context.Context, k model.ConfigKey, content []byte, contentType string, rule model.GrayRule) error {
	_, err := b.cfg.PutConfig(ctx, &pb.PutConfigRequest{Namespace: k.Namespace, Group: k.Group, DataId: k.DataID,
		Content: string(content), ContentType: contentType, Gray: pb.NewGrayRule(rule)})
	return pb.Error(err)
}

// PromoteGray implements backends.Gray.
func (b *Backend) PromoteGray(ctx context.Context, k model.ConfigKey) (model.Config, error) {
	r, err := b.cfg.PromoteGrayConfig(ctx, &pb.PromoteGrayConfigRequest{Namespace: k.Namespace, Group: k.Group, DataId: k.DataID})
	if err != nil {
		return model.Config{}, pb.Error(err)
	}
	return r.Config.Model(), nil
}

// AbortGray implements backends.Gray.
func (b *Backend) AbortGray(ctx context.Context, k model.ConfigKey) error {
	_, err := b.cfg.AbortGrayConfig(ctx, &pb.AbortGrayConfigRequest{Namespace: k.Namespace, Group: k.Group, DataId: k.DataID})
	return pb.Error(err)
}

// AuthorHeader names the author of a configuration write, for a gateway
// that cannot tell it otherwise: one with access control off (with access
// control on, the author is the caller's token, and the header is
// ignored). A follower's gateway sends it when it forwards a write.
const AuthorHeader = "junction-author"

// withAuthor returns ctx sending the author of the change ctx carries, and
// the change's message.
func withAuthor(ctx context.Context) (context.Context, string) {
	ch := backends.ChangeFrom(ctx)
	if ch.Author != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, AuthorHeader, ch.Author)
	}
	return ctx, ch.Message
}

// ConfigHistory implements backends.History.
func (b *Backend) ConfigHistory(ctx context.Context, k model.ConfigKey, o backends.ReadOptions) ([]model.ConfigVersion, backends.ReadInfo, error) {
	r, err := b.cfg.ListConfigHistory(ctx, &pb.ListConfigHistoryRequest{Namespace: k.Namespace, Group: k.Group, DataId: k.DataID,
		Stale: o.Stale})
	if err != nil {
		return nil, backends.ReadInfo{}, pb.Error(err)
	}
	out := make([]model.ConfigVersion, 0, len(r.Versions))
	for _, v := range slices.Backward(r.Versions) { // the API lists newest first
		out = append(out, v.Model())
	}
	return out, backends.ReadInfo{Revision: r.Revision, Consistency: consistency(r.Consistency)}, nil
}

// ConfigVersion implements backends.History.
func (b *Backend) ConfigVersion(ctx context.Context, k model.ConfigKey, number int64, o backends.ReadOptions) (model.ConfigVersion, error) {
	r, err := b.cfg.GetConfigVersion(ctx, &pb.GetConfigVersionRequest{Namespace: k.Namespace, Group: k.Group, DataId: k.DataID,
		Number: number, Stale: o.Stale})
	if err != nil {
		return model.ConfigVersion{}, pb.Error(err)
	}
	return r.Model(), nil
}

// ListConfigs implements backends.Configs.
func (b *Backend) ListConfigs(ctx context.Context, ns, group string, o backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	r, err := b.cfg.ListConfigs(ctx, &pb.ListConfigsRequest{Namespace: ns, Group: group, Stale: o.Stale})
	if err != nil {
		return nil, backends.ReadInfo{}, pb.Error(err)
	}
	out := make([]model.ConfigSummary, 0, len(r.Configs))
	for _, c := range r.Configs {
		out = append(out, model.ConfigSummary{Key: model.ConfigKey{Namespace: c.Namespace, Group: c.Group, DataID: c.DataId},
			ContentType: c.ContentType, MD5: c.Md5, Size: int(c.Size), Revision: c.Revision, Version: c.Version,
			Updated: c.Updated.AsTime()})
	}
	return out, backends.ReadInfo{Revision: r.Revision, Consistency: model.Linearizable}, nil
}

// Watch implements backends.Watches with the API's streams.
func (b *Backend) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{ctx: ctx, cancel: cancel}
	switch {
	case req.Service != nil && req.Config == nil:
		s, err := b.reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Namespace: req.Service.Namespace,
			Group: req.Service.Group, Service: req.Service.Service, Revision: req.FromRevision})
		if err == nil {
			_, err = s.Header() // the gateway's backend watch is in place
		}
		if err != nil {
			cancel()
			return nil, pb.Error(err)
		}
		svc := *req.Service
		w.next = func() (model.Event, error) {
			ev, err := s.Recv()
			if err != nil {
				return model.Event{}, pb.Error(err)
			}
			e := model.Event{Type: ev.Type.Model(), Revision: ev.Revision, Service: svc}
			if ev.Instance != nil {
				i := ev.Instance.Model()
				e.Instance = &i
			}
			if ev.Type == pb.EventType_RESET {
				e.Instances = pb.ModelInstances(ev.Instances)
			}
			return e, nil
		}
	case req.Config != nil && req.Service == nil:
		s, err := b.cfg.WatchConfig(asClient(ctx), &pb.WatchConfigRequest{Namespace: req.Config.Namespace, Group: req.Config.Group,
			DataId: req.Config.DataID, Revision: req.FromRevision})
		if err == nil {
			_, err = s.Header()
		}
		if err != nil {
			cancel()
			return nil, pb.Error(err)
		}
		key := *req.Config
		w.next = func() (model.Event, error) {
			ev, err := s.Recv()
			if err != nil {
				return model.Event{}, pb.Error(err)
			}
			e := model.Event{Type: ev.Type.Model(), Revision: ev.Revision, ConfigKey: key}
			if ev.Config != nil {
				c := ev.Config.Model()
				e.Config = &c
			}
			return e, nil
		}
	default:
		cancel()
		return nil, model.Invalid("watch", "exactly one of service and config must be set")
	}
	return w, nil
}

// watcher reads a stream on its own goroutine so that Next can honour a
// per-call context.
type watcher struct {
	ctx     context.Context
	cancel  context.CancelFunc
	next    func() (model.Event, error)
	results chan result
	started bool
}

type result struct {
	e   model.Event
	err error
}

func (w *watcher) Next(ctx context.Context) (model.Event, error) {
	if !w.started {
		w.started = true
		w.results = make(chan result, 16)
		go func() {
			for {
				e, err := w.next()
				select {
				case w.results <- result{e, err}:
				case <-w.ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	select {
	case r := <-w.results:
		return r.e, r.err
	case <-ctx.Done():
		return model.Event{}, ctx.Err()
	}
}

func (w *watcher) Close() error {
	w.cancel()
	return nil
}

// Status implements backends.Backend.
func (b *Backend) Status(ctx context.Context) (backends.Status, error) {
	r, err := b.st.GetStatus(ctx, &pb.GetStatusRequest{})
	if err != nil {
		return backends.Status{}, pb.Error(err)
	}
	return backends.Status{Backend: "gateway/" + r.Backend, Revision: r.Revision, Leader: r.Leader,
		Capabilities: capabilities(r.Capabilities)}, nil
}

// capabilities converts the capabilities a gateway reports.
func capabilities(x *pb.Capabilities) backends.Capabilities {
	return backends.Capabilities{NativeSessions: x.GetNativeSessions(), NativeRevisions: x.GetNativeRevisions(),
		ResumableWatch: x.GetResumableWatch(), WatchHistory: int(x.GetWatchHistory()), LinearizableReads: x.GetLinearizableReads(),
		NativeCAS: x.GetNativeCas(), ConfigHistory: x.GetConfigHistory(), AtomicHistory: x.GetAtomicHistory(), PatchAnyOwner: x.GetPatchAnyOwner()}
}

// Close implements backends.Backend; the connection belongs to the caller.
func (b *Backend) Close() error { return nil }

func members(r *pb.ListMembersResponse) ([]backends.Member, string) {
	out := make([]backends.Member, 0, len(r.Members))
	for _, m := range r.Members {
		out = append(out, backends.Member{ID: m.Id, Address: m.RaftAddress, Voter: m.Voter, Leader: m.Leader})
	}
	return out, r.Leader
}

// Members implements backends.Cluster.
func (b *Backend) Members(ctx context.Context) ([]backends.Member, string, error) {
	r, err := b.cl.ListMembers(ctx, &pb.ListMembersRequest{})
	if err != nil {
		return nil, "", pb.Error(err)
	}
	m, leader := members(r)
	return m, leader, nil
}

// AddMember implements backends.Cluster.
func (b *Backend) AddMember(ctx context.Context, id, raftAddress string) error {
	_, err := b.cl.AddMember(ctx, &pb.AddMemberRequest{Id: id, RaftAddress: raftAddress})
	return pb.Error(err)
}

// RemoveMember implements backends.Cluster.
func (b *Backend) RemoveMember(ctx context.Context, id string) error {
	_, err := b.cl.RemoveMember(ctx, &pb.RemoveMemberRequest{Id: id})
	return pb.Error(err)
}

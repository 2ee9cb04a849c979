package gateway

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

type configService struct {
	pb.UnimplementedConfigServiceServer
	s *Server
}

func configKey(ns, group, dataID string) (model.ConfigKey, error) {
	k := model.ConfigKey{Namespace: ns, Group: group, DataID: dataID}.WithDefaults()
	return k, k.Validate()
}

func precondition(ifRevision *int64) (model.Precondition, error) {
	if ifRevision == nil {
		return model.Precondition{}, nil
	}
	if *ifRevision < 0 {
		return model.Precondition{}, model.Invalid("ifRevision", "must not be negative")
	}
	return model.IfRevision(*ifRevision), nil
}

func (c *configService) GetConfig(ctx context.Context, req *pb.GetConfigRequest) (*pb.GetConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	cfg, info, err := c.s.b.GetConfig(ctx, key, backends.ReadOptions{Stale: req.Stale})
	if err != nil {
		return nil, err
	}
	eff, gray := &cfg, false
	if !forwarded(ctx) && !req.Release { // a follower's read: it applies the gray itself
		eff, gray = c.s.grays.effective(key, &cfg, grayClient(ctx))
	}
	resp := &pb.GetConfigResponse{Config: pb.NewConfig(*eff), Revision: info.Revision, Consistency: string(info.Consistency),
		Staleness: staleness(info)}
	resp.Config.Gray = gray
	return resp, nil
}

func (c *configService) PutConfig(ctx context.Context, req *pb.PutConfigRequest) (*pb.PutConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	if err := model.ValidateContent([]byte(req.Content), c.s.cfg.MaxContentSize); err != nil {
		return nil, err
	}
	if err := model.ValidateContentType(req.ContentType); err != nil {
		return nil, err
	}
	cond, err := precondition(req.IfRevision)
	if err != nil {
		return nil, err
	}
	if req.Gray != nil {
		return c.publishGray(ctx, key, req, authorOf(ctx))
	}
	if !req.NoValidate {
		// An update that names no type keeps the item's: validate as that.
		if err := validateFormat(cmp.Or(req.ContentType, c.currentType(ctx, key)), []byte(req.Content)); err != nil {
			return nil, err
		}
	}
	if ctx, err = c.s.change(ctx, req.Message); err != nil {
		return nil, err
	}
	cfg, err := c.s.b.PutConfig(ctx, model.Config{Key: key, Content: []byte(req.Content), ContentType: req.ContentType}, cond)
	if err != nil {
		return nil, err
	}
	return &pb.PutConfigResponse{Config: pb.NewConfig(cfg)}, nil
}

// currentType is the item's content type ("" when it cannot tell).
func (c *configService) currentType(ctx context.Context, key model.ConfigKey) string {
	cur, _, err := c.s.b.GetConfig(ctx, key, backends.ReadOptions{Stale: true})
	if err != nil {
		return ""
	}
	return cur.ContentType
}

func (c *configService) DeleteConfig(ctx context.Context, req *pb.DeleteConfigRequest) (*pb.DeleteConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	cond, err := precondition(req.IfRevision)
	if err != nil {
		return nil, err
	}
	if ctx, err = c.s.change(ctx, req.Message); err != nil {
		return nil, err
	}
	rev, err := c.s.b.DeleteConfig(ctx, key, cond)
	if err != nil {
		return nil, err
	}
	c.s.ConfigDeleted(ctx, key)
	return &pb.DeleteConfigResponse{Revision: rev}, nil
}

func (c *configService) ListConfigs(ctx context.Context, req *pb.ListConfigsRequest) (*pb.ListConfigsResponse, error) {
	ns, err := listScope(req.Namespace, req.Group)
	if err != nil {
		return nil, err
	}
	switch size := int(req.PageSize); {
	case size < 0 || size > maxPageSize:
		return nil, model.Invalid("pageSize", "%d is out of range 0..%d", size, maxPageSize)
	case len(req.Name) > model.MaxNameLen:
		return nil, model.TooLarge("name", len(req.Name), model.MaxNameLen)
	case len(req.Contains) > 1024:
		return nil, model.TooLarge("contains", len(req.Contains), 1024)
	}
	var after string // the group/data id the previous page ended at
	if req.PageToken != "" {
		if after, err = c.s.openPage(req.PageToken); err != nil {
			return nil, err
		}
		if !strings.Contains(after, "/") {
			return nil, model.Invalid("pageToken", "is not a token returned by a previous page")
		}
	}
	opts := backends.ReadOptions{Stale: req.Stale}
	list, info, err := c.s.b.ListConfigs(ctx, ns, req.Group, opts)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b model.ConfigSummary) int {
		return cmp.Or(strings.Compare(a.Key.Group, b.Key.Group), strings.Compare(a.Key.DataID, b.Key.DataID))
	})
	resp := &pb.ListConfigsResponse{Revision: info.Revision}
	keep := visible(ctx)
	name := acl.Pattern(req.Name)
	read := 0 // contents read for contains
	for i, s := range list {
		pos := s.Key.Group + "/" + s.Key.DataID
		if after != "" && pos <= after {
			continue
		}
		if req.PageSize > 0 && (len(resp.Configs) == int(req.PageSize) || read >= maxScan) {
			resp.NextPageToken = c.s.sealPage(list[i-1].Key.Group + "/" + list[i-1].Key.DataID)
			break
		}
		if (req.Name != "" && !name.Match(s.Key.DataID)) ||
			!keep(acl.Resource{Kind: acl.KindConfig, Namespace: s.Key.Namespace, Group: s.Key.Group, Name: s.Key.DataID}) {
			continue
		}
		if req.Contains != "" {
			read++
			cfg, _, err := c.s.b.GetConfig(ctx, s.Key, opts)
			if errors.Is(err, model.ErrNotFound) {
				continue // deleted since the list
			}
			if err != nil {
				return nil, err
			}
			if !bytes.Contains(cfg.Content, []byte(req.Contains)) {
				continue
			}
		}
		resp.Configs = append(resp.Configs, &pb.ConfigSummary{Namespace: s.Key.Namespace, Group: s.Key.Group,
			DataId: s.Key.DataID, ContentType: s.ContentType, Md5: s.MD5, Size: int64(s.Size),
			Revision: s.Revision, Version: s.Version, Updated: timestamppb.New(s.Updated)})
	}
	return resp, nil
}

func (c *configService) WatchConfig(req *pb.WatchConfigRequest, stream grpc.ServerStreamingServer[pb.ConfigEvent]) error {
	return c.watchConfig(stream.Context(), req, headerReady(stream), func(e *pb.ConfigEvent) error { return stream.Send(e) })
}

// watchConfig serves one watch of a config item, on its own stream or on a
// multiplexed one: ready says it is established, send delivers each event.
func (c *configService) watchConfig(ctx context.Context, req *pb.WatchConfigRequest, ready func() error, send func(*pb.ConfigEvent) error) error {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return err
	}
	if req.Revision < 0 {
		return model.Invalid("revision", "must not be negative")
	}
	id := c.s.listeners.add(ctx, key)
	defer c.s.listeners.remove(id)
	w := c.s.hub.subscribe(topicKey{cfg: key}, req.Revision)
	defer w.Close()
	if err := established(ctx, w, ready); err != nil {
		return err
	}
	read := func() (*model.Config, error) {
		cur, _, err := c.s.b.GetConfig(ctx, key, backends.ReadOptions{Stale: true})
		if errors.Is(err, model.ErrNotFound) {
			return nil, nil
		}
		return &cur, err
	}
	return c.s.grays.serve(ctx, key, req.Revision, grayClient(ctx), w, read, func(e model.Event, gray bool) error {
		c.s.listeners.delivered(id, e)
		ev := pb.NewConfigEvent(e)
		if ev.Config != nil {
			ev.Config.Gray = gray
		}
		return send(ev)
	})
}

type statusService struct {
	pb.UnimplementedStatusServiceServer
	s *Server
}

func (st *statusService) GetStatus(ctx context.Context, _ *pb.GetStatusRequest) (*pb.GetStatusResponse, error) {
	s, err := st.s.b.Status(ctx)
	if err != nil {
		return nil, err
	}
	c := s.Capabilities
	// A watch through the gateway resumes from its hub's history when the
	// hub already follows the key: no further back than WatchHistory.
	if c.ResumableWatch && (c.WatchHistory == 0 || c.WatchHistory > st.s.cfg.WatchHistory) {
		c.WatchHistory = st.s.cfg.WatchHistory
	}
	return &pb.GetStatusResponse{Backend: s.Backend, Revision: s.Revision, Leader: s.Leader, Version: st.s.cfg.Build.Version,
		Capabilities: newCapabilities(c), Gateway: st.s.cfg.GatewayID, HealthRunner: st.s.health.runner(), Measured: st.s.cfg.Measured,
		Build: st.s.cfg.Build.proto()}, nil
}

// newCapabilities converts what a driver declares to its wire form.
func newCapabilities(c backends.Capabilities) *pb.Capabilities {
	return &pb.Capabilities{NativeSessions: c.NativeSessions, NativeRevisions: c.NativeRevisions,
		ResumableWatch: c.ResumableWatch, WatchHistory: int64(c.WatchHistory), LinearizableReads: c.LinearizableReads,
		NativeCas: c.NativeCAS, ConfigHistory: c.ConfigHistory, AtomicHistory: c.AtomicHistory, PatchAnyOwner: c.PatchAnyOwner}
}

// staleness is a stale read's bound on its lag, when the backend knows one.
func staleness(info backends.ReadInfo) *durationpb.Duration {
	if info.Staleness <= 0 {
		return nil
	}
	return durationpb.New(info.Staleness)
}

package gateway

import (
	"context"

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
	return &pb.GetConfigResponse{Config: pb.NewConfig(cfg), Revision: info.Revision, Consistency: string(info.Consistency),
		Staleness: staleness(info)}, nil
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
	if !req.NoValidate {
		ct := req.ContentType
		if ct == "" { // the item keeps its type: validate as that
			if cur, _, err := c.s.b.GetConfig(ctx, key, backends.ReadOptions{Stale: true}); err == nil {
				ct = cur.ContentType
			}
		}
		if err := validateFormat(ct, []byte(req.Content)); err != nil {
			return nil, err
		}
	}
	cfg, err := c.s.b.PutConfig(ctx, model.Config{Key: key, Content: []byte(req.Content), ContentType: req.ContentType}, cond)
	if err != nil {
		return nil, err
	}
	return &pb.PutConfigResponse{Config: pb.NewConfig(cfg)}, nil
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
	rev, err := c.s.b.DeleteConfig(ctx, key, cond)
	if err != nil {
		return nil, err
	}
	return &pb.DeleteConfigResponse{Revision: rev}, nil
}

func (c *configService) ListConfigs(ctx context.Context, req *pb.ListConfigsRequest) (*pb.ListConfigsResponse, error) {
	ns, err := listScope(req.Namespace, req.Group)
	if err != nil {
		return nil, err
	}
	list, info, err := c.s.b.ListConfigs(ctx, ns, req.Group, backends.ReadOptions{Stale: req.Stale})
	if err != nil {
		return nil, err
	}
	resp := &pb.ListConfigsResponse{Revision: info.Revision}
	keep := visible(ctx)
	for _, s := range list {
		if !keep(acl.Resource{Kind: acl.KindConfig, Namespace: s.Key.Namespace, Group: s.Key.Group, Name: s.Key.DataID}) {
			continue
		}
		resp.Configs = append(resp.Configs, &pb.ConfigSummary{Namespace: s.Key.Namespace, Group: s.Key.Group,
			DataId: s.Key.DataID, ContentType: s.ContentType, Md5: s.MD5, Size: int64(s.Size),
			Revision: s.Revision, Version: s.Version, Updated: timestamppb.New(s.Updated)})
	}
	return resp, nil
}

func (c *configService) WatchConfig(req *pb.WatchConfigRequest, stream grpc.ServerStreamingServer[pb.ConfigEvent]) error {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return err
	}
	return serveWatch(c.s.hub, stream, topicKey{cfg: key}, req.Revision, pb.NewConfigEvent)
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
	return &pb.GetStatusResponse{Backend: s.Backend, Revision: s.Revision, Leader: s.Leader, Version: st.s.cfg.Version,
		Capabilities: &pb.Capabilities{NativeSessions: c.NativeSessions, NativeRevisions: c.NativeRevisions,
			ResumableWatch: c.ResumableWatch, WatchHistory: int64(c.WatchHistory), LinearizableReads: c.LinearizableReads,
			NativeCas: c.NativeCAS, ConfigHistory: c.ConfigHistory}}, nil
}

// staleness is a stale read's bound on its lag, when the backend knows one.
func staleness(info backends.ReadInfo) *durationpb.Duration {
	if info.Staleness <= 0 {
		return nil
	}
	return durationpb.New(info.Staleness)
}

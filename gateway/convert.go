package gateway

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

func toPBInstance(i model.Instance) *pb.Instance {
	return &pb.Instance{Id: i.ID, Ip: i.IP, Port: int32(i.Port), Cluster: i.Cluster, Weight: i.Weight,
		Healthy: i.Healthy, Enabled: i.Enabled, Ephemeral: i.Ephemeral, Metadata: i.Metadata,
		Session: i.Session, Revision: i.Revision}
}

func toPBInstances(in []model.Instance) []*pb.Instance {
	out := make([]*pb.Instance, len(in))
	for n, i := range in {
		out[n] = toPBInstance(i)
	}
	return out
}

func toPBConfig(c model.Config) *pb.Config {
	return &pb.Config{Namespace: c.Key.Namespace, Group: c.Key.Group, DataId: c.Key.DataID,
		Content: string(c.Content), ContentType: c.ContentType, Md5: c.MD5, Revision: c.Revision,
		CreateRevision: c.CreateRevision, Version: c.Version,
		Created: timestamppb.New(c.Created), Updated: timestamppb.New(c.Updated)}
}

func toPBSession(s model.Session, rev int64) *pb.Session {
	return &pb.Session{Id: s.ID, Ttl: durationpb.New(s.TTL), Revision: rev}
}

func toPBEventType(t model.EventType) pb.EventType {
	switch t {
	case model.EventPut:
		return pb.EventType_PUT
	case model.EventDelete:
		return pb.EventType_DELETE
	case model.EventReset:
		return pb.EventType_RESET
	}
	return pb.EventType_EVENT_TYPE_UNSPECIFIED
}

func toPBInstanceEvent(e model.Event) *pb.InstanceEvent {
	out := &pb.InstanceEvent{Type: toPBEventType(e.Type), Revision: e.Revision}
	if e.Instance != nil {
		out.Instance = toPBInstance(*e.Instance)
	}
	if e.Type == model.EventReset {
		out.Instances = toPBInstances(e.Instances)
	}
	return out
}

func toPBConfigEvent(e model.Event) *pb.ConfigEvent {
	out := &pb.ConfigEvent{Type: toPBEventType(e.Type), Revision: e.Revision,
		Namespace: e.ConfigKey.Namespace, Group: e.ConfigKey.Group, DataId: e.ConfigKey.DataID}
	if e.Config != nil {
		out.Config = toPBConfig(*e.Config)
	}
	return out
}

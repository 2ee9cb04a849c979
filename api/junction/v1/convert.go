package junctionv1

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/junctionhq/junction/model"
)

// NewInstance converts a portable instance to its wire form.
func NewInstance(i model.Instance) *Instance {
	return &Instance{Id: i.ID, Ip: i.IP, Port: int32(i.Port), Cluster: i.Cluster, Weight: i.Weight,
		Healthy: i.Healthy, Enabled: i.Enabled, Ephemeral: i.Ephemeral, Metadata: i.Metadata,
		Session: i.Session, Revision: i.Revision}
}

// NewInstances converts a list of portable instances.
func NewInstances(in []model.Instance) []*Instance {
	out := make([]*Instance, len(in))
	for n, i := range in {
		out[n] = NewInstance(i)
	}
	return out
}

// Model converts the wire instance to the portable one.
func (x *Instance) Model() model.Instance {
	return model.Instance{ID: x.GetId(), IP: x.GetIp(), Port: int(x.GetPort()), Cluster: x.GetCluster(), Weight: x.GetWeight(),
		Healthy: x.GetHealthy(), Enabled: x.GetEnabled(), Ephemeral: x.GetEphemeral(), Metadata: x.GetMetadata(),
		Session: x.GetSession(), Revision: x.GetRevision()}
}

// ModelInstances converts a list of wire instances.
func ModelInstances(in []*Instance) []model.Instance {
	out := make([]model.Instance, len(in))
	for n, i := range in {
		out[n] = i.Model()
	}
	return out
}

// NewConfig converts a portable config to its wire form.
func NewConfig(c model.Config) *Config {
	return &Config{Namespace: c.Key.Namespace, Group: c.Key.Group, DataId: c.Key.DataID,
		Content: string(c.Content), ContentType: c.ContentType, Md5: c.MD5, Revision: c.Revision,
		CreateRevision: c.CreateRevision, Version: c.Version,
		Created: timestamppb.New(c.Created), Updated: timestamppb.New(c.Updated)}
}

// Model converts the wire config to the portable one.
func (x *Config) Model() model.Config {
	return model.Config{Key: model.ConfigKey{Namespace: x.GetNamespace(), Group: x.GetGroup(), DataID: x.GetDataId()},
		Content: []byte(x.GetContent()), ContentType: x.GetContentType(), MD5: x.GetMd5(), Revision: x.GetRevision(),
		CreateRevision: x.GetCreateRevision(), Version: x.GetVersion(),
		Created: x.GetCreated().AsTime(), Updated: x.GetUpdated().AsTime()}
}

// NewConfigVersion converts a version to its wire form, with its content
// when withContent is set.
func NewConfigVersion(v model.ConfigVersion, withContent bool) *ConfigVersion {
	out := &ConfigVersion{Namespace: v.Key.Namespace, Group: v.Key.Group, DataId: v.Key.DataID, Number: v.Number,
		Revision: v.Revision, Op: string(v.Op), ContentType: v.ContentType, Md5: v.MD5, Size: int64(len(v.Content)),
		Author: v.Author, Message: v.Message, Time: timestamppb.New(v.Time)}
	if withContent {
		out.Content = string(v.Content)
	}
	return out
}

// Model converts the wire version to the portable one.
func (x *ConfigVersion) Model() model.ConfigVersion {
	return model.ConfigVersion{Key: model.ConfigKey{Namespace: x.GetNamespace(), Group: x.GetGroup(), DataID: x.GetDataId()},
		Number: x.GetNumber(), Revision: x.GetRevision(), Op: model.ConfigOp(x.GetOp()), Content: []byte(x.GetContent()),
		ContentType: x.GetContentType(), MD5: x.GetMd5(), Author: x.GetAuthor(), Message: x.GetMessage(), Time: x.GetTime().AsTime()}
}

// NewGrayRule converts a gray rule to its wire form.
func NewGrayRule(r model.GrayRule) *GrayRule {
	return &GrayRule{Labels: r.Labels, Ips: r.IPs, Percent: int32(r.Percent)}
}

// Model converts the wire gray rule to the portable one.
func (x *GrayRule) Model() model.GrayRule {
	return model.GrayRule{Labels: x.GetLabels(), IPs: x.GetIps(), Percent: int(x.GetPercent())}
}

// NewSession converts a portable session to its wire form.
func NewSession(s model.Session, rev int64) *Session {
	return &Session{Id: s.ID, Ttl: durationpb.New(s.TTL), Revision: rev}
}

// NewEventType converts a portable event type.
func NewEventType(t model.EventType) EventType {
	switch t {
	case model.EventPut:
		return EventType_PUT
	case model.EventDelete:
		return EventType_DELETE
	case model.EventReset:
		return EventType_RESET
	}
	return EventType_EVENT_TYPE_UNSPECIFIED
}

// Model converts the wire event type.
func (t EventType) Model() model.EventType {
	switch t {
	case EventType_PUT:
		return model.EventPut
	case EventType_DELETE:
		return model.EventDelete
	case EventType_RESET:
		return model.EventReset
	}
	return 0
}

// NewInstanceEvent converts a portable instance event.
func NewInstanceEvent(e model.Event) *InstanceEvent {
	out := &InstanceEvent{Type: NewEventType(e.Type), Revision: e.Revision}
	if e.Instance != nil {
		out.Instance = NewInstance(*e.Instance)
	}
	if e.Type == model.EventReset {
		out.Instances = NewInstances(e.Instances)
	}
	return out
}

// NewConfigEvent converts a portable config event.
func NewConfigEvent(e model.Event) *ConfigEvent {
	out := &ConfigEvent{Type: NewEventType(e.Type), Revision: e.Revision,
		Namespace: e.ConfigKey.Namespace, Group: e.ConfigKey.Group, DataId: e.ConfigKey.DataID}
	if e.Config != nil {
		out.Config = NewConfig(*e.Config)
	}
	return out
}

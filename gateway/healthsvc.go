package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
)

// checkFromPB converts and validates a requested check; an empty target
// defaults to the instance's address.
func checkFromPB(c *pb.HealthCheck, inst model.Instance) (health.Check, error) {
	hc := health.Check{Kind: health.Kind(c.GetKind()), Target: c.GetTarget(), ExpectStatus: int(c.GetExpectStatus()),
		GRPCService: c.GetGrpcService(), Rise: int(c.GetRise()), Fall: int(c.GetFall())}
	for name, d := range map[string]*durationpb.Duration{"check.interval": c.GetInterval(), "check.timeout": c.GetTimeout()} {
		if d == nil {
			continue
		}
		if err := d.CheckValid(); err != nil {
			return hc, model.Invalid(name, "%v", err)
		}
	}
	hc.Interval, hc.Timeout = c.GetInterval().AsDuration(), c.GetTimeout().AsDuration()
	if hc.Target == "" {
		addr := net.JoinHostPort(inst.IP, strconv.Itoa(inst.Port))
		hc.Target = addr
		if hc.Kind == health.HTTP {
			hc.Target = "http://" + addr + "/health"
		}
	}
	hc = hc.WithDefaults()
	return hc, hc.Validate()
}

func checkToPB(c health.Check) *pb.HealthCheck {
	return &pb.HealthCheck{Kind: string(c.Kind), Target: c.Target, ExpectStatus: int32(c.ExpectStatus), GrpcService: c.GRPCService,
		Interval: durationpb.New(c.Interval), Timeout: durationpb.New(c.Timeout), Rise: int32(c.Rise), Fall: int32(c.Fall)}
}

func resultToPB(r health.Result) *pb.CheckResult {
	return &pb.CheckResult{At: timestamppb.New(r.At), Pass: r.Pass, Output: r.Output, Latency: durationpb.New(r.Latency)}
}

// findInstance reads one instance of a service.
func findInstance(ctx context.Context, b backends.Backend, svc model.ServiceKey, id string) (model.Instance, error) {
	insts, _, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return model.Instance{}, err
	}
	for _, i := range insts {
		if i.ID == id {
			return i, nil
		}
	}
	return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
}

func (r *registryService) SetInstanceState(ctx context.Context, req *pb.SetInstanceStateRequest) (*pb.RegisterInstanceResponse, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	if err != nil {
		return nil, err
	}
	if err := model.ValidateInstanceID(req.Id); err != nil {
		return nil, err
	}
	patch := model.InstancePatch{Enabled: req.Enabled, Healthy: req.Healthy, Weight: req.Weight}
	if req.Metadata != nil {
		patch.Metadata = req.Metadata.Entries
		if patch.Metadata == nil {
			patch.Metadata = map[string]string{}
		}
	}
	if req.IfRevision != nil {
		patch.Cond = model.IfRevision(*req.IfRevision)
	}
	if err := patch.Validate(); err != nil {
		return nil, err
	}
	if req.RemoveCheck {
		// The check goes first (so that its runner does not overwrite a
		// health set here), but not from a request that will conflict.
		cur, err := findInstance(ctx, r.s.b, key, req.Id)
		if err != nil {
			return nil, err
		}
		if !patch.Cond.Holds(cur.Revision) {
			return nil, model.PatchConflict(patch, cur.Revision)
		}
		if err := r.s.checks.remove(ctx, checkKey(key, req.Id), model.Precondition{}); err != nil {
			return nil, err
		}
	}
	var inst model.Instance
	if patch.Healthy == nil && patch.Enabled == nil && patch.Weight == nil && patch.Metadata == nil && !patch.Cond.Check {
		inst, err = findInstance(ctx, r.s.b, key, req.Id) // nothing to write
	} else {
		inst, err = r.s.patches.patch(ctx, key, req.Id, patch)
	}
	if err != nil {
		return nil, err
	}
	return &pb.RegisterInstanceResponse{Instance: pb.NewInstance(inst), Revision: inst.Revision}, nil
}

func (r *registryService) GetInstanceHealth(ctx context.Context, req *pb.GetInstanceHealthRequest) (*pb.InstanceHealth, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	if err != nil {
		return nil, err
	}
	if err := model.ValidateInstanceID(req.Id); err != nil {
		return nil, err
	}
	inst, err := findInstance(ctx, r.s.b, key, req.Id)
	if err != nil {
		return nil, err
	}
	out := &pb.InstanceHealth{Instance: pb.NewInstance(inst), Runner: r.s.health.runner()}
	var rec checkRecord
	ck := checkKey(key, req.Id)
	switch _, err := readRecord(ctx, r.s.b, ck, &rec); {
	case errors.Is(err, model.ErrNotFound):
		return out, nil
	case err != nil:
		return nil, err
	}
	out.Check = checkToPB(rec.Check)
	if rec.LastTransition != nil {
		out.LastTransition = resultToPB(*rec.LastTransition)
	}
	if h, ok := r.s.health.history(ck); ok {
		for _, res := range h {
			out.History = append(out.History, resultToPB(res))
		}
	}
	return out, nil
}

func (r *registryService) GetServiceSettings(ctx context.Context, req *pb.GetServiceSettingsRequest) (*pb.ServiceSettings, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	if err != nil {
		return nil, err
	}
	var rec settingsRecord
	if _, err := readRecord(ctx, r.s.b, settingsKey(key), &rec); err != nil && !errors.Is(err, model.ErrNotFound) {
		return nil, err
	}
	return &pb.ServiceSettings{ProtectThreshold: rec.ProtectThreshold}, nil
}

func (r *registryService) PutServiceSettings(ctx context.Context, req *pb.PutServiceSettingsRequest) (*pb.ServiceSettings, error) {
	key, err := serviceKey(req.Namespace, req.Group, req.Service)
	if err != nil {
		return nil, err
	}
	t := req.GetSettings().GetProtectThreshold()
	if math.IsNaN(t) || t < 0 || t > 1 {
		return nil, model.Invalid("settings.protectThreshold", "%v is out of range 0..1", t)
	}
	if _, err := writeRecord(ctx, r.s.b, settingsKey(key), settingsRecord{Service: key, ProtectThreshold: t}, model.Precondition{}); err != nil {
		return nil, err
	}
	r.s.settings.forget(key)
	return &pb.ServiceSettings{ProtectThreshold: t}, nil
}

// settingsCache keeps services' settings for a short while, so that
// healthy-only queries do not read them from the store every time. A
// change made through this gateway applies at once; one made through
// another gateway within the cache's TTL.
type settingsCache struct {
	b   backends.Backend
	ttl time.Duration

	mu      sync.Mutex
	entries map[model.ServiceKey]cachedSettings
}

type cachedSettings struct {
	rec     settingsRecord
	fetched time.Time
}

func newSettingsCache(b backends.Backend, ttl time.Duration) *settingsCache {
	return &settingsCache{b: b, ttl: ttl, entries: map[model.ServiceKey]cachedSettings{}}
}

func (c *settingsCache) get(ctx context.Context, svc model.ServiceKey) (settingsRecord, error) {
	c.mu.Lock()
	e, ok := c.entries[svc]
	c.mu.Unlock()
	if ok && time.Since(e.fetched) < c.ttl {
		return e.rec, nil
	}
	var rec settingsRecord
	if _, err := readRecord(ctx, c.b, settingsKey(svc), &rec); err != nil && !errors.Is(err, model.ErrNotFound) {
		return rec, err
	}
	c.mu.Lock()
	if len(c.entries) > 10000 {
		clear(c.entries)
	}
	c.entries[svc] = cachedSettings{rec: rec, fetched: time.Now()}
	c.mu.Unlock()
	return rec, nil
}

func (c *settingsCache) forget(svc model.ServiceKey) {
	c.mu.Lock()
	delete(c.entries, svc)
	c.mu.Unlock()
}

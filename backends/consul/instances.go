package consul

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Service meta keys that carry Junction's fields; the rest of a service's
// meta is the instance's metadata.
const (
	metaNamespace = "junction-namespace"
	metaGroup     = "junction-group"
	metaID        = "junction-id"
	metaCluster   = "junction-cluster"
	metaWeight    = "junction-weight"
	metaEphemeral = "junction-ephemeral"
	metaSession   = "junction-session"
	metaWrite     = "junction-write" // DRIVER-SEQ of the write: tells when the catalog has it
	tagPrefix     = "junction:"      // tag junction:NAMESPACE/GROUP, listed by /v1/catalog/services

	healthCheckPrefix  = "junction-health:"
	sessionCheckPrefix = "junction-session:"
	maintenancePrefix  = "_service_maintenance:" // Consul's own maintenance check
	healthCheckTTL     = "87600h"                // a status held until Junction changes it

	catalogSyncTimeout = 30 * time.Second
)

// Consul's limits on service meta (agent/structs: ValidateServiceMetadata).
var metaKeyRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

func checkMetadata(md map[string]string) error {
	if len(md) > 64-8 {
		return model.Invalid("metadata", "Consul allows 64 meta entries per service and Junction uses 8: %d is too many", len(md))
	}
	for k, v := range md {
		switch {
		case !metaKeyRE.MatchString(k):
			return model.Invalid("metadata", "key %q: Consul meta keys are 1..128 letters, digits, '_' and '-'", k)
		case strings.HasPrefix(k, "junction-") || strings.HasPrefix(k, "consul-"):
			return model.Invalid("metadata", "key %q: the prefixes junction- and consul- are reserved", k)
		case len(v) > 512:
			return model.Invalid("metadata", "value of %q: Consul meta values are at most 512 bytes, this is %d", k, len(v))
		}
	}
	return nil
}

// serviceID is the Consul service ID of a Junction instance.
func serviceID(svc model.ServiceKey, id string) string {
	return "junction:" + svc.Namespace + ":" + svc.Group + ":" + svc.Service + ":" + id
}

func groupTag(svc model.ServiceKey) string { return tagPrefix + svc.Namespace + "/" + svc.Group }

func consulWeight(w float64) int { return max(1, int(math.Round(w))) }

// decode reads a catalog entry as a Junction instance. Services registered
// directly in Consul belong to public/DEFAULT_GROUP, keep their Consul
// service ID as instance ID and are persistent.
func decode(e *api.ServiceEntry) (model.ServiceKey, model.Instance) {
	s := e.Service
	m := s.Meta
	k := model.ServiceKey{Namespace: cmp.Or(m[metaNamespace], model.DefaultNamespace),
		Group: cmp.Or(m[metaGroup], model.DefaultGroup), Service: s.Service}
	i := model.Instance{ID: cmp.Or(m[metaID], s.ID), IP: s.Address, Port: s.Port,
		Cluster: cmp.Or(m[metaCluster], model.DefaultCluster), Weight: float64(s.Weights.Passing),
		Healthy: true, Enabled: true, Ephemeral: m[metaEphemeral] == "true", Session: m[metaSession],
		Revision: int64(s.ModifyIndex)}
	if i.IP == "" && e.Node != nil {
		i.IP = e.Node.Address
	}
	if w, err := strconv.ParseFloat(m[metaWeight], 64); err == nil {
		i.Weight = w
	}
	for k, v := range m {
		if !strings.HasPrefix(k, "junction-") {
			if i.Metadata == nil {
				i.Metadata = map[string]string{}
			}
			i.Metadata[k] = v
		}
	}
	for _, c := range e.Checks {
		i.Revision = max(i.Revision, int64(c.ModifyIndex))
		switch {
		case strings.HasPrefix(c.CheckID, maintenancePrefix):
			i.Enabled = false
		case c.Status != api.HealthPassing:
			i.Healthy = false
		}
	}
	return k, i
}

// readService reads the catalog entries of a Consul service name.
func (d *Driver) readService(q *api.QueryOptions, name string) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	entries, meta, err := d.client.Health().Service(name, "", false, q)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	return entries, meta, nil
}

// instancesOf picks a Junction service's instances out of a Consul
// service's entries, keyed by instance ID.
func instancesOf(svc model.ServiceKey, entries []*api.ServiceEntry) map[string]entry {
	out := map[string]entry{}
	for _, e := range entries {
		if k, i := decode(e); k == svc {
			out[i.ID] = entry{inst: i, node: e.Node.Node, sid: e.Service.ID, write: e.Service.Meta[metaWrite]}
		}
	}
	return out
}

type entry struct {
	inst  model.Instance
	node  string // the Consul node that holds it
	sid   string // its Consul service ID
	write string
}

// await blocks until the catalog's entries of the Consul service sid
// (of the service name) satisfy done, called with the entries and the
// index of the view, and returns done's revision. The
// query is filtered on the server to that one service, so waiting costs
// the same however many instances the name has.
func (d *Driver) await(ctx context.Context, name, sid string, done func(entries []*api.ServiceEntry, index int64) (int64, bool)) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, catalogSyncTimeout)
	defer cancel()
	var idx uint64
	for {
		q := (&api.QueryOptions{RequireConsistent: true, WaitIndex: idx, WaitTime: 5 * time.Second,
			Filter: "Service.ID == " + strconv.Quote(sid)}).WithContext(ctx)
		entries, meta, err := d.readService(q, name)
		if err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("consul: the agent did not sync %s to the catalog in time: %w", name, model.ErrUnavailable)
			}
			return 0, err
		}
		if rev, ok := done(entries, int64(meta.LastIndex)); ok {
			return max(rev, 0), nil
		}
		if meta.LastIndex < idx {
			idx = 0
		} else {
			idx = meta.LastIndex
		}
	}
}

// Register implements backends.Registry through the local agent: the
// instance becomes a Consul service with a health check (Junction's
// healthy flag), a session check for ephemeral instances and Consul's
// maintenance mode when it is disabled. It returns once the catalog holds
// the write, with the write's index.
func (d *Driver) Register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error) {
	if err := checkMetadata(inst.Metadata); err != nil {
		return 0, err
	}
	sid := serviceID(svc, inst.ID)
	if inst.Ephemeral && !d.sessions.Live(inst.Session) {
		return 0, model.ErrUnknownSession
	}
	// Registrations of one service ID reach the agent in the order of their
	// sequence numbers, so a higher number is a later write.
	unlock := d.lockWrite(sid)
	defer unlock()
	seq := d.writes.Add(1)
	write := d.writeID + "-" + strconv.FormatUint(seq, 10)
	meta := maps.Clone(inst.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	maps.Copy(meta, map[string]string{metaNamespace: svc.Namespace, metaGroup: svc.Group, metaID: inst.ID,
		metaCluster: inst.Cluster, metaWeight: strconv.FormatFloat(inst.Weight, 'g', -1, 64),
		metaEphemeral: strconv.FormatBool(inst.Ephemeral), metaWrite: write})
	if inst.Ephemeral {
		meta[metaSession] = inst.Session
	}
	status := api.HealthPassing
	if !inst.Healthy {
		status = api.HealthCritical
	}
	w := consulWeight(inst.Weight)
	reg := &api.AgentServiceRegistration{ID: sid, Name: svc.Service, Tags: []string{groupTag(svc)},
		Address: inst.IP, Port: inst.Port, Meta: meta, Weights: &api.AgentWeights{Passing: w, Warning: w},
		Checks: api.AgentServiceChecks{{CheckID: healthCheckPrefix + sid, Name: "Junction health",
			Notes: "the instance's healthy flag, set through Junction", TTL: healthCheckTTL, Status: status}}}
	if inst.Ephemeral {
		reg.Checks = append(reg.Checks, &api.AgentServiceCheck{CheckID: sessionCheckPrefix + sid, Name: "Junction session",
			Notes: "passed while the instance's Junction session lives", TTL: d.cfg.CheckTTL.String(),
			Status: api.HealthPassing, DeregisterCriticalServiceAfter: d.cfg.DeregisterAfter.String()})
	}
	if !inst.Enabled {
		// Consul's maintenance mode is a critical check with this ID. It is
		// part of the registration, so a disabled instance never shows as
		// enabled in between; re-registering without it (replacing existing
		// checks) ends maintenance.
		reg.Checks = append(reg.Checks, &api.AgentServiceCheck{CheckID: maintenancePrefix + sid, Name: "Service Maintenance Mode",
			Notes: "disabled through Junction", TTL: healthCheckTTL, Status: api.HealthCritical})
	}
	if d.onlyHealthChanges(ctx, reg, inst) {
		// The agent holds this very registration: only the healthy flag
		// changes, so only the health check's status is set. Re-registering
		// would reach the catalog in two steps (the service, then its
		// checks) and show watchers a state that never was.
		unlock()
		if err := d.client.Agent().UpdateTTLOpts(healthCheckPrefix+sid, "set through Junction", status, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
			return 0, mapErr(err)
		}
		return d.await(ctx, svc.Service, sid, func(entries []*api.ServiceEntry, _ int64) (int64, bool) {
			e, ok := instancesOf(svc, entries)[inst.ID]
			return e.inst.Revision, ok && e.inst.Healthy == inst.Healthy
		})
	}
	if err := d.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)); err != nil {
		return 0, mapErr(err)
	}
	// A re-registered check keeps its status: set Junction's flag explicitly.
	err := d.client.Agent().UpdateTTLOpts(healthCheckPrefix+sid, "set through Junction", status, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, mapErr(err)
	}
	if !inst.Ephemeral {
		d.sessions.Forget(sid)
	} else if !d.sessions.Own(inst.Session, sid, svc.Service) { // expired while registering: take it back
		_, _ = d.deregisterLocal(ctx, svc.Service, sid)
		return 0, model.ErrUnknownSession
	}
	unlock()
	// Done when the catalog holds this write, or a later one of this driver
	// that replaced it before the agent synced (concurrent registrations of
	// one instance).
	return d.await(ctx, svc.Service, sid, func(entries []*api.ServiceEntry, _ int64) (int64, bool) {
		e, ok := instancesOf(svc, entries)[inst.ID]
		if !ok {
			return 0, false
		}
		if e.write == write {
			return e.inst.Revision, e.inst.Enabled == inst.Enabled && e.inst.Healthy == inst.Healthy
		}
		return e.inst.Revision, d.laterWrite(e.write, seq)
	})
}

// onlyHealthChanges reports whether the agent already holds reg as it is,
// enabled as inst is and, for an ephemeral instance, owned by the same
// live session: then a registration changes at most the healthy flag.
func (d *Driver) onlyHealthChanges(ctx context.Context, reg *api.AgentServiceRegistration, inst model.Instance) bool {
	q := (&api.QueryOptions{}).WithContext(ctx)
	cur, _, err := d.client.Agent().Service(reg.ID, q)
	if err != nil || cur == nil || cur.Address != reg.Address || cur.Port != reg.Port || !slices.Equal(cur.Tags, reg.Tags) ||
		cur.Weights.Passing != reg.Weights.Passing || cur.Weights.Warning != reg.Weights.Warning {
		return false
	}
	curMeta, newMeta := maps.Clone(cur.Meta), maps.Clone(reg.Meta)
	delete(curMeta, metaWrite)
	delete(newMeta, metaWrite)
	if !maps.Equal(curMeta, newMeta) {
		return false
	}
	if owner, ok := d.sessions.Owner(reg.ID); inst.Ephemeral && (!ok || owner != inst.Session || !d.sessions.Live(owner)) {
		return false
	}
	checks, err := d.client.Agent().ChecksWithFilterOpts("ServiceID == "+strconv.Quote(reg.ID), q)
	if err != nil {
		return false
	}
	_, inMaintenance := checks[maintenancePrefix+reg.ID]
	_, hasHealth := checks[healthCheckPrefix+reg.ID]
	_, hasSession := checks[sessionCheckPrefix+reg.ID]
	return hasHealth && inMaintenance == !inst.Enabled && hasSession == inst.Ephemeral
}

// lockWrite serializes the agent calls of registrations of one service ID
// (striped: IDs may share a lock) and returns the unlock, safe to call twice.
func (d *Driver) lockWrite(sid string) func() {
	h := fnv.New32a()
	h.Write([]byte(sid))
	mu := &d.writeLocks[h.Sum32()%uint32(len(d.writeLocks))]
	mu.Lock()
	var once sync.Once
	return func() { once.Do(mu.Unlock) }
}

// laterWrite reports whether write (a junction-write value) is one of this
// driver's writes made after its write seq.
func (d *Driver) laterWrite(write string, seq uint64) bool {
	n, ok := strings.CutPrefix(write, d.writeID+"-")
	if !ok {
		return false
	}
	later, err := strconv.ParseUint(n, 10, 64)
	return err == nil && later > seq
}

// PatchInstance implements backends.Registry. An instance on this driver's
// agent whose session, if any, this driver holds is registered again with
// the patch applied (a change of health alone only sets its health check).
// Of an ephemeral instance whose session another driver holds, this driver
// can set the health alone, through the agent's TTL check, when the
// instance lives on the same agent; anything else is ErrNotOwner. The
// precondition is checked against a consistent read just before the write,
// not atomically with it: Consul's agent API has no conditional update.
func (d *Driver) PatchInstance(ctx context.Context, svc model.ServiceKey, id string, p model.InstancePatch) (model.Instance, error) {
	entries, _, err := d.readService((&api.QueryOptions{RequireConsistent: true}).WithContext(ctx), svc.Service)
	if err != nil {
		return model.Instance{}, err
	}
	e, ok := instancesOf(svc, entries)[id]
	if !ok {
		return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
	}
	if !p.Cond.Holds(e.inst.Revision) {
		return model.Instance{}, model.PatchConflict(p, e.inst.Revision)
	}
	inst := p.Apply(e.inst)
	foreign := e.node != d.node || (inst.Ephemeral && !d.sessions.Live(inst.Session))
	if !foreign {
		rev, err := d.Register(ctx, svc, inst)
		inst.Revision = rev
		return inst, err
	}
	healthOnly := p.Enabled == nil && p.Weight == nil && p.Metadata == nil
	if !healthOnly || e.node != d.node {
		return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, backends.ErrNotOwner)
	}
	status := api.HealthPassing
	if !inst.Healthy {
		status = api.HealthCritical
	}
	if err := d.client.Agent().UpdateTTLOpts(healthCheckPrefix+e.sid, "set through Junction", status, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return model.Instance{}, mapErr(err)
	}
	// Done when the catalog shows the health, or a later write replaced it.
	read := e.inst.Revision
	inst.Revision, err = d.await(ctx, svc.Service, e.sid, func(entries []*api.ServiceEntry, _ int64) (int64, bool) {
		e, ok := instancesOf(svc, entries)[id]
		return e.inst.Revision, !ok || e.inst.Healthy == inst.Healthy || e.inst.Revision > read
	})
	return inst, err
}

// Deregister implements backends.Registry. Instances on the local agent
// are deregistered through it; others (registered on another agent or
// directly in the catalog) through the catalog.
func (d *Driver) Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error) {
	entries, _, err := d.readService((&api.QueryOptions{RequireConsistent: true}).WithContext(ctx), svc.Service)
	if err != nil {
		return 0, err
	}
	e, ok := instancesOf(svc, entries)[id]
	if !ok {
		return 0, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
	}
	d.sessions.Forget(e.sid)
	if e.node == d.node {
		return d.deregisterLocal(ctx, svc.Service, e.sid)
	}
	if _, err := d.client.Catalog().Deregister(&api.CatalogDeregistration{Node: e.node, ServiceID: e.sid},
		(&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return 0, mapErr(err)
	}
	return d.awaitGone(ctx, svc.Service, e.sid)
}

// deregisterLocal removes a service from the local agent and waits until
// the catalog no longer has it.
func (d *Driver) deregisterLocal(ctx context.Context, name, sid string) (int64, error) {
	if err := d.client.Agent().ServiceDeregisterOpts(sid, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return 0, mapErr(err)
	}
	return d.awaitGone(ctx, name, sid)
}

// awaitGone waits until the catalog no longer holds service sid and
// returns the index of the first view without it.
func (d *Driver) awaitGone(ctx context.Context, name, sid string) (int64, error) {
	return d.await(ctx, name, sid, func(entries []*api.ServiceEntry, index int64) (int64, bool) {
		return index, len(entries) == 0 // the query is filtered to sid
	})
}

// Instances implements backends.Registry.
func (d *Driver) Instances(ctx context.Context, svc model.ServiceKey, o backends.ReadOptions) ([]model.Instance, backends.ReadInfo, error) {
	q, c := d.readOpts(ctx, o)
	entries, meta, err := d.readService(q, svc.Service)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	return sorted(instancesOf(svc, entries)), backends.ReadInfo{Revision: int64(meta.LastIndex), Consistency: consistency(c, meta)}, nil
}

func sorted(m map[string]entry) []model.Instance {
	out := make([]model.Instance, 0, len(m))
	for _, id := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[id].inst)
	}
	return out
}

// consistency reports what a read got: a stale read served by the leader
// is still only called stale, as Consul does not say which server answered
// beyond KnownLeader and LastContact.
func consistency(asked model.Consistency, meta *api.QueryMeta) model.Consistency {
	if asked == model.Linearizable && meta.KnownLeader {
		return model.Linearizable
	}
	return model.Stale
}

// Services implements backends.Registry. Consul's service list carries the
// junction:NAMESPACE/GROUP tags of Junction's instances; a service name
// without them belongs to public/DEFAULT_GROUP.
func (d *Driver) Services(ctx context.Context, namespace, group string, after model.ServiceKey, limit int, o backends.ReadOptions) ([]model.ServiceSummary, backends.ReadInfo, error) {
	q, c := d.readOpts(ctx, o)
	names, meta, err := d.client.Catalog().Services(q)
	if err != nil {
		return nil, backends.ReadInfo{}, mapErr(err)
	}
	var keys []model.ServiceKey
	for name, tags := range names {
		tagged := false
		for _, t := range tags {
			ng, ok := strings.CutPrefix(t, tagPrefix)
			if !ok {
				continue
			}
			tagged = true
			if ns, g, ok := strings.Cut(ng, "/"); ok {
				keys = append(keys, model.ServiceKey{Namespace: ns, Group: g, Service: name})
			}
		}
		if !tagged || (namespace == model.DefaultNamespace && (group == "" || group == model.DefaultGroup)) {
			keys = append(keys, model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: name})
		}
	}
	slices.SortFunc(keys, func(a, b model.ServiceKey) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Service, b.Service))
	})
	keys = slices.Compact(keys)
	rev := int64(meta.LastIndex)
	var out []model.ServiceSummary
	for _, k := range keys {
		if k.Namespace != namespace || (group != "" && k.Group != group) ||
			cmp.Or(cmp.Compare(k.Group, after.Group), cmp.Compare(k.Service, after.Service)) <= 0 {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		entries, m, err := d.readService(q, k.Service)
		if err != nil {
			return nil, backends.ReadInfo{}, err
		}
		inst := instancesOf(k, entries)
		if len(inst) == 0 {
			continue
		}
		rev = max(rev, int64(m.LastIndex))
		sum := model.ServiceSummary{Key: k, Instances: len(inst)}
		for _, e := range inst {
			if e.inst.Healthy {
				sum.Healthy++
			}
		}
		out = append(out, sum)
	}
	return out, backends.ReadInfo{Revision: rev, Consistency: consistency(c, meta)}, nil
}

func sortInstances(list []model.Instance) {
	slices.SortFunc(list, func(a, b model.Instance) int { return cmp.Compare(a.ID, b.ID) })
}

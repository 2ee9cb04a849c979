package raftstore

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/google/btree"
	"github.com/hashicorp/raft"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/eventlog"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/model"
)

// Operations of the replicated log.
const (
	opSessionCreate = "session.create"
	opSessionClose  = "session.close"
	opSessionExpire = "session.expire"
	opRegister      = "instance.register"
	opDeregister    = "instance.deregister"
	opPatch         = "instance.patch"
	opConfigPut     = "config.put"
	opConfigDelete  = "config.delete"
	opRestore       = "state.restore"
)

// command is one entry of the replicated log. Everything the state machine
// needs is in it (ids, timestamps), so applying it is deterministic.
type command struct {
	Op       string               `json:"op"`
	Session  *model.Session       `json:"session,omitempty"`
	Service  model.ServiceKey     `json:"service,omitzero"`
	Instance *model.Instance      `json:"instance,omitempty"`
	Patch    *model.InstancePatch `json:"patch,omitempty"`
	ID       string               `json:"id,omitempty"`
	Config   *model.Config        `json:"config,omitempty"`
	Key      model.ConfigKey      `json:"key,omitzero"`
	Cond     model.Precondition   `json:"cond,omitzero"`
	Now      time.Time            `json:"now,omitzero"`
	// Change is who made a config write and why, for its version.
	Change *backends.Change `json:"change,omitempty"`
	// State replaces the whole state (opRestore).
	State *snapshotData `json:"state,omitempty"`
}

// change returns who made a config write and why; an entry written before
// history existed has the default retention.
func (c command) change() backends.Change {
	if c.Change == nil {
		return backends.Change{Retention: backends.DefaultRetention}
	}
	return *c.Change
}

// result is what applying a command returns to the proposer.
type result struct {
	rev      int64
	config   model.Config
	instance model.Instance
	err      error
}

type instanceRef struct {
	svc model.ServiceKey
	id  string
}

// fsm is the replicated state machine: sessions, instances and configs, plus
// the bounded event history that serves watches. Every mutation happens under
// mu together with its event append, so a reader holding mu sees state and
// history at the same revision.
type fsm struct {
	mu       sync.RWMutex
	sessions map[string]time.Duration
	services map[model.ServiceKey]map[string]model.Instance
	// order holds the services' keys sorted, so that a page of services
	// costs its own size, not the whole store's (Store.Services).
	order *btree.BTreeG[model.ServiceKey]
	// epoch counts the snapshots taken (freeze). A service's instance map
	// made in an earlier epoch (svcEpoch) may be shared with a snapshot
	// still being written, so it is copied before it changes (writable).
	epoch    uint64
	svcEpoch map[model.ServiceKey]uint64
	configs  map[model.ConfigKey]model.Config
	hist     map[model.ConfigKey]*itemHistory    // config history
	swept    time.Time                           // the last sweep of expired versions (sweep)
	owned    map[string]map[instanceRef]struct{} // session id → its instances
	applied  int64
	history  *eventlog.Log
	// keyed holds, for each key a watch follows, that key's events from
	// the watch's start on (keyedLog): a write wakes the watches of its
	// key, not every watch of the store.
	keyed       map[watchKey]*keyedLog
	historySize int
	sinceTrim   int // entries applied since the keys' logs were last trimmed

	// added lists the sessions created since the leader's expiry loop
	// last looked (takeAdded), so that it need not walk every session to
	// find the new ones; overflow says it must, having missed some.
	addedMu  sync.Mutex
	added    []model.Session
	overflow bool
}

// maxAdded bounds added on a node whose expiry loop does not run (a
// follower): past it, the loop walks every session once it runs.
const maxAdded = 1 << 16

func (f *fsm) noteAdded(sess model.Session) {
	f.addedMu.Lock()
	defer f.addedMu.Unlock()
	if len(f.added) >= maxAdded {
		f.added, f.overflow = nil, true
		return
	}
	f.added = append(f.added, sess)
}

// takeAdded returns the sessions created since the last call, and whether
// some were missed (every session must be looked at).
func (f *fsm) takeAdded() ([]model.Session, bool) {
	f.addedMu.Lock()
	defer f.addedMu.Unlock()
	added, overflow := f.added, f.overflow
	f.added, f.overflow = nil, false
	return added, overflow
}

func newFSM(historySize int) *fsm {
	f := &fsm{history: eventlog.New(historySize, 0), keyed: map[watchKey]*keyedLog{}, historySize: historySize}
	f.clear()
	return f
}

func (f *fsm) clear() {
	f.sessions = map[string]time.Duration{}
	f.services = map[model.ServiceKey]map[string]model.Instance{}
	f.order = btree.NewG(32, func(a, b model.ServiceKey) bool { return compareService(a, b) < 0 })
	f.svcEpoch = map[model.ServiceKey]uint64{}
	f.configs = map[model.ConfigKey]model.Config{}
	f.hist = map[model.ConfigKey]*itemHistory{}
	f.owned = map[string]map[instanceRef]struct{}{}
}

// Apply implements raft.FSM.
//
// Log entries and snapshots are written by encoding/json and read by
// goccy/go-json, which reads them four to five times faster: decoding was
// most of a restart at a million instances (the snapshot, then every entry
// of the log's tail). The bytes are encoding/json's, so a node of an
// earlier build reads what this one writes, and the reverse; what the
// store reads from outside (RestoreSnapshot) is read by encoding/json,
// strictly, and proposed as a command it wrote.
func (f *fsm) Apply(l *raft.Log) any {
	var c command
	if err := gojson.Unmarshal(l.Data, &c); err != nil {
		return result{err: fmt.Errorf("raftstore: corrupt log entry %d: %w", l.Index, err)}
	}
	rev := int64(l.Index)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = rev
	res := result{rev: rev}
	var evs []model.Event
	switch c.Op {
	case opSessionCreate:
		f.sessions[c.Session.ID] = c.Session.TTL
		f.noteAdded(*c.Session)
	case opSessionClose, opSessionExpire:
		if _, ok := f.sessions[c.ID]; !ok {
			res.err = model.ErrUnknownSession
			break
		}
		delete(f.sessions, c.ID)
		refs := slices.SortedFunc(maps.Keys(f.owned[c.ID]), func(a, b instanceRef) int {
			return cmp.Or(cmp.Compare(a.svc.String(), b.svc.String()), cmp.Compare(a.id, b.id))
		})
		for _, ref := range refs {
			evs = append(evs, f.removeInstance(ref.svc, ref.id, rev))
		}
		delete(f.owned, c.ID)
	case opRegister:
		inst := c.Instance.Clone()
		if inst.Ephemeral {
			if _, ok := f.sessions[inst.Session]; !ok {
				res.err = model.ErrUnknownSession
				break
			}
		}
		insts := f.writable(c.Service)
		if old, ok := insts[inst.ID]; ok && old.Session != "" {
			delete(f.owned[old.Session], instanceRef{c.Service, inst.ID})
		}
		inst.Revision = rev
		insts[inst.ID] = inst
		if inst.Session != "" {
			if f.owned[inst.Session] == nil {
				f.owned[inst.Session] = map[instanceRef]struct{}{}
			}
			f.owned[inst.Session][instanceRef{c.Service, inst.ID}] = struct{}{}
		}
		evs = append(evs, model.Event{Type: model.EventPut, Revision: rev, Service: c.Service, Instance: &inst})
	case opPatch:
		cur, ok := f.services[c.Service][c.ID]
		switch {
		case !ok:
			res.err = fmt.Errorf("instance %q of %s: %w", c.ID, c.Service, model.ErrNotFound)
		case !c.Patch.Cond.Holds(cur.Revision):
			res.err = model.PatchConflict(*c.Patch, cur.Revision)
		default: // the session, and so the owner, stay
			inst := c.Patch.Apply(cur)
			inst.Revision = rev
			f.writable(c.Service)[c.ID] = inst
			res.instance = inst
			evs = append(evs, model.Event{Type: model.EventPut, Revision: rev, Service: c.Service, Instance: &inst})
		}
	case opDeregister:
		inst, ok := f.services[c.Service][c.ID]
		if !ok {
			res.err = fmt.Errorf("instance %q of %s: %w", c.ID, c.Service, model.ErrNotFound)
			break
		}
		if inst.Session != "" {
			delete(f.owned[inst.Session], instanceRef{c.Service, c.ID})
		}
		evs = append(evs, f.removeInstance(c.Service, c.ID, rev))
	case opConfigPut:
		cur, exists := f.configs[c.Config.Key]
		if !c.Cond.Holds(cur.Revision) {
			res.err = model.ConfigConflict(c.Config.Key, c.Cond, cur.Revision)
			break
		}
		cfg := *c.Config
		if cfg.ContentType == "" {
			cfg.ContentType = cmp.Or(cur.ContentType, model.ContentText)
		}
		cfg.Revision, cfg.Version, cfg.Updated = rev, cur.Version+1, c.Now
		cfg.CreateRevision, cfg.Created = rev, c.Now
		if exists {
			cfg.CreateRevision, cfg.Created = cur.CreateRevision, cur.Created
		}
		f.configs[cfg.Key] = cfg
		f.record(confighist.Op(exists), cfg, c.change(), c.Now, rev)
		f.sweep(c.Now)
		res.config = cfg
		evs = append(evs, model.Event{Type: model.EventPut, Revision: rev, ConfigKey: cfg.Key, Config: &cfg})
	case opConfigDelete:
		cur, exists := f.configs[c.Key]
		if !exists && !c.Cond.Check {
			res.err = fmt.Errorf("config %s: %w", c.Key, model.ErrNotFound)
			break
		}
		if !c.Cond.Holds(cur.Revision) || !exists {
			res.err = model.ConfigConflict(c.Key, c.Cond, cur.Revision)
			break
		}
		delete(f.configs, c.Key)
		f.record(model.OpDelete, cur, c.change(), c.Now, rev)
		f.sweep(c.Now)
		evs = append(evs, model.Event{Type: model.EventDelete, Revision: rev, ConfigKey: c.Key, Config: &cur})
	case opRestore:
		if c.State == nil {
			res.err = fmt.Errorf("raftstore: restore without a state in log entry %d", l.Index)
			break
		}
		// The restored state is the state at this entry: revisions keep
		// growing, and every watcher, whose history is gone, gets a RESET.
		// Version numbers keep growing too: none is given out twice.
		last := f.lastVersions()
		f.load(*c.State)
		f.keepNumbering(last)
		f.applied = rev
		f.resetHistory(rev)
		return res
	default:
		res.err = fmt.Errorf("raftstore: unknown operation %q in log entry %d", c.Op, l.Index)
	}
	f.history.Append(evs...)
	if len(f.keyed) > 0 {
		for _, e := range evs {
			if k := f.keyed[keyOf(&e)]; k != nil {
				k.log.Append(e)
			}
		}
		f.trimKeyed()
	}
	return res
}

// removeInstance deletes an instance and returns its delete event. The
// caller holds mu and maintains the session index.
func (f *fsm) removeInstance(svc model.ServiceKey, id string, rev int64) model.Event {
	insts := f.writable(svc)
	last := insts[id]
	delete(insts, id)
	if len(insts) == 0 {
		delete(f.services, svc)
		delete(f.svcEpoch, svc)
		f.order.Delete(svc)
	}
	return model.Event{Type: model.EventDelete, Revision: rev, Service: svc, Instance: &last}
}

// writable returns svc's instance map for a change, made if svc has none:
// a copy when the map may be shared with a snapshot (freeze). The caller
// holds mu.
func (f *fsm) writable(svc model.ServiceKey) map[string]model.Instance {
	insts := f.services[svc]
	switch {
	case insts == nil:
		insts = map[string]model.Instance{}
		f.services[svc] = insts
		f.order.ReplaceOrInsert(svc)
	case f.svcEpoch[svc] != f.epoch:
		insts = maps.Clone(insts)
		f.services[svc] = insts
	}
	f.svcEpoch[svc] = f.epoch
	return insts
}

// instances returns a service's instances sorted by id. Caller holds mu.
func (f *fsm) instances(svc model.ServiceKey) []model.Instance {
	out := make([]model.Instance, 0, len(f.services[svc]))
	for _, i := range f.services[svc] {
		out = append(out, i.Clone())
	}
	slices.SortFunc(out, func(a, b model.Instance) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// snapshotData is the serialized form of the state.
type snapshotData struct {
	Applied  int64           `json:"applied"`
	Sessions []model.Session `json:"sessions"`
	Services []serviceData   `json:"services"`
	Configs  []model.Config  `json:"configs"`
	History  []itemHistory   `json:"history,omitempty"`
}

// validate checks a snapshot read from outside before it is restored.
func (d snapshotData) validate() error {
	for _, sess := range d.Sessions {
		if sess.ID == "" {
			return model.Invalid("snapshot", "a session without an id")
		}
		if err := model.ValidateTTL(sess.TTL); err != nil {
			return model.Invalid("snapshot", "session %s: %v", sess.ID, err)
		}
	}
	for _, svc := range d.Services {
		if err := svc.Key.Validate(); err != nil {
			return model.Invalid("snapshot", "service %v: %v", svc.Key, err)
		}
		for _, i := range svc.Instances {
			if err := i.Normalize(); err != nil {
				return model.Invalid("snapshot", "instance %q of %v: %v", i.ID, svc.Key, err)
			}
		}
	}
	for _, c := range d.Configs {
		if err := c.Key.Validate(); err != nil {
			return model.Invalid("snapshot", "config %v: %v", c.Key, err)
		}
	}
	for _, h := range d.History {
		if err := h.Key.Validate(); err != nil {
			return model.Invalid("snapshot", "history of config %v: %v", h.Key, err)
		}
		for _, v := range h.Versions {
			if v.Number <= 0 || v.Number > h.Last {
				return model.Invalid("snapshot", "history of config %v: version %d after the last, %d", h.Key, v.Number, h.Last)
			}
		}
	}
	return nil
}

type serviceData struct {
	Key       model.ServiceKey `json:"key"`
	Instances []model.Instance `json:"instances"`
}

// Snapshot implements raft.FSM: the state is frozen under the lock, at
// the cost of copying its outer maps, and written out of it by Persist,
// while Apply goes on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return f.freeze(), nil
}

// frozen is the state at one applied index. Its services share their
// instance maps with the live state, which copies one before it changes
// it (writable); the rest is copied.
type frozen struct {
	applied  int64
	sessions []model.Session
	services map[model.ServiceKey]map[string]model.Instance
	configs  []model.Config
	history  []itemHistory
}

// freeze returns the state as it is now.
func (f *fsm) freeze() *frozen {
	f.mu.Lock()
	defer f.mu.Unlock()
	fr := &frozen{applied: f.applied, services: maps.Clone(f.services), configs: slices.Collect(maps.Values(f.configs))}
	f.epoch++ // from now on every service's map may be shared with fr
	for id, ttl := range f.sessions {
		fr.sessions = append(fr.sessions, model.Session{ID: id, TTL: ttl})
	}
	for _, h := range f.hist {
		fr.history = append(fr.history, itemHistory{Key: h.Key, Last: h.Last, Versions: slices.Clone(h.Versions)})
	}
	return fr
}

// writeJSON writes the state as snapshotData's JSON, a service at a time
// (in order, as are its instances), never the whole of it in one buffer.
func (fr *frozen) writeJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	write := func(prefix string, v any) error {
		if _, err := bw.WriteString(prefix); err != nil {
			return err
		}
		return enc.Encode(v) // one value, and a newline, which JSON allows between tokens
	}
	slices.SortFunc(fr.sessions, func(a, b model.Session) int { return cmp.Compare(a.ID, b.ID) })
	slices.SortFunc(fr.configs, func(a, b model.Config) int { return cmp.Compare(a.Key.String(), b.Key.String()) })
	slices.SortFunc(fr.history, func(a, b itemHistory) int { return cmp.Compare(a.Key.String(), b.Key.String()) })
	if err := write(`{"applied":`, fr.applied); err != nil {
		return err
	}
	if err := write(`,"sessions":`, fr.sessions); err != nil {
		return err
	}
	// A list, an element at a time.
	list := func(prefix string, n int, elem func(int) any) error {
		if _, err := bw.WriteString(prefix + "["); err != nil {
			return err
		}
		for i := range n {
			sep := ","
			if i == 0 {
				sep = ""
			}
			if err := write(sep, elem(i)); err != nil {
				return err
			}
		}
		_, err := bw.WriteString("]")
		return err
	}
	keys := slices.SortedFunc(maps.Keys(fr.services), compareService)
	err := list(`,"services":`, len(keys), func(i int) any {
		insts := slices.SortedFunc(maps.Values(fr.services[keys[i]]), func(a, b model.Instance) int { return cmp.Compare(a.ID, b.ID) })
		return serviceData{Key: keys[i], Instances: insts}
	})
	if err == nil {
		err = list(`,"configs":`, len(fr.configs), func(i int) any { return fr.configs[i] })
	}
	if err == nil {
		err = list(`,"history":`, len(fr.history), func(i int) any { return fr.history[i] })
	}
	if err != nil {
		return err
	}
	if _, err := bw.WriteString("}\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// Persist implements raft.FSMSnapshot.
func (fr *frozen) Persist(sink raft.SnapshotSink) error {
	if err := fr.writeJSON(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftstore: write snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (fr *frozen) Release() {}

// Restore implements raft.FSM. Watch history before the snapshot is gone, so
// watchers from older revisions get a RESET.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var d snapshotData
	if err := gojson.NewDecoder(bufio.NewReaderSize(rc, 1<<20)).Decode(&d); err != nil {
		return fmt.Errorf("raftstore: read snapshot: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.load(d)
	f.resetHistory(d.Applied)
	return nil
}

// load replaces the state with d; the caller holds mu. Its maps are made
// at their size: grown an insert at a time, they were a fifth of a restart.
func (f *fsm) load(d snapshotData) {
	f.clear()
	f.services = make(map[model.ServiceKey]map[string]model.Instance, len(d.Services))
	f.svcEpoch = make(map[model.ServiceKey]uint64, len(d.Services))
	f.configs = make(map[model.ConfigKey]model.Config, len(d.Configs))
	for _, s := range d.Sessions {
		f.sessions[s.ID] = s.TTL
	}
	for _, s := range d.Services {
		m := make(map[string]model.Instance, len(s.Instances))
		for _, i := range s.Instances {
			m[i.ID] = i
			if i.Session != "" {
				if f.owned[i.Session] == nil {
					f.owned[i.Session] = map[instanceRef]struct{}{}
				}
				f.owned[i.Session][instanceRef{s.Key, i.ID}] = struct{}{}
			}
		}
		f.services[s.Key] = m
		f.svcEpoch[s.Key] = f.epoch
		f.order.ReplaceOrInsert(s.Key)
	}
	for _, c := range d.Configs {
		f.configs[c.Key] = c
	}
	for _, h := range d.History {
		f.hist[h.Key] = &h
	}
	f.applied = d.Applied
}

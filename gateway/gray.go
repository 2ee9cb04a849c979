package gateway

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Gray releases live in the gateways' namespace, so that every gateway
// over the store serves them, whatever the store: a record per published
// gray (the content and its rule, under a name of its own), and an index
// of the items that have one and the name of its record, which each
// gateway polls (one stale read) to know which records to load. The index
// is changed by compare-and-set only, so its last writer's record is the
// item's gray.
const (
	grayGroup = "config-gray"
	maxGrays  = 1000
	grayPoll  = 200 * time.Millisecond
)

var grayIndexKey = model.ConfigKey{Namespace: SystemNamespace, Group: grayGroup, DataID: "index"}

// newGrayRecordKey names the record of a new gray of k: a digest of k and
// a nonce, so that two publishes never write one record.
func newGrayRecordKey(k model.ConfigKey) string {
	h := sha256.Sum256([]byte(k.Namespace + "\x00" + k.Group + "\x00" + k.DataID))
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	return "gray-" + hex.EncodeToString(h[:16]) + "-" + hex.EncodeToString(nonce)
}

func grayRecordKey(name string) model.ConfigKey {
	return model.ConfigKey{Namespace: SystemNamespace, Group: grayGroup, DataID: name}
}

// grayRecord is an item's gray release.
type grayRecord struct {
	Key         model.ConfigKey `json:"key"`
	Content     string          `json:"content"`
	ContentType string          `json:"contentType"`
	MD5         string          `json:"md5"`
	Rule        model.GrayRule  `json:"rule"`
	Author      string          `json:"author,omitempty"`
	Message     string          `json:"message,omitempty"`
	Created     time.Time       `json:"created"`
	// ReleaseRevision is the release's revision when the gray was
	// published: a promote is guarded by it, and a release created again
	// since (a later CreateRevision) is not the gray's.
	ReleaseRevision int64 `json:"releaseRevision"`
}

// grayIndex maps each item with a gray release (its key's String) to the
// name of its record, and keeps when each item's last gray ended, for an
// hour: a gateway that never saw that gray still knows the item changed.
type grayIndex struct {
	Active map[string]string `json:"active"`
	Ended  map[string]int64  `json:"ended,omitempty"` // Unix milliseconds
}

func newGrayIndex() grayIndex {
	return grayIndex{Active: map[string]string{}, Ended: map[string]int64{}}
}

// grays is a gateway's copy of the gray releases, and who to tell when
// one changes.
type grays struct {
	b   backends.Backend
	log *slog.Logger

	mu       sync.Mutex
	indexRev int64             // the newest index revision known
	tags     map[string]string // the index's Active as loaded
	ended    map[string]int64  // the index's Ended as seen
	m        map[model.ConfigKey]*grayRecord
	// changedAt is the index revision of each item's last gray change: a
	// watch resuming from before it may hold content it must lose.
	changedAt map[model.ConfigKey]int64
	waiters   map[model.ConfigKey]*grayWaiter // closed when the item's gray changes
}

func newGrays(b backends.Backend, log *slog.Logger) *grays {
	return &grays{b: b, log: log.With("component", "gray"), tags: map[string]string{}, ended: map[string]int64{}, m: map[model.ConfigKey]*grayRecord{},
		changedAt: map[model.ConfigKey]int64{}, waiters: map[model.ConfigKey]*grayWaiter{}}
}

// get returns key's gray release, nil when it has none.
func (g *grays) get(key model.ConfigKey) *grayRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[key]
}

// grayWaiter is the channel closed at an item's next gray change, and how
// many wait on it.
type grayWaiter struct {
	ch   chan struct{}
	refs int
}

// changed returns a channel closed at key's next gray change, the index
// revision of its last one, and release, which the caller calls once it
// no longer waits: the last to leave an item that never changed removes
// its channel, so waiting costs nothing once no one waits.
func (g *grays) changed(key model.ConfigKey) (<-chan struct{}, int64, func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := g.waiters[key]
	if w == nil {
		w = &grayWaiter{ch: make(chan struct{})}
		g.waiters[key] = w
	}
	w.refs++
	var once sync.Once
	release := func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if w.refs--; w.refs == 0 && g.waiters[key] == w {
				delete(g.waiters, key)
			}
		})
	}
	return w.ch, g.changedAt[key], release
}

// set installs key's gray (nil: none), as of index revision rev, and
// wakes its watches; the caller holds mu.
func (g *grays) set(key model.ConfigKey, r *grayRecord, name string, rev int64) {
	if r == nil {
		delete(g.m, key)
		delete(g.tags, key.String())
	} else {
		g.m[key], g.tags[key.String()] = r, name
	}
	g.changedAt[key] = rev
	if w := g.waiters[key]; w != nil {
		close(w.ch)
		delete(g.waiters, key)
	}
}

// install makes this gateway serve a gray change it made at index
// revision rev at once (the others see it at their next poll).
func (g *grays) install(key model.ConfigKey, r *grayRecord, name string, rev int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rev < g.indexRev {
		return // a newer index is known already
	}
	g.indexRev = rev
	g.set(key, r, name, rev)
}

// run polls the index until ctx ends.
func (g *grays) run(ctx context.Context) {
	t := time.NewTicker(grayPoll)
	defer t.Stop()
	for {
		if err := g.refresh(ctx); err != nil && ctx.Err() == nil {
			g.log.Debug("could not read the gray releases", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh loads what changed since the newest index it knows. An index
// older than that (a lagging replica) is ignored; a record that cannot be
// read is tried again at the next poll, the others are loaded.
func (g *grays) refresh(ctx context.Context) error {
	idx, rev, err := readGrayIndex(ctx, g.b, backends.ReadOptions{Stale: true})
	if err != nil {
		return err
	}
	g.mu.Lock()
	if rev <= g.indexRev {
		g.mu.Unlock()
		return nil
	}
	old := maps.Clone(g.tags)
	g.mu.Unlock()
	type load struct {
		key  model.ConfigKey
		r    *grayRecord
		name string
	}
	var loads []load
	var errs []error
	for k, name := range idx.Active {
		if old[k] == name {
			continue
		}
		key, err := parseKey(k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := readGray(ctx, g.b, key, name, backends.ReadOptions{Stale: true})
		if err != nil {
			errs = append(errs, err) // not written yet on this replica, or damaged
			continue
		}
		loads = append(loads, load{key, r, name})
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rev <= g.indexRev {
		return nil // this gateway changed it meanwhile
	}
	for k := range g.tags {
		if _, ok := idx.Active[k]; !ok {
			if key, err := parseKey(k); err == nil {
				g.set(key, nil, "", rev)
			}
		}
	}
	for k, at := range idx.Ended {
		if g.ended[k] != at {
			g.ended[k] = at
			if key, err := parseKey(k); err == nil {
				g.changedAt[key] = max(g.changedAt[key], rev)
			}
		}
	}
	for _, l := range loads {
		g.set(l.key, l.r, l.name, rev)
	}
	if len(errs) == 0 {
		g.indexRev = rev // else read it again at the next poll
	}
	return errors.Join(errs...)
}

// parseKey reads a key's String (names hold no '/').
func parseKey(s string) (model.ConfigKey, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return model.ConfigKey{}, model.Invalid("key", "%q is not NAMESPACE/GROUP/DATA_ID", s)
	}
	return model.ConfigKey{Namespace: parts[0], Group: parts[1], DataID: parts[2]}, nil
}

// readGrayIndex returns the index and the revision it was written at (0
// when there is none).
func readGrayIndex(ctx context.Context, b backends.Backend, opts backends.ReadOptions) (grayIndex, int64, error) {
	cfg, info, err := b.GetConfig(ctx, grayIndexKey, opts)
	if errors.Is(err, model.ErrNotFound) {
		return newGrayIndex(), info.Revision, nil
	}
	if err != nil {
		return grayIndex{}, 0, err
	}
	idx, err := decodeGrayIndex(cfg.Content)
	return idx, cfg.Revision, err
}

func decodeGrayIndex(b []byte) (grayIndex, error) {
	idx := newGrayIndex()
	if err := json.Unmarshal(b, &idx); err != nil {
		return newGrayIndex(), fmt.Errorf("the gray releases' index: %w", err)
	}
	if idx.Active == nil {
		idx.Active = map[string]string{}
	}
	if idx.Ended == nil {
		idx.Ended = map[string]int64{}
	}
	return idx, nil
}

func readGray(ctx context.Context, b backends.Backend, key model.ConfigKey, name string, opts backends.ReadOptions) (*grayRecord, error) {
	cfg, _, err := b.GetConfig(ctx, grayRecordKey(name), opts)
	if err != nil {
		return nil, fmt.Errorf("the gray release of %s: %w", key, err)
	}
	var r grayRecord
	if err := json.Unmarshal(cfg.Content, &r); err != nil || r.Key != key {
		return nil, fmt.Errorf("the gray release of %s: not a record (%v)", key, err)
	}
	return &r, nil
}

// updateIndex changes the index by compare-and-set, retrying on a
// concurrent change, and returns the revision of its write.
func updateIndex(ctx context.Context, b backends.Backend, change func(grayIndex) error) (int64, error) {
	for {
		cfg, _, err := b.GetConfig(ctx, grayIndexKey, backends.ReadOptions{})
		idx, rev := newGrayIndex(), int64(0)
		switch {
		case err == nil:
			idx, _ = decodeGrayIndex(cfg.Content) // damaged: rewritten whole
			rev = cfg.Revision
		case !errors.Is(err, model.ErrNotFound):
			return 0, err
		}
		if err := change(idx); err != nil {
			return 0, err
		}
		body, _ := json.Marshal(idx)
		out, err := b.PutConfig(ctx, model.Config{Key: grayIndexKey, Content: body, ContentType: model.ContentJSON}, model.IfRevision(rev))
		if err == nil {
			return out.Revision, nil
		}
		if !errors.Is(err, model.ErrConflict) || ctx.Err() != nil {
			return 0, err
		}
	}
}

// grayClient is what a gray rule sees of the caller.
func grayClient(ctx context.Context) model.GrayClient {
	c := clientOf(ctx)
	return model.GrayClient{ID: c.ID, Labels: c.Labels, IP: c.Addr}
}

// effective returns what the caller gets of release (nil: absent): the
// gray release instead when it has one that chooses the caller, published
// over this incarnation of the item.
func (g *grays) effective(key model.ConfigKey, release *model.Config, client model.GrayClient) (*model.Config, bool) {
	r := g.get(key)
	if release == nil || r == nil || release.CreateRevision > r.ReleaseRevision || !r.Rule.Matches(key, client) {
		return release, false
	}
	c := *release
	c.Content, c.ContentType, c.MD5 = []byte(r.Content), r.ContentType, r.MD5
	return &c, true
}

// publishGray publishes req's content as the gray release of key, by
// author.
func (c *configService) publishGray(ctx context.Context, key model.ConfigKey, req *pb.PutConfigRequest, author string) (*pb.PutConfigResponse, error) {
	rule := req.Gray.Model()
	if err := rule.Validate(); err != nil {
		return nil, err
	}
	rule = rule.Normalized()
	cur, _, err := c.s.b.GetConfig(ctx, key, backends.ReadOptions{})
	if errors.Is(err, model.ErrNotFound) {
		return nil, &model.FieldError{Field: "gray", Kind: model.ErrNotFound,
			Reason: fmt.Sprintf("config %s does not exist: publish its release first", key)}
	}
	if err != nil {
		return nil, err
	}
	cond, err := precondition(req.IfRevision)
	if err != nil {
		return nil, err
	}
	if !cond.Holds(cur.Revision) {
		return nil, model.ConfigConflict(key, cond, cur.Revision)
	}
	if !req.NoValidate {
		if err := validateFormat(cmp.Or(req.ContentType, cur.ContentType), []byte(req.Content)); err != nil {
			return nil, err
		}
	}
	rec := grayRecord{Key: key, Content: req.Content, ContentType: cmp.Or(req.ContentType, cur.ContentType),
		MD5: model.ContentMD5([]byte(req.Content)), Rule: rule, Author: author, Message: req.Message,
		Created: time.Now().UTC(), ReleaseRevision: cur.Revision}
	if rec.MD5 == cur.MD5 {
		return nil, model.Invalid("content", "the gray content is the release's: nothing to try")
	}
	if g := c.s.grays.get(key); g == nil && c.s.grays.count() >= maxGrays {
		return nil, model.Invalid("gray", "%d items have a gray release already: promote or abort some", maxGrays)
	}
	name := newGrayRecordKey(key)
	body, _ := json.Marshal(rec)
	if _, err := c.s.b.PutConfig(ctx, model.Config{Key: grayRecordKey(name), Content: body, ContentType: model.ContentJSON}, model.IfRevision(0)); err != nil {
		return nil, err
	}
	var replaced string
	rev, err := updateIndex(ctx, c.s.b, func(idx grayIndex) error {
		if _, ok := idx.Active[key.String()]; !ok && len(idx.Active) >= maxGrays {
			return model.Invalid("gray", "%d items have a gray release already: promote or abort some", maxGrays)
		}
		replaced, idx.Active[key.String()] = idx.Active[key.String()], name
		return nil
	})
	if err != nil {
		c.s.dropGrayRecord(key, name)
		return nil, err
	}
	c.s.grays.install(key, &rec, name, rev)
	if replaced != "" {
		c.s.dropGrayRecord(key, replaced)
	}
	out := cur
	out.Content, out.ContentType, out.MD5 = []byte(rec.Content), rec.ContentType, rec.MD5
	resp := &pb.PutConfigResponse{Config: pb.NewConfig(out)}
	resp.Config.Gray = true
	return resp, nil
}

// touched reports whether key has a gray release, or had one that ended
// within the hour, as the store's index says now.
func (g *grays) touched(ctx context.Context, key model.ConfigKey) (bool, error) {
	idx, _, err := readGrayIndex(ctx, g.b, backends.ReadOptions{})
	if err != nil {
		return false, err
	}
	_, active := idx.Active[key.String()]
	_, ended := idx.Ended[key.String()]
	return active || ended, nil
}

// count returns how many items have a gray release, as this gateway knows.
func (g *grays) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}

// dropGrayRecord deletes a gray record the index no longer names.
func (s *Server) dropGrayRecord(key model.ConfigKey, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.b.DeleteConfig(ctx, grayRecordKey(name), model.Precondition{}); err != nil && !errors.Is(err, model.ErrNotFound) {
		s.log.Warn("a replaced gray release's record stays", "config", key.String(), "record", name, "err", err)
	}
}

func noGray(key model.ConfigKey) error {
	return fmt.Errorf("config %s has no gray release: %w", key, model.ErrNotFound)
}

// endGray removes key's gray release — the one whose record is name, when
// name is set — from the index, so that no gateway serves it any longer,
// then its record.
func (c *configService) endGray(ctx context.Context, key model.ConfigKey, name string) error {
	var ended string
	rev, err := updateIndex(ctx, c.s.b, func(idx grayIndex) error {
		cur, ok := idx.Active[key.String()]
		switch {
		case !ok:
			return noGray(key)
		case name != "" && cur != name:
			return &model.FieldError{Field: "gray", Kind: model.ErrConflict,
				Reason: fmt.Sprintf("a new gray release of %s was published meanwhile", key)}
		}
		ended = cur
		delete(idx.Active, key.String())
		now := time.Now()
		idx.Ended[key.String()] = now.UnixMilli()
		for k, at := range idx.Ended { // an hour, and at most maxGrays of them
			if now.Sub(time.UnixMilli(at)) > time.Hour || len(idx.Ended) > maxGrays {
				delete(idx.Ended, k)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.s.grays.install(key, nil, "", rev)
	c.s.dropGrayRecord(key, ended)
	return nil
}

// currentGray reads key's gray release and the name of its record.
func (c *configService) currentGray(ctx context.Context, key model.ConfigKey) (*grayRecord, string, error) {
	idx, _, err := readGrayIndex(ctx, c.s.b, backends.ReadOptions{})
	if err != nil {
		return nil, "", err
	}
	name, ok := idx.Active[key.String()]
	if !ok {
		return nil, "", noGray(key)
	}
	r, err := readGray(ctx, c.s.b, key, name, backends.ReadOptions{})
	return r, name, err
}

func (c *configService) GetGrayConfig(ctx context.Context, req *pb.GetGrayConfigRequest) (*pb.GrayConfig, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	r, _, err := c.currentGray(ctx, key)
	if err != nil {
		return nil, err
	}
	return &pb.GrayConfig{Namespace: key.Namespace, Group: key.Group, DataId: key.DataID, Content: r.Content,
		ContentType: r.ContentType, Md5: r.MD5, Rule: pb.NewGrayRule(r.Rule),
		Author: r.Author, Message: r.Message, Created: timestamppb.New(r.Created), ReleaseRevision: r.ReleaseRevision}, nil
}

func (c *configService) PromoteGrayConfig(ctx context.Context, req *pb.PromoteGrayConfigRequest) (*pb.PutConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	cond, err := precondition(req.IfRevision)
	if err != nil {
		return nil, err
	}
	r, name, err := c.currentGray(ctx, key)
	if err != nil {
		return nil, err
	}
	if !cond.Check {
		// By default, only over the release it was published over.
		cond = model.IfRevision(r.ReleaseRevision)
	}
	wctx, err := c.s.change(ctx, cmp.Or(req.Message, "promote the gray release"))
	if err != nil {
		return nil, err
	}
	cfg, err := c.s.b.PutConfig(wctx, model.Config{Key: key, Content: []byte(r.Content), ContentType: r.ContentType}, cond)
	if err != nil {
		return nil, err
	}
	if err := c.endGray(ctx, key, name); err != nil && !errors.Is(err, model.ErrNotFound) {
		return nil, err
	}
	return &pb.PutConfigResponse{Config: pb.NewConfig(cfg)}, nil
}

func (c *configService) AbortGrayConfig(ctx context.Context, req *pb.AbortGrayConfigRequest) (*pb.AbortGrayConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	if err := c.endGray(ctx, key, ""); err != nil {
		return nil, err
	}
	return &pb.AbortGrayConfigResponse{}, nil
}

// serve delivers the item's watch w to a client: the release's events as
// they are while no gray release chooses the client; while one does, the
// gray content in their place, and at each change of what the client
// gets (a gray published, promoted or aborted), a RESET with it. Every
// event keeps the revision of the last release event: revisions come from
// the store's one order of changes.
//
// A watch that resumes after revision from starts from the release as it
// is now, and with a RESET when the item has a gray release or had one
// within the hour (the client may hold a gray it has lost since).
func (g *grays) serve(ctx context.Context, key model.ConfigKey, from int64, client model.GrayClient, w backends.Watcher,
	read func() (*model.Config, error), send func(model.Event, bool) error) error {
	ctx, cancel := context.WithCancel(ctx)
	type next struct {
		e   model.Event
		err error
	}
	evs := make(chan next)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		for {
			e, err := w.Next(ctx)
			select {
			case evs <- next{e, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var (
		release *model.Config // as the events said, nil while absent (or not known yet)
		rev     int64         // of the last event
		sent    *model.Config // what the client has, nil: absent or nothing yet
		sentAny bool
		inGray  bool
	)
	same := func(a *model.Config, grayA bool) bool {
		return sentAny && inGray == grayA && ((a == nil && sent == nil) || (a != nil && sent != nil && a.MD5 == sent.MD5))
	}
	deliver := func(typ model.EventType, e model.Event, eff *model.Config, gray bool) error {
		if typ == model.EventReset {
			e = model.Event{Type: model.EventReset, Revision: rev, ConfigKey: key, Config: eff}
		}
		sent, sentAny, inGray = eff, true, gray
		return send(e, gray)
	}
	changed, changedAt, unwait := g.changed(key)
	defer func() { unwait() }()
	if from > 0 {
		cur, err := read()
		if err != nil {
			return err
		}
		release, rev = cur, from
		eff, gray := g.effective(key, release, client)
		touched, err := g.touched(ctx, key)
		if err != nil {
			return err
		}
		if gray || touched || changedAt > from {
			if err := deliver(model.EventReset, model.Event{}, eff, gray); err != nil {
				return err
			}
		} else {
			sent, sentAny = release, true // what the client has, as far as the gateway can tell
		}
	}
	for {
		select {
		case n := <-evs:
			if n.err != nil {
				return n.err
			}
			e := n.e
			rev = max(rev, e.Revision)
			if e.Type == model.EventDelete {
				release = nil
			} else {
				release = e.Config
			}
			eff, gray := g.effective(key, release, client)
			if !gray && !inGray {
				if err := deliver(e.Type, e, release, false); err != nil {
					return err
				}
				continue
			}
			if e.Type == model.EventReset || !same(eff, gray) {
				if err := deliver(model.EventReset, e, eff, gray); err != nil {
					return err
				}
			}
		case <-changed:
			unwait()
			changed, _, unwait = g.changed(key) // before reading the state: no change slips between
			if !sentAny {
				continue // the first event carries the state
			}
			eff, gray := g.effective(key, release, client)
			if !same(eff, gray) {
				if err := deliver(model.EventReset, model.Event{}, eff, gray); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

package gateway

import (
	"cmp"
	"context"
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
// over the store serves them, whatever the store: a record per item (the
// content and its rule), and an index of the items that have one, which
// each gateway polls (one stale read) to know which records to load.
const (
	grayGroup = "config-gray"
	maxGrays  = 1000
	grayPoll  = 200 * time.Millisecond
)

var grayIndexKey = model.ConfigKey{Namespace: SystemNamespace, Group: grayGroup, DataID: "index"}

func grayRecordKey(k model.ConfigKey) model.ConfigKey {
	h := sha256.Sum256([]byte(k.Namespace + "\x00" + k.Group + "\x00" + k.DataID))
	return model.ConfigKey{Namespace: SystemNamespace, Group: grayGroup, DataID: "gray-" + hex.EncodeToString(h[:20])}
}

// grayRecord is an item's gray release.
type grayRecord struct {
	Key             model.ConfigKey `json:"key"`
	Content         []byte          `json:"content"`
	ContentType     string          `json:"contentType"`
	MD5             string          `json:"md5"`
	Rule            model.GrayRule  `json:"rule"`
	Author          string          `json:"author,omitempty"`
	Message         string          `json:"message,omitempty"`
	Created         time.Time       `json:"created"`
	ReleaseRevision int64           `json:"releaseRevision"`
}

// grayIndex maps each item with a gray release (its key's String) to its
// record's md5, which changes with every new gray of the item.
type grayIndex map[string]string

// grays is a gateway's copy of the gray releases, and who to tell when
// one changes.
type grays struct {
	b   backends.Backend
	log *slog.Logger

	mu      sync.Mutex
	indexMD string // md5 of the index last loaded
	tags    grayIndex
	m       map[model.ConfigKey]*grayRecord
	waiters map[model.ConfigKey]chan struct{} // closed when the item's gray changes
}

func newGrays(b backends.Backend, log *slog.Logger) *grays {
	return &grays{b: b, log: log.With("component", "gray"), tags: grayIndex{}, m: map[model.ConfigKey]*grayRecord{},
		waiters: map[model.ConfigKey]chan struct{}{}}
}

// get returns key's gray release, nil when it has none.
func (g *grays) get(key model.ConfigKey) *grayRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[key]
}

// changed returns a channel closed at key's next gray change.
func (g *grays) changed(key model.ConfigKey) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := g.waiters[key]
	if ch == nil {
		ch = make(chan struct{})
		g.waiters[key] = ch
	}
	return ch
}

// set installs key's gray (nil: none) and wakes its watches; the caller
// holds mu.
func (g *grays) set(key model.ConfigKey, r *grayRecord) {
	if r == nil {
		delete(g.m, key)
	} else {
		g.m[key] = r
	}
	if ch := g.waiters[key]; ch != nil {
		close(ch)
		delete(g.waiters, key)
	}
}

// run polls the index until ctx ends.
func (g *grays) run(ctx context.Context) {
	t := time.NewTicker(grayPoll)
	defer t.Stop()
	for {
		if err := g.refresh(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("could not read the gray releases", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh loads what changed since the last index it read.
func (g *grays) refresh(ctx context.Context) error {
	idx, md, _, err := readGrayIndex(ctx, g.b, backends.ReadOptions{Stale: true})
	if err != nil {
		return err
	}
	g.mu.Lock()
	same := md == g.indexMD
	old := maps.Clone(g.tags)
	g.mu.Unlock()
	if same {
		return nil
	}
	loaded := map[model.ConfigKey]*grayRecord{}
	for k, tag := range idx {
		if old[k] == tag {
			continue
		}
		r, err := readGray(ctx, g.b, k, backends.ReadOptions{Stale: true})
		if err != nil && !errors.Is(err, model.ErrNotFound) {
			return err
		}
		if r == nil || r.MD5 != tag {
			return nil // written between the index and the record: the next poll sees both
		}
		loaded[r.Key] = r
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range old {
		if _, ok := idx[k]; !ok {
			if key, err := parseKey(k); err == nil {
				g.set(key, nil)
			}
		}
	}
	for key, r := range loaded {
		g.set(key, r)
	}
	g.tags, g.indexMD = idx, md
	return nil
}

// parseKey reads a key's String (names hold no '/').
func parseKey(s string) (model.ConfigKey, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return model.ConfigKey{}, model.Invalid("key", "%q is not NAMESPACE/GROUP/DATA_ID", s)
	}
	return model.ConfigKey{Namespace: parts[0], Group: parts[1], DataID: parts[2]}, nil
}

func readGrayIndex(ctx context.Context, b backends.Backend, opts backends.ReadOptions) (grayIndex, string, int64, error) {
	cfg, _, err := b.GetConfig(ctx, grayIndexKey, opts)
	if errors.Is(err, model.ErrNotFound) {
		return grayIndex{}, "", 0, nil
	}
	if err != nil {
		return nil, "", 0, err
	}
	idx := grayIndex{}
	if err := json.Unmarshal(cfg.Content, &idx); err != nil {
		return nil, "", 0, fmt.Errorf("the gray releases' index: %w", err)
	}
	return idx, cfg.MD5, cfg.Revision, nil
}

func readGray(ctx context.Context, b backends.Backend, k string, opts backends.ReadOptions) (*grayRecord, error) {
	key, err := parseKey(k)
	if err != nil {
		return nil, err
	}
	cfg, _, err := b.GetConfig(ctx, grayRecordKey(key), opts)
	if err != nil {
		return nil, err
	}
	var r grayRecord
	if err := json.Unmarshal(cfg.Content, &r); err != nil || r.Key != key {
		return nil, fmt.Errorf("the gray release of %s: not a record (%v)", key, err)
	}
	return &r, nil
}

// updateIndex changes the index by compare-and-set, retrying on a
// concurrent change.
func updateIndex(ctx context.Context, b backends.Backend, change func(grayIndex) error) error {
	for {
		idx, _, rev, err := readGrayIndex(ctx, b, backends.ReadOptions{})
		if err != nil {
			return err
		}
		if err := change(idx); err != nil {
			return err
		}
		body, _ := json.Marshal(idx)
		_, err = b.PutConfig(ctx, model.Config{Key: grayIndexKey, Content: body, ContentType: model.ContentJSON}, model.IfRevision(rev))
		if !errors.Is(err, model.ErrConflict) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// grayClient is what a gray rule sees of the caller.
func grayClient(ctx context.Context) model.GrayClient {
	c := clientOf(ctx)
	return model.GrayClient{ID: c.ID, Labels: c.Labels, IP: c.Addr}
}

// effective returns what the caller gets of release (nil: absent): the
// gray release instead when it has one that chooses the caller.
func (g *grays) effective(key model.ConfigKey, release *model.Config, client model.GrayClient) (*model.Config, bool) {
	r := g.get(key)
	if release == nil || r == nil || !r.Rule.Matches(key, client) {
		return release, false
	}
	c := *release
	c.Content, c.ContentType, c.MD5 = r.Content, r.ContentType, r.MD5
	return &c, true
}

// publishGray publishes req's content as the gray release of key.
func (c *configService) publishGray(ctx context.Context, key model.ConfigKey, req *pb.PutConfigRequest) (*pb.PutConfigResponse, error) {
	rule := model.GrayRule{Labels: req.Gray.Labels, IPs: req.Gray.Ips, Percent: int(req.Gray.Percent)}
	if err := rule.Validate(); err != nil {
		return nil, err
	}
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
	rec := grayRecord{Key: key, Content: []byte(req.Content), ContentType: cmp.Or(req.ContentType, cur.ContentType),
		MD5: model.ContentMD5([]byte(req.Content)), Rule: rule, Author: authorOf(ctx), Message: req.Message,
		Created: time.Now().UTC(), ReleaseRevision: cur.Revision}
	if rec.MD5 == cur.MD5 {
		return nil, model.Invalid("content", "the gray content is the release's: nothing to try")
	}
	body, _ := json.Marshal(rec)
	if _, err := c.s.b.PutConfig(ctx, model.Config{Key: grayRecordKey(key), Content: body, ContentType: model.ContentJSON}, model.Precondition{}); err != nil {
		return nil, err
	}
	err = updateIndex(ctx, c.s.b, func(idx grayIndex) error {
		if _, ok := idx[key.String()]; !ok && len(idx) >= maxGrays {
			return model.Invalid("gray", "%d items have a gray release already: promote or abort some", maxGrays)
		}
		idx[key.String()] = rec.MD5
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.s.grays.install(key, &rec)
	out := cur
	out.Content, out.ContentType, out.MD5 = rec.Content, rec.ContentType, rec.MD5
	resp := &pb.PutConfigResponse{Config: pb.NewConfig(out)}
	resp.Config.Gray = true
	return resp, nil
}

// install makes this gateway serve a gray change at once (the others see
// it at their next poll).
func (g *grays) install(key model.ConfigKey, r *grayRecord) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.set(key, r)
	if r == nil {
		delete(g.tags, key.String())
	} else {
		g.tags[key.String()] = r.MD5
	}
	g.indexMD = "" // read the index again at the next poll
}

// endGray removes key's gray release: from the index first, so that no
// gateway serves it any longer, then its record.
func (c *configService) endGray(ctx context.Context, key model.ConfigKey) error {
	err := updateIndex(ctx, c.s.b, func(idx grayIndex) error {
		if _, ok := idx[key.String()]; !ok {
			return fmt.Errorf("config %s has no gray release: %w", key, model.ErrNotFound)
		}
		delete(idx, key.String())
		return nil
	})
	if err != nil {
		return err
	}
	c.s.grays.install(key, nil)
	if _, err := c.s.b.DeleteConfig(ctx, grayRecordKey(key), model.Precondition{}); err != nil && !errors.Is(err, model.ErrNotFound) {
		c.s.log.Warn("the ended gray release's record stays", "config", key.String(), "err", err)
	}
	return nil
}

func (c *configService) GetGrayConfig(ctx context.Context, req *pb.GetGrayConfigRequest) (*pb.GrayConfig, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	idx, _, _, err := readGrayIndex(ctx, c.s.b, backends.ReadOptions{})
	if err != nil {
		return nil, err
	}
	if _, ok := idx[key.String()]; !ok {
		return nil, fmt.Errorf("config %s has no gray release: %w", key, model.ErrNotFound)
	}
	r, err := readGray(ctx, c.s.b, key.String(), backends.ReadOptions{})
	if err != nil {
		return nil, err
	}
	return &pb.GrayConfig{Namespace: key.Namespace, Group: key.Group, DataId: key.DataID, Content: string(r.Content),
		ContentType: r.ContentType, Md5: r.MD5, Rule: &pb.GrayRule{Labels: r.Rule.Labels, Ips: r.Rule.IPs, Percent: int32(r.Rule.Percent)},
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
	g, err := c.GetGrayConfig(ctx, &pb.GetGrayConfigRequest{Namespace: key.Namespace, Group: key.Group, DataId: key.DataID})
	if err != nil {
		return nil, err
	}
	wctx, err := c.s.change(ctx, cmp.Or(req.Message, "promote the gray release"))
	if err != nil {
		return nil, err
	}
	cfg, err := c.s.b.PutConfig(wctx, model.Config{Key: key, Content: []byte(g.Content), ContentType: g.ContentType}, cond)
	if err != nil {
		return nil, err
	}
	if err := c.endGray(ctx, key); err != nil && !errors.Is(err, model.ErrNotFound) {
		return nil, err
	}
	return &pb.PutConfigResponse{Config: pb.NewConfig(cfg)}, nil
}

func (c *configService) AbortGrayConfig(ctx context.Context, req *pb.AbortGrayConfigRequest) (*pb.AbortGrayConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	if err := c.endGray(ctx, key); err != nil {
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
// A watch that resumes after revision from, while a gray release chooses
// the client, starts with a RESET of it (the release read as of now).
func (g *grays) serve(ctx context.Context, key model.ConfigKey, from int64, client model.GrayClient, w backends.Watcher,
	read func() (*model.Config, error), send func(model.Event, bool) error) error {
	type next struct {
		e   model.Event
		err error
	}
	evs := make(chan next)
	go func() {
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
	deliver := func(e model.Event, eff *model.Config, gray bool) error {
		sent, sentAny, inGray = eff, true, gray
		return send(e, gray)
	}
	if from > 0 && g.get(key) != nil {
		cur, err := read()
		if err != nil {
			return err
		}
		release, rev = cur, from
		if eff, gray := g.effective(key, release, client); gray {
			if err := deliver(model.Event{Type: model.EventReset, Revision: rev, ConfigKey: key, Config: eff}, eff, true); err != nil {
				return err
			}
		} else {
			sent, sentAny = release, true // what the client had, as far as the gateway knows
		}
	}
	for {
		changed := g.changed(key)
		select {
		case n := <-evs:
			if n.err != nil {
				return n.err
			}
			e := n.e
			rev = max(rev, e.Revision)
			switch e.Type {
			case model.EventDelete:
				release = nil
			default:
				release = e.Config
			}
			eff, gray := g.effective(key, release, client)
			if !gray && !inGray {
				if err := deliver(e, release, false); err != nil {
					return err
				}
				continue
			}
			if e.Type == model.EventReset || !same(eff, gray) {
				if err := deliver(model.Event{Type: model.EventReset, Revision: rev, ConfigKey: key, Config: eff}, eff, gray); err != nil {
					return err
				}
			}
		case <-changed:
			if !sentAny {
				continue // the first event carries it
			}
			eff, gray := g.effective(key, release, client)
			if !same(eff, gray) {
				if err := deliver(model.Event{Type: model.EventReset, Revision: rev, ConfigKey: key, Config: eff}, eff, gray); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

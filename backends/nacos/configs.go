package nacos

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// createOnly is the casMd5 of a create-only write: no content hashes to
// it, so a Nacos server refuses the write when the item exists and
// inserts it when it does not.
const createOnly = "junction-create-only"

// configView is what the driver knows of one configuration item: the
// revisions it gave its recent contents, and, while watched, its state as
// the server last announced it.
type configView struct {
	d   *Driver
	key model.ConfigKey

	mu        sync.Mutex
	revs      []contentRev // most recent last
	ctype     string
	last      *model.Config // watched state; nil when absent
	delRev    int64         // revision of a delete through this driver
	listening bool
	subs      map[*watcher]struct{}
	gen       int64     // counts the writes and announced changes
	lastRead  *readCall // the last answer GetConfig may reuse
	inflight  *readCall // the read GetConfigs share now
}

type contentRev struct {
	md5 string
	rev int64
}

func (d *Driver) cview(key model.ConfigKey) *configView {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.cviews[key]
	if !ok {
		v = &configView{d: d, key: key, subs: map[*watcher]struct{}{}}
		d.cviews[key] = v
	}
	return v
}

// revFor returns the revision of a content: the one the driver gave it
// when it last saw it, or a new one. v.mu is held.
func (v *configView) revFor(md5 string) int64 {
	for i := len(v.revs) - 1; i >= 0; i-- {
		if v.revs[i].md5 == md5 {
			return v.revs[i].rev
		}
	}
	return v.setRev(md5, v.d.clock.tick(fingerprint(md5)))
}

func (v *configView) setRev(md5 string, rev int64) int64 {
	v.revs = append(v.revs, contentRev{md5, rev})
	if len(v.revs) > 16 {
		v.revs = v.revs[1:]
	}
	return rev
}

// contentType is the item's type as this driver last wrote it, or the one
// its dataId's extension names (Nacos' own convention).
func (v *configView) contentType() string {
	if v.ctype != "" {
		return v.ctype
	}
	switch strings.ToLower(strings.TrimPrefix(path.Ext(v.key.DataID), ".")) {
	case "yaml", "yml":
		return model.ContentYAML
	case "json":
		return model.ContentJSON
	case "properties":
		return model.ContentProperties
	case "xml":
		return model.ContentXML
	case "toml":
		return model.ContentTOML
	}
	return model.ContentText
}

func (v *configView) config(content string) *model.Config {
	md5 := model.ContentMD5([]byte(content))
	return &model.Config{Key: v.key, Content: []byte(content), ContentType: v.contentType(), MD5: md5, Revision: v.revFor(md5)}
}

// read asks the server for an item; nil when absent. Nacos cannot store
// empty content, so an empty answer means absent. The SDK allows five
// reads of one item a second per process and refuses more: a refused read
// waits for its turn.
func (d *Driver) read(ctx context.Context, key model.ConfigKey) (*model.Config, error) {
	c, err := d.configClient(d.nacosNamespace(key.Namespace))
	if err != nil {
		return nil, err
	}
	var content string
	for {
		content, err = c.GetConfig(vo.ConfigParam{DataId: key.DataID, Group: key.Group})
		if err == nil || !strings.Contains(err.Error(), "limited") {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: nacos get config %s: the SDK's limit of 5 reads a second of one item: %v", model.ErrUnavailable, key, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, sdkError("get config", err)
	}
	if content == "" {
		return nil, nil
	}
	v := d.cview(key)
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.config(content), nil
}

// readReuse is how long GetConfig reuses an answer of the server.
const readReuse = 200 * time.Millisecond

// readCall is one read of an item that concurrent GetConfigs share.
type readCall struct {
	gen  int64 // the item's write generation when the read began
	at   time.Time
	cfg  *model.Config
	err  error
	done chan struct{}
}

// sharedRead reads an item for GetConfig. The SDK allows five reads of an
// item a second per process, so concurrent reads of one item share one
// request to the server and an answer is reused for readReuse; a write
// through this driver, or a change the server announced, makes the next
// read ask the server again.
func (d *Driver) sharedRead(ctx context.Context, key model.ConfigKey) (*model.Config, error) {
	v := d.cview(key)
	v.mu.Lock()
	if r := v.lastRead; r != nil && r.gen == v.gen && time.Since(r.at) < readReuse {
		v.mu.Unlock()
		return r.cfg, nil
	}
	f := v.inflight
	if f == nil || f.gen != v.gen {
		f = &readCall{gen: v.gen, done: make(chan struct{})}
		v.inflight = f
		v.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*d.cfg.Timeout)
		f.cfg, f.err = d.read(rctx, key)
		cancel()
		v.mu.Lock()
		f.at = time.Now()
		if v.inflight == f {
			v.inflight = nil
		}
		if f.err == nil && f.gen == v.gen {
			v.lastRead = f
		}
		v.mu.Unlock()
		close(f.done)
	} else {
		v.mu.Unlock()
	}
	select {
	case <-f.done:
		return f.cfg, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: nacos get config %s: %v", model.ErrUnavailable, key, ctx.Err())
	}
}

// written notes a change of the item: reads after it ask the server.
func (v *configView) written() {
	v.mu.Lock()
	v.gen++
	v.lastRead = nil
	v.mu.Unlock()
}

// GetConfig reads an item from the server.
func (d *Driver) GetConfig(ctx context.Context, key model.ConfigKey, _ backends.ReadOptions) (model.Config, backends.ReadInfo, error) {
	rev := d.clock.current()
	c, err := d.sharedRead(ctx, key)
	if err != nil {
		return model.Config{}, backends.ReadInfo{}, err
	}
	if c == nil {
		return model.Config{}, backends.ReadInfo{}, fmt.Errorf("%w: config %s", model.ErrNotFound, key)
	}
	return *c, backends.ReadInfo{Revision: max(rev, c.Revision), Consistency: model.Stale}, nil
}

// holds checks a precondition against the item as read: a revision names
// a content, so it holds when the item still has the content it named.
func holds(cond model.Precondition, cur *model.Config) bool {
	if !cond.Check {
		return true
	}
	if cond.Revision == 0 || cur == nil {
		return cond.Revision == 0 && cur == nil
	}
	return cond.Revision&(1<<fpBits-1) == fingerprint(cur.MD5)
}

// PutConfig publishes an item. Conditional writes are Nacos' own
// compare-and-set (casMd5): the server refuses the write if the item's
// content changed since the driver read it.
func (d *Driver) PutConfig(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, error) {
	if len(cfg.Content) == 0 {
		return model.Config{}, model.Invalid("content", "must not be empty: nacos cannot store an empty configuration item")
	}
	c, err := d.configClient(d.nacosNamespace(cfg.Key.Namespace))
	if err != nil {
		return model.Config{}, err
	}
	cur, err := d.read(ctx, cfg.Key)
	if err != nil {
		return model.Config{}, err
	}
	if !holds(cond, cur) {
		return model.Config{}, fmt.Errorf("%w: config %s is not at revision %d", model.ErrConflict, cfg.Key, cond.Revision)
	}
	cas := ""
	switch {
	case cond.Check && cur == nil:
		cas = createOnly
	case cond.Check && d.cfg.CAS == CASNative:
		cas = cur.MD5
	}
	v := d.cview(cfg.Key)
	md5 := model.ContentMD5(cfg.Content)
	v.mu.Lock()
	if cfg.ContentType == "" {
		cfg.ContentType = v.contentType()
	}
	rev := v.setRev(md5, d.clock.tick(fingerprint(md5)))
	v.mu.Unlock()
	ok, err := c.PublishConfig(vo.ConfigParam{DataId: cfg.Key.DataID, Group: cfg.Key.Group, Content: string(cfg.Content),
		CasMd5: cas, Type: cfg.ContentType})
	if err != nil || !ok {
		if cas != "" && err != nil && isCASFailure(err) {
			return model.Config{}, fmt.Errorf("%w: config %s changed since it was read", model.ErrConflict, cfg.Key)
		}
		return model.Config{}, sdkError("publish config", fmt.Errorf("publish of %s refused: %v", cfg.Key, err))
	}
	v.mu.Lock()
	v.ctype = cfg.ContentType
	v.mu.Unlock()
	v.written()
	// Nacos servers serve a write asynchronously: wait until this one (or
	// a later one) is served, so that a read after the write sees it.
	prev := ""
	if cur != nil {
		prev = cur.MD5
	}
	err = d.awaitConfig(ctx, cfg.Key, func(c *model.Config) bool { return c != nil && (c.MD5 == md5 || c.MD5 != prev) })
	v.written()
	if err != nil {
		return model.Config{}, err
	}
	return model.Config{Key: cfg.Key, Content: cfg.Content, ContentType: cfg.ContentType, MD5: md5, Revision: rev}, nil
}

func isCASFailure(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "conflict") || strings.Contains(m, "cas")
}

// awaitConfig polls the server until cond holds of the item it serves.
func (d *Driver) awaitConfig(ctx context.Context, key model.ConfigKey, cond func(*model.Config) bool) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.WriteTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		c, err := d.read(ctx, key)
		if err == nil && cond(c) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: nacos accepted the write to %s but did not serve it within %v", model.ErrUnavailable, key, d.cfg.WriteTimeout)
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// DeleteConfig removes an item. Nacos has no conditional delete: a
// precondition is checked against the item as read just before the
// delete, so a write landing between the two is lost (measured and
// declared in the README).
func (d *Driver) DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error) {
	c, err := d.configClient(d.nacosNamespace(key.Namespace))
	if err != nil {
		return 0, err
	}
	cur, err := d.read(ctx, key)
	if err != nil {
		return 0, err
	}
	if cur == nil && (!cond.Check || cond.Revision == 0) {
		return 0, fmt.Errorf("%w: config %s", model.ErrNotFound, key)
	}
	if !holds(cond, cur) {
		return 0, fmt.Errorf("%w: config %s is not at revision %d", model.ErrConflict, key, cond.Revision)
	}
	v := d.cview(key)
	rev := d.clock.tick(0)
	v.mu.Lock()
	v.delRev = rev
	v.mu.Unlock()
	ok, err := c.DeleteConfig(vo.ConfigParam{DataId: key.DataID, Group: key.Group})
	if err != nil || !ok {
		return 0, sdkError("delete config", fmt.Errorf("delete of %s refused: %v", key, err))
	}
	err = d.awaitConfig(ctx, key, func(c *model.Config) bool { return c == nil || c.MD5 != cur.MD5 })
	v.written()
	if err != nil {
		return 0, err
	}
	return rev, nil
}

// ListConfigs lists items with Nacos' config search API.
func (d *Driver) ListConfigs(_ context.Context, namespace, group string, _ backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	c, err := d.configClient(d.nacosNamespace(namespace))
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	rev := d.clock.current()
	var out []model.ConfigSummary
	const size = 200
	for no := 1; ; no++ {
		page, err := c.SearchConfig(vo.SearchConfigParam{Search: "blur", Group: group, PageNo: no, PageSize: size})
		if err != nil {
			if strings.Contains(err.Error(), "404") {
				return nil, backends.ReadInfo{}, fmt.Errorf("%w: this nacos server does not serve the config search API (/v1/cs/configs?search=blur)", model.ErrUnsupported)
			}
			return nil, backends.ReadInfo{}, sdkError("search configs", err)
		}
		for _, it := range page.PageItems {
			key := model.ConfigKey{Namespace: namespace, Group: it.Group, DataID: it.DataId}
			v := d.cview(key)
			v.mu.Lock()
			c := v.config(it.Content)
			v.mu.Unlock()
			out = append(out, c.Summary())
		}
		if len(page.PageItems) < size || no >= page.PagesAvailable {
			break
		}
	}
	return out, backends.ReadInfo{Revision: rev, Consistency: model.Stale}, nil
}

// watchConfig watches one item through the SDK's listener, which the
// server notifies of changes.
func (d *Driver) watchConfig(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	key := *req.Config
	v := d.cview(key)
	if err := v.listen(); err != nil {
		return nil, err
	}
	w := newWatcher()
	v.mu.Lock()
	lastRev := v.delRev
	if v.last != nil {
		lastRev = v.last.Revision
	}
	if req.FromRevision == 0 || req.FromRevision < lastRev || req.FromRevision > d.clock.current() {
		e := model.Event{Type: model.EventReset, Revision: d.clock.current(), ConfigKey: key}
		if v.last != nil {
			c := *v.last
			e.Config = &c
		}
		w.push(e)
	}
	w.join(ctx, &v.mu, v.subs)
	return w, nil
}

// listen starts the SDK's listener on the item, once: the item is read
// first, and the listener reports changes from that content on.
func (v *configView) listen() error {
	v.mu.Lock()
	if v.listening {
		v.mu.Unlock()
		return nil
	}
	v.mu.Unlock()
	c, err := v.d.configClient(v.d.nacosNamespace(v.key.Namespace))
	if err != nil {
		return err
	}
	cur, err := v.d.read(context.Background(), v.key)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.listening {
		return nil
	}
	v.last = cur
	err = c.ListenConfig(vo.ConfigParam{DataId: v.key.DataID, Group: v.key.Group, OnChange: func(_, _, _, data string) {
		v.changed(data)
	}})
	if err != nil {
		return sdkError("listen config", err)
	}
	v.listening = true
	return nil
}

// changed records a content the server announced and tells the watchers.
func (v *configView) changed(data string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	v.lastRead = nil
	var e model.Event
	switch {
	case data == "" && v.last == nil, data != "" && v.last != nil && v.last.MD5 == model.ContentMD5([]byte(data)):
		return
	case data == "":
		rev := v.delRev
		if rev == 0 || (v.last != nil && rev < v.last.Revision) {
			rev = v.d.clock.tick(0)
		}
		v.delRev = 0
		e = model.Event{Type: model.EventDelete, Revision: rev, ConfigKey: v.key, Config: v.last}
		v.last = nil
	default:
		c := v.config(data)
		v.last = c
		cp := *c
		e = model.Event{Type: model.EventPut, Revision: c.Revision, ConfigKey: v.key, Config: &cp}
	}
	v.d.hist.add(e.Revision)
	for w := range v.subs {
		w.push(e)
	}
}

func (v *configView) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for w := range v.subs {
		w.fail(errClosed)
	}
}

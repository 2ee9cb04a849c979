package nacos

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
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
	lastRev   int64         // the revision of that state
	log       []model.Event // the changes delivered since created, within the driver's history
	created   int64         // the revision from which log is complete
	pending   *pendingConfig
	listening bool
	subs      map[*watcher]struct{}
	gen       int64     // counts the writes and announced changes
	lastRead  *readCall // the last answer GetConfig may reuse
	inflight  *readCall // the read GetConfigs share now
	used      time.Time // when it was last asked for (guarded by d.mu)
}

// pendingConfig is a write the server acknowledged and may not serve yet:
// reads show it until the server does, or until settle.
type pendingConfig struct {
	cfg    *model.Config // nil: a delete
	settle time.Time
}

// overlay returns what a read shows: the server's answer, or a pending
// write the server does not show yet. v.mu is held.
func (v *configView) overlay(server *model.Config) *model.Config {
	p := v.pending
	if p == nil {
		return server
	}
	if md5Of(server) == md5Of(p.cfg) || time.Now().After(p.settle) {
		v.pending = nil
		return server
	}
	if p.cfg == nil {
		return nil
	}
	c := *p.cfg
	return &c
}

func md5Of(c *model.Config) string {
	if c == nil {
		return ""
	}
	return c.MD5
}

// ack records a write the server acknowledged: reads show it from now on,
// watchers are told at once, and once the settle time has passed the
// server's answer is checked against what they were told.
func (v *configView) ack(c *model.Config, rev int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := &pendingConfig{cfg: c, settle: time.Now().Add(settleTime)}
	v.pending = p
	v.gen++
	v.lastRead = nil
	v.deliver(c, rev, false)
	time.AfterFunc(settleTime+100*time.Millisecond, func() { v.resettle(p) })
}

// resettle reads the item once a pending write's settle time has passed,
// and delivers a RESET when the server shows something the watchers were
// not told: a write by another client that the pending one hid.
func (v *configView) resettle(p *pendingConfig) {
	v.mu.Lock()
	still := v.pending == p
	v.mu.Unlock()
	if !still {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*v.d.cfg.Timeout)
	defer cancel()
	cur, err := v.d.read(ctx, v.key)
	if err != nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if md5Of(cur) != md5Of(v.last) {
		rev := v.d.clock.tick(0)
		if cur != nil {
			rev = v.stateRev(cur)
		}
		v.deliver(cur, rev, true)
	}
}

// deliver tells the watchers that the item is now c (nil: absent) at rev,
// as a RESET when reset is set. v.mu is held.
func (v *configView) deliver(c *model.Config, rev int64, reset bool) {
	if !reset && md5Of(c) == md5Of(v.last) {
		return
	}
	var e model.Event
	switch {
	case reset:
		e = model.Event{Type: model.EventReset, Revision: rev, ConfigKey: v.key}
		if c != nil {
			cp := *c
			e.Config = &cp
		}
	case c == nil:
		e = model.Event{Type: model.EventDelete, Revision: rev, ConfigKey: v.key, Config: v.last}
	default:
		cp := *c
		e = model.Event{Type: model.EventPut, Revision: rev, ConfigKey: v.key, Config: &cp}
	}
	if c != nil {
		cp := *c
		v.last = &cp
	} else {
		v.last = nil
	}
	v.lastRev = rev
	floor := v.d.hist.oldest()
	v.d.hist.add(rev)
	if reset {
		v.log, v.created = nil, rev // what changed before it is unknown
	} else {
		v.log = append(v.log, e)
		if i := slices.IndexFunc(v.log, func(e model.Event) bool { return e.Revision > floor }); i > 0 {
			v.log = slices.Delete(v.log, 0, i)
		}
		v.boundLog()
	}
	for w := range v.subs {
		w.push(e)
	}
}

type contentRev struct {
	md5 string
	rev int64
	at  time.Time // when the driver gave the revision
}

func (d *Driver) cview(key model.ConfigKey) *configView {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.dropping[key] != nil { // the view before, still ending its listener
		ch := d.dropping[key]
		d.mu.Unlock()
		<-ch
		d.mu.Lock()
	}
	v, ok := d.cviews[key]
	if !ok {
		v = &configView{d: d, key: key, subs: map[*watcher]struct{}{}}
		d.cviews[key] = v
	}
	v.used = time.Now()
	return v
}

// maxLogBytes bounds the content one item's replay log holds: beyond it
// the oldest changes are forgotten, and a watch from before them begins
// with a RESET.
const maxLogBytes = 1 << 20

// boundLog forgets the oldest changes of the log while it holds more than
// maxLogBytes of content. v.mu is held.
func (v *configView) boundLog() {
	size := 0
	for _, e := range v.log {
		if e.Config != nil {
			size += len(e.Config.Content)
		}
	}
	for len(v.log) > 1 && size > maxLogBytes {
		if c := v.log[0].Config; c != nil {
			size -= len(c.Content)
		}
		v.created = max(v.created, v.log[0].Revision)
		v.log = v.log[1:]
	}
}

// stateRev is the revision of cur, a content just read from the server:
// its own, unless the driver handed out a newer revision for this item
// since (the content came back after another: a new write of an old
// content), in which case it gets a new one, so that a state read now is
// never older than a change a client was told of. v.mu is held.
func (v *configView) stateRev(cur *model.Config) int64 {
	issued := v.lastRev
	for _, r := range v.revs {
		issued = max(issued, r.rev)
	}
	if cur.Revision < issued {
		cur.Revision = v.setRev(cur.MD5, v.d.clock.tick(fingerprint(cur.MD5)))
	}
	return cur.Revision
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

// issued returns when the driver gave a revision (zero when it forgot).
// v.mu is held.
func (v *configView) issued(rev int64) time.Time {
	for _, r := range v.revs {
		if r.rev == rev {
			return r.at
		}
	}
	return time.Time{}
}

func (v *configView) setRev(md5 string, rev int64) int64 {
	v.revs = append(v.revs, contentRev{md5, rev, time.Now()})
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
// empty content, so an empty answer means absent.
func (d *Driver) read(ctx context.Context, key model.ConfigKey) (*model.Config, error) {
	c, err := d.configClient(d.nacosNamespace(key.Namespace))
	if err != nil {
		return nil, err
	}
	content, err := fetch(ctx, c, key.Group, key.DataID, key)
	if err != nil {
		return nil, err
	}
	v := d.cview(key)
	v.mu.Lock()
	defer v.mu.Unlock()
	if content == "" {
		return v.overlay(nil), nil
	}
	return v.overlay(v.config(content)), nil
}

// fetch reads an item's content from the server ("" when absent); name
// names the item in errors. The SDK allows five reads of one item a second
// per process and refuses more: a refused read waits for its turn.
func fetch(ctx context.Context, c config_client.IConfigClient, group, dataID string, name fmt.Stringer) (string, error) {
	for {
		content, err := c.GetConfig(vo.ConfigParam{DataId: dataID, Group: group})
		switch {
		case err == nil:
			return content, nil
		case !strings.Contains(err.Error(), "limited"):
			return "", sdkError("get config", err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: nacos get config %s: the SDK's limit of 5 reads a second of one item: %v", model.ErrUnavailable, name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// unsettled returns the item as this driver last wrote it (nil: deleted)
// while the server may not serve that write yet, and whether there is such
// a write.
func (v *configView) unsettled() (*model.Config, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p := v.pending; p != nil && time.Now().Before(p.settle) {
		return p.cfg, true
	}
	return nil, false
}

// existed reports whether an item exists before an unconditional write,
// for the operation its version records: as this driver last wrote it,
// while the server may not serve that write yet, or else as the server
// answers. An item that cannot be read counts as existing.
func (d *Driver) existed(ctx context.Context, key model.ConfigKey) bool {
	if c, ok := d.cview(key).unsettled(); ok {
		return c != nil
	}
	cur, err := d.read(ctx, key)
	return err != nil || cur != nil
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
// revOf is the revision of an item as read (0: absent).
func revOf(cur *model.Config) int64 {
	if cur == nil {
		return 0
	}
	return cur.Revision
}

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
// content changed since the driver read it. Once the server acknowledged
// it, the write's version is appended to the item's history (record).
func (d *Driver) PutConfig(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, error) {
	unlock := d.lockConfig(cfg.Key)
	out, existed, err := d.publish(ctx, cfg, cond)
	if err != nil {
		unlock()
		return model.Config{}, err
	}
	d.record(ctx, confighist.Op(existed), out, unlock)
	return out, nil
}

// publish writes an item and returns it as stored and whether it existed
// before (known only where it keeps history or a precondition is set).
func (d *Driver) publish(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, bool, error) {
	if err := d.writable(cfg.Key); err != nil {
		return model.Config{}, false, err
	}
	if len(cfg.Content) == 0 {
		return model.Config{}, false, model.Invalid("content", "must not be empty: nacos cannot store an empty configuration item")
	}
	c, err := d.configClient(d.nacosNamespace(cfg.Key.Namespace))
	if err != nil {
		return model.Config{}, false, err
	}
	var cur *model.Config // read only for a precondition
	existed := false
	switch {
	case cond.Check:
		if cur, err = d.read(ctx, cfg.Key); err != nil {
			return model.Config{}, false, err
		}
		if !holds(cond, cur) {
			return model.Config{}, false, model.ConfigConflict(cfg.Key, cond, revOf(cur))
		}
		existed = cur != nil
	case confighist.Tracked(cfg.Key):
		existed = d.existed(ctx, cfg.Key)
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
			if cas != createOnly {
				d.warnCASIgnored(ctx, c, cfg.Key, cas)
			}
			return model.Config{}, false, model.ConfigConflict(cfg.Key, cond, -1)
		}
		return model.Config{}, false, sdkError("publish config", fmt.Errorf("publish of %s refused: %v", cfg.Key, err))
	}
	v.mu.Lock()
	v.ctype = cfg.ContentType
	v.mu.Unlock()
	// Nacos servers serve a write asynchronously (Polaris within a
	// second): reads through this driver show it from now on.
	out := model.Config{Key: cfg.Key, Content: cfg.Content, ContentType: cfg.ContentType, MD5: md5, Revision: rev}
	v.ack(&out, rev)
	return out, existed, nil
}

// warnCASIgnored reads an item back after the server refused a casMd5
// update of it, and warns once, when the server still serves the content
// the update named, that the server may not honour casMd5 (Polaris drops
// it): under cas=native every conditional update is then refused, a
// health runner's lease renewals among them, and cas=check is needed.
func (d *Driver) warnCASIgnored(ctx context.Context, c config_client.IConfigClient, key model.ConfigKey, cas string) {
	if d.casIgnored.Load() {
		return
	}
	// Bounded: it runs on a write's failure path, under the item's lock,
	// and fetch waits out the SDK's limit of reads of one item.
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	content, err := fetch(ctx, c, key.Group, key.DataID, key)
	if err != nil || content == "" || model.ContentMD5([]byte(content)) != cas || !d.casIgnored.CompareAndSwap(false, true) {
		return
	}
	d.log.Warn("the server refused a compare-and-set (casMd5) of an item it still serves unchanged: "+
		"it may not honour casMd5, and then refuses every conditional update; open the backend with cas=check",
		"config", key.String())
}

func isCASFailure(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "conflict") || strings.Contains(m, "cas")
}

// DeleteConfig removes an item. Nacos has no conditional delete: a
// precondition is checked against the item as read just before the
// delete, so a write landing between the two is lost (measured and
// declared in the README). Once the server acknowledged it, the delete's
// version, holding the content it removed, is appended to the item's
// history (record).
func (d *Driver) DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error) {
	unlock := d.lockConfig(key)
	gone, err := d.remove(ctx, key, cond)
	if err != nil {
		unlock()
		return 0, err
	}
	d.record(ctx, model.OpDelete, gone, unlock)
	return gone.Revision, nil
}

// remove deletes an item and returns what it removed, at the delete's
// revision.
func (d *Driver) remove(ctx context.Context, key model.ConfigKey, cond model.Precondition) (model.Config, error) {
	if err := d.writable(key); err != nil {
		return model.Config{}, err
	}
	c, err := d.configClient(d.nacosNamespace(key.Namespace))
	if err != nil {
		return model.Config{}, err
	}
	cur, err := d.read(ctx, key)
	if err != nil {
		return model.Config{}, err
	}
	if cur == nil && (!cond.Check || cond.Revision == 0) {
		return model.Config{}, fmt.Errorf("%w: config %s", model.ErrNotFound, key)
	}
	if !holds(cond, cur) {
		return model.Config{}, model.ConfigConflict(key, cond, revOf(cur))
	}
	v := d.cview(key)
	rev := d.clock.tick(0)
	ok, err := c.DeleteConfig(vo.ConfigParam{DataId: key.DataID, Group: key.Group})
	if err != nil || !ok {
		return model.Config{}, sdkError("delete config", fmt.Errorf("delete of %s refused: %v", key, err))
	}
	v.ack(nil, rev)
	gone := *cur
	gone.Revision = rev
	return gone, nil
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
			if d.reserved(key) {
				continue
			}
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
// server notifies of changes. A watch from a revision within what the
// item's view delivered since it started listening (and within the
// driver's history) replays the changes after it; any other begins with a
// RESET of the current value.
func (d *Driver) watchConfig(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	key := *req.Config
	v := d.cview(key)
	if err := v.listen(); err != nil {
		return nil, err
	}
	w := newWatcher()
	v.mu.Lock()
	if !d.replay(w, v.log, max(v.created, d.hist.oldest()), req.FromRevision) {
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
	lastRev := v.d.clock.current() // cur shows a write the server does not serve yet (read overlays it)
	if cur != nil {
		lastRev = v.stateRev(cur)
	}
	// What was delivered before listening is not a continuous history:
	// other clients' writes went unseen. Replays start from this read.
	v.last, v.lastRev = cur, lastRev
	v.log, v.created = nil, lastRev
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
// A notice of a content older than what they were told (a write through
// this driver the server had not served when it looked) is dropped, and so
// is one that disagrees with a pending write (resettle checks it later).
func (v *configView) changed(data string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	v.lastRead = nil
	if data == "" && v.last != nil {
		// The SDK also announces an empty content when it could not fetch
		// the new one (its limit of five reads a second of one item): a
		// delete is delivered once a read agrees.
		go v.confirmAbsent(v.gen)
		return
	}
	v.changedLocked(data)
}

// confirmAbsent delivers the delete the server announced at generation
// gen once a read of the server agrees, unless something newer happened
// to the item meanwhile; a read that finds content delivers that.
func (v *configView) confirmAbsent(gen int64) {
	c, err := v.d.configClient(v.d.nacosNamespace(v.key.Namespace))
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*v.d.cfg.Timeout)
	defer cancel()
	content, err := fetch(ctx, c, v.key.Group, v.key.DataID, v.key)
	if err != nil {
		v.d.log.Warn("a delete the server announced could not be confirmed; the next change or resettle tells", "config", v.key.String(), "err", err)
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.gen != gen {
		return // a write or a newer notice since
	}
	v.changedLocked(content)
}

// changedLocked is changed with v.mu held.
func (v *configView) changedLocked(data string) {
	var c *model.Config
	if data != "" {
		c = v.config(data)
	}
	if p := v.pending; p != nil && time.Now().Before(p.settle) {
		if md5Of(c) != md5Of(p.cfg) {
			return
		}
		v.pending = nil
	}
	if c == nil {
		v.deliver(nil, v.d.clock.tick(0), false)
		return
	}
	if c.Revision < v.lastRev {
		if time.Since(v.issued(c.Revision)) < settleTime {
			return // older than what the watchers were told
		}
		// The content came back long after this driver saw it: a new
		// write of an old content (A, B, then A again).
		c.Revision = v.setRev(c.MD5, v.d.clock.tick(fingerprint(c.MD5)))
	}
	v.deliver(c, c.Revision, false)
}

// idle reports whether nothing depends on the view: no watch, no write
// waiting to show, no read in flight.
func (v *configView) idle() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.subs) == 0 && v.pending == nil && v.inflight == nil
}

// drop ends the view's listener on the server, once the driver has
// forgotten it (dropIdleViews).
func (v *configView) drop() {
	v.mu.Lock()
	listening := v.listening
	v.listening = false
	v.mu.Unlock()
	if !listening {
		return
	}
	if c, err := v.d.configClient(v.d.nacosNamespace(v.key.Namespace)); err == nil {
		_ = c.CancelListenConfig(vo.ConfigParam{DataId: v.key.DataID, Group: v.key.Group})
	}
}

func (v *configView) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for w := range v.subs {
		w.fail(errClosed)
	}
}

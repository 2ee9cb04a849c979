package nacos

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/model"
)

// histGroup is the group, in the Nacos namespace of model.SystemNamespace,
// where the driver keeps the history of configuration items: for each
// item a head, which numbers its versions and lists those retention
// keeps, and a record of each kept version.
const histGroup = "junction-config-history"

// histNamespace is the Nacos namespace that holds histGroup.
func (d *Driver) histNamespace() string { return d.nacosNamespace(model.SystemNamespace) }

// reserved reports whether key names one of the driver's history items,
// which ordinary writes may not touch and listings do not show.
func (d *Driver) reserved(key model.ConfigKey) bool {
	return key.Group == histGroup && d.nacosNamespace(key.Namespace) == d.histNamespace()
}

// writable refuses ordinary writes of the driver's history items.
func (d *Driver) writable(key model.ConfigKey) error {
	if d.reserved(key) {
		return model.Invalid("group", "%s/%s is reserved for the nacos driver's configuration history", model.SystemNamespace, histGroup)
	}
	return nil
}

// histNames names the items of one configuration item's history: a digest
// of the item's Nacos namespace, group and dataId (whose characters a
// dataId may not all hold), then ".head" or a version's number.
type histNames string

func (d *Driver) histNames(key model.ConfigKey) histNames {
	sum := sha256.Sum256([]byte(d.nacosNamespace(key.Namespace) + "\x00" + key.Group + "\x00" + key.DataID))
	return histNames(hex.EncodeToString(sum[:20]))
}

func (h histNames) head() string { return string(h) + ".head" }

func (h histNames) record(n int64) string { return string(h) + "." + confighist.NumberKey(n) }

// lockConfig serializes this driver's changes of an item that keeps
// history, so that their versions are numbered in the order of the
// changes and its head is never written by two of them at once; it returns
// the unlock.
func (d *Driver) lockConfig(key model.ConfigKey) func() {
	if !confighist.Tracked(key) {
		return func() {}
	}
	return lockStripe(d.configWrites[:], key.String())
}

// record appends the version a change made to its item's history. It is
// called once the change has happened, with the item's write lock held
// (lockConfig), and takes the lock over. The version's number is claimed
// on the item's head before record returns, so that a change acknowledged
// before another driver's begins has the lower number. The record itself,
// and the deletes of the records retention drops, are written after the
// caller has its answer, by a goroutine that then unlocks: the item's
// next change through this driver, and a read of its history through this
// driver (settle), wait for them. A failure is logged, not returned (the
// history is not atomic, Capabilities.AtomicHistory). A driver closing
// waits for the changes under way and the records still being written
// (Close takes every item's write lock).
//
// The head comes first: it is where numbers are given out, by
// compare-and-set, so a number is given out once and its record written
// by its one owner. A record written first, under the number its writer
// expects, could be overwritten by a concurrent writer expecting the same
// one, and a version lost. A failure between the two leaves a number
// without a record, which the history skips.
func (d *Driver) record(ctx context.Context, op model.ConfigOp, c model.Config, unlock func()) {
	if !confighist.Tracked(c.Key) {
		unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.WriteTimeout)
	ch := backends.ChangeFrom(ctx)
	names := d.histNames(c.Key)
	now := time.Now()
	failed := func(err error) {
		d.log.Warn("config history: the change happened but its version was not recorded",
			"key", c.Key.String(), "op", op, "revision", c.Revision, "err", err)
	}
	n, drop, err := d.claim(ctx, names, now, ch.Retention)
	cancel()
	if err != nil {
		unlock()
		failed(fmt.Errorf("number the version: %w", err))
		return
	}
	rec := confighist.NewRecord(n, op, c, ch, now)
	rec.Revision = c.Revision // Nacos has no revisions: the one the driver gave the change
	go func() {
		defer unlock()
		if err := d.writeRecord(names, rec, drop); err != nil {
			failed(err)
		}
	}()
}

// writeRecord writes the record of a version whose number was claimed,
// then deletes the records of the versions in drop.
func (d *Driver) writeRecord(names histNames, rec confighist.Record, drop []int64) error {
	if err := d.writeOwn(names.record(rec.Number), string(rec.Encode()), ""); err != nil {
		return fmt.Errorf("record version %d: %w", rec.Number, err)
	}
	var errs []error
	for _, old := range drop {
		if err := d.deleteOwn(names.record(old)); err != nil {
			errs = append(errs, fmt.Errorf("drop version %d: %w", old, err))
		}
	}
	return errors.Join(errs...)
}

// settle waits until the records of key's changes through this driver
// are written.
func (d *Driver) settle(key model.ConfigKey) { d.lockConfig(key)() }

// claim appends a version made at now to an item's head and returns its
// number and the numbers of the versions retention drops. The head is
// written back by compare-and-set (headCAS): when another writer got in
// between, it is read again from the server and the append retried.
func (d *Driver) claim(ctx context.Context, names histNames, now time.Time, r backends.Retention) (int64, []int64, error) {
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		read, err := d.readOwn(ctx, names.head())
		if err != nil {
			return 0, nil, err
		}
		head, err := confighist.DecodeHead([]byte(read))
		if err != nil {
			return 0, nil, err
		}
		next, n, drop := head.Append(now, r)
		err = d.writeOwn(names.head(), string(next.Encode()), d.headCAS(read))
		if err == nil {
			return n, drop, nil
		}
		if !errors.Is(err, model.ErrConflict) {
			return 0, nil, err
		}
		d.own.forget(names.head())
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("%w: the head of the history kept changing: %v", model.ErrUnavailable, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// headCAS is the casMd5 of a head written back after reading read: create
// only for a new head (atomic on every server); the MD5 of the head read
// where Nacos compares it (cas=native); none under cas=check, for servers
// that drop casMd5, where only this driver's own writers are serialized
// (lockConfig).
func (d *Driver) headCAS(read string) string {
	switch {
	case read == "":
		return createOnly
	case d.cfg.CAS == CASNative:
		return model.ContentMD5([]byte(read))
	}
	return ""
}

// ConfigHistory returns the versions of an item its head keeps, oldest
// first. A version whose record is missing (its writer failed after
// numbering it, or another driver wrote it and the server does not serve
// it yet) is left out.
func (d *Driver) ConfigHistory(ctx context.Context, key model.ConfigKey, _ backends.ReadOptions) ([]model.ConfigVersion, backends.ReadInfo, error) {
	info := backends.ReadInfo{Revision: d.clock.current(), Consistency: model.Stale}
	if !confighist.Tracked(key) {
		return []model.ConfigVersion{}, info, nil
	}
	d.settle(key)
	names := d.histNames(key)
	head, err := d.readHead(ctx, names)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	now := time.Now()
	out := make([]model.ConfigVersion, 0, len(head.Kept))
	for _, e := range head.Kept {
		rec, ok, err := d.readRecord(ctx, names, e.Number, now)
		if err != nil {
			return nil, backends.ReadInfo{}, fmt.Errorf("history of config %s: %w", key, err)
		}
		if ok {
			out = append(out, rec.Version(key, 0))
		}
	}
	slices.SortFunc(out, func(a, b model.ConfigVersion) int { return cmp.Compare(a.Number, b.Number) })
	return out, info, nil
}

// ConfigVersion reads one version of an item, if its head still keeps it.
func (d *Driver) ConfigVersion(ctx context.Context, key model.ConfigKey, number int64, _ backends.ReadOptions) (model.ConfigVersion, error) {
	missing := fmt.Errorf("%w: config %s has no version %d", model.ErrNotFound, key, number)
	if !confighist.Tracked(key) {
		return model.ConfigVersion{}, missing
	}
	d.settle(key)
	names := d.histNames(key)
	head, err := d.readHead(ctx, names)
	if err != nil {
		return model.ConfigVersion{}, err
	}
	if !slices.ContainsFunc(head.Kept, func(e confighist.Entry) bool { return e.Number == number }) {
		return model.ConfigVersion{}, missing
	}
	rec, ok, err := d.readRecord(ctx, names, number, time.Now())
	switch {
	case err != nil:
		return model.ConfigVersion{}, fmt.Errorf("version %d of config %s: %w", number, key, err)
	case !ok:
		return model.ConfigVersion{}, missing
	}
	return rec.Version(key, 0), nil
}

// readHead reads the head of an item's history (empty before its first
// version).
func (d *Driver) readHead(ctx context.Context, names histNames) (confighist.Head, error) {
	read, err := d.readOwn(ctx, names.head())
	if err != nil {
		return confighist.Head{}, err
	}
	return confighist.DecodeHead([]byte(read))
}

// readRecord reads the record of version n; false when it is missing or
// past its retention at now.
func (d *Driver) readRecord(ctx context.Context, names histNames, n int64, now time.Time) (confighist.Record, bool, error) {
	read, err := d.readOwn(ctx, names.record(n))
	if err != nil || read == "" {
		return confighist.Record{}, false, err
	}
	rec, err := confighist.DecodeRecord([]byte(read))
	if err != nil {
		return confighist.Record{}, false, err
	}
	return rec, rec.Live(now), nil
}

// ownItems are the driver's recent writes of its history items. Nacos
// servers serve a write asynchronously (Polaris up to a second later), so
// for settleTime after writing an item the driver reads it from here:
// the server could only show it older, or newer by another driver's
// write, which the head's compare-and-set catches.
type ownItems struct {
	mu     sync.Mutex
	recent map[string]ownWrite // by dataId
}

type ownWrite struct {
	content string // "": deleted
	settle  time.Time
}

// get returns the content this driver wrote to an item within settleTime.
func (o *ownItems) get(dataID string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.recent[dataID]
	if !ok || time.Now().After(w.settle) {
		return "", false
	}
	return w.content, true
}

// set remembers a write the server acknowledged, and forgets the settled.
func (o *ownItems) set(dataID, content string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if o.recent == nil {
		o.recent = map[string]ownWrite{}
	}
	for id, w := range o.recent {
		if now.After(w.settle) {
			delete(o.recent, id)
		}
	}
	o.recent[dataID] = ownWrite{content: content, settle: now.Add(settleTime)}
}

// forget makes the next read of an item ask the server.
func (o *ownItems) forget(dataID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.recent, dataID)
}

// readOwn reads one of the driver's history items ("" when absent).
func (d *Driver) readOwn(ctx context.Context, dataID string) (string, error) {
	if content, ok := d.own.get(dataID); ok {
		return content, nil
	}
	c, err := d.configClient(d.histNamespace())
	if err != nil {
		return "", err
	}
	return fetch(ctx, c, histGroup, dataID, ownKey(dataID))
}

// writeOwn publishes one of the driver's history items with the casMd5 cas
// ("": unconditional); model.ErrConflict when the server refuses it for
// cas.
func (d *Driver) writeOwn(dataID, content, cas string) error {
	c, err := d.configClient(d.histNamespace())
	if err != nil {
		return err
	}
	ok, err := c.PublishConfig(vo.ConfigParam{DataId: dataID, Group: histGroup, Content: content, CasMd5: cas, Type: "json"})
	if err != nil || !ok {
		if cas != "" && err != nil && isCASFailure(err) {
			return fmt.Errorf("%w: %s changed: %s", model.ErrConflict, ownKey(dataID), brief(err))
		}
		return sdkError("publish config", fmt.Errorf("publish of %s refused: %v", ownKey(dataID), err))
	}
	d.own.set(dataID, content)
	return nil
}

// deleteOwn deletes one of the driver's history items.
func (d *Driver) deleteOwn(dataID string) error {
	c, err := d.configClient(d.histNamespace())
	if err != nil {
		return err
	}
	if ok, err := c.DeleteConfig(vo.ConfigParam{DataId: dataID, Group: histGroup}); err != nil || !ok {
		return sdkError("delete config", fmt.Errorf("delete of %s refused: %v", ownKey(dataID), err))
	}
	d.own.set(dataID, "")
	return nil
}

// ownKey names one of the driver's history items in errors.
func ownKey(dataID string) model.ConfigKey {
	return model.ConfigKey{Namespace: model.SystemNamespace, Group: histGroup, DataID: dataID}
}

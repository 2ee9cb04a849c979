package zookeeper

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/model"
)

// historyPath is the head of an item's history, a znode whose children are
// its versions: PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/NUMBER.
func (d *Driver) historyPath(k model.ConfigKey) string {
	return d.cfg.Prefix + "/config-history/" + k.Namespace + "/" + k.Group + "/" + k.DataID
}

func (d *Driver) versionPath(k model.ConfigKey, n int64) string {
	return d.historyPath(k) + "/" + confighist.NumberKey(n)
}

// item is a config item as read for a write, with its history head.
type item struct {
	key  model.ConfigKey
	st   *zk.Stat // the item's node; nil when absent
	cur  model.Config
	head confighist.Head
	// headSt is the head's node; nil when absent or the item keeps no
	// history.
	headSt *zk.Stat
}

// readItem reads an item and, if it keeps history, its head. ZooKeeper
// reads one node at a time; the write that follows is guarded by the
// versions of both, so a change between the two reads only makes it start
// over.
func (d *Driver) readItem(key model.ConfigKey) (item, error) {
	it := item{key: key}
	data, st, err := d.conn.Get(d.configPath(key))
	switch {
	case err == nil:
		it.st, it.cur = st, decodeConfig(key, data, st)
	case !errors.Is(err, zk.ErrNoNode):
		return item{}, mapErr(err)
	}
	if !confighist.Tracked(key) {
		return it, nil
	}
	data, st, err = d.conn.Get(d.historyPath(key))
	switch {
	case errors.Is(err, zk.ErrNoNode):
		return it, nil
	case err != nil:
		return item{}, mapErr(err)
	}
	if it.head, err = confighist.DecodeHead(data); err != nil {
		return item{}, fmt.Errorf("zookeeper: %s: %w", key, err)
	}
	it.headSt = st
	return it, nil
}

// change runs op, the item's own create, set or delete, in one multi with,
// for an item that keeps history, the version that records it (vop, made
// to c): the head set at the version it was read at, the version's record
// and the deletes of the versions retention drops. It returns the multi's
// results, op's first, or ok false when the item or its head changed since
// it was read.
func (d *Driver) change(ctx context.Context, it item, op any, vop model.ConfigOp, c model.Config) (_ []zk.MultiResponse, ok bool, _ error) {
	ops := []any{op}
	if confighist.Tracked(it.key) {
		ch := backends.ChangeFrom(ctx)
		now := time.Now().UTC()
		head, n, drop := it.head.Append(now, ch.Retention)
		ops = append(ops, d.historyOps(it, head, confighist.NewRecord(n, vop, c, ch, now), drop)...)
	}
	res, err := d.multi(ops)
	switch {
	case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists), errors.Is(err, zk.ErrNoNode):
		return nil, false, nil
	case err != nil:
		return nil, false, mapErr(err)
	}
	return res, true, nil
}

// historyOps returns the operations that write an item's new head and
// record and delete the versions in drop.
func (d *Driver) historyOps(it item, head confighist.Head, rec confighist.Record, drop []int64) []any {
	hp := d.historyPath(it.key)
	set := &zk.SetDataRequest{Path: hp, Data: head.Encode()}
	ops := []any{set}
	if it.headSt != nil {
		set.Version = it.headSt.Version
	} else {
		// Created empty and set at once, so that the results of the
		// multi always carry its zxid (see zxidOf).
		ops = []any{&zk.CreateRequest{Path: hp, Acl: d.acl}, set}
	}
	ops = append(ops, &zk.CreateRequest{Path: d.versionPath(it.key, rec.Number), Data: rec.Encode(), Acl: d.acl})
	for _, n := range drop {
		ops = append(ops, &zk.DeleteRequest{Path: d.versionPath(it.key, n), Version: -1})
	}
	return ops
}

// zxidOf returns the zxid of a multi, which every node it sets has as its
// mzxid; 0 when it set none (a create or delete of an item that keeps no
// history).
func zxidOf(res []zk.MultiResponse) int64 {
	for _, r := range res {
		if r.Stat != nil {
			return r.Stat.Mzxid
		}
	}
	return 0
}

// multi runs ops, the item's own first, in one transaction. When one fails
// for a missing node it makes good what it can and runs them again: it
// creates the missing parents of a node to create, and leaves out the
// delete of a version that is already gone (removed by another client).
func (d *Driver) multi(ops []any) ([]zk.MultiResponse, error) {
	var (
		res []zk.MultiResponse
		err error
	)
	for range len(ops) + 2 {
		res, err = d.conn.Multi(ops...)
		if !errors.Is(err, zk.ErrNoNode) {
			return res, err
		}
		i := slices.IndexFunc(res, func(r zk.MultiResponse) bool { return r.Error != nil })
		if i < 0 {
			return res, err
		}
		switch op := ops[i].(type) {
		case *zk.CreateRequest:
			if err := d.ensureParents(op.Path); err != nil {
				return nil, err
			}
		case *zk.DeleteRequest:
			if i == 0 {
				return res, err // the item, deleted since it was read
			}
			ops = slices.Delete(ops, i, i+1)
		default:
			return res, err
		}
	}
	return res, err
}

// ConfigHistory implements backends.History: the children of the item's
// head, read after a sync unless o allows a stale read.
func (d *Driver) ConfigHistory(ctx context.Context, key model.ConfigKey, o backends.ReadOptions) ([]model.ConfigVersion, backends.ReadInfo, error) {
	hp := d.historyPath(key)
	c, err := d.sync(hp, o)
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	names, hst, err := d.conn.Children(hp)
	if errors.Is(err, zk.ErrNoNode) {
		return []model.ConfigVersion{}, backends.ReadInfo{Revision: d.absentRev(hp), Consistency: c}, nil
	}
	if err != nil {
		return nil, backends.ReadInfo{}, mapErr(err)
	}
	type read struct {
		data []byte
		st   *zk.Stat
		err  error
	}
	reads := make([]read, len(names))
	pipelined(len(names), func(i int) {
		r := &reads[i]
		r.data, r.st, r.err = d.conn.Get(hp + "/" + names[i])
	})
	now := time.Now()
	out := []model.ConfigVersion{}
	for _, r := range reads {
		if errors.Is(r.err, zk.ErrNoNode) {
			continue // dropped since the listing
		}
		if r.err != nil {
			return nil, backends.ReadInfo{}, mapErr(r.err)
		}
		if v, ok := decodeVersion(key, r.data, r.st, now); ok {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b model.ConfigVersion) int { return cmp.Compare(a.Number, b.Number) })
	return out, backends.ReadInfo{Revision: max(hst.Mzxid, hst.Pzxid), Consistency: c}, nil
}

// ConfigVersion implements backends.History.
func (d *Driver) ConfigVersion(ctx context.Context, key model.ConfigKey, number int64, o backends.ReadOptions) (model.ConfigVersion, error) {
	p := d.versionPath(key, number)
	if _, err := d.sync(p, o); err != nil {
		return model.ConfigVersion{}, err
	}
	data, st, err := d.conn.Get(p)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return model.ConfigVersion{}, mapErr(err)
	}
	if err == nil {
		if v, ok := decodeVersion(key, data, st, time.Now()); ok {
			return v, nil
		}
	}
	return model.ConfigVersion{}, fmt.Errorf("version %d of config %s: %w", number, key, model.ErrNotFound)
}

// decodeVersion reads a version's record, which is created once, in the
// multi of the change it records: its czxid is the change's revision. A
// record past its time reads as absent.
func decodeVersion(key model.ConfigKey, data []byte, st *zk.Stat, now time.Time) (model.ConfigVersion, bool) {
	r, err := confighist.DecodeRecord(data)
	if err != nil || !r.Live(now) {
		return model.ConfigVersion{}, false
	}
	return r.Version(key, st.Czxid), true
}

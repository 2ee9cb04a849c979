package consul

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/model"
)

// maxDrops bounds the versions one transaction deletes: Consul runs at
// most 64 operations in a transaction, and a change takes four besides.
const maxDrops = 56

// historyDir is the folder of an item's versions, one key each, and
// headKey its head, beside them:
// PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/{head,v/NUMBER}. A data id
// holds no '/', so no item's keys fall under another's.
func (d *Driver) historyDir(k model.ConfigKey) string {
	return d.cfg.Prefix + "/config-history/" + k.Namespace + "/" + k.Group + "/" + k.DataID + "/v/"
}

func (d *Driver) headKey(k model.ConfigKey) string {
	return d.cfg.Prefix + "/config-history/" + k.Namespace + "/" + k.Group + "/" + k.DataID + "/head"
}

func (d *Driver) versionKey(k model.ConfigKey, n int64) string {
	return d.historyDir(k) + confighist.NumberKey(n)
}

// item is a config item as read for a write, with its history head.
type item struct {
	key    model.ConfigKey
	cur    model.Config
	exists bool
	head   confighist.Head
	// headIndex is the head's ModifyIndex, 0 when it is absent or the
	// item keeps no history.
	headIndex uint64
}

// readItem reads an item and, if it keeps history, its head, in one
// consistent transaction.
func (d *Driver) readItem(ctx context.Context, key model.ConfigKey) (item, error) {
	keys := []string{d.valueKey(key), d.metaKey(key)}
	if confighist.Tracked(key) {
		keys = append(keys, d.headKey(key))
	}
	kvs, _, err := d.readPairs(ctx, &api.QueryOptions{RequireConsistent: true}, keys...)
	if err != nil {
		return item{}, err
	}
	it := item{key: key}
	it.cur, it.exists = configOf(key, kvs[0], kvs[1])
	if len(kvs) > 2 && kvs[2].ModifyIndex > 0 {
		if it.head, err = confighist.DecodeHead(kvs[2].Value); err != nil {
			return item{}, fmt.Errorf("consul: %s: %w", key, err)
		}
		it.headIndex = kvs[2].ModifyIndex
	}
	return it, nil
}

// change commits ops, the item's own write, in one transaction with, for
// an item that keeps history, the version that records it (op, made to c):
// its record, its head guarded by the index it was read at, and the
// deletes of the versions retention drops. It returns the pairs the
// transaction wrote, in the order of ops (the record, then the head, after
// the item's), or ok false when the item or its head changed since it was
// read.
func (d *Driver) change(ctx context.Context, it item, ops api.TxnOps, op model.ConfigOp, c model.Config) (written []*api.KVPair, ok bool, err error) {
	deferred := false
	if confighist.Tracked(it.key) {
		ch := backends.ChangeFrom(ctx)
		now := time.Now().UTC()
		head, n, drop := it.head.Append(now, ch.Retention)
		head, drop, deferred = head.Defer(drop, maxDrops)
		rec := confighist.NewRecord(n, op, c, ch, now)
		ops = append(ops, d.historyOps(it.key, it.headIndex, head, &rec, drop)...)
	}
	written, ok, err = d.commit(ctx, it.key, ops)
	if ok && deferred {
		if err := d.pruneHistory(ctx, it.key); err != nil {
			d.log.Warn("deleting dropped config versions; the item's next write retries", "key", it.key, "err", err)
		}
	}
	return written, ok, err
}

// historyOps returns the operations that write an item's head, guarded by
// headIndex (0: the head must not exist), the record of a new version
// (none when rec is nil) and the deletes of the versions in drop.
func (d *Driver) historyOps(key model.ConfigKey, headIndex uint64, head confighist.Head, rec *confighist.Record, drop []int64) api.TxnOps {
	var ops api.TxnOps
	if rec != nil {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVSet, Key: d.versionKey(key, rec.Number), Value: rec.Encode()}})
	}
	ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: d.headKey(key), Value: head.Encode(), Index: headIndex}})
	for _, n := range drop {
		ops = append(ops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: d.versionKey(key, n)}})
	}
	return ops
}

// pruneHistory deletes the expired versions the head of key lists, those
// Head.Defer left among them, maxDrops per transaction.
func (d *Driver) pruneHistory(ctx context.Context, key model.ConfigKey) error {
	for {
		kvs, _, err := d.readPairs(ctx, &api.QueryOptions{RequireConsistent: true}, d.headKey(key))
		if err != nil {
			return err
		}
		head, err := confighist.DecodeHead(kvs[0].Value)
		if err != nil {
			return err
		}
		head, drop := head.Expire(time.Now())
		if len(drop) == 0 {
			return nil
		}
		head, drop, _ = head.Defer(drop, maxDrops)
		if _, _, err := d.commit(ctx, key, d.historyOps(key, kvs[0].ModifyIndex, head, nil, drop)); err != nil {
			return err
		}
	}
}

// commit runs a write transaction of key's keys and returns the pairs it
// wrote; ok is false when a compare-and-set in it failed.
func (d *Driver) commit(ctx context.Context, key model.ConfigKey, ops api.TxnOps) (written []*api.KVPair, ok bool, err error) {
	ok, resp, _, err := d.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, false, mapErr(err)
	}
	if !ok {
		if isCASFailure(resp) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("consul: writing %s: %s: %w", key, txnErrors(resp), model.ErrUnavailable)
	}
	for _, r := range resp.Results {
		if r.KV != nil {
			written = append(written, r.KV)
		}
	}
	return written, true, nil
}

// ConfigHistory implements backends.History: the head and the records of
// an item, read in one transaction.
func (d *Driver) ConfigHistory(ctx context.Context, key model.ConfigKey, o backends.ReadOptions) ([]model.ConfigVersion, backends.ReadInfo, error) {
	q, asked := d.readOpts(ctx, o)
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVGetOrEmpty, Key: d.headKey(key)}},
		{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: d.historyDir(key)}},
	}
	ok, resp, meta, err := d.client.Txn().Txn(ops, q)
	if err != nil {
		return nil, backends.ReadInfo{}, mapErr(err)
	}
	if !ok || len(resp.Results) == 0 {
		return nil, backends.ReadInfo{}, fmt.Errorf("consul: reading the history of %s: %s: %w", key, txnErrors(resp), model.ErrUnavailable)
	}
	now := time.Now()
	kept, err := keptVersions(resp.Results[0].KV, now)
	if err != nil {
		return nil, backends.ReadInfo{}, fmt.Errorf("consul: %s: %w", key, err)
	}
	out := []model.ConfigVersion{}
	for _, r := range resp.Results[1:] {
		if v, ok := decodeVersion(key, r.KV, kept, now); ok {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b model.ConfigVersion) int { return cmp.Compare(a.Number, b.Number) })
	return out, backends.ReadInfo{Revision: int64(meta.LastIndex), Consistency: consistency(asked, meta)}, nil
}

// ConfigVersion implements backends.History.
func (d *Driver) ConfigVersion(ctx context.Context, key model.ConfigKey, number int64, o backends.ReadOptions) (model.ConfigVersion, error) {
	q, _ := d.readOpts(ctx, o)
	kvs, _, err := d.readPairs(ctx, q, d.headKey(key), d.versionKey(key, number))
	if err != nil {
		return model.ConfigVersion{}, err
	}
	now := time.Now()
	kept, err := keptVersions(kvs[0], now)
	if err != nil {
		return model.ConfigVersion{}, fmt.Errorf("consul: %s: %w", key, err)
	}
	if v, ok := decodeVersion(key, kvs[1], kept, now); ok {
		return v, nil
	}
	return model.ConfigVersion{}, fmt.Errorf("version %d of config %s: %w", number, key, model.ErrNotFound)
}

// keptVersions returns the numbers of the versions a head (a pair that
// may be absent) keeps at now.
func keptVersions(head *api.KVPair, now time.Time) (map[int64]bool, error) {
	var h confighist.Head
	if head != nil && head.ModifyIndex > 0 {
		var err error
		if h, err = confighist.DecodeHead(head.Value); err != nil {
			return nil, err
		}
	}
	return h.Live(now), nil
}

// decodeVersion reads a version's record, which is written once: its
// ModifyIndex is the index of the change it records. A record the head no
// longer keeps at now, or past its time, reads as absent.
func decodeVersion(key model.ConfigKey, kv *api.KVPair, kept map[int64]bool, now time.Time) (model.ConfigVersion, bool) {
	if kv == nil || kv.ModifyIndex == 0 {
		return model.ConfigVersion{}, false
	}
	r, err := confighist.DecodeRecord(kv.Value)
	if err != nil || !kept[r.Number] || !r.Live(now) {
		return model.ConfigVersion{}, false
	}
	return r.Version(key, int64(kv.ModifyIndex)), true
}

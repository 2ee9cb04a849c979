package consul

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/model"
)

// configMeta is what Consul's KV cannot hold next to a value; it is
// written in the same transaction, under PREFIX/config-meta/.
type configMeta struct {
	ContentType string    `json:"contentType"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

func (d *Driver) valueKey(k model.ConfigKey) string {
	return d.cfg.Prefix + "/configs/" + k.Namespace + "/" + k.Group + "/" + k.DataID
}

func (d *Driver) metaKey(k model.ConfigKey) string {
	return d.cfg.Prefix + "/config-meta/" + k.Namespace + "/" + k.Group + "/" + k.DataID
}

// decodeConfig builds an item from its value pair (the raw content, with
// the Junction version in the flags) and its meta pair (may be nil). A
// value written by another tool has flags 0 and is reported at version 1;
// its meta, if any, predates it, so its update time is unknown.
func decodeConfig(key model.ConfigKey, v, m *api.KVPair) model.Config {
	c := model.Config{Key: key, Content: v.Value, ContentType: model.ContentText, MD5: model.ContentMD5(v.Value),
		Revision: int64(v.ModifyIndex), CreateRevision: int64(v.CreateIndex), Version: max(1, int64(v.Flags))}
	if c.Content == nil {
		c.Content = []byte{}
	}
	var cm configMeta
	if m != nil && m.ModifyIndex > 0 && json.Unmarshal(m.Value, &cm) == nil {
		c.ContentType = cmp.Or(cm.ContentType, model.ContentText)
		c.Created = cm.Created
		if m.ModifyIndex == v.ModifyIndex {
			c.Updated = cm.Updated
		}
	}
	return c
}

// readConfig reads an item's value and meta in one transaction. exists is
// false when the value is absent.
func (d *Driver) readConfig(ctx context.Context, key model.ConfigKey, q *api.QueryOptions) (c model.Config, exists bool, meta *api.QueryMeta, err error) {
	kvs, meta, err := d.readPairs(ctx, q, d.valueKey(key), d.metaKey(key))
	if err != nil {
		return c, false, nil, err
	}
	c, exists = configOf(key, kvs[0], kvs[1])
	return c, exists, meta, nil
}

// configOf decodes an item from the pairs readPairs returns for its value
// and meta; exists is false when the value is absent.
func configOf(key model.ConfigKey, v, m *api.KVPair) (c model.Config, exists bool) {
	if v == nil || v.ModifyIndex == 0 {
		return model.Config{}, false
	}
	return decodeConfig(key, v, m), true
}

// readPairs reads keys in one transaction, in their order; an absent key
// reads as a pair with ModifyIndex 0.
func (d *Driver) readPairs(ctx context.Context, q *api.QueryOptions, keys ...string) ([]*api.KVPair, *api.QueryMeta, error) {
	ops := make(api.TxnOps, len(keys))
	for i, k := range keys {
		ops[i] = &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGetOrEmpty, Key: k}}
	}
	ok, resp, meta, err := d.client.Txn().Txn(ops, q.WithContext(ctx))
	if err != nil {
		return nil, nil, mapErr(err)
	}
	if !ok || len(resp.Results) != len(keys) {
		return nil, nil, fmt.Errorf("consul: reading %s: %v: %w", strings.Join(keys, ", "), txnErrors(resp), model.ErrUnavailable)
	}
	kvs := make([]*api.KVPair, len(keys))
	for i, r := range resp.Results {
		kvs[i] = r.KV
	}
	return kvs, meta, nil
}

func txnErrors(resp *api.TxnResponse) string {
	if resp == nil {
		return "no response"
	}
	var s []string
	for _, e := range resp.Errors {
		s = append(s, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
	}
	return strings.Join(s, "; ")
}

// GetConfig implements backends.Configs.
func (d *Driver) GetConfig(ctx context.Context, key model.ConfigKey, o backends.ReadOptions) (model.Config, backends.ReadInfo, error) {
	q, asked := d.readOpts(ctx, o)
	c, exists, meta, err := d.readConfig(ctx, key, q)
	if err != nil {
		return model.Config{}, backends.ReadInfo{}, err
	}
	info := backends.ReadInfo{Revision: int64(meta.LastIndex), Consistency: consistency(asked, meta)}
	if !exists {
		return model.Config{}, info, fmt.Errorf("config %s: %w", key, model.ErrNotFound)
	}
	info.Revision = max(info.Revision, c.Revision)
	return c, info, nil
}

// PutConfig implements backends.Configs: a transaction that compares the
// value's ModifyIndex (0: create only) and writes value and meta together,
// with the version it makes (see change).
func (d *Driver) PutConfig(ctx context.Context, cfg model.Config, cond model.Precondition) (model.Config, error) {
	for {
		it, err := d.readItem(ctx, cfg.Key)
		if err != nil {
			return model.Config{}, err
		}
		cur := it.cur
		if !cond.Holds(cur.Revision) {
			return model.Config{}, model.ConfigConflict(cfg.Key, cond, cur.Revision)
		}
		now := time.Now().UTC()
		cm := configMeta{ContentType: cmp.Or(cfg.ContentType, cur.ContentType, model.ContentText), Created: now, Updated: now}
		version := int64(1)
		if it.exists {
			cm.Created, version = cur.Created, cur.Version+1
			if cm.Created.IsZero() {
				cm.Created = now
			}
		}
		mb, _ := json.Marshal(cm)
		ops := api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: d.valueKey(cfg.Key), Value: cfg.Content, Flags: uint64(version), Index: uint64(cur.Revision)}},
			{KV: &api.KVTxnOp{Verb: api.KVSet, Key: d.metaKey(cfg.Key), Value: mb}},
		}
		stored := model.Config{Key: cfg.Key, Content: cfg.Content, ContentType: cm.ContentType}
		written, ok, err := d.change(ctx, it, ops, confighist.Op(it.exists), stored)
		if err != nil {
			return model.Config{}, err
		}
		if !ok {
			continue // changed between the read and the write: check again
		}
		v := written[0]
		v.Value, v.Flags = cfg.Content, uint64(version)
		return decodeConfig(cfg.Key, v, &api.KVPair{Value: mb, ModifyIndex: v.ModifyIndex}), nil
	}
}

func isCASFailure(resp *api.TxnResponse) bool {
	for _, e := range resp.Errors {
		if strings.Contains(e.What, "index is stale") || strings.Contains(e.What, "CAS") ||
			strings.Contains(e.What, "failed to set key") || strings.Contains(e.What, "failed to delete key") {
			return true
		}
	}
	return false
}

// DeleteConfig implements backends.Configs: like PutConfig, a transaction
// at the index read, with the version that records the delete.
func (d *Driver) DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error) {
	for {
		it, err := d.readItem(ctx, key)
		if err != nil {
			return 0, err
		}
		if !it.exists {
			if cond.Check {
				return 0, model.ConfigConflict(key, cond, 0)
			}
			return 0, fmt.Errorf("config %s: %w", key, model.ErrNotFound)
		}
		if !cond.Holds(it.cur.Revision) {
			return 0, model.ConfigConflict(key, cond, it.cur.Revision)
		}
		ops := api.TxnOps{
			{KV: &api.KVTxnOp{Verb: api.KVDeleteCAS, Key: d.valueKey(key), Index: uint64(it.cur.Revision)}},
			{KV: &api.KVTxnOp{Verb: api.KVDelete, Key: d.metaKey(key)}},
		}
		written, ok, err := d.change(ctx, it, ops, model.OpDelete, it.cur)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		if len(written) > 0 {
			return int64(written[0].ModifyIndex), nil // the version's record, written with the delete
		}
		// A delete leaves a tombstone; reading the key reports its index.
		_, meta, err := d.client.KV().Get(d.valueKey(key), (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
		if err != nil {
			return 0, mapErr(err)
		}
		return int64(meta.LastIndex), nil
	}
}

// ListConfigs implements backends.Configs.
func (d *Driver) ListConfigs(ctx context.Context, namespace, group string, o backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	q, asked := d.readOpts(ctx, o)
	sub := namespace + "/"
	if group != "" {
		sub += group + "/"
	}
	// One transaction, so values and meta are read at the same index.
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: d.cfg.Prefix + "/configs/" + sub}},
		{KV: &api.KVTxnOp{Verb: api.KVGetTree, Key: d.cfg.Prefix + "/config-meta/" + sub}},
	}
	ok, resp, meta, err := d.client.Txn().Txn(ops, q)
	if err != nil {
		return nil, backends.ReadInfo{}, mapErr(err)
	}
	if !ok {
		return nil, backends.ReadInfo{}, fmt.Errorf("consul: listing configs: %s: %w", txnErrors(resp), model.ErrUnavailable)
	}
	metas := map[string]*api.KVPair{}
	var values []*api.KVPair
	for _, r := range resp.Results {
		switch {
		case r.KV == nil:
		case strings.HasPrefix(r.KV.Key, d.cfg.Prefix+"/config-meta/"):
			metas[strings.TrimPrefix(r.KV.Key, d.cfg.Prefix+"/config-meta/")] = r.KV
		default:
			values = append(values, r.KV)
		}
	}
	var out []model.ConfigSummary
	for _, v := range values {
		rest := strings.TrimPrefix(v.Key, d.cfg.Prefix+"/configs/"+namespace+"/")
		g, id, ok := strings.Cut(rest, "/")
		if !ok || g == "" || id == "" || strings.Contains(id, "/") {
			continue // a folder or a key written by another tool in another shape
		}
		k := model.ConfigKey{Namespace: namespace, Group: g, DataID: id}
		out = append(out, decodeConfig(k, v, metas[namespace+"/"+g+"/"+id]).Summary())
	}
	slices.SortFunc(out, func(a, b model.ConfigSummary) int {
		return cmp.Or(cmp.Compare(a.Key.Group, b.Key.Group), cmp.Compare(a.Key.DataID, b.Key.DataID))
	})
	return out, backends.ReadInfo{Revision: int64(meta.LastIndex), Consistency: consistency(asked, meta)}, nil
}

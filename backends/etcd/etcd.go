package etcd

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/model"
)

func init() { backends.RegisterURL("etcd", ConfigFromURL, Open) }

// Config configures the driver.
type Config struct {
	Endpoints   []string
	Prefix      string
	Username    string
	Password    string
	TLS         *tls.Config
	DialTimeout time.Duration
}

// ConfigFromURL reads an etcd:// URL.
func ConfigFromURL(u *url.URL) (Config, error) {
	cfg := Config{Prefix: "/junction", DialTimeout: 5 * time.Second}
	for _, h := range strings.Split(u.Host, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.Endpoints = append(cfg.Endpoints, h)
		}
	}
	if len(cfg.Endpoints) == 0 {
		return cfg, model.Invalid("backend", "etcd:// needs at least one HOST:PORT")
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	q := u.Query()
	var tlsInfo transport.TLSInfo
	useTLS := false
	for k, vs := range q {
		v := vs[0]
		switch k {
		case "prefix":
			if !strings.HasPrefix(v, "/") || strings.HasSuffix(v, "/") {
				return cfg, model.Invalid("prefix", "%q must start with / and not end with /", v)
			}
			cfg.Prefix = v
		case "username":
			cfg.Username = v
		case "password":
			cfg.Password = v
		case "tls":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, model.Invalid("tls", "%q is not true or false", v)
			}
			useTLS = b
		case "ca-file":
			tlsInfo.TrustedCAFile, useTLS = v, true
		case "cert-file":
			tlsInfo.CertFile, useTLS = v, true
		case "key-file":
			tlsInfo.KeyFile, useTLS = v, true
		case "insecure-skip-verify":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, model.Invalid("insecure-skip-verify", "%q is not true or false", v)
			}
			tlsInfo.InsecureSkipVerify = b
		case "dial-timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return cfg, model.Invalid("dial-timeout", "%q is not a positive duration", v)
			}
			cfg.DialTimeout = d
		default:
			return cfg, model.Invalid(k, "unknown etcd:// option; known: prefix, username, password, tls, ca-file, cert-file, key-file, insecure-skip-verify, dial-timeout")
		}
	}
	if useTLS {
		tc, err := tlsInfo.ClientConfig()
		if err != nil {
			return cfg, model.Invalid("tls", "%v", err)
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// Driver is the etcd backend.
type Driver struct {
	cli    *clientv3.Client
	prefix string
}

var _ backends.Backend = (*Driver)(nil)

// Open connects to etcd and checks that it answers before ctx ends.
func Open(ctx context.Context, cfg Config) (*Driver, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout,
		Username: cfg.Username, Password: cfg.Password, TLS: cfg.TLS, Logger: zap.NewNop(), Context: context.Background()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", mapErr(err))
	}
	d := &Driver{cli: cli, prefix: cfg.Prefix}
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(ctx, cfg.Prefix+"/", clientv3.WithCountOnly()); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd at %s does not answer: %w", strings.Join(cfg.Endpoints, ","), mapErr(err))
	}
	return d, nil
}

// Client returns the underlying etcd client (an escape hatch for tools).
func (d *Driver) Client() *clientv3.Client { return d.cli }

// mapErr turns etcd and gRPC errors into portable ones.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return model.ErrUnknownSession
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %v", model.ErrCompacted, err)
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrAuthFailed), errors.Is(err, rpctypes.ErrInvalidAuthToken):
		return fmt.Errorf("%w: %v", model.ErrPermissionDenied, err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%w: %v", model.ErrTooLarge, err)
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%w: %v", model.ErrPermissionDenied, err)
	}
	return fmt.Errorf("etcd: %w", err)
}

func (d *Driver) serviceDir(k model.ServiceKey) string {
	return d.prefix + "/services/" + k.Namespace + "/" + k.Group + "/" + k.Service + "/"
}

func (d *Driver) configKey(k model.ConfigKey) string {
	return d.prefix + "/configs/" + k.Namespace + "/" + k.Group + "/" + k.DataID
}

// historyDir holds the versions of an item, one key each, and headKey its
// head, beside them: PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/.
func (d *Driver) historyDir(k model.ConfigKey) string {
	return d.prefix + "/config-history/" + k.Namespace + "/" + k.Group + "/" + k.DataID + "/v/"
}

func (d *Driver) headKey(k model.ConfigKey) string {
	return d.prefix + "/config-history/" + k.Namespace + "/" + k.Group + "/" + k.DataID + "/head"
}

func (d *Driver) versionKey(k model.ConfigKey, n int64) string {
	return d.historyDir(k) + confighist.NumberKey(n)
}

func sessionID(lease clientv3.LeaseID) string { return strconv.FormatInt(int64(lease), 16) }

func parseSession(id string) (clientv3.LeaseID, error) {
	n, err := strconv.ParseInt(id, 16, 64)
	if err != nil || n <= 0 {
		return 0, model.ErrUnknownSession
	}
	return clientv3.LeaseID(n), nil
}

// CreateSession implements backends.Sessions with a lease.
func (d *Driver) CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error) {
	if err := model.ValidateTTL(ttl); err != nil {
		return model.Session{}, 0, err
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	resp, err := d.cli.Grant(ctx, secs)
	if err != nil {
		return model.Session{}, 0, mapErr(err)
	}
	return model.Session{ID: sessionID(resp.ID), TTL: time.Duration(resp.TTL) * time.Second}, resp.ResponseHeader.Revision, nil
}

// KeepAlive implements backends.Sessions.
func (d *Driver) KeepAlive(ctx context.Context, id string) (model.Session, error) {
	lease, err := parseSession(id)
	if err != nil {
		return model.Session{}, err
	}
	resp, err := d.cli.KeepAliveOnce(ctx, lease)
	if err != nil {
		return model.Session{}, mapErr(err)
	}
	return model.Session{ID: id, TTL: time.Duration(resp.TTL) * time.Second}, nil
}

// CloseSession implements backends.Sessions: revoking the lease deletes the
// session's instances in the same revision.
func (d *Driver) CloseSession(ctx context.Context, id string) (int64, error) {
	lease, err := parseSession(id)
	if err != nil {
		return 0, err
	}
	resp, err := d.cli.Revoke(ctx, lease)
	if err != nil {
		return 0, mapErr(err)
	}
	return resp.Header.Revision, nil
}

// endpointValue is etcd's naming/endpoints record carrying a Junction instance.
type endpointValue struct {
	Op       uint8           `json:"Op"`
	Addr     string          `json:"Addr"`
	Metadata json.RawMessage `json:"Metadata"`
}

func encodeInstance(i model.Instance) (string, error) {
	meta, err := json.Marshal(i)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(endpointValue{Addr: net.JoinHostPort(i.IP, strconv.Itoa(i.Port)), Metadata: meta})
	return string(b), err
}

// decodeInstance reads a Junction instance or a plain endpoints record.
func decodeInstance(kv *mvccpb.KeyValue) (model.Instance, bool) {
	key := string(kv.Key)
	id := key[strings.LastIndexByte(key, '/')+1:]
	var v endpointValue
	if err := json.Unmarshal(kv.Value, &v); err != nil {
		return model.Instance{}, false
	}
	var inst model.Instance
	if len(v.Metadata) > 0 && json.Unmarshal(v.Metadata, &inst) == nil && inst.IP != "" {
		inst.ID = id
	} else {
		host, port, err := net.SplitHostPort(v.Addr)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			return model.Instance{}, false
		}
		inst = model.Instance{ID: id, IP: host, Port: p, Cluster: model.DefaultCluster, Weight: 1, Healthy: true,
			Enabled: true, Ephemeral: kv.Lease != 0}
		if kv.Lease != 0 {
			inst.Session = sessionID(clientv3.LeaseID(kv.Lease))
		}
		var meta map[string]string
		if json.Unmarshal(v.Metadata, &meta) == nil {
			inst.Metadata = meta
		}
	}
	inst.Revision = kv.ModRevision
	return inst, true
}

// Register implements backends.Registry.
func (d *Driver) Register(ctx context.Context, svc model.ServiceKey, inst model.Instance) (int64, error) {
	val, err := encodeInstance(inst)
	if err != nil {
		return 0, err
	}
	var opts []clientv3.OpOption
	if inst.Ephemeral {
		lease, err := parseSession(inst.Session)
		if err != nil {
			return 0, err
		}
		opts = append(opts, clientv3.WithLease(lease))
	}
	resp, err := d.cli.Put(ctx, d.serviceDir(svc)+inst.ID, val, opts...)
	if err != nil {
		return 0, mapErr(err)
	}
	return resp.Header.Revision, nil
}

// PatchInstance implements backends.Registry: a transaction on the key's
// mod revision writes the patched value and keeps the key's lease, so the
// instance stays with its session whichever client sends the patch. A
// concurrent write makes it start over on the new value (where a
// precondition then fails).
func (d *Driver) PatchInstance(ctx context.Context, svc model.ServiceKey, id string, p model.InstancePatch) (model.Instance, error) {
	key := d.serviceDir(svc) + id
	for {
		resp, err := d.cli.Get(ctx, key)
		if err != nil {
			return model.Instance{}, mapErr(err)
		}
		if len(resp.Kvs) == 0 {
			return model.Instance{}, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
		}
		kv := resp.Kvs[0]
		cur, ok := decodeInstance(kv)
		if !ok {
			return model.Instance{}, fmt.Errorf("instance %q of %s: the stored value does not decode: %w", id, svc, model.ErrConflict)
		}
		if !p.Cond.Holds(kv.ModRevision) {
			return model.Instance{}, model.PatchConflict(p, kv.ModRevision)
		}
		inst := p.Apply(cur)
		val, err := encodeInstance(inst)
		if err != nil {
			return model.Instance{}, err
		}
		tx, err := d.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpPut(key, val, clientv3.WithIgnoreLease())).Commit()
		if err != nil {
			return model.Instance{}, mapErr(err)
		}
		if tx.Succeeded {
			inst.Revision = tx.Header.Revision
			return inst, nil
		}
		// Changed meanwhile: read again (a precondition now fails there).
	}
}

// Deregister implements backends.Registry.
func (d *Driver) Deregister(ctx context.Context, svc model.ServiceKey, id string) (int64, error) {
	resp, err := d.cli.Delete(ctx, d.serviceDir(svc)+id)
	if err != nil {
		return 0, mapErr(err)
	}
	if resp.Deleted == 0 {
		return 0, fmt.Errorf("instance %q of %s: %w", id, svc, model.ErrNotFound)
	}
	return resp.Header.Revision, nil
}

func readOpts(o backends.ReadOptions) ([]clientv3.OpOption, model.Consistency) {
	if o.Stale {
		return []clientv3.OpOption{clientv3.WithSerializable()}, model.Stale
	}
	return nil, model.Linearizable
}

func (d *Driver) instances(ctx context.Context, svc model.ServiceKey, opts ...clientv3.OpOption) ([]model.Instance, int64, error) {
	resp, err := d.cli.Get(ctx, d.serviceDir(svc), append(opts, clientv3.WithPrefix())...)
	if err != nil {
		return nil, 0, mapErr(err)
	}
	out := make([]model.Instance, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if i, ok := decodeInstance(kv); ok {
			out = append(out, i)
		}
	}
	return out, resp.Header.Revision, nil
}

// Instances implements backends.Registry.
func (d *Driver) Instances(ctx context.Context, svc model.ServiceKey, o backends.ReadOptions) ([]model.Instance, backends.ReadInfo, error) {
	opts, c := readOpts(o)
	out, rev, err := d.instances(ctx, svc, opts...)
	return out, backends.ReadInfo{Revision: rev, Consistency: c}, err
}

// Services implements backends.Registry.
func (d *Driver) Services(ctx context.Context, namespace, group string, after model.ServiceKey, limit int, o backends.ReadOptions) ([]model.ServiceSummary, backends.ReadInfo, error) {
	opts, c := readOpts(o)
	dir := d.prefix + "/services/" + namespace + "/"
	if group != "" {
		dir += group + "/"
	}
	resp, err := d.cli.Get(ctx, dir, append(opts, clientv3.WithPrefix())...)
	if err != nil {
		return nil, backends.ReadInfo{}, mapErr(err)
	}
	sums := map[model.ServiceKey]*model.ServiceSummary{}
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), d.prefix+"/services/"), "/")
		if len(parts) != 4 {
			continue
		}
		k := model.ServiceKey{Namespace: parts[0], Group: parts[1], Service: parts[2]}
		if cmp.Or(cmp.Compare(k.Group, after.Group), cmp.Compare(k.Service, after.Service)) <= 0 {
			continue
		}
		s := sums[k]
		if s == nil {
			s = &model.ServiceSummary{Key: k}
			sums[k] = s
		}
		s.Instances++
		if i, ok := decodeInstance(kv); ok && i.Healthy {
			s.Healthy++
		}
	}
	out := make([]model.ServiceSummary, 0, len(sums))
	for _, s := range sums {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b model.ServiceSummary) int {
		return cmp.Or(cmp.Compare(a.Key.Group, b.Key.Group), cmp.Compare(a.Key.Service, b.Key.Service))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, backends.ReadInfo{Revision: resp.Header.Revision, Consistency: c}, nil
}

// configValue is the stored form of a config item.
type configValue struct {
	Content     string    `json:"content"`
	ContentType string    `json:"contentType"`
	MD5         string    `json:"md5"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

func decodeConfig(key model.ConfigKey, kv *mvccpb.KeyValue) model.Config {
	var v configValue
	if err := json.Unmarshal(kv.Value, &v); err != nil || (v.MD5 == "" && v.ContentType == "") {
		// Written by another client: the value is the content itself.
		v = configValue{Content: string(kv.Value), ContentType: model.ContentText}
	}
	if v.MD5 == "" {
		v.MD5 = model.ContentMD5([]byte(v.Content))
	}
	return model.Config{Key: key, Content: []byte(v.Content), ContentType: v.ContentType, MD5: v.MD5,
		Revision: kv.ModRevision, CreateRevision: kv.CreateRevision, Version: kv.Version, Created: v.Created, Updated: v.Updated}
}

func (d *Driver) parseConfigKey(key string) (model.ConfigKey, bool) {
	parts := strings.Split(strings.TrimPrefix(key, d.prefix+"/configs/"), "/")
	if len(parts) != 3 {
		return model.ConfigKey{}, false
	}
	return model.ConfigKey{Namespace: parts[0], Group: parts[1], DataID: parts[2]}, true
}

// GetConfig implements backends.Configs.
func (d *Driver) GetConfig(ctx context.Context, key model.ConfigKey, o backends.ReadOptions) (model.Config, backends.ReadInfo, error) {
	opts, c := readOpts(o)
	resp, err := d.cli.Get(ctx, d.configKey(key), opts...)
	if err != nil {
		return model.Config{}, backends.ReadInfo{}, mapErr(err)
	}
	info := backends.ReadInfo{Revision: resp.Header.Revision, Consistency: c}
	if len(resp.Kvs) == 0 {
		return model.Config{}, info, fmt.Errorf("config %s: %w", key, model.ErrNotFound)
	}
	return decodeConfig(key, resp.Kvs[0]), info, nil
}

// maxDrops bounds the dropped versions one transaction deletes, within
// etcd's default limit of 128 operations per transaction.
const maxDrops = 100

// item is a config item as read for a write, with its history head.
type item struct {
	kv      *mvccpb.KeyValue // nil when absent
	cur     model.Config
	head    confighist.Head
	headRev int64 // the head's ModRevision, 0 when absent
}

// readItem reads an item and its history head at one revision.
func (d *Driver) readItem(ctx context.Context, key model.ConfigKey) (item, error) {
	tr, err := d.cli.Txn(ctx).Then(clientv3.OpGet(d.configKey(key)), clientv3.OpGet(d.headKey(key))).Commit()
	if err != nil {
		return item{}, mapErr(err)
	}
	var it item
	if kvs := tr.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		it.kv, it.cur = kvs[0], decodeConfig(key, kvs[0])
	}
	if kvs := tr.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if it.head, err = confighist.DecodeHead(kvs[0].Value); err != nil {
			return item{}, fmt.Errorf("etcd: %s: %w", key, err)
		}
		it.headRev = kvs[0].ModRevision
	}
	return it, nil
}

// change writes change (the item's new value, or its delete) guarded by the
// item's and its head's revisions, together with the version that records
// it. It reports false when either changed since it was read.
func (d *Driver) change(ctx context.Context, key model.ConfigKey, it item, change clientv3.Op, op model.ConfigOp, c model.Config) (*clientv3.TxnResponse, bool, error) {
	k := d.configKey(key)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", it.cur.Revision)}
	ops := []clientv3.Op{change}
	if confighist.Tracked(key) {
		ch := backends.ChangeFrom(ctx)
		now := time.Now().UTC()
		head, n, drop := it.head.Append(now, ch.Retention)
		head, drop, _ = head.Defer(drop, maxDrops) // the next write drops the rest
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(d.headKey(key)), "=", it.headRev))
		ops = append(ops, clientv3.OpPut(d.headKey(key), string(head.Encode())),
			clientv3.OpPut(d.versionKey(key, n), string(confighist.NewRecord(n, op, c, ch, now).Encode())))
		for _, n := range drop {
			ops = append(ops, clientv3.OpDelete(d.versionKey(key, n)))
		}
	}
	tr, err := d.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, false, mapErr(err)
	}
	return tr, tr.Succeeded, nil
}

// PutConfig implements backends.Configs: read the current item, check the
// precondition, and write only if the item is still at the revision read,
// in one transaction with the version it makes.
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
		v := configValue{Content: string(cfg.Content), ContentType: cmp.Or(cfg.ContentType, cur.ContentType, model.ContentText),
			MD5: model.ContentMD5(cfg.Content), Created: now, Updated: now}
		if cur.Revision != 0 {
			v.Created = cur.Created
		}
		b, _ := json.Marshal(v)
		stored := model.Config{Key: cfg.Key, Content: cfg.Content, ContentType: v.ContentType}
		tr, ok, err := d.change(ctx, cfg.Key, it, clientv3.OpPut(d.configKey(cfg.Key), string(b)), confighist.Op(it.kv != nil), stored)
		if err != nil {
			return model.Config{}, err
		}
		if !ok {
			continue // changed between the read and the write: check again
		}
		rev := tr.Header.Revision
		out := model.Config{Key: cfg.Key, Content: cfg.Content, ContentType: v.ContentType, MD5: v.MD5, Revision: rev,
			CreateRevision: cmp.Or(cur.CreateRevision, rev), Version: cur.Version + 1, Created: v.Created, Updated: v.Updated}
		return out, nil
	}
}

// DeleteConfig implements backends.Configs: like PutConfig, a read, then a
// transaction at the revision read that also writes the delete's version.
func (d *Driver) DeleteConfig(ctx context.Context, key model.ConfigKey, cond model.Precondition) (int64, error) {
	for {
		it, err := d.readItem(ctx, key)
		if err != nil {
			return 0, err
		}
		switch {
		case it.kv == nil && !cond.Check:
			return 0, fmt.Errorf("config %s: %w", key, model.ErrNotFound)
		case it.kv == nil || !cond.Holds(it.cur.Revision):
			return 0, model.ConfigConflict(key, cond, it.cur.Revision)
		}
		tr, ok, err := d.change(ctx, key, it, clientv3.OpDelete(d.configKey(key)), model.OpDelete, it.cur)
		if err != nil {
			return 0, err
		}
		if ok {
			return tr.Header.Revision, nil
		}
	}
}

// ConfigHistory implements backends.History: the records and the head
// at one revision, and of the records those the head still keeps.
func (d *Driver) ConfigHistory(ctx context.Context, key model.ConfigKey, o backends.ReadOptions) ([]model.ConfigVersion, backends.ReadInfo, error) {
	opts, c := readOpts(o)
	tr, err := d.cli.Txn(ctx).Then(clientv3.OpGet(d.headKey(key), opts...),
		clientv3.OpGet(d.historyDir(key), append(opts, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))...)).Commit()
	if err != nil {
		return nil, backends.ReadInfo{}, mapErr(err)
	}
	live, err := liveVersions(key, tr.Responses[0].GetResponseRange().GetKvs())
	if err != nil {
		return nil, backends.ReadInfo{}, err
	}
	out := []model.ConfigVersion{}
	for _, kv := range tr.Responses[1].GetResponseRange().GetKvs() {
		if v, ok := decodeVersion(key, kv, live); ok {
			out = append(out, v)
		}
	}
	return out, backends.ReadInfo{Revision: tr.Header.Revision, Consistency: c}, nil
}

// ConfigVersion implements backends.History.
func (d *Driver) ConfigVersion(ctx context.Context, key model.ConfigKey, number int64, o backends.ReadOptions) (model.ConfigVersion, error) {
	opts, _ := readOpts(o)
	tr, err := d.cli.Txn(ctx).Then(clientv3.OpGet(d.headKey(key), opts...), clientv3.OpGet(d.versionKey(key, number), opts...)).Commit()
	if err != nil {
		return model.ConfigVersion{}, mapErr(err)
	}
	live, err := liveVersions(key, tr.Responses[0].GetResponseRange().GetKvs())
	if err != nil {
		return model.ConfigVersion{}, err
	}
	if kvs := tr.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if v, ok := decodeVersion(key, kvs[0], live); ok {
			return v, nil
		}
	}
	return model.ConfigVersion{}, fmt.Errorf("version %d of config %s: %w", number, key, model.ErrNotFound)
}

// liveVersions reads a head (kvs: none, or the head) and returns the
// numbers it still keeps.
func liveVersions(key model.ConfigKey, kvs []*mvccpb.KeyValue) (map[int64]bool, error) {
	var h confighist.Head
	if len(kvs) > 0 {
		var err error
		if h, err = confighist.DecodeHead(kvs[0].Value); err != nil {
			return nil, fmt.Errorf("etcd: %s: %w", key, err)
		}
	}
	return h.Live(time.Now()), nil
}

// decodeVersion reads a version record, which is written once: its
// ModRevision is the revision of the change it records. A record its head
// no longer keeps reads as absent.
func decodeVersion(key model.ConfigKey, kv *mvccpb.KeyValue, live map[int64]bool) (model.ConfigVersion, bool) {
	r, err := confighist.DecodeRecord(kv.Value)
	if err != nil || !live[r.Number] {
		return model.ConfigVersion{}, false
	}
	return r.Version(key, kv.ModRevision), true
}

// ListConfigs implements backends.Configs.
func (d *Driver) ListConfigs(ctx context.Context, namespace, group string, o backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	opts, c := readOpts(o)
	dir := d.prefix + "/configs/" + namespace + "/"
	if group != "" {
		dir += group + "/"
	}
	resp, err := d.cli.Get(ctx, dir, append(opts, clientv3.WithPrefix())...)
	if err != nil {
		return nil, backends.ReadInfo{}, mapErr(err)
	}
	var out []model.ConfigSummary
	for _, kv := range resp.Kvs {
		if key, ok := d.parseConfigKey(string(kv.Key)); ok {
			out = append(out, decodeConfig(key, kv).Summary())
		}
	}
	return out, backends.ReadInfo{Revision: resp.Header.Revision, Consistency: c}, nil
}

// Status implements backends.Backend.
func (d *Driver) Status(ctx context.Context) (backends.Status, error) {
	var lastErr error
	for _, ep := range d.cli.Endpoints() {
		resp, err := d.cli.Status(ctx, ep)
		if err != nil {
			lastErr = err
			continue
		}
		return backends.Status{Backend: "etcd", Revision: resp.Header.Revision, Leader: strconv.FormatUint(resp.Leader, 16),
			Capabilities: d.Capabilities()}, nil
	}
	return backends.Status{}, mapErr(lastErr)
}

// Capabilities reports what etcd provides.
func (d *Driver) Capabilities() backends.Capabilities {
	return backends.Capabilities{NativeSessions: true, NativeRevisions: true, ResumableWatch: true,
		LinearizableReads: true, NativeCAS: true, PatchAnyOwner: true, ConfigHistory: true, AtomicHistory: true}
}

// Close closes the client.
func (d *Driver) Close() error { return d.cli.Close() }

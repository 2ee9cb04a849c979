package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/junctionhq/junction/backends/etcd"
)

// Etcd drives etcd through its own Go client (clientv3), the baseline for
// Junction over etcd: an instance is a key under a lease holding an
// endpoint record, a session is a lease, a config is a key.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
}

// NewEtcd connects to the etcd that cfg (the driver's configuration)
// names. Its keys live under /junction-bench.
func NewEtcd(cfg etcd.Config) (*Etcd, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, Username: cfg.Username, Password: cfg.Password,
		TLS: cfg.TLS, DialTimeout: cfg.DialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return &Etcd{cli: cli, prefix: "/junction-bench/"}, nil
}

// Prepare implements Client.
func (e *Etcd) Prepare(ctx context.Context, workload string, o Options) (Op, func(), error) {
	return prepare(ctx, e, workload, o)
}

// Close implements Client.
func (e *Etcd) Close() error { return e.cli.Close() }

func (e *Etcd) supports(string) error { return nil }

// endpoint is the record etcd's naming/endpoints package stores.
type endpoint struct {
	Addr     string
	Metadata map[string]string `json:",omitempty"`
}

func (e *Etcd) put(ctx context.Context, service string, k int64, meta map[string]string, opts ...clientv3.OpOption) error {
	v, err := json.Marshal(endpoint{Addr: ip(k) + ":80", Metadata: meta})
	if err != nil {
		return err
	}
	_, err = e.cli.Put(ctx, e.prefix+"services/"+service+"/"+ip(k)+":80", string(v), opts...)
	return err
}

func (e *Etcd) newSession(ctx context.Context) (string, error) {
	l, err := e.cli.Grant(ctx, 30)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(int64(l.ID), 16), nil
}

func lease(id string) clientv3.LeaseID {
	n, _ := strconv.ParseInt(id, 16, 64)
	return clientv3.LeaseID(n)
}

func (e *Etcd) closeSession(ctx context.Context, id string) { _, _ = e.cli.Revoke(ctx, lease(id)) }

func (e *Etcd) register(ctx context.Context, o Options, k int64, session string) error {
	return e.put(ctx, o.Service, k, nil, clientv3.WithLease(lease(session)))
}

func (e *Etcd) keepAlive(ctx context.Context, session string) error {
	_, err := e.cli.KeepAliveOnce(ctx, lease(session))
	return err
}

func (e *Etcd) seedList(ctx context.Context, o Options, k int64) error {
	return e.put(ctx, listService(o), k, nil)
}

func (e *Etcd) list(ctx context.Context, o Options) error {
	_, err := e.cli.Get(ctx, e.prefix+"services/"+listService(o)+"/", etcdReadOpts(o, clientv3.WithPrefix())...)
	return err
}

func (e *Etcd) putConfig(ctx context.Context, o Options, k int, value string) error {
	_, err := e.cli.Put(ctx, e.prefix+"configs/"+configID(o, k), value)
	return err
}

func (e *Etcd) getConfig(ctx context.Context, o Options, k int) error {
	_, err := e.cli.Get(ctx, e.prefix+"configs/"+configID(o, k), etcdReadOpts(o)...)
	return err
}

// etcdReadOpts makes a read serializable (served by the local member) when
// o.Stale.
func etcdReadOpts(o Options, opts ...clientv3.OpOption) []clientv3.OpOption {
	if o.Stale {
		opts = append(opts, clientv3.WithSerializable())
	}
	return opts
}

// Subscribe implements Fanout: n etcd watches of the service's prefix.
func (e *Etcd) Subscribe(ctx context.Context, o Options, n int, arrived func(seq string)) error {
	for range n {
		ch := e.cli.Watch(ctx, e.prefix+"services/"+o.Service+"-watch/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		if r, ok := <-ch; !ok || r.Err() != nil || !r.Created {
			return fmt.Errorf("etcd watch not created: %v", r.Err())
		}
		go func() {
			for r := range ch {
				for _, ev := range r.Events {
					var ep endpoint
					if json.Unmarshal(ev.Kv.Value, &ep) == nil && ep.Metadata["seq"] != "" {
						arrived(ep.Metadata["seq"])
					}
				}
			}
		}()
	}
	return nil
}

// Update implements Fanout.
func (e *Etcd) Update(ctx context.Context, o Options, seq string) error {
	return e.put(ctx, o.Service+"-watch", 0xff0001, map[string]string{"seq": seq})
}

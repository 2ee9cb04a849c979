package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends/consul"
)

// consulMaxConns is Consul's default limit of concurrent HTTP connections
// from one client address (limits.http_max_conns_per_client), which bounds
// how many blocking queries one process can hold.
const consulMaxConns = 200

// Consul drives a Consul agent through its own Go client
// (github.com/hashicorp/consul/api), the baseline for Junction over
// Consul: an instance is an agent service with a passing TTL check, and a
// registration counts once the catalog has it (what Junction's driver
// acknowledges); a session is a Consul session; a config a KV key; reads
// are ?consistent.
type Consul struct {
	c      *api.Client
	prefix string
}

// NewConsul connects to the agent cfg (the driver's configuration) names.
// Its services are named after the run's service; its KV keys live under
// junction-bench/.
func NewConsul(cfg consul.Config) (*Consul, error) {
	ac := api.DefaultNonPooledConfig()
	ac.Address, ac.Scheme, ac.Token, ac.Datacenter, ac.TLSConfig = cfg.Address, cfg.Scheme, cfg.Token, cfg.Datacenter, cfg.TLS
	ac.Transport.MaxIdleConnsPerHost = 64
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return &Consul{c: c, prefix: "junction-bench/"}, nil
}

// Prepare implements Client.
func (c *Consul) Prepare(ctx context.Context, workload string, o Options) (Op, func(), error) {
	return prepare(ctx, c, workload, o)
}

// Close implements Client.
func (c *Consul) Close() error { return nil }

func (c *Consul) supports(string) error { return nil }

func (c *Consul) newSession(ctx context.Context) (string, error) {
	id, _, err := c.c.Session().Create(&api.SessionEntry{TTL: "30s", Behavior: api.SessionBehaviorDelete}, (&api.WriteOptions{}).WithContext(ctx))
	return id, err
}

func (c *Consul) closeSession(ctx context.Context, id string) {
	_, _ = c.c.Session().Destroy(id, (&api.WriteOptions{}).WithContext(ctx))
}

func (c *Consul) serviceRegister(ctx context.Context, service string, k int64, meta map[string]string) (string, error) {
	id := "bench:" + service + ":" + ip(k)
	return id, c.c.Agent().ServiceRegisterOpts(&api.AgentServiceRegistration{ID: id, Name: service, Address: ip(k), Port: 80, Meta: meta,
		Checks: api.AgentServiceChecks{{CheckID: "h:" + id, TTL: "1h", Status: api.HealthPassing}}},
		api.ServiceRegisterOpts{}.WithContext(ctx))
}

// register registers through the agent, then waits, with a blocking query
// filtered to the one service ID, until the catalog has it.
func (c *Consul) register(ctx context.Context, o Options, k int64, _ string) error {
	id, err := c.serviceRegister(ctx, o.Service, k, nil)
	if err != nil {
		return err
	}
	var idx uint64
	for {
		es, m, err := c.c.Health().Service(o.Service, "", false, (&api.QueryOptions{RequireConsistent: true,
			WaitIndex: idx, WaitTime: 5 * time.Second, Filter: "Service.ID == " + strconv.Quote(id)}).WithContext(ctx))
		if err != nil {
			return err
		}
		if len(es) > 0 {
			return nil
		}
		idx = m.LastIndex
	}
}

func (c *Consul) keepAlive(ctx context.Context, session string) error {
	_, _, err := c.c.Session().Renew(session, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

func (c *Consul) seedList(ctx context.Context, o Options, k int64) error {
	_, err := c.serviceRegister(ctx, listService(o), k, nil)
	return err
}

func (c *Consul) list(ctx context.Context, o Options) error {
	_, _, err := c.c.Health().Service(listService(o), "", false, consulReadOpts(ctx, o))
	return err
}

func (c *Consul) putConfig(ctx context.Context, o Options, k int, value string) error {
	_, err := c.c.KV().Put(&api.KVPair{Key: c.prefix + configID(o, k), Value: []byte(value)}, (&api.WriteOptions{}).WithContext(ctx))
	return err
}

func (c *Consul) getConfig(ctx context.Context, o Options, k int) error {
	_, _, err := c.c.KV().Get(c.prefix+configID(o, k), consulReadOpts(ctx, o))
	return err
}

// consulReadOpts asks for a consistent read, or a stale one when o.Stale.
func consulReadOpts(ctx context.Context, o Options) *api.QueryOptions {
	return (&api.QueryOptions{RequireConsistent: !o.Stale, AllowStale: o.Stale}).WithContext(ctx)
}

// Subscribe implements Fanout: n blocking queries of the service's health,
// each one HTTP request held open. Consul accepts at most 200 connections
// from one client address by default, so n is bounded by that.
func (c *Consul) Subscribe(ctx context.Context, o Options, n int, arrived func(seq string)) error {
	if n > consulMaxConns-20 {
		return fmt.Errorf("%w: %d blocking queries from one client exceed Consul's default limit of %d connections per client",
			ErrUnsupported, n, consulMaxConns)
	}
	name := o.Service + "-watch"
	if _, err := c.serviceRegister(ctx, name, 0xff0001, map[string]string{"seq": "-"}); err != nil {
		return err
	}
	_, m, err := c.c.Health().Service(name, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	for range n {
		go func() {
			idx, last := m.LastIndex, "-"
			for ctx.Err() == nil {
				es, m, err := c.c.Health().Service(name, "", false, (&api.QueryOptions{WaitIndex: idx, WaitTime: time.Minute}).WithContext(ctx))
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				idx = m.LastIndex
				for _, e := range es {
					if seq := e.Service.Meta["seq"]; seq != last {
						last = seq
						arrived(seq)
					}
				}
			}
		}()
	}
	return nil
}

// Update implements Fanout.
func (c *Consul) Update(ctx context.Context, o Options, seq string) error {
	_, err := c.serviceRegister(ctx, o.Service+"-watch", 0xff0001, map[string]string{"seq": seq})
	return err
}

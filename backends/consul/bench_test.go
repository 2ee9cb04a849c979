package consul_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// BenchmarkDriverVsClient runs each workload through the driver and through
// Consul's own client on the same agent, side by side in one run, so the
// driver's overhead reads as a ratio. 16 concurrent callers.
func BenchmarkDriverVsClient(b *testing.B) {
	c := servertest.ConsulAgent(b)
	d := open(b, c.HTTPAddr, "")
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = c.HTTPAddr
	cfg.Transport.MaxIdleConnsPerHost = 64
	cl, err := api.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var n atomic.Int64
	par := func(b *testing.B, op func(k int64) error) {
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				if err := op(n.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	ip := func(k int64) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }
	b.Run("register/client", func(b *testing.B) { // the agent call alone: no wait for the catalog
		par(b, func(k int64) error {
			id := "plain-" + strconv.FormatInt(k, 10)
			return cl.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "plain", Address: ip(k), Port: 80,
				Checks: api.AgentServiceChecks{{CheckID: "h:" + id, TTL: "1h", Status: api.HealthPassing}}})
		})
	})
	b.Run("register/client+catalog", func(b *testing.B) { // the agent call, then until the catalog has it
		par(b, func(k int64) error {
			id := "synced-" + strconv.FormatInt(k, 10)
			if err := cl.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "synced", Address: ip(k), Port: 80,
				Checks: api.AgentServiceChecks{{CheckID: "h:" + id, TTL: "1h", Status: api.HealthPassing}}}); err != nil {
				return err
			}
			var idx uint64
			for {
				es, m, err := cl.Health().Service("synced", "", false, &api.QueryOptions{RequireConsistent: true,
					WaitIndex: idx, WaitTime: 5 * time.Second, Filter: "Service.ID == " + strconv.Quote(id)})
				if err != nil || len(es) == 1 {
					return err
				}
				idx = m.LastIndex
			}
		})
	})
	b.Run("register/driver", func(b *testing.B) {
		svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "driver"}
		par(b, func(k int64) error {
			i := model.Instance{IP: ip(k), Port: 80, Weight: 1, Healthy: true, Enabled: true}
			_ = i.Normalize()
			_, err := d.Register(ctx, svc, i)
			return err
		})
	})
	value := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	b.Run("config-put/client", func(b *testing.B) { // a plain KV put
		par(b, func(k int64) error {
			_, err := cl.KV().Put(&api.KVPair{Key: "plain/k" + strconv.FormatInt(k%1000, 10), Value: value}, nil)
			return err
		})
	})
	b.Run("config-put/driver", func(b *testing.B) { // read, then a CAS transaction of value and meta
		par(b, func(k int64) error {
			_, err := d.PutConfig(ctx, model.Config{Key: model.ConfigKey{Namespace: "public", Group: "g", DataID: "k" + strconv.FormatInt(k%1000, 10)},
				Content: value}, model.Precondition{})
			return err
		})
	})
	if _, err := cl.KV().Put(&api.KVPair{Key: "plain/k1", Value: value}, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := d.PutConfig(ctx, model.Config{Key: model.ConfigKey{Namespace: "public", Group: "g", DataID: "k1"}, Content: value}, model.Precondition{}); err != nil {
		b.Fatal(err)
	}
	b.Run("config-get/client", func(b *testing.B) { // a consistent KV get
		par(b, func(int64) error {
			_, _, err := cl.KV().Get("plain/k1", &api.QueryOptions{RequireConsistent: true})
			return err
		})
	})
	b.Run("config-get/driver", func(b *testing.B) { // a consistent transaction reading value and meta
		par(b, func(int64) error {
			_, _, err := d.GetConfig(ctx, model.ConfigKey{Namespace: "public", Group: "g", DataID: "k1"}, backends.ReadOptions{})
			return err
		})
	})
}

package gateway_test

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends/consul"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
)

// BenchmarkBackends runs the same workloads through the gateway over every
// backend, side by side in one run: the built-in store, a real etcd
// (embedded), a real ZooKeeper and a real Consul agent (dev mode).
func BenchmarkBackends(b *testing.B) {
	open := map[string]func(b *testing.B) *env{
		"raft": func(b *testing.B) *env { return start(b) },
		"etcd": func(b *testing.B) *env {
			ep, _ := servertest.Etcd(b)
			u, _ := url.Parse("etcd://" + ep)
			cfg, _ := etcd.ConfigFromURL(u)
			d, err := etcd.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return startOn(b, d, gateway.DefaultConfig())
		},
		"consul": func(b *testing.B) *env {
			c := servertest.ConsulAgent(b)
			u, _ := url.Parse("consul://" + c.HTTPAddr)
			cfg, _ := consul.ConfigFromURL(u)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			d, err := consul.Open(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return startOn(b, d, gateway.DefaultConfig())
		},
		"zk": func(b *testing.B) *env {
			z := servertest.ZooKeeper(b)
			u, _ := url.Parse("zk://" + z.Addr)
			cfg, _ := zookeeper.ConfigFromURL(u)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			d, err := zookeeper.Open(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return startOn(b, d, gateway.DefaultConfig())
		},
	}
	for _, name := range []string{"raft", "etcd", "zk", "consul"} {
		b.Run(name, func(b *testing.B) {
			e := open[name](b)
			ctx := context.Background()
			var n atomic.Int64
			b.Run("register", func(b *testing.B) {
				b.SetParallelism(8)
				b.RunParallel(func(p *testing.PB) {
					for p.Next() {
						k := n.Add(1)
						if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "bench",
							Ip: fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255), Port: 80}); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
			b.Run("config-put", func(b *testing.B) {
				b.SetParallelism(8)
				b.RunParallel(func(p *testing.PB) {
					for p.Next() {
						if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: fmt.Sprint("k", n.Add(1)%1000),
							Content: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
			b.Run("config-get", func(b *testing.B) {
				b.SetParallelism(8)
				b.RunParallel(func(p *testing.PB) {
					for p.Next() {
						if _, err := e.cfg.GetConfig(ctx, &pb.GetConfigRequest{DataId: "k1"}); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		})
	}
}

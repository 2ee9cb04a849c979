package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// BenchmarkConfigHistory compares a config put that records its version
// (any namespace) with one that records none (the system namespace, which
// keeps no history), on the same driver in one run: the built-in store
// and a real etcd. Items are updated over and over, so that retention
// drops a version at every write, as it does in steady state. The goal is
// a ratio history/none of at most 1.3.
func BenchmarkConfigHistory(b *testing.B) {
	open := map[string]func(b *testing.B) backends.Backend{
		"raft": func(b *testing.B) backends.Backend {
			cfg := raftstore.DefaultConfig(b.TempDir())
			cfg.Logger = slog.New(slog.DiscardHandler)
			s, err := raftstore.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
		"etcd": func(b *testing.B) backends.Backend {
			ep, _ := servertest.Etcd(b)
			u, _ := url.Parse("etcd://" + ep)
			cfg, _ := etcd.ConfigFromURL(u)
			d, err := etcd.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			return d
		},
	}
	content := []byte(strings.Repeat("pool.size: 10 # the connection pool of the orders service\n", 18)) // 1 KiB of YAML
	for _, name := range []string{"raft", "etcd"} {
		b.Run(name, func(b *testing.B) {
			d := open[name](b)
			ctx := backends.WithChange(context.Background(), backends.Change{Author: "bench", Message: "bench",
				Retention: backends.Retention{Versions: 10, MaxAge: backends.DefaultRetention.MaxAge}})
			for _, ns := range []string{model.SystemNamespace, "public"} {
				label := map[string]string{model.SystemNamespace: "none", "public": "history"}[ns]
				var n atomic.Int64
				b.Run(label, func(b *testing.B) {
					b.SetParallelism(8)
					b.RunParallel(func(p *testing.PB) {
						for p.Next() {
							key := model.ConfigKey{Namespace: ns, Group: "bench", DataID: fmt.Sprintf("item-%d", n.Add(1)%64)}
							if _, err := d.PutConfig(ctx, model.Config{Key: key, Content: content}, model.Precondition{}); err != nil {
								b.Fatal(err)
							}
						}
					})
				})
			}
		})
	}
}

package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Benchmarks run through the whole stack, with 8 concurrent clients per core: a gRPC (or HTTP) client on
// loopback, the gateway, and the built-in store with fsync'd writes.

func BenchmarkRegister(b *testing.B) {
	e := start(b)
	var port atomic.Int32
	addr := func() string {
		p := port.Add(1)
		return fmt.Sprintf("10.%d.%d.%d", p>>16&255, p>>8&255, p&255)
	}
	b.Run("gateway", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				if _, err := e.reg.RegisterInstance(context.Background(), &pb.RegisterInstanceRequest{Service: "bench",
					Ip: addr(), Port: 8080}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("store", func(b *testing.B) { // the same write straight into the store: the baseline
		svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "bench"}
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				i := model.Instance{IP: addr(), Port: 8080, Weight: 1, Healthy: true, Enabled: true}
				_ = i.Normalize()
				if _, err := e.store.Register(context.Background(), svc, i); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkConfigPut(b *testing.B) {
	e := start(b)
	val := string(make([]byte, 256))
	var n atomic.Int64
	b.Run("gateway", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				k := n.Add(1) % 1000
				if _, err := e.cfg.PutConfig(context.Background(), &pb.PutConfigRequest{DataId: fmt.Sprint("key-", k), Content: val}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("store", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				k := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: fmt.Sprint("key-", n.Add(1)%1000)}
				if _, err := e.store.PutConfig(context.Background(), model.Config{Key: k, Content: []byte(val)}, model.Precondition{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkConfigGet(b *testing.B) {
	e := start(b)
	if _, err := e.cfg.PutConfig(context.Background(), &pb.PutConfigRequest{DataId: "get", Content: string(make([]byte, 256))}); err != nil {
		b.Fatal(err)
	}
	b.Run("grpc", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				if _, err := e.cfg.GetConfig(context.Background(), &pb.GetConfigRequest{DataId: "get"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("store", func(b *testing.B) {
		k := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: "get"}
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				if _, _, err := e.store.GetConfig(context.Background(), k, backends.ReadOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("rest-raw", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(p *testing.PB) {
			for p.Next() {
				resp, err := http.Get(e.base + cfgPath + "get")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	})
}

// BenchmarkWatchDelivery measures the time from an acknowledged write to its
// delivery to the last of N subscribers of the same service.
func BenchmarkWatchDelivery(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			e := start(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			arrived := make(chan time.Time, subs)
			var ready sync.WaitGroup
			for range subs {
				stream, err := e.reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Service: "watched"})
				if err != nil {
					b.Fatal(err)
				}
				ready.Add(1)
				go func() {
					first := true
					for {
						ev, err := stream.Recv()
						if err != nil {
							return
						}
						if first {
							first = false
							ready.Done()
							continue
						}
						if ev.Type == pb.EventType_PUT {
							arrived <- time.Now()
						}
					}
				}()
			}
			ready.Wait()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "watched", Ip: "10.0.0.1",
					Port: int32(1 + i%60000)}); err != nil {
					b.Fatal(err)
				}
				var last time.Time
				for range subs {
					last = <-arrived
				}
				lat = append(lat, last.Sub(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

package nacos_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// BenchmarkDriverVsClient runs each workload through the driver and
// through a plain nacos-sdk-go client on the same server (the Nacos
// protocol served by Polaris 1.18.1), side by side in one run, so the
// driver's overhead reads as a ratio. 16 concurrent callers (2 for config
// puts).
func BenchmarkDriverVsClient(b *testing.B) {
	p := servertest.NeedPolaris(b)
	d := open(b, p.Addr, "cas=check")
	nc := native(b, p.Addr)
	dir := b.TempDir()
	cc := constant.NewClientConfig(constant.WithTimeoutMs(5000), constant.WithNotLoadCacheAtStart(true), constant.WithLogDir(dir),
		constant.WithCacheDir(dir), constant.WithLogLevel("warn"), constant.WithDisableUseSnapShot(true))
	cfgc, err := clients.NewConfigClient(vo.NacosClientParam{ClientConfig: cc, ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", servers.NacosHTTPPort)}})
	if err != nil {
		b.Fatal(err)
	}
	defer cfgc.CloseClient()
	ctx := context.Background()
	var n atomic.Int64
	var parN func(b *testing.B, p int, op func(k int64) error)
	par := func(b *testing.B, op func(k int64) error) { parN(b, 8, op) }
	parN = func(b *testing.B, p int, op func(k int64) error) {
		b.SetParallelism(p)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(n.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	ip := func(k int64) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }
	b.Run("register/client", func(b *testing.B) { // a persistent registration (HTTP API)
		par(b, func(k int64) error {
			_, err := nc.RegisterInstance(vo.RegisterInstanceParam{Ip: ip(k), Port: 80, ServiceName: "plain", Weight: 1, Enable: true, Healthy: true})
			return err
		})
	})
	b.Run("register/driver", func(b *testing.B) { // the same, plus the driver's view
		svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "driver"}
		par(b, func(k int64) error {
			i := model.Instance{IP: ip(k), Port: 80, Weight: 1, Healthy: true, Enabled: true}
			_ = i.Normalize()
			_, err := d.Register(ctx, svc, i)
			return err
		})
	})
	b.Run("instances/client", func(b *testing.B) { // the SDK's subscribed cache
		par(b, func(int64) error {
			_, err := nc.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: "plain"})
			return err
		})
	})
	b.Run("instances/driver", func(b *testing.B) { // the driver's view
		svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "driver"}
		par(b, func(int64) error {
			_, _, err := d.Instances(ctx, svc, backends.ReadOptions{})
			return err
		})
	})
	value := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	// Config puts with 2 callers: Polaris' boltdb store backs up under 16
	// (publishes then time out after the SDK's 3s).
	b.Run("config-put/client", func(b *testing.B) { // a publish, acknowledged (the SDK gives up after 3s)
		var failed atomic.Int64
		parN(b, 1, func(k int64) error {
			if _, err := cfgc.PublishConfig(vo.ConfigParam{DataId: "plain-" + strconv.FormatInt(k%1000, 10), Group: "g", Content: value + strconv.FormatInt(k, 10)}); err != nil {
				failed.Add(1)
			}
			return nil
		})
		b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/op")
	})
	b.Run("config-put/driver", func(b *testing.B) { // publish, acknowledged; reads through the driver show it at once
		parN(b, 1, func(k int64) error {
			_, err := d.PutConfig(ctx, model.Config{Key: model.ConfigKey{Namespace: "public", Group: "g", DataID: "k" + strconv.FormatInt(k%1000, 10)},
				Content: []byte(value + strconv.FormatInt(k, 10))}, model.Precondition{})
			return err
		})
	})
	// 100 items to read, published and served before the reads.
	for k := range 100 {
		if ok, err := cfgc.PublishConfig(vo.ConfigParam{DataId: "read-" + strconv.Itoa(k), Group: "g", Content: value}); !ok || err != nil {
			b.Fatalf("seed: %v %v", ok, err)
		}
	}
	for k := range 100 {
		deadline := time.Now().Add(10 * time.Second)
		for { // Polaris serves a write within its next cache refresh (1s)
			_, _, err := d.GetConfig(ctx, model.ConfigKey{Namespace: "public", Group: "g", DataID: "read-" + strconv.Itoa(k)}, backends.ReadOptions{})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("seeded item not served: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.Run("config-get/client", func(b *testing.B) { // 100 items; the SDK refuses a 6th read of an item within a second
		var refused atomic.Int64
		par(b, func(k int64) error {
			if _, err := cfgc.GetConfig(vo.ConfigParam{DataId: "read-" + strconv.FormatInt(k%100, 10), Group: "g"}); err != nil {
				refused.Add(1)
			}
			return nil
		})
		b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
	})
	b.Run("config-get/driver", func(b *testing.B) { // the same items
		par(b, func(k int64) error {
			_, _, err := d.GetConfig(ctx, model.ConfigKey{Namespace: "public", Group: "g", DataID: "read-" + strconv.FormatInt(k%100, 10)}, backends.ReadOptions{})
			return err
		})
	})
	// One hot item read by every caller: the SDK allows 5 reads of one item
	// a second per process; the plain client refuses the rest, the driver
	// shares reads between callers.
	b.Run("config-get-hot/client", func(b *testing.B) {
		var refused atomic.Int64
		par(b, func(int64) error {
			if _, err := cfgc.GetConfig(vo.ConfigParam{DataId: "read-1", Group: "g"}); err != nil {
				refused.Add(1)
			}
			return nil
		})
		b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
	})
	b.Run("config-get-hot/driver", func(b *testing.B) {
		par(b, func(int64) error {
			_, _, err := d.GetConfig(ctx, model.ConfigKey{Namespace: "public", Group: "g", DataID: "read-1"}, backends.ReadOptions{})
			return err
		})
	})
}

// BenchmarkConfigPutLatency times one config put at a time, with a pause
// between puts so that the server is idle when each begins, as a single
// operator's publish finds it: an item of junction-system, which keeps no
// history, against an ordinary item, whose put also numbers its version on
// the history's head (the version's record is written after the put
// returns). The ratio history/none is the latency history adds.
func BenchmarkConfigPutLatency(b *testing.B) {
	p := servertest.NeedPolaris(b)
	d := open(b, p.Addr, "cas=check")
	ctx := backends.WithChange(context.Background(), backends.Change{Author: "bench", Retention: backends.Retention{Versions: 10, MaxAge: time.Hour}})
	for _, ns := range []string{model.SystemNamespace, model.DefaultNamespace} {
		label := map[string]string{model.SystemNamespace: "none", model.DefaultNamespace: "history"}[ns]
		b.Run(label, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				time.Sleep(40 * time.Millisecond) // the last put's record is written meanwhile
				b.StartTimer()
				key := model.ConfigKey{Namespace: ns, Group: "bench-latency", DataID: "item-" + strconv.Itoa(i%3)}
				if _, err := d.PutConfig(ctx, model.Config{Key: key, Content: []byte("size: " + strconv.Itoa(i))}, model.Precondition{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

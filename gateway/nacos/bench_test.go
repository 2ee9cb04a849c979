package nacos_test

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/conformance/servertest"
)

// The package's tests run in a private network namespace
// (servertest.InPrivateNetwork), where BenchmarkAgainstPolaris can start
// Polaris on the fixed ports it listens on.
func TestMain(m *testing.M) {
	if code := servertest.InPrivateNetwork(m); code >= 0 {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// target is a server speaking the Nacos protocols: its HTTP and gRPC ports.
type target struct {
	name       string
	http, grpc uint64
}

// BenchmarkAgainstPolaris runs one nacos-sdk-go workload against
// Junction's front end (over the built-in store, in the benchmark's
// process) and against Polaris' Nacos server (its own process), side by
// side in one run, so that each figure reads as a ratio:
//
//   - register: ephemeral registrations over gRPC, 8 clients at once, each
//     of a service of its own (a Nacos 2 connection holds one instance per
//     service);
//   - query: service-list queries (ServiceListRequest), 8 clients at once.
//     The SDK's instance selects answer from its subscribed cache after
//     their first call, so they measure no server;
//   - config-push: a publish by one client until another client's
//     listener has the new content, one change at a time; the sub-benchmark
//     reports its p50 and p99.
func BenchmarkAgainstPolaris(b *testing.B) {
	p := servertest.NeedPolaris(b)
	b.Logf("Polaris %s at %s", servers.PolarisVersion, p.Addr)
	j := start(b)
	targets := []target{{"junction", j.http, j.grpc}, {"polaris", servers.NacosHTTPPort, servers.NacosGRPCPort}}
	const workers = 8
	ip := func(k int64) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }
	for _, op := range []string{"register", "query", "config-push"} {
		for _, tg := range targets {
			b.Run(op+"/"+tg.name, func(b *testing.B) {
				switch op {
				case "register":
					pool := namingPool(b, tg, workers)
					var n, failed, picked atomic.Int64
					b.SetParallelism(parallelism(workers))
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						c := pool[(picked.Add(1)-1)%int64(len(pool))]
						for pb.Next() {
							k := n.Add(1)
							if ok, err := c.RegisterInstance(vo.RegisterInstanceParam{Ip: ip(k), Port: 80, ServiceName: "bench-reg-" + strconv.FormatInt(k, 10),
								Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
								failed.Add(1) // refused: not counted as a registration
							}
						}
					})
					b.ReportMetric(float64(int64(b.N)-failed.Load())/b.Elapsed().Seconds(), "registrations/s")
					b.ReportMetric(float64(failed.Load())/float64(b.N), "refused/op")
				case "query":
					pool := namingPool(b, tg, workers)
					var picked atomic.Int64
					b.SetParallelism(parallelism(workers))
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						c := pool[(picked.Add(1)-1)%int64(len(pool))]
						for pb.Next() {
							if _, err := c.GetAllServicesInfo(vo.GetAllServiceInfoParam{PageNo: 1, PageSize: 20}); err != nil {
								b.Errorf("service list: %v", err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
				case "config-push":
					configPush(b, tg)
				}
			})
		}
	}
}

// parallelism is what b.SetParallelism takes for n goroutines: a multiple
// of GOMAXPROCS.
func parallelism(n int) int { return (n + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0) }

// namingPool returns n naming clients of tg, each with its own connection,
// once each has its connection up (the SDK connects in the background, and
// a request before that fails).
func namingPool(b *testing.B, tg target, n int) []naming_client.INamingClient {
	pool := make([]naming_client.INamingClient, n)
	for i := range pool {
		c, err := clients.NewNamingClient(clientParam(b, tg.http, tg.grpc))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.CloseClient)
		pool[i] = c
	}
	for _, c := range pool {
		for deadline := time.Now().Add(10 * time.Second); !c.ServerHealthy(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("a client of %s never connected", tg.name)
			}
		}
	}
	return pool
}

// configPush publishes b.N changes of one item through one client, one at
// a time, and times each until another client's listener has it.
func configPush(b *testing.B, tg target) {
	newClient := func() config_client.IConfigClient {
		c, err := clients.NewConfigClient(clientParam(b, tg.http, tg.grpc))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.CloseClient)
		return c
	}
	pub, sub := newClient(), newClient()
	item := vo.ConfigParam{DataId: fmt.Sprintf("bench-push-%d", time.Now().UnixNano()), Group: "DEFAULT_GROUP"}
	publish := func(content string) {
		p := item
		p.Content = content
		if ok, err := pub.PublishConfig(p); err != nil || !ok {
			b.Fatalf("publish: %v %v", ok, err)
		}
	}
	heard := make(chan string, 64)
	listen := item
	listen.OnChange = func(_, _, _, data string) { heard <- data }
	publish("v: start")
	if err := sub.ListenConfig(listen); err != nil {
		b.Fatal(err)
	}
	await := func(content string, within time.Duration) {
		deadline := time.After(within)
		for {
			select {
			case got := <-heard:
				if got == content {
					return
				}
			case <-deadline:
				b.Fatalf("the listener never heard %q within %v", content, within)
			}
		}
	}
	// The client sends its listens every few seconds, and may first hear
	// of the item by that poll; from then on the server holds its listen.
	publish("v: warm")
	await("v: warm", 40*time.Second)
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The client marks an item synced only after telling its listener,
		// and loses a push that comes in between: let it settle.
		b.StopTimer()
		time.Sleep(300 * time.Millisecond)
		b.StartTimer()
		content := "v: " + strconv.Itoa(i)
		start := time.Now()
		publish(content)
		await(content, 40*time.Second)
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	at := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

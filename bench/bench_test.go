package bench_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/junctionhq/junction/backends"
	_ "github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/bench"
	"github.com/junctionhq/junction/conformance/servertest"
)

func options(service string) bench.SuiteOptions {
	return bench.SuiteOptions{
		Options:   bench.Options{Concurrency: 4, Total: 40, Keys: 5, ValueSize: 33, Subscribers: 6, Updates: 3, Service: service},
		Workloads: bench.Workloads, Paths: bench.Paths,
	}
}

// check asserts that every path ran every workload it supports, without
// errors, to the count asked, and returns the results by path/workload.
func check(t *testing.T, results []bench.Result, o bench.SuiteOptions, unsupported ...string) map[string]bench.Result {
	t.Helper()
	got := map[string]bench.Result{}
	for _, r := range results {
		key := r.Path + "/" + r.Workload
		got[key] = r
		switch {
		case r.Unsupported != "":
			if key != "driver/watch-fanout" && !slices.Contains(unsupported, key) {
				t.Errorf("%s: unsupported: %s", key, r.Unsupported)
			}
		case r.Errors != 0:
			t.Errorf("%s: %d errors, the first: %s", key, r.Errors, r.FirstError)
		case r.Workload == "watch-fanout" && (r.Ops != int64(o.Updates) || r.Deliveries != int64(o.Updates*o.Subscribers)):
			t.Errorf("%s: %d updates, %d deliveries; want %d and %d", key, r.Ops, r.Deliveries, o.Updates, o.Updates*o.Subscribers)
		case r.Workload != "watch-fanout" && r.Ops != o.Total:
			t.Errorf("%s: %d operations, want %d", key, r.Ops, o.Total)
		case r.OpsPerSec <= 0 || r.P50Ms <= 0 && r.MaxMs <= 0:
			t.Errorf("%s: %v ops/s, p50 %v ms, max %v ms", key, r.OpsPerSec, r.P50Ms, r.MaxMs)
		}
	}
	for _, w := range o.Workloads {
		for _, p := range o.Paths {
			if _, ok := got[p+"/"+w]; !ok && !(p == "client" && results[0].Target == "raft") {
				t.Errorf("%s/%s did not run", p, w)
			}
		}
	}
	return got
}

// configsIn returns the config ids Junction holds in the default namespace
// and group that begin with prefix.
func configsIn(t *testing.T, url, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := backends.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	list, _, err := b.ListConfigs(ctx, "public", "DEFAULT_GROUP", backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range list {
		if strings.HasPrefix(c.Key.DataID, prefix) {
			ids = append(ids, c.Key.DataID)
		}
	}
	slices.Sort(ids)
	return ids
}

var want5 = func(prefix string) []string {
	var ids []string
	for _, k := range []string{"0", "1", "2", "3", "4"} {
		ids = append(ids, prefix+k)
	}
	return ids
}

func TestRaftGatewayAndDriver(t *testing.T) {
	s, err := bench.StartStore(t.TempDir(), "raft")
	if err != nil {
		t.Fatal(err)
	}
	o := options("r")
	results, err := bench.RunSuite(context.Background(), []*bench.Store{s}, o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, results, o)
	// Both paths wrote their configs into the store.
	for _, p := range []string{"gateway", "driver"} {
		if got := configsIn(t, s.URL, "r-"+p+"-"); !slices.Equal(got, want5("r-"+p+"-")) {
			t.Errorf("%s wrote %v", p, got)
		}
	}
	// Stale (cached) reads run as well.
	o.Stale, o.Workloads = true, []string{"instances", "config-get"}
	if results, err = bench.RunSuite(context.Background(), []*bench.Store{s}, o); err != nil {
		t.Fatal(err)
	}
	check(t, results, o)
}

func TestEtcdSideBySide(t *testing.T) {
	addr, _ := servertest.Etcd(t)
	s, err := bench.StoreFromURL("etcd://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	o := options("e")
	results, err := bench.RunSuite(context.Background(), []*bench.Store{s}, o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, results, o)
	if got := configsIn(t, s.URL, "e-gateway-"); !slices.Equal(got, want5("e-gateway-")) {
		t.Errorf("gateway wrote %v", got)
	}
	// The baseline really wrote through clientv3: its configs, its instances
	// under leases that were revoked with their sessions.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	r, err := cli.Get(ctx, "/junction-bench/configs/e-client-", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || r.Count != 5 {
		t.Errorf("etcd holds %v client configs (%v), want 5", r.Count, err)
	}
	if r, err := cli.Get(ctx, "/junction-bench/services/e-client-list/", clientv3.WithPrefix()); err != nil || r.Count != 10 {
		t.Errorf("etcd holds %v listed instances (%v), want 10", r.Count, err)
	}
	if r, err := cli.Get(ctx, "/junction-bench/services/e-client/", clientv3.WithPrefix()); err != nil || r.Count != 0 {
		t.Errorf("%v registered instances outlived their revoked leases (%v)", r.Count, err)
	}
}

func TestZooKeeperSideBySide(t *testing.T) {
	z := servertest.ZooKeeper(t)
	s, err := bench.StoreFromURL("zk://" + z.Addr)
	if err != nil {
		t.Fatal(err)
	}
	o := options("z")
	results, err := bench.RunSuite(context.Background(), []*bench.Store{s}, o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, results, o, "client/heartbeat")
	if got := configsIn(t, s.URL, "z-driver-"); !slices.Equal(got, want5("z-driver-")) {
		t.Errorf("driver wrote %v", got)
	}
	conn, _, err := zk.Connect([]string{z.Addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data, _, err := conn.Get("/junction-bench/configs/z-client-4")
	if err != nil || len(data) != 33 {
		t.Errorf("config written by the ZooKeeper client: %q %v", data, err)
	}
	// The client's ephemeral instances went with its session.
	if kids, _, err := conn.Children("/junction-bench/services/z-client"); err != nil || len(kids) != 0 {
		t.Errorf("instances left after the client closed: %v %v", kids, err)
	}
}

func TestConsulSideBySide(t *testing.T) {
	c := servertest.ConsulAgent(t)
	s, err := bench.StoreFromURL("consul://" + c.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	o := options("c")
	o.Total = 20 // a registration waits for the catalog: ~100/s
	results, err := bench.RunSuite(context.Background(), []*bench.Store{s}, o)
	if err != nil {
		t.Fatal(err)
	}
	check(t, results, o)
	if got := configsIn(t, s.URL, "c-gateway-"); !slices.Equal(got, want5("c-gateway-")) {
		t.Errorf("gateway wrote %v", got)
	}
	cfg := api.DefaultConfig()
	cfg.Address = c.HTTPAddr
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := cl.KV().Keys("junction-bench/c-client-", "", nil)
	if err != nil || len(keys) != 5 {
		t.Errorf("consul holds client configs %v (%v), want 5", keys, err)
	}
	es, _, err := cl.Health().Service("c-client", "", true, nil)
	if err != nil || len(es) != 5 {
		t.Errorf("consul has %d passing registered instances (%v), want 5", len(es), err)
	}
	// More blocking queries than Consul lets one client hold is reported,
	// not attempted.
	o.Subscribers, o.Paths, o.Workloads = 500, []string{"client"}, []string{"watch-fanout"}
	results, err = bench.RunSuite(context.Background(), []*bench.Store{s}, o)
	if err != nil || len(results) != 1 || !strings.Contains(results[0].Unsupported, "limit") {
		t.Errorf("500 Consul subscribers: %+v %v", results, err)
	}
}

func TestReportUpdatesOnlyItsSection(t *testing.T) {
	results := []bench.Result{
		{Target: "raft", Path: "gateway", Workload: "register", Ops: 100, OpsPerSec: 9000, P99Ms: 4},
		{Target: "etcd", Path: "gateway", Workload: "register", Ops: 100, OpsPerSec: 4500, P99Ms: 8},
		{Target: "etcd", Path: "client", Workload: "register", Ops: 100, OpsPerSec: 9000, P99Ms: 2},
		{Target: "raft", Path: "gateway", Workload: "watch-fanout", Ops: 2, Subscribers: 3, Deliveries: 6, P99Ms: 1, MemPerSubscriberB: 2048},
	}
	var md strings.Builder
	o := options("x")
	o.Workloads, o.Paths = []string{"register", "watch-fanout"}, []string{"gateway", "client"}
	if err := bench.Markdown(&md, results, bench.ReportMeta{Command: "junction bench", Options: o, When: time.Now(),
		Stores: []*bench.Store{{Name: "raft", Label: "built-in"}, {Name: "etcd", Label: "etcd"}}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| register | 9,000/s, p99 4.00 ms | 4,500/s, p99 8.00 ms | 2.00× |", // raft / etcd through the gateway
		"| etcd | register | 4,500/s, p99 8.00 ms |  | 9,000/s, p99 2.00 ms | 0.50× |",
		"| raft | gateway | 6 |", "2.0 KB",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	path := filepath.Join(t.TempDir(), "b.md")
	if err := os.WriteFile(path, []byte("# Benchmarks\n\nhand-written before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, gen := range []string{"first run", "second run"} {
		if err := bench.UpdateFile(path, "", []byte(gen)); err != nil {
			t.Fatal(err)
		}
	}
	doc, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(doc, "\nhand-written after\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := bench.UpdateFile(path, "", []byte("third run")); err != nil {
		t.Fatal(err)
	}
	for _, gen := range []string{"cluster first", "cluster second"} {
		if err := bench.UpdateFile(path, "cluster", []byte(gen)); err != nil {
			t.Fatal(err)
		}
	}
	doc, _ = os.ReadFile(path)
	s := string(doc)
	if strings.Count(s, bench.BeginMarker) != 1 || !strings.Contains(s, "third run") || strings.Contains(s, "first run") ||
		strings.Count(s, "<!-- junction bench cluster: begin") != 1 || !strings.Contains(s, "cluster second") ||
		strings.Contains(s, "cluster first") ||
		!strings.Contains(s, "hand-written before") || !strings.Contains(s, "hand-written after") {
		t.Errorf("document after three updates:\n%s", s)
	}
}

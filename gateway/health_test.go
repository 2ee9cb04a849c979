package gateway_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/consul"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

// fastHealth makes the health runner quick for tests.
func fastHealth(_ *raftstore.Config, g *gateway.Config) {
	g.HealthLease, g.HealthScan = 600*time.Millisecond, 50*time.Millisecond
}

// switchable is an HTTP health endpoint that can be made to fail; it
// counts the probes it answers.
type switchable struct {
	*httptest.Server
	failing atomic.Bool
	probes  atomic.Int64
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.probes.Add(1)
		if s.failing.Load() {
			http.Error(w, "database down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	return s
}

func httpCheck(target string) *pb.HealthCheck {
	return &pb.HealthCheck{Kind: "http", Target: target, Interval: durationpb.New(100 * time.Millisecond), Rise: 2, Fall: 2}
}

// nextHealth waits for the next instance event of a watch and returns the
// instance's healthy flag: from a PUT, or from a RESET (a store whose
// watch cannot prove it saw every change, ZooKeeper's, may send one
// instead, carrying the whole state).
func nextHealth(t *testing.T, s pb.RegistryService_WatchInstancesClient, within time.Duration) bool {
	t.Helper()
	type got struct {
		ev  *pb.InstanceEvent
		err error
	}
	ch := make(chan got, 1)
	go func() { ev, err := s.Recv(); ch <- got{ev, err} }()
	select {
	case g := <-ch:
		if g.err != nil {
			t.Fatalf("watch: %v", g.err)
		}
		switch g.ev.GetType() {
		case pb.EventType_PUT:
			return g.ev.GetInstance().GetHealthy()
		case pb.EventType_RESET:
			t.Logf("a RESET instead of a PUT: %v", g.ev)
			for _, in := range g.ev.GetInstances() {
				if in.GetId() == "10.0.0.1:80" {
					return in.GetHealthy()
				}
			}
		}
		t.Fatalf("event %v, want a PUT or a RESET of the checked instance", g.ev)
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return false
}

// noEvent asserts that the watch delivers nothing for d.
func noEvent(t *testing.T, s pb.RegistryService_WatchInstancesClient, cancel context.CancelFunc, d time.Duration) {
	t.Helper()
	ch := make(chan *pb.InstanceEvent, 1)
	go func() {
		if ev, err := s.Recv(); err == nil {
			ch <- ev
		}
	}()
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %v", ev)
	case <-time.After(d):
		cancel()
	}
}

// healthScenario is what every backend must do: an HTTP check turns its
// instance unhealthy after the threshold and back after recovery, each
// transition reaching watchers once, and the protect threshold returns
// every instance, flagged, when too few are healthy.
func healthScenario(t *testing.T, e *env) {
	ctx := context.Background()
	target := newSwitchable(t)
	svc := "checked-" + strings.ReplaceAll(t.Name(), "/", "-")
	if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: svc, Ip: "10.0.0.1", Port: 80,
		Check: httpCheck(target.URL + "/health")}); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w, err := e.reg.WatchInstances(wctx, &pb.WatchInstancesRequest{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil { // the RESET
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // passing probes change nothing
	target.failing.Store(true)
	start := time.Now()
	if nextHealth(t, w, 10*time.Second) {
		t.Fatal("the failing target's instance stayed healthy")
	}
	t.Logf("unhealthy %v after the target began failing (fall=2, every 100ms)", time.Since(start).Round(time.Millisecond))
	list, err := e.reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: svc, HealthyOnly: true})
	if err != nil || len(list.Instances) != 0 || list.Protected {
		t.Fatalf("healthy-only list of an unhealthy service without protection: %v %v", list, err)
	}
	h, err := e.reg.GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Service: svc, Id: "10.0.0.1:80"})
	if err != nil || h.Check.GetKind() != "http" || h.Runner == "" || !strings.Contains(h.LastTransition.GetOutput(), "503") {
		t.Fatalf("instance health: %v %v", h, err)
	}
	target.failing.Store(false)
	start = time.Now()
	if !nextHealth(t, w, 10*time.Second) {
		t.Fatal("the recovered target's instance stayed unhealthy")
	}
	t.Logf("healthy again %v after recovery (rise=2)", time.Since(start).Round(time.Millisecond))
	noEvent(t, w, wcancel, 600*time.Millisecond)

	// Protect threshold: 1 of 4 healthy is below 0.5.
	for _, ip := range []string{"10.0.0.2", "10.0.0.3", "10.0.0.4"} {
		if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: svc, Ip: ip, Port: 80}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.reg.SetInstanceState(ctx, &pb.SetInstanceStateRequest{Service: svc, Id: ip + ":80", Healthy: new(false)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		threshold float64
		want      int
		protected bool
	}{{0, 1, false}, {0.5, 4, true}, {0.25, 1, false}} {
		if _, err := e.reg.PutServiceSettings(ctx, &pb.PutServiceSettingsRequest{Service: svc,
			Settings: &pb.ServiceSettings{ProtectThreshold: c.threshold}}); err != nil {
			t.Fatal(err)
		}
		list, err := e.reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: svc, HealthyOnly: true})
		if err != nil || len(list.Instances) != c.want || list.Protected != c.protected {
			t.Errorf("threshold %v: %d instances, protected %v (%v); want %d, %v", c.threshold, len(list.GetInstances()),
				list.GetProtected(), err, c.want, c.protected)
		}
	}
	// Deregistering removes the check: the runner stops probing.
	if _, err := e.reg.DeregisterInstance(ctx, &pb.DeregisterInstanceRequest{Service: svc, Id: "10.0.0.1:80"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	before := target.probes.Load()
	time.Sleep(500 * time.Millisecond)
	if n := target.probes.Load() - before; n > 0 {
		t.Errorf("%d probes of a deregistered instance", n)
	}
}

func TestHealthChecksOnEveryBackend(t *testing.T) {
	open := map[string]func(t *testing.T) backends.Backend{
		"etcd": func(t *testing.T) backends.Backend {
			ep, _ := servertest.Etcd(t)
			u, _ := url.Parse("etcd://" + ep)
			cfg, _ := etcd.ConfigFromURL(u)
			d, err := etcd.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"zookeeper": func(t *testing.T) backends.Backend {
			z := servertest.ZooKeeper(t)
			u, _ := url.Parse("zk://" + z.Addr)
			cfg, _ := zookeeper.ConfigFromURL(u)
			d, err := zookeeper.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"consul": func(t *testing.T) backends.Backend {
			c := servertest.ConsulAgent(t)
			u, _ := url.Parse("consul://" + c.HTTPAddr)
			cfg, _ := consul.ConfigFromURL(u)
			d, err := consul.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
	t.Run("raft", func(t *testing.T) { healthScenario(t, start(t, fastHealth)) })
	for _, name := range []string{"etcd", "zookeeper", "consul"} {
		t.Run(name, func(t *testing.T) {
			d := open[name](t)
			t.Cleanup(func() { d.Close() })
			cfg := gateway.DefaultConfig()
			fastHealth(nil, &cfg)
			healthScenario(t, startOn(t, d, cfg))
		})
	}
}

func TestTCPAndGRPCChecks(t *testing.T) {
	e := start(t, fastHealth)
	ctx := context.Background()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	defer srv.Stop()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	tcpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := tcpLis.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	fast := func(c *pb.HealthCheck) *pb.HealthCheck {
		c.Interval, c.Rise, c.Fall = durationpb.New(100*time.Millisecond), 1, 2
		return c
	}
	host, port, _ := net.SplitHostPort(lis.Addr().String())
	for name, req := range map[string]*pb.RegisterInstanceRequest{
		"grpc": {Service: "grpc-checked", Ip: host, Port: int32(atoi(port)), Check: fast(&pb.HealthCheck{Kind: "grpc", GrpcService: "orders"})},
		"tcp":  {Service: "tcp-checked", Ip: "10.0.0.9", Port: 80, Check: fast(&pb.HealthCheck{Kind: "tcp", Target: tcpLis.Addr().String()})},
	} {
		if _, err := e.reg.RegisterInstance(ctx, req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	tcpLis.Close()
	for _, svc := range []string{"grpc-checked", "tcp-checked"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			list, err := e.reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: svc})
			if err == nil && len(list.Instances) == 1 && !list.Instances[0].Healthy {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still healthy: %v %v", svc, list, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The probes are counted on /metrics, by kind.
	metrics := e.do(t, "GET", "/metrics", "").body
	for _, want := range []string{`junction_health_checks_total{kind="grpc"}`, `junction_health_check_failures_total{kind="tcp"}`,
		`junction_health_transitions_total{kind="grpc",to="unhealthy"} 1`, `junction_health_check_duration_seconds_count{kind="tcp"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	h, err := e.reg.GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Service: "grpc-checked", Id: lis.Addr().String()})
	if err != nil || h.Check.GetTarget() != lis.Addr().String() || len(h.History) == 0 ||
		!strings.Contains(h.History[len(h.History)-1].Output, "NOT_SERVING") {
		t.Fatalf("grpc check health: %v %v", h, err)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestBadCheckRejected(t *testing.T) {
	e := start(t, fastHealth)
	ctx := context.Background()
	for field, c := range map[string]*pb.HealthCheck{
		"check.kind":     {Kind: "icmp"},
		"check.target":   {Kind: "http", Target: "not a url"},
		"check.interval": {Kind: "tcp", Interval: durationpb.New(time.Millisecond)},
		"check.fall":     {Kind: "tcp", Fall: 1000},
	} {
		_, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "bad-check", Ip: "10.0.0.1", Port: 80, Check: c})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if list, err := e.reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: "bad-check"}); err != nil || len(list.Instances) != 0 {
		t.Errorf("a rejected registration was stored: %v %v", list, err)
	}
	_, err := e.reg.PutServiceSettings(ctx, &pb.PutServiceSettingsRequest{Service: "s", Settings: &pb.ServiceSettings{ProtectThreshold: 1.5}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "protectThreshold") {
		t.Errorf("threshold 1.5: %v", err)
	}
	_, err = e.reg.SetInstanceState(ctx, &pb.SetInstanceStateRequest{Service: "s", Id: "nosuch:1", Enabled: new(false)})
	if status.Code(err) != codes.NotFound {
		t.Errorf("maintenance of an absent instance: %v", err)
	}
}

// With two gateways over one store each check runs once, on the gateway
// holding the runner lease; when that gateway stops (releasing its lease)
// the other takes the checks over. A killed gateway, which releases
// nothing, is TestHealthCheckFailoverBetweenProcesses in cmd/junction.
func TestHealthRunnerFailover(t *testing.T) {
	store, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	gws := map[string]*gateway.Loopback{}
	for _, id := range []string{"gw-a", "gw-b"} {
		cfg := gateway.DefaultConfig()
		fastHealth(nil, &cfg)
		cfg.GatewayID = id
		l, err := gateway.ServeLoopback(store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		gws[id] = l
	}
	defer func() {
		for _, l := range gws {
			l.Close()
		}
	}()
	ctx := context.Background()
	target := newSwitchable(t)
	reg := pb.NewRegistryServiceClient(gws["gw-a"].Conn)
	if _, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "failover", Ip: "10.0.0.1", Port: 80,
		Check: httpCheck(target.URL)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	before := target.probes.Load()
	time.Sleep(2 * time.Second)
	probes := target.probes.Load() - before
	// One runner probing every 100 ms makes ~20 probes in 2 s; two would make ~40.
	if probes < 10 || probes > 28 {
		t.Fatalf("%d probes in 2s at one every 100ms: the check must run exactly once", probes)
	}
	h, err := reg.GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Service: "failover", Id: "10.0.0.1:80"})
	if err != nil || gws[h.GetRunner()] == nil {
		t.Fatalf("runner: %v %v", h, err)
	}
	runner := h.Runner
	other := map[string]string{"gw-a": "gw-b", "gw-b": "gw-a"}[runner]
	gws[runner].Close()
	delete(gws, runner)
	killed := time.Now()
	target.failing.Store(true)
	reg = pb.NewRegistryServiceClient(gws[other].Conn)
	for {
		list, err := reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: "failover"})
		if err == nil && len(list.Instances) == 1 && !list.Instances[0].Healthy {
			break
		}
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("no gateway checked the instance within 10s of the runner's death: %v %v", list, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(killed)
	h, err = reg.GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Service: "failover", Id: "10.0.0.1:80"})
	if err != nil || h.Runner != other {
		t.Fatalf("after failover the runner is %q (%v), want %s", h.GetRunner(), err, other)
	}
	// Lease 600 ms (taken over once unchanged that long), then fall=2 at 100 ms.
	t.Logf("the instance turned unhealthy %v after its runner died", took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Errorf("takeover and detection took %v; the bound is lease + renew + fall×interval ≈ 1.2 s", took)
	}
}

// Gateways configured with different leases still run a check once: a
// gateway with a short lease does not take the lease from a runner with a
// longer one that is still renewing it (every third of its own lease).
func TestHealthLeasesOfDifferentLengths(t *testing.T) {
	store, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	serve := func(id string, lease time.Duration) *gateway.Loopback {
		cfg := gateway.DefaultConfig()
		cfg.GatewayID, cfg.HealthLease, cfg.HealthScan = id, lease, 50*time.Millisecond
		l, err := gateway.ServeLoopback(store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	ctx := context.Background()
	long := serve("gw-long", 3*time.Second) // renews every second
	target := newSwitchable(t)
	reg := pb.NewRegistryServiceClient(long.Conn)
	if _, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "leases", Ip: "10.0.0.1", Port: 80,
		Check: httpCheck(target.URL)}); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		h, err := reg.GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Service: "leases", Id: "10.0.0.1:80"})
		if err == nil && h.Runner == "gw-long" && len(h.History) > 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("gw-long does not run the check: %v %v", h, err)
		}
	}
	short := serve("gw-short", 200*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // more than the short lease
	before := target.probes.Load()
	time.Sleep(2500 * time.Millisecond) // two renewals of the long lease, twelve short leases
	probes := target.probes.Load() - before
	for _, l := range []*gateway.Loopback{long, short} {
		h, err := pb.NewRegistryServiceClient(l.Conn).GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Service: "leases", Id: "10.0.0.1:80"})
		if err != nil || h.Runner != "gw-long" {
			t.Fatalf("the runner is %q (%v): the short lease took over from a runner that renews", h.GetRunner(), err)
		}
	}
	// One runner probing every 100 ms makes ~25 probes in 2.5 s; two would make ~50.
	if probes < 12 || probes > 35 {
		t.Fatalf("%d probes in 2.5s at one every 100ms: the check must run exactly once", probes)
	}
}

// unlisting is a store that cannot list configuration items, as a Nacos
// server without the config search API.
type unlisting struct{ backends.Backend }

func (unlisting) ListConfigs(context.Context, string, string, backends.ReadOptions) ([]model.ConfigSummary, backends.ReadInfo, error) {
	return nil, backends.ReadInfo{}, fmt.Errorf("%w: no config search here", model.ErrUnsupported)
}

// On a store that cannot list configuration items the gateway is ready and
// runs health checks all the same: their records are found through an
// index. A check registered there turns its instance unhealthy when its
// target fails, and a removed check stops.
func TestStoreThatCannotList(t *testing.T) {
	store, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	gcfg := gateway.DefaultConfig()
	fastHealth(nil, &gcfg)
	e := startOn(t, unlisting{store}, gcfg)
	if r := e.do(t, http.MethodGet, "/readyz", ""); r.status != http.StatusOK {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target := newSwitchable(t)
	if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "checked", Ip: "10.0.0.1", Port: 80, Check: httpCheck(target.URL)}); err != nil {
		t.Fatalf("registration with a check: %v", err)
	}
	w, err := e.reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Service: "checked"})
	if err != nil {
		t.Fatal(err)
	}
	nextHealth(t, w, 5*time.Second) // the RESET
	target.failing.Store(true)
	for nextHealth(t, w, 5*time.Second) {
	}
	if _, err := e.reg.SetInstanceState(ctx, &pb.SetInstanceStateRequest{Service: "checked", Id: "10.0.0.1:80", RemoveCheck: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the runner's next scans stop the check
	before := target.probes.Load()
	time.Sleep(500 * time.Millisecond)
	if n := target.probes.Load() - before; n > 0 {
		t.Fatalf("a removed check was probed %d more times", n)
	}
}

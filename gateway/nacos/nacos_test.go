package nacos_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	nmodel "github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/gateway/nacos"
)

// The unmodified nacos-sdk-go v2 client against Junction's front end over
// the built-in store, with Junction's REST API beside it.

type env struct {
	token string // sent with REST calls, when set
	rest  string // the gateway's REST base URL
	grpc  uint64 // the Nacos gRPC port
	http  uint64 // the Nacos HTTP port
	nacos *nacos.Server
}

// stores are the backends the client runs over: the built-in store and
// etcd.
var stores = map[string]func(t testing.TB) backends.Backend{
	"raft": func(t testing.TB) backends.Backend {
		store, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	},
	"etcd": func(t testing.TB) backends.Backend {
		ep, _ := servertest.Etcd(t)
		u, _ := url.Parse("etcd://" + ep)
		cfg, _ := etcd.ConfigFromURL(u)
		d, err := etcd.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	},
}

// start serves the front end over the built-in store.
func start(t testing.TB) *env { return startOn(t, stores["raft"](t)) }

// startOn serves a gateway and the front end over b.
func startOn(t testing.TB, b backends.Backend, tune ...func(*nacos.Config)) *env {
	t.Helper()
	l, err := gateway.ServeLoopback(b, gateway.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := nacos.DefaultConfig()
	for _, f := range tune {
		f(&cfg)
	}
	// Wired as junction server wires it: the gateway's authorizer (which
	// allows everything with access control off) and its settings.
	cfg.Authorizer, cfg.Thresholds, cfg.Grays, cfg.Logins, cfg.Watches = l.Server(), l.Server(), l.Server(), l.Server(), l.Server()
	front := nacos.New(l.Server().Backend(), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- front.Serve(ctx, lis, httpLis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("nacos front end: %v", err)
		}
	})
	return &env{rest: "http://" + l.Addr, grpc: uint64(lis.Addr().(*net.TCPAddr).Port), http: uint64(httpLis.Addr().(*net.TCPAddr).Port), nacos: front}
}

func clientParam(t testing.TB, httpPort, grpcPort uint64) vo.NacosClientParam {
	return clientParamIn(t.TempDir(), httpPort, grpcPort)
}

func clientParamIn(dir string, httpPort, grpcPort uint64) vo.NacosClientParam {
	cc := constant.NewClientConfig(constant.WithTimeoutMs(5000), constant.WithNotLoadCacheAtStart(true),
		constant.WithUpdateCacheWhenEmpty(true), constant.WithLogDir(dir), constant.WithCacheDir(dir), constant.WithLogLevel("warn"))
	// The HTTP port is what a client is configured with; the 2.x client
	// speaks gRPC on GrpcPort (PORT+1000 by default), and HTTP for
	// persistent instances.
	sc := constant.NewServerConfig("127.0.0.1", httpPort, constant.WithGrpcPort(grpcPort))
	return vo.NacosClientParam{ClientConfig: cc, ServerConfigs: []constant.ServerConfig{*sc}}
}

func namingClient(t testing.TB, e *env) naming_client.INamingClient {
	t.Helper()
	c, err := clients.NewNamingClient(clientParam(t, e.http, e.grpc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

func configClient(t testing.TB, e *env) config_client.IConfigClient {
	t.Helper()
	c, err := clients.NewConfigClient(clientParam(t, e.http, e.grpc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseClient)
	return c
}

// rest makes a call to Junction's REST API.
func (e *env) restCall(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.rest+path, strings.NewReader(body))
	req.Header.Set("Accept", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type restInstance struct {
	ID        string
	IP        string
	Port      int
	Ephemeral bool
	Session   string
	Metadata  map[string]string
	Weight    float64
}

// instances lists a service through Junction's REST API.
func (e *env) instances(t testing.TB, svc string) map[string]restInstance {
	t.Helper()
	code, body := e.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/"+svc+"/instances", "")
	if code != 200 {
		t.Fatalf("list %s: %d %s", svc, code, body)
	}
	var r struct{ Instances []restInstance }
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	out := map[string]restInstance{}
	for _, i := range r.Instances {
		out[i.ID] = i
	}
	return out
}

func eventually(t testing.TB, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// Register, select and subscribe through the real client; what it
// registers Junction's REST API shows, and what REST registers the
// client's subscription gets pushed.
func TestNacosNaming(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { testNaming(t, startOn(t, open(t))) })
	}
}

func testNaming(t *testing.T, e *env) {
	provider := namingClient(t, e)
	if ok, err := provider.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.5", Port: 8080, ServiceName: "orders",
		Weight: 2, Enable: true, Healthy: true, Ephemeral: true, Metadata: map[string]string{"zone": "a"}}); err != nil || !ok {
		t.Fatalf("register: %v %v", ok, err)
	}
	got := e.instances(t, "orders")["10.0.0.5:8080"]
	if !got.Ephemeral || got.Session == "" || got.Metadata["zone"] != "a" || got.Weight != 2 {
		t.Fatalf("REST shows the client's registration as %+v", got)
	}

	consumer := namingClient(t, e)
	var mu sync.Mutex
	var seen [][]nmodel.Instance
	if err := consumer.Subscribe(&vo.SubscribeParam{ServiceName: "orders", SubscribeCallback: func(insts []nmodel.Instance, err error) {
		mu.Lock()
		seen = append(seen, insts)
		mu.Unlock()
	}}); err != nil {
		t.Fatal(err)
	}
	hosts := func() []string {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return nil
		}
		var out []string
		for _, i := range seen[len(seen)-1] {
			out = append(out, fmt.Sprintf("%s:%d", i.Ip, i.Port))
		}
		slices.Sort(out)
		return out
	}
	eventually(t, "the first subscription callback", 5*time.Second, func() bool { return len(hosts()) == 1 })

	// A persistent instance registered through REST reaches the
	// subscriber as a push.
	before := time.Now()
	if code, body := e.restCall(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/orders/instances", `{"ip":"10.0.0.6","port":8080}`); code != 200 {
		t.Fatal(code, body)
	}
	took := eventually(t, "the push of a REST registration", 5*time.Second, func() bool {
		return slices.Equal(hosts(), []string{"10.0.0.5:8080", "10.0.0.6:8080"})
	})
	t.Logf("a registration through REST reached the nacos-sdk-go subscriber %v after the write (%v after the call began)", took, time.Since(before))

	insts, err := consumer.SelectInstances(vo.SelectInstancesParam{ServiceName: "orders", HealthyOnly: true})
	if err != nil || len(insts) != 2 {
		t.Errorf("select: %v %v", insts, err)
	}
	svcs, err := consumer.GetAllServicesInfo(vo.GetAllServiceInfoParam{PageNo: 1, PageSize: 10})
	if err != nil || svcs.Count != 1 || len(svcs.Doms) != 1 || svcs.Doms[0] != "orders" {
		t.Errorf("service list: %+v %v", svcs, err)
	}

	if ok, err := provider.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.0.0.5", Port: 8080, ServiceName: "orders", Ephemeral: true}); err != nil || !ok {
		t.Fatalf("deregister: %v %v", ok, err)
	}
	if _, still := e.instances(t, "orders")["10.0.0.5:8080"]; still {
		t.Error("deregistered through the client; REST still lists it")
	}
	eventually(t, "the push of the deregistration", 5*time.Second, func() bool { return slices.Equal(hosts(), []string{"10.0.0.6:8080"}) })

	// A client that closes takes its ephemeral instances with it.
	if _, err := provider.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.7", Port: 8080, ServiceName: "orders",
		Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.instances(t, "orders")["10.0.0.7:8080"]; !ok {
		t.Fatal("second registration missing")
	}
	provider.CloseClient()
	eventually(t, "a closed client's instance removed", 10*time.Second, func() bool {
		_, still := e.instances(t, "orders")["10.0.0.7:8080"]
		return !still
	})
}

// A client killed with SIGKILL: its connection ends, and its instance is
// gone within the bound (the session's TTL at the most).
func TestNacosClientKilled(t *testing.T) {
	if port := os.Getenv("JUNCTION_NACOS_CHILD"); port != "" {
		child(port)
		return
	}
	e := start(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNacosClientKilled$")
	cmd.Env = append(os.Environ(), "JUNCTION_NACOS_CHILD="+strconv.FormatUint(e.http, 10)+","+strconv.FormatUint(e.grpc, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "registered") {
		t.Fatalf("child: %q %v", line, err)
	}
	if _, ok := e.instances(t, "victim")["10.0.0.9:9000"]; !ok {
		t.Fatal("the child's instance is not registered")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "a killed client's instance removed", nacos.DefaultConfig().SessionTTL+5*time.Second, func() bool {
		_, still := e.instances(t, "victim")["10.0.0.9:9000"]
		return !still
	})
	t.Logf("a nacos-sdk-go client killed with SIGKILL: its instance was gone %v later", took)
}

// child registers an instance through a real client, says so, and waits
// to be killed.
func child(ports string) {
	h, g, _ := strings.Cut(ports, ",")
	hp, _ := strconv.ParseUint(h, 10, 64)
	gp, _ := strconv.ParseUint(g, 10, 64)
	dir, _ := os.MkdirTemp("", "nacos-child-")
	c, err := clients.NewNamingClient(clientParamIn(dir, hp, gp))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if ok, err := c.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.9", Port: 9000, ServiceName: "victim",
		Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
		fmt.Println("error", ok, err)
		os.Exit(1)
	}
	fmt.Println("registered")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// Config publish, get, listen and remove through the real client, with
// Junction's REST API beside it; casMd5 is a compare-and-set.
func TestNacosConfig(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { testConfig(t, startOn(t, open(t))) })
	}
}

func testConfig(t *testing.T, e *env) {
	c := configClient(t, e)
	if ok, err := c.PublishConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP", Content: "replicas: 2\n", Type: "yaml"}); err != nil || !ok {
		t.Fatalf("publish: %v %v", ok, err)
	}
	code, body := e.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "")
	var r struct {
		Config struct{ Content, ContentType, Md5 string }
	}
	_ = json.Unmarshal([]byte(body), &r)
	if code != 200 || r.Config.Content != "replicas: 2\n" || r.Config.ContentType != "yaml" {
		t.Fatalf("REST reads the client's publish as %d %s", code, body)
	}
	if got, err := c.GetConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP"}); err != nil || got != "replicas: 2\n" {
		t.Errorf("get: %q %v", got, err)
	}
	// casMd5: a stale md5 is refused and changes nothing; the current one
	// publishes.
	if ok, _ := c.PublishConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP", Content: "replicas: 9\n", CasMd5: "0123456789abcdef0123456789abcdef"}); ok {
		t.Error("a publish with a stale casMd5 succeeded")
	}
	if ok, err := c.PublishConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP", Content: "replicas: 3\n", CasMd5: r.Config.Md5}); err != nil || !ok {
		t.Errorf("a publish with the current casMd5: %v %v", ok, err)
	}

	changes := make(chan string, 16)
	if err := c.ListenConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP", OnChange: func(_, _, _, data string) { changes <- data }}); err != nil {
		t.Fatal(err)
	}
	// The client sends its listens every few seconds: the first change may
	// reach it by that poll. Once it has, the server holds its listen, and
	// the next change is pushed.
	waitFor := func(content string, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := time.After(d)
		for {
			select {
			case data := <-changes:
				if data == content {
					return time.Since(start)
				}
			case <-deadline:
				t.Fatalf("the listener never heard %q within %v", content, d)
			}
		}
	}
	for i, content := range []string{"replicas: 4\n", "replicas: 5\n"} {
		if code, body := e.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", content); code != 200 {
			t.Fatal(code, body)
		}
		if i == 0 {
			waitFor(content, 10*time.Second)
			// The client marks an item synced after it has told the
			// listener: a push in between is lost on its side (as it would
			// be from a Nacos server). Let it settle.
			time.Sleep(300 * time.Millisecond)
			continue
		}
		took := waitFor(content, 2*time.Second) // pushed: well before the next poll
		t.Logf("a change through REST reached the nacos-sdk-go listener %v later (pushed)", took)
	}

	if ok, err := c.DeleteConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP"}); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if code, _ := e.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", ""); code != 404 {
		t.Errorf("deleted through the client; REST reads %d", code)
	}
	if got, err := c.GetConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP"}); err != nil || got != "" {
		t.Errorf("get after delete: %q %v", got, err)
	}
}

// 200 clients at once, each registering an instance, then all closing.
func TestNacosManyClients(t *testing.T) {
	e := start(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	cs := make([]naming_client.INamingClient, n)
	for i := range n {
		wg.Go(func() {
			c, err := clients.NewNamingClient(clientParam(t, e.http, e.grpc))
			if err != nil {
				errs <- err
				return
			}
			cs[i] = c
			if ok, err := c.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.1.0.1", Port: uint64(10000 + i), ServiceName: "crowd",
				Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
				errs <- fmt.Errorf("client %d: %v %v", i, ok, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(e.instances(t, "crowd")); got != n {
		t.Fatalf("%d of %d clients' instances registered", got, n)
	}
	for _, c := range cs {
		if c != nil {
			c.CloseClient()
		}
	}
	eventually(t, "every closed client's instance removed", 20*time.Second, func() bool { return len(e.instances(t, "crowd")) == 0 })
}

// The protect threshold, as Nacos applies it: below its share of healthy
// instances, a query returns every instance, as healthy, and says so.
func TestNacosProtectThreshold(t *testing.T) {
	e := start(t)
	for i, healthy := range []bool{true, false, false, false} {
		body := fmt.Sprintf(`{"ip":"10.0.0.%d","port":80,"healthy":%v}`, i+1, healthy)
		if code, b := e.restCall(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/guarded/instances", body); code != 200 {
			t.Fatal(code, b)
		}
	}
	c := namingClient(t, e)
	selectHealthy := func() int {
		t.Helper()
		insts, err := c.SelectInstances(vo.SelectInstancesParam{ServiceName: "guarded", HealthyOnly: true})
		if err != nil {
			return 0
		}
		return len(insts)
	}
	if n := selectHealthy(); n != 1 {
		t.Fatalf("without a threshold: %d healthy instances, want 1", n)
	}
	if code, b := e.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/guarded/settings", `{"protectThreshold":0.5}`); code != 200 {
		t.Fatal(code, b)
	}
	code, body := e.nacosCall(t, "GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"guarded"}, "healthyOnly": {"true"}})
	var list struct {
		Hosts                    []struct{ Healthy bool }
		ReachProtectionThreshold bool
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Hosts) != 4 || !list.ReachProtectionThreshold {
		t.Errorf("below the threshold, HTTP lists %d %s", code, body)
	}
	for _, h := range list.Hosts {
		if !h.Healthy {
			t.Errorf("below the threshold an instance is listed unhealthy: %s", body)
		}
	}
	// A fresh client's query (the first client cached the service).
	if n := len(func() []nmodel.Instance {
		insts, _ := namingClient(t, e).SelectInstances(vo.SelectInstancesParam{ServiceName: "guarded", HealthyOnly: true})
		return insts
	}()); n != 4 {
		t.Errorf("below the threshold a client selects %d instances, want all 4", n)
	}
}

package nacos_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/nacos"
	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// native returns a plain nacos-sdk-go naming client, the kind a Java or Go
// service that knows nothing of Junction uses.
func native(t testing.TB, addr string) naming_client.INamingClient {
	t.Helper()
	dir := t.TempDir()
	host, port, _ := strings.Cut(addr, ":")
	var p uint64
	fmt.Sscan(port, &p)
	cc := constant.NewClientConfig(constant.WithTimeoutMs(5000), constant.WithNotLoadCacheAtStart(true),
		constant.WithUpdateCacheWhenEmpty(true), constant.WithLogDir(dir), constant.WithCacheDir(dir), constant.WithLogLevel("warn"))
	c, err := clients.NewNamingClient(vo.NacosClientParam{ClientConfig: cc, ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig(host, p)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseClient)
	deadline := time.Now().Add(10 * time.Second)
	for !c.ServerHealthy() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// nativePorts is what a plain client's SelectInstances returns: the
// healthy, enabled instances' ports.
func nativePorts(c naming_client.INamingClient, svc string, healthy bool) []int {
	insts, _ := c.SelectInstances(vo.SelectInstancesParam{ServiceName: svc, GroupName: model.DefaultGroup, HealthyOnly: healthy})
	var ports []int
	for _, i := range insts {
		ports = append(ports, int(i.Port))
	}
	slices.Sort(ports)
	return ports
}

// eventually polls cond every 20ms for up to d and returns how long it
// took to hold.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// An instance registered through Junction is what a plain Nacos client's
// SelectInstances returns, and leaves it when deregistered.
func TestInteropJunctionToNative(t *testing.T) {
	p := servertest.NeedPolaris(t)
	d := open(t, p.Addr, "")
	c := native(t, p.Addr)
	svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "to-native"}
	sess, _, err := d.CreateSession(ctx10(t), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	eph := model.Instance{ID: "web-1", IP: "10.1.0.1", Port: 8080, Weight: 2, Healthy: true, Enabled: true, Ephemeral: true,
		Session: sess.ID, Metadata: map[string]string{"zone": "a"}}
	if _, err := d.Register(ctx10(t), svc, eph); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 5*time.Second, "native client sees the instance", func() bool { return slices.Equal(nativePorts(c, svc.Service, true), []int{8080}) })
	t.Logf("measured (Nacos protocol served by Polaris %s): a plain client lists a Junction registration %v after it was acknowledged", servers.PolarisVersion, took.Round(time.Millisecond))
	insts, err := c.SelectInstances(vo.SelectInstancesParam{ServiceName: svc.Service, HealthyOnly: true})
	if err != nil || len(insts) != 1 || insts[0].Weight != 2 || insts[0].Metadata["zone"] != "a" || insts[0].Metadata["junction-id"] != "web-1" {
		t.Fatalf("the plain client's view: %+v %v", insts, err)
	}
	if _, err := d.Deregister(ctx10(t), svc, "web-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "native client no longer sees the instance", func() bool { return len(nativePorts(c, svc.Service, true)) == 0 })
}

// An instance a plain Nacos client registers is visible through Junction,
// reads and watches alike, with the id ip:port.
func TestInteropNativeToJunction(t *testing.T) {
	p := servertest.NeedPolaris(t)
	d := open(t, p.Addr, "")
	c := native(t, p.Addr)
	svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "from-native"}
	w, err := d.Watch(context.Background(), backends.WatchRequest{Service: &svc})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if e, err := w.Next(ctx10(t)); err != nil || e.Type != model.EventReset || len(e.Instances) != 0 {
		t.Fatalf("first event: %+v %v, want a RESET of the empty set", e, err)
	}
	param := vo.RegisterInstanceParam{Ip: "10.2.0.1", Port: 9090, ServiceName: svc.Service, Weight: 3, Enable: true, Healthy: true,
		Ephemeral: true, Metadata: map[string]string{"version": "1.4"}}
	eventually(t, 5*time.Second, "plain client registers", func() bool { ok, err := c.RegisterInstance(param); return ok && err == nil })
	e, err := w.Next(ctx10(t))
	if err != nil || e.Type != model.EventPut || e.Instance.ID != "10.2.0.1:9090" || e.Instance.Weight != 3 || e.Instance.Metadata["version"] != "1.4" {
		t.Fatalf("event after the plain registration: %+v %v", e, err)
	}
	if _, ok := e.Instance.Metadata["internal-nacos-clientconnId"]; ok {
		t.Fatalf("server-internal metadata leaked: %v", e.Instance.Metadata)
	}
	list, info, err := d.Instances(ctx10(t), svc, backends.ReadOptions{})
	if err != nil || len(list) != 1 || list[0].ID != "10.2.0.1:9090" || info.Consistency != model.Stale {
		t.Fatalf("read through Junction: %+v %+v %v", list, info, err)
	}
	if ok, err := c.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.2.0.1", Port: 9090, ServiceName: svc.Service, Ephemeral: true}); !ok || err != nil {
		t.Fatalf("plain deregister: %v %v", ok, err)
	}
	if e, err := w.Next(ctx10(t)); err != nil || e.Type != model.EventDelete || e.Instance.ID != "10.2.0.1:9090" {
		t.Fatalf("event after the plain deregistration: %+v %v", e, err)
	}
}

const helperEnv = "JUNCTION_NACOS_GATEWAY_HELPER"

// gatewayHelper is a gateway in a process of its own: it registers an
// ephemeral instance with a long session, keeps it alive, says "ready" and
// waits to be killed.
func gatewayHelper() {
	u, _ := nacosURL(os.Getenv(helperEnv))
	cfg, err := nacos.ConfigFromURL(u)
	if err == nil {
		var d *nacos.Driver
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if d, err = nacos.Open(ctx, cfg); err == nil {
			var sess model.Session
			if sess, _, err = d.CreateSession(ctx, time.Minute); err == nil {
				svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "backstop"}
				if _, err = d.Register(ctx, svc, model.Instance{ID: "b", IP: "10.3.0.1", Port: 7070, Weight: 1, Healthy: true,
					Enabled: true, Ephemeral: true, Session: sess.ID}); err == nil {
					fmt.Println("ready")
					for {
						time.Sleep(time.Second)
						_, _ = d.KeepAlive(context.Background(), sess.ID)
					}
				}
			}
		}
	}
	fmt.Println("helper:", err)
	os.Exit(1)
}

// Time for an ephemeral instance to disappear from a plain Nacos client's
// view, in the two ways a Junction session ends: the gateway expires it
// (heartbeats stopped), or the gateway dies and its connection with it.
func TestSessionTimeToDisappear(t *testing.T) {
	p := servertest.NeedPolaris(t)
	c := native(t, p.Addr)

	t.Run("GatewayExpiresSession", func(t *testing.T) {
		d := open(t, p.Addr, "")
		svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "expiring"}
		const ttl = time.Second
		sess, _, err := d.CreateSession(ctx10(t), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Register(ctx10(t), svc, model.Instance{ID: "e", IP: "10.4.0.1", Port: 6060, Weight: 1, Healthy: true,
			Enabled: true, Ephemeral: true, Session: sess.ID}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "native client sees the instance", func() bool {
			if _, err := d.KeepAlive(ctx10(t), sess.ID); err != nil {
				t.Fatal(err)
			}
			return len(nativePorts(c, svc.Service, true)) == 1
		})
		if _, err := d.KeepAlive(ctx10(t), sess.ID); err != nil {
			t.Fatal(err)
		}
		last := time.Now()
		eventually(t, ttl+5*time.Second, "instance gone for the native client", func() bool { return len(nativePorts(c, svc.Service, true)) == 0 })
		gone := time.Since(last)
		t.Logf("measured (Nacos protocol served by Polaris %s): gateway-driven expiry, gone for a plain client %v after the last heartbeat (TTL %v)", servers.PolarisVersion, gone.Round(time.Millisecond), ttl)
		// TTL, the 100ms expiry check, and the server's propagation
		// (Polaris refreshes its caches every second, then pushes).
		if gone > ttl+2500*time.Millisecond {
			t.Fatalf("gone %v after the last heartbeat; want within TTL+2.5s", gone)
		}
	})

	t.Run("GatewayDies", func(t *testing.T) {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+p.Addr)
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
		if err != nil || line != "ready\n" {
			t.Fatalf("helper gateway: %q %v", line, err)
		}
		eventually(t, 5*time.Second, "native client sees the helper's instance", func() bool { return slices.Equal(nativePorts(c, "backstop", true), []int{7070}) })
		killed := time.Now()
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		eventually(t, 30*time.Second, "instance of the killed gateway gone", func() bool { return len(nativePorts(c, "backstop", true)) == 0 })
		gone := time.Since(killed)
		t.Logf("measured (Nacos protocol served by Polaris %s): gateway killed (SIGKILL) with a 1m session, instance gone for a plain client %v later: the connection is the backstop", servers.PolarisVersion, gone.Round(time.Millisecond))
	})
}

// Polaris 1.18.1 drops casMd5 when it translates a Nacos publish, so a
// native compare-and-set update of an existing item is always refused
// (create-only still works). This is why its tests run with cas=check; if
// it ever passes, Polaris honours casMd5 and they should not. The driver
// says so once in its log, naming cas=check.
func TestPolarisDropsCasMd5(t *testing.T) {
	p := servertest.NeedPolaris(t)
	var logs servertest.Buffer
	d := openConfig(t, p.Addr, "cas=native", func(c *nacos.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	key := model.ConfigKey{Namespace: model.DefaultNamespace, Group: "g", DataID: "cas.yaml"}
	c1, err := d.PutConfig(ctx10(t), model.Config{Key: key, Content: []byte("a: 1")}, model.IfRevision(0))
	if err != nil {
		t.Fatalf("create-only: %v", err)
	}
	if _, err := d.PutConfig(ctx10(t), model.Config{Key: key, Content: []byte("a: 2")}, model.IfRevision(0)); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("create-only on an existing item: %v, want ErrConflict", err)
	}
	_, err = d.PutConfig(ctx10(t), model.Config{Key: key, Content: []byte("a: 2")}, model.IfRevision(c1.Revision))
	if !errors.Is(err, model.ErrConflict) {
		t.Fatalf("native CAS update at the current revision: %v; Polaris %s used to refuse it (it drops casMd5)", err, servers.PolarisVersion)
	}
	t.Logf("measured (Nacos protocol served by Polaris %s): a casMd5 update at the current content is refused: %v", servers.PolarisVersion, err)
	// The refused update named the content the server serves (once its
	// cache has it): the driver warns, once.
	const warning = "it may not honour casMd5"
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), warning); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no warning that the server may not honour casMd5; the driver logged:\n%s", logs.String())
		}
		cur, _, err := d.GetConfig(ctx10(t), key, backends.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.PutConfig(ctx10(t), model.Config{Key: key, Content: []byte("a: 3")}, model.IfRevision(cur.Revision)); !errors.Is(err, model.ErrConflict) {
			t.Fatalf("native CAS update: %v, want ErrConflict", err)
		}
	}
	if n := strings.Count(logs.String(), warning); n != 1 || !strings.Contains(logs.String(), "cas=check") {
		t.Fatalf("want one warning naming cas=check, got %d:\n%s", n, logs.String())
	}
}

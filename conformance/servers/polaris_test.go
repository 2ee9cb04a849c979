package servers_test

import (
	"os"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/conformance/servertest"
)

func TestMain(m *testing.M) {
	if code := servertest.InPrivateNetwork(m); code >= 0 {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// The Nacos-protocol server the nacos:// tests use answers a plain
// nacos-sdk-go v2 client: register, select, publish, get, deregister.
func TestPolarisServesNacos(t *testing.T) {
	servertest.NeedPolaris(t)
	dir := t.TempDir()
	cc := constant.NewClientConfig(constant.WithTimeoutMs(5000), constant.WithNotLoadCacheAtStart(true),
		constant.WithLogDir(dir), constant.WithCacheDir(dir), constant.WithLogLevel("warn"))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(dir + "/naming.log")
			t.Log(string(b))
		}
	})
	sc := []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", servers.NacosHTTPPort)}
	param := vo.NacosClientParam{ClientConfig: cc, ServerConfigs: sc}
	naming, err := clients.NewNamingClient(param)
	if err != nil {
		t.Fatal(err)
	}
	defer naming.CloseClient()
	// The client connects its gRPC stream in the background: a register
	// sent before it is up reports false, and is sent again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := naming.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.1", Port: 8080, ServiceName: "smoke",
			GroupName: "DEFAULT_GROUP", Weight: 1, Enable: true, Healthy: true, Ephemeral: true})
		if ok && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("register: %v %v", ok, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		insts, err := naming.SelectInstances(vo.SelectInstancesParam{ServiceName: "smoke", GroupName: "DEFAULT_GROUP", HealthyOnly: true})
		if err == nil && len(insts) == 1 && insts[0].Ip == "10.0.0.1" && insts[0].Port == 8080 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("select: %+v %v", insts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ok, err := naming.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.0.0.1", Port: 8080, ServiceName: "smoke",
		GroupName: "DEFAULT_GROUP", Ephemeral: true}); !ok || err != nil {
		t.Fatalf("deregister: %v %v", ok, err)
	}

	configs, err := clients.NewConfigClient(param)
	if err != nil {
		t.Fatal(err)
	}
	defer configs.CloseClient()
	if ok, err := configs.PublishConfig(vo.ConfigParam{DataId: "smoke.yaml", Group: "DEFAULT_GROUP", Content: "a: 1"}); !ok || err != nil {
		t.Fatalf("publish: %v %v", ok, err)
	}
	for {
		got, err := configs.GetConfig(vo.ConfigParam{DataId: "smoke.yaml", Group: "DEFAULT_GROUP"})
		if err == nil && got == "a: 1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get: %q %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

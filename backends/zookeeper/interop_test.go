package zookeeper_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

func plainClient(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// An instance registered through Junction is a Curator service-discovery
// record at /services/NAME/ID (what Spring Cloud Zookeeper reads), and a
// record written there by another client is visible through Junction.
func TestInteropCuratorLayout(t *testing.T) {
	z := servertest.ZooKeeper(t)
	d := open(t, z.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders"}
	sess, _, err := d.CreateSession(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	i := model.Instance{IP: "10.0.0.5", Port: 8080, Weight: 2, Healthy: true, Enabled: true, Ephemeral: true,
		Session: sess.ID, Metadata: map[string]string{"zone": "a"}}
	if err := i.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Register(ctx, svc, i); err != nil {
		t.Fatal(err)
	}

	c := plainClient(t, z.Addr)
	data, st, err := c.Get("/services/orders/10.0.0.5:8080")
	if err != nil {
		t.Fatalf("Curator path not written: %v", err)
	}
	var rec struct {
		Name, ID, Address, ServiceType string
		Port                           int
		Payload                        struct {
			Class    string `json:"@class"`
			Metadata map[string]string
		}
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Name != "orders" || rec.Address != "10.0.0.5" || rec.Port != 8080 || rec.ServiceType != "DYNAMIC" ||
		rec.Payload.Class != "org.springframework.cloud.zookeeper.discovery.ZookeeperInstance" ||
		rec.Payload.Metadata["zone"] != "a" || st.EphemeralOwner == 0 {
		t.Fatalf("not a Curator/Spring Cloud record: %s (ephemeral owner %d)", data, st.EphemeralOwner)
	}

	// A Spring Cloud application registers itself through Curator.
	spring := `{"name":"orders","id":"f0e1d2c3","address":"10.0.0.9","port":9090,"sslPort":null,
	  "payload":{"@class":"org.springframework.cloud.zookeeper.discovery.ZookeeperInstance","id":"orders","name":"orders",
	  "metadata":{"instance_status":"UP"}},"registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC",
	  "uriSpec":{"parts":[{"value":"scheme","variable":true},{"value":"://","variable":false},{"value":"address","variable":true}]}}`
	if _, err := c.Create("/services/orders/f0e1d2c3", []byte(spring), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	list, _, err := d.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found *model.Instance
	for n := range list {
		if list[n].ID == "f0e1d2c3" {
			found = &list[n]
		}
	}
	if len(list) != 2 || found == nil || found.IP != "10.0.0.9" || found.Port != 9090 || !found.Ephemeral ||
		found.Metadata["instance_status"] != "UP" || found.Weight != 1 || !found.Healthy {
		t.Fatalf("Junction sees %+v", list)
	}
}

// Registering over a node still owned by another ZooKeeper session — what an
// expired session leaves behind for a moment, the Curator/Dubbo "NodeExists"
// trap — replaces it instead of failing or silently keeping the stale node.
func TestRegisterReplacesNodeOfAnotherSession(t *testing.T) {
	z := servertest.ZooKeeper(t)
	d := open(t, z.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	other := plainClient(t, z.Addr)
	if _, err := other.Create("/services", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create("/services/pay", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create("/services/pay/10.0.0.1:80", []byte(`{"address":"10.0.0.1","port":80}`), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	sess, _, err := d.CreateSession(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	i := model.Instance{IP: "10.0.0.1", Port: 80, Weight: 5, Healthy: true, Enabled: true, Ephemeral: true, Session: sess.ID}
	_ = i.Normalize()
	if _, err := d.Register(ctx, model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "pay"}, i); err != nil {
		t.Fatalf("register over another session's node: %v", err)
	}
	other.Close() // the old owner goes away: our registration must survive it
	time.Sleep(500 * time.Millisecond)
	list, _, err := d.Instances(ctx, model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "pay"}, backends.ReadOptions{})
	if err != nil || len(list) != 1 || list[0].Weight != 5 {
		t.Fatalf("after the old owner left: %+v %v, want our registration", list, err)
	}
}

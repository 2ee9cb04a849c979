package zookeeper_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// With digest credentials in the URL the driver keeps the whole contract,
// and every znode it creates carries a digest ACL: a client without the
// credential, or with a wrong one, can neither read nor change them.
func TestDigestACLs(t *testing.T) {
	z := servertest.ZooKeeper(t)
	const secret = "s3cret-digest-pw"
	url := z.Addr + "?username=junction&password=" + secret
	d := open(t, url)
	conformance.Run(t, &harness{d: d, addr: url})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.PutConfig(ctx, model.Config{Key: model.ConfigKey{Namespace: "public", Group: "g", DataID: "db.yaml"},
		Content: []byte("password: x\n")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Register(ctx, model.ServiceKey{Namespace: "public", Group: "g", Service: "orders"},
		model.Instance{ID: "i1", IP: "10.0.0.1", Port: 80, Weight: 1, Enabled: true, Healthy: true}); err != nil {
		t.Fatal(err)
	}
	anon, _, err := zk.Connect([]string{z.Addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	// Every znode, as the credential's holder sees them.
	owner, _, err := zk.Connect([]string{z.Addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if err := owner.AddAuth("digest", []byte("junction:"+secret)); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	var walk func(p string)
	walk = func(p string) {
		nodes = append(nodes, p)
		kids, _, err := owner.Children(p)
		if err != nil {
			t.Fatalf("children of %s with the credential: %v", p, err)
		}
		for _, k := range kids {
			walk(p + "/" + k)
		}
	}
	top, _, err := owner.Children("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range top {
		if k != "zookeeper" {
			walk("/" + k)
		}
	}
	t.Logf("%d znodes under %v", len(nodes), top)
	if len(nodes) < 5 {
		t.Fatalf("found only %v", nodes)
	}
	for _, p := range nodes {
		if _, _, err := anon.Get(p); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("read %s without the credential: %v, want NoAuth", p, err)
		}
		if _, err := anon.Set(p, []byte("x"), -1); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("change %s without the credential: %v, want NoAuth", p, err)
		}
		if _, _, err := anon.Children(p); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("list %s without the credential: %v, want NoAuth", p, err)
		}
		if _, err := anon.Create(p+"/intruder", nil, 0, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("create under %s without the credential: %v, want NoAuth", p, err)
		}
	}
	// A wrong credential is no better.
	wrong, _, err := zk.Connect([]string{z.Addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	_ = wrong.AddAuth("digest", []byte("junction:guess"))
	if _, _, err := wrong.Get(nodes[0]); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("read %s with a wrong password: %v, want NoAuth", nodes[0], err)
	}
}

package zookeeper_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/model"
)

type harness struct{ d *zookeeper.Driver }

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }
func (h *harness) HistoryWindow() int                    { return 0 } // ZooKeeper keeps no history

func open(t *testing.T, addr string) *zookeeper.Driver {
	t.Helper()
	u, _ := url.Parse("zk://" + addr)
	cfg, err := zookeeper.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := zookeeper.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	z := servers.ZooKeeper(t)
	conformance.Run(t, &harness{d: open(t, z.Addr)})
}

// A session that expires while ZooKeeper cannot be reached still has its
// nodes removed once ZooKeeper answers again.
func TestExpiryRetriedAfterOutage(t *testing.T) {
	z := servers.ZooKeeper(t)
	d := open(t, z.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sess, _, err := d.CreateSession(ctx, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "flaky"}
	i := model.Instance{IP: "10.0.0.1", Port: 1, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, Session: sess.ID}
	_ = i.Normalize()
	if _, err := d.Register(ctx, svc, i); err != nil {
		t.Fatal(err)
	}
	z.Kill() // the Junction session (TTL 1s) expires while ZooKeeper is down…
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	if err := z.Start(); err != nil { // …and ZooKeeper returns within its own session timeout
		t.Fatal(err)
	}
	t.Logf("zookeeper back after %v", time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		list, _, err := d.Instances(ctx, svc, backends.ReadOptions{})
		if err == nil && len(list) == 0 {
			t.Logf("instance removed %v after zookeeper returned", time.Since(start).Round(time.Millisecond))
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the expired session's instance is still registered (last read error: %v)", last)
}

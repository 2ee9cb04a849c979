package zookeeper_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

type harness struct {
	d    *zookeeper.Driver
	addr string
}

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }

// Peer opens a second driver: another ZooKeeper connection and session.
func (h *harness) Peer(t *testing.T) backends.Backend { return open(t, h.addr) }
func (h *harness) HistoryWindow() int                 { return 0 } // ZooKeeper keeps no history

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
	z := servertest.ZooKeeper(t)
	conformance.Run(t, &harness{d: open(t, z.Addr), addr: z.Addr})
}

// A session that expires while ZooKeeper cannot be reached still has its
// nodes removed once ZooKeeper answers again.
func TestExpiryRetriedAfterOutage(t *testing.T) {
	z := servertest.ZooKeeper(t)
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

// A server that accepts the connection but never answers the connect
// request (as a ZooKeeper still starting up can) costs the driver a
// bounded wait, not the client library's ten receive timeouts (66s with the
// default session timeout): it dials again and gets its session.
func TestSilentHandshakeRedialed(t *testing.T) {
	z := servertest.ZooKeeper(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	var silent atomic.Int32
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			if silent.Add(1) == 1 {
				t.Cleanup(func() { c.Close() }) // accepted, never answered
				continue
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", z.Addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	u, _ := url.Parse("zk://" + lis.Addr().String())
	cfg, err := zookeeper.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.SessionTimeout)
	defer cancel()
	start := time.Now()
	d, err := zookeeper.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("no session within the session timeout (%v) after a silent first connection: %v", cfg.SessionTimeout, err)
	}
	defer d.Close()
	if n := silent.Load(); n < 2 {
		t.Fatalf("dialled %d times, want a second dial after the silent one", n)
	}
	t.Logf("session after %v", time.Since(start).Round(time.Millisecond))
}

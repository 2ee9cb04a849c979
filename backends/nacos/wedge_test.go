//go:build !race

// Restarts Polaris under a client: see nacos_test.go for why the race
// detector is off here.

package nacos_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/faults"
	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// Polaris 1.18.1 stops serving the Nacos gRPC API after a partition during
// which a client's sessions expired and were re-created: afterwards even a
// brand-new client connecting directly (no proxy) completes only its
// connection setup, and every request goes unanswered (its log shows the
// setups and nothing after them), while the HTTP API still answers. A
// restart clears it. This is the server's fault, not the client's: the
// guarantee runner restarts Polaris before each of its targets
// (Target.BeforeRun) so that one target's partition does not fail the
// next. The test fails should a Polaris release fix it, so that the
// workaround can go.
func TestPolarisWedgesAfterPartition(t *testing.T) {
	p := servertest.NeedPolaris(t)
	httpP, err := faults.NewProxy(p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { httpP.Close() })
	_, port, _ := net.SplitHostPort(httpP.Addr())
	n, _ := strconv.Atoi(port)
	grpcP, err := faults.NewProxyAt(fmt.Sprintf("127.0.0.1:%d", n+1000), fmt.Sprintf("127.0.0.1:%d", servers.NacosGRPCPort))
	if err != nil {
		t.Fatalf("no free port pair for the nacos proxies: %v", err)
	}
	t.Cleanup(func() { grpcP.Close() })
	d := open(t, httpP.Addr(), "cas=check&timeout=3s")
	subscribes := func(b backends.Backend, name string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		_, _, err := b.Instances(ctx, model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: name}, backends.ReadOptions{})
		return err
	}
	ctx := context.Background()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "kept"}
	inst := model.Instance{IP: "10.0.0.1", Port: 1, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true}
	_ = inst.Normalize()
	register := func() error {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		s, _, err := d.CreateSession(rctx, 2*time.Second)
		if err != nil {
			return err
		}
		i := inst
		i.Session = s.ID
		_, err = d.Register(rctx, svc, i)
		return err
	}
	if err := register(); err != nil {
		t.Fatal(err)
	}
	if err := subscribes(d, "before"); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	// A client that keeps its registration: on a lost session, a new one.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			_ = register()
		}
	}()
	httpP.Cut()
	grpcP.Cut()
	time.Sleep(7 * time.Second)
	httpP.Heal()
	grpcP.Heal()
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	fresh := open(t, p.Addr, "cas=check&timeout=3s")
	err = subscribes(fresh, "after-partition")
	if err == nil {
		t.Fatal("a new client subscribes after the partition: Polaris no longer wedges; drop Target.BeforeRun's restart")
	}
	t.Logf("a new client connecting directly after the partition: %v", err)
	p.Kill()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := subscribes(open(t, p.Addr, "cas=check&timeout=3s"), "after-restart"); err != nil {
		t.Fatalf("after a restart of Polaris: %v", err)
	}
}

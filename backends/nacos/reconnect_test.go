//go:build !race

// The SDK's RPC client swaps its connection on reconnect without a lock
// (nacos-sdk-go v2.3.2, common/remote/rpc/rpc_client.go reconnect and
// Request), which the race detector reports whatever the caller does, so
// this test runs without it: `make test` runs it in a second, non-race
// pass.

package nacos_test

import (
	"context"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// When the connection breaks and comes back (the server restarted), pushes
// may have been missed: a watcher gets a RESET with what the server lists.
func TestResetAfterReconnect(t *testing.T) {
	p := servertest.NeedPolaris(t)
	d := open(t, p.Addr, "")
	svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "reconnect"}
	if _, err := d.Register(ctx10(t), svc, model.Instance{ID: "p", IP: "10.5.0.1", Port: 5050, Weight: 1, Healthy: true, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	list, info, err := d.Instances(ctx10(t), svc, backends.ReadOptions{})
	if err != nil || len(list) != 1 {
		t.Fatalf("%v %v", list, err)
	}
	w, err := d.Watch(context.Background(), backends.WatchRequest{Service: &svc, FromRevision: info.Revision})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p.Kill()
	time.Sleep(time.Second)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		e, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("no RESET after the server came back: %v", err)
		}
		if e.Type == model.EventReset {
			t.Logf("RESET with %d instances after the reconnect", len(e.Instances))
			return
		}
		t.Logf("event before the RESET: %v", e.Type)
	}
}

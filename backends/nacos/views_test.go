package nacos_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

// The driver's views are bounded: one nothing watched, wrote or read for
// view-idle is dropped (and its subscription with it), one a watch holds
// stays and keeps delivering, and a dropped one comes back on use with
// what the server holds. The gateway exports the counts.
func TestIdleViewsAreDropped(t *testing.T) {
	p := servertest.NeedPolaris(t)
	d := open(t, p.Addr, "view-idle=1s")
	ctx := context.Background()
	run := time.Now().UnixNano() % 1e6
	svc := func(i int) model.ServiceKey {
		return model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: fmt.Sprintf("idle-%d-%d", run, i)}
	}
	key := func(i int) model.ConfigKey {
		return model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: fmt.Sprintf("idle-%d-%d.txt", run, i)}
	}
	s0, k0 := svc(0), key(0)
	if _, err := d.Register(ctx, s0, model.Instance{ID: "a", IP: "10.0.0.1", Port: 1, Weight: 1, Enabled: true, Healthy: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, _, err := d.Instances(ctx, svc(i), backends.ReadOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		_, _, _ = d.GetConfig(ctx, key(i), backends.ReadOptions{})
	}
	if s, c := d.Views(); s < 20 || c < 10 {
		t.Fatalf("views after the reads: %d services, %d configs", s, c)
	}
	w, err := d.Watch(ctx, backends.WatchRequest{Service: &s0})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wc, err := d.Watch(ctx, backends.WatchRequest{Config: &k0})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	waitViews := func(services, configs int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			s, c := d.Views()
			if s == services && c == configs {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("views: %d services, %d configs; want %d and %d", s, c, services, configs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitViews(1, 1)
	// The watched view still delivers.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for e, err := w.Next(wctx); ; e, err = w.Next(wctx) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Type == model.EventReset {
			break
		}
	}
	if _, err := d.Register(ctx, s0, model.Instance{ID: "b", IP: "10.0.0.2", Port: 1, Weight: 1, Enabled: true, Healthy: true}); err != nil {
		t.Fatal(err)
	}
	for {
		e, err := w.Next(wctx)
		if err != nil {
			t.Fatalf("the kept view's watch: %v", err)
		}
		if e.Type == model.EventPut && e.Instance.ID == "b" {
			break
		}
	}
	w.Close()
	wc.Close()
	waitViews(0, 0)
	insts, _, err := d.Instances(ctx, s0, backends.ReadOptions{})
	if err != nil || len(insts) != 2 {
		t.Fatalf("a dropped view, used again: %v %v", insts, err)
	}
	for _, id := range []string{"a", "b"} {
		_, _ = d.Deregister(ctx, s0, id)
	}
	// A gateway over the driver exports the counts (its own records,
	// which it reads all the time, among them).
	l, err := gateway.ServeLoopback(d, gateway.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g := servertest.Gauges(t, "http://"+l.Addr, "junction_backend_nacos_service_views", "junction_backend_nacos_config_views")
	if s, c := d.Views(); g[0] != float64(s) || g[1] != float64(c) {
		t.Errorf("gauges %v, with %d and %d views", g, s, c)
	}
}

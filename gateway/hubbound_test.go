package gateway_test

import (
	"context"
	"fmt"
	"testing"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/servertest"
)

// The hub holds one store watch per watched service or config, shared by
// its subscribers, and none once the last of them leaves: topics do not
// outlive their watches (junction_watch_topics).
func TestHubTopicsGoWithTheirLastSubscriber(t *testing.T) {
	e := start(t)
	waitGauge := func(name string, want float64) { t.Helper(); servertest.WaitGauge(t, e.base, name, want) }
	ctx, cancel := context.WithCancel(context.Background())
	var cancels []context.CancelFunc
	// Each watch is open once its first event (the RESET) came.
	open := func(f func(context.Context) error) {
		t.Helper()
		wctx, wcancel := context.WithCancel(ctx)
		if err := f(wctx); err != nil {
			t.Fatal(err)
		}
		cancels = append(cancels, wcancel)
	}
	watchService := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			s, err := e.reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Service: name})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		}
	}
	for i := range 40 {
		open(watchService(fmt.Sprintf("svc-%d", i)))
	}
	for range 10 { // many subscribers, one topic
		open(watchService("svc-0"))
	}
	for i := range 10 {
		open(func(ctx context.Context) error {
			s, err := e.cfg.WatchConfig(ctx, &pb.WatchConfigRequest{DataId: fmt.Sprintf("app-%d.yaml", i)})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		})
	}
	waitGauge("junction_watch_topics", 50)
	waitGauge("junction_watch_subscribers", 60)
	for _, c := range cancels[:45] {
		c()
	}
	waitGauge("junction_watch_topics", 11) // svc-0 (five subscribers left) and the ten configs
	cancel()
	waitGauge("junction_watch_topics", 0)
	waitGauge("junction_watch_subscribers", 0)
}

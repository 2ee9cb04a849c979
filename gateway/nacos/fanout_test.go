package nacos_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Nacos clients' subscriptions go through the gateway's hub: any number
// of them to one service share one store watch with the gateway's own
// watchers, and the watches go when the connections do.
func TestNacosSubscriptionsShareStoreWatches(t *testing.T) {
	e := start(t)
	gauge := func(name string) int {
		t.Helper()
		resp, err := http.Get(e.rest + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for line := range strings.Lines(string(b)) {
			if v, found := strings.CutPrefix(line, name+" "); found {
				var n int
				_, _ = fmt.Sscan(v, &n)
				return n
			}
		}
		t.Fatalf("no %s in /metrics", name)
		return 0
	}
	waitGauge := func(name string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for gauge(name) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %d, want %d", name, gauge(name), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	topics, subs := gauge("junction_watch_topics"), gauge("junction_watch_subscribers")
	var conns []*raw
	for i := range 30 {
		r := dialRaw(t, e, true)
		service := "shared"
		if i >= 20 {
			service = fmt.Sprintf("own-%d", i)
		}
		if typ, m := r.call("SubscribeServiceRequest", `{"serviceName":"`+service+`","subscribe":true}`); typ != "SubscribeServiceResponse" || code(m) != 0 {
			t.Fatalf("subscribe: %s %v", typ, m)
		}
		conns = append(conns, r)
	}
	waitGauge("junction_watch_topics", topics+11) // shared, and own-20..29
	waitGauge("junction_watch_subscribers", subs+30)
	for _, r := range conns {
		r.cc.Close()
	}
	waitGauge("junction_watch_topics", topics)
	waitGauge("junction_watch_subscribers", subs)
}

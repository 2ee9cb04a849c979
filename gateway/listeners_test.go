package gateway_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

// Who watches an item, asked at any gateway over the store: an SDK client
// at one gateway (with its ID and labels), a gRPC and a REST client at the
// other; each watch's last md5 follows what it was sent, and a watch that
// ends leaves the list.
func TestConfigListeners(t *testing.T) {
	one, two := twoGateways(t, func(i int, c *gateway.Config) {
		c.GatewayID, c.ListenerPublish = "gw-"+strconv.Itoa(i+1), 50*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v1, err := one.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "a: 1\n", ContentType: model.ContentYAML})
	if err != nil {
		t.Fatal(err)
	}

	c, err := sdk.New(ctx, sdk.WithAddrs(strings.TrimPrefix(one.base, "http://")), sdk.WithClientID("orders-7"),
		sdk.WithLabels(map[string]string{"env": "canary", "zone": "a"}))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 10)
	if err := c.WatchConfig(ctx, "app.yaml", func(ch sdk.ConfigChange) { seen <- ch.MD5 }); err != nil {
		t.Fatal(err)
	}
	<-seen
	rctx, rcancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "junction-client-id", "raw-1", "junction-client-labels", "zone=b,bad label=x"))
	raw, err := two.cfg.WatchConfig(rctx, &pb.WatchConfigRequest{DataId: "app.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Recv(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", two.base+"/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml:watch", nil)
	req.Header.Set("Junction-Client-Id", "rest 1") // not a name: left out
	req.Header.Set("Grpc-Metadata-Junction-Client-Id", "smuggled")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	// wait polls the listeners at gw until want holds.
	wait := func(e *env, what string, want func(*pb.ListConfigListenersResponse) bool) *pb.ListConfigListenersResponse {
		t.Helper()
		var last *pb.ListConfigListenersResponse
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			r, err := e.cfg.ListConfigListeners(ctx, &pb.ListConfigListenersRequest{DataId: "app.yaml"})
			if err != nil {
				t.Fatal(err)
			}
			if last = r; want(r) {
				return r
			}
		}
		t.Fatalf("%s: the listeners are %v", what, last)
		return nil
	}
	byClient := func(r *pb.ListConfigListenersResponse) map[string]*pb.ConfigListener {
		m := map[string]*pb.ConfigListener{}
		for _, l := range r.Listeners {
			m[l.ClientId] = l
		}
		return m
	}
	r := wait(two, "three watches", func(r *pb.ListConfigListenersResponse) bool { return len(r.Listeners) == 3 })
	m := byClient(r)
	if l := m["orders-7"]; l == nil || l.Gateway != "gw-1" || l.Labels["env"] != "canary" || l.Labels["zone"] != "a" ||
		l.Address != "127.0.0.1" || l.Md5 != v1.Config.Md5 || !l.UpToDate || l.Since.AsTime().IsZero() {
		t.Errorf("the SDK client's watch: %v", l)
	}
	if l := m["raw-1"]; l == nil || l.Gateway != "gw-2" || len(l.Labels) != 1 || l.Labels["zone"] != "b" {
		t.Errorf("the gRPC client's watch (one good label of two): %v", l)
	}
	if l := m[""]; l == nil || l.Gateway != "gw-2" {
		t.Errorf("the REST client's watch, whose name is no name: %v", m)
	}
	if r.Gateways != 2 || r.CurrentMd5 != v1.Config.Md5 {
		t.Errorf("gateways %d, current md5 %s", r.Gateways, r.CurrentMd5)
	}

	v2, err := two.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "a: 2\n"})
	if err != nil {
		t.Fatal(err)
	}
	wait(two, "every watch at the new md5", func(r *pb.ListConfigListenersResponse) bool {
		return len(r.Listeners) == 3 && !slices.ContainsFunc(r.Listeners, func(l *pb.ConfigListener) bool {
			return l.Md5 != v2.Config.Md5 || !l.UpToDate
		})
	})
	rcancel()
	c.Close()
	wait(two, "the watches that ended gone", func(r *pb.ListConfigListenersResponse) bool {
		return len(r.Listeners) == 1 && r.Listeners[0].ClientId == ""
	})
	wait(one, "the same from the other gateway", func(r *pb.ListConfigListenersResponse) bool {
		return len(r.Listeners) == 1 && r.Listeners[0].Gateway == "gw-2"
	})
}

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/servertest"
)

// dial connects a gRPC client to a server.
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// On every external store, with two gateway processes over it: gateway A
// holds the instance's session, gateway B runs the health checks. When the
// check's target goes down, B's verdict reaches the instance (B cannot
// re-register what A's session owns, and must not drop the verdict) within
// interval × fall + 1 s, as a watcher on A sees it; the instance is still
// the session's, and goes when the session is closed.
func TestHealthVerdictFromAnotherGateway(t *testing.T) {
	for _, store := range []struct {
		name    string
		backend func(t *testing.T) string
	}{
		{"etcd", func(t *testing.T) string { ep, _ := servertest.Etcd(t); return "etcd://" + ep + "?prefix=/verdict" }},
		{"zookeeper", func(t *testing.T) string { return "zk://" + servertest.ZooKeeper(t).Addr }},
		{"consul", func(t *testing.T) string { return "consul://" + servertest.ConsulAgent(t).HTTPAddr }},
		// Polaris drops casMd5 (TestPolarisDropsCasMd5): with cas=native
		// the runner's first renewal of its lease, a conditional update, is
		// refused, and the checks stop a third of a lease in.
		{"nacos", func(t *testing.T) string { return "nacos://" + servertest.NeedPolaris(t).Addr + "?cas=check" }},
	} {
		t.Run(store.name, func(t *testing.T) { testVerdictFromAnotherGateway(t, store.backend(t)) })
	}
}

func testVerdictFromAnotherGateway(t *testing.T, backend string) {
	const interval, fall = 200 * time.Millisecond, 2
	// A lease of 3 s is renewed every second: the checks must outlive the
	// renewals made while the test runs.
	args := func(id string) []string {
		return []string{"--backend", backend, "--gateway-id", id, "--health-lease", "3s", "--health-scan", "100ms"}
	}
	// B first, so that it takes the runner lease.
	b := startServerArgs(t, freeAddr(t), args("gw-b")...)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.log.String(), "this gateway runs them") {
		if time.Now().After(deadline) {
			t.Fatalf("gateway B did not take the runner lease:\n%s", b.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := startServerArgs(t, freeAddr(t), args("gw-a")...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway A:\n%s\ngateway B:\n%s", a.log, b.log)
		}
	})

	var failing atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	regA := pb.NewRegistryServiceClient(dial(t, a.addr))
	regB := pb.NewRegistryServiceClient(dial(t, b.addr))
	sess, err := regA.CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(10 * time.Second)})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	beats := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-beats:
				return
			case <-time.After(2 * time.Second):
				if _, err := regA.KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: sess.Id}); err != nil && ctx.Err() == nil {
					t.Errorf("keepalive: %v", err)
				}
			}
		}
	}()
	defer close(beats)
	const ns, group, svc, id = "public", "DEFAULT_GROUP", "verdict", "10.0.0.7:80"
	weight := 3.0
	if _, err := regA.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: ns, Group: group, Service: svc,
		Ip: "10.0.0.7", Port: 80, Session: sess.Id, Weight: &weight, Metadata: map[string]string{"zone": "a"},
		Check: &pb.HealthCheck{Kind: "http", Target: target.URL, Interval: durationpb.New(interval), Fall: fall, Rise: 1}}); err != nil {
		t.Fatalf("register through A: %v", err)
	}
	watch, err := regA.WatchInstances(ctx, &pb.WatchInstancesRequest{Namespace: ns, Group: group, Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	healthy := func() (*pb.Instance, bool) { // the watcher's next view of the instance
		e, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch on A: %v", err)
		}
		for _, i := range append(e.Instances, e.Instance) {
			if i != nil && i.Id == id {
				return i, i.Healthy
			}
		}
		return nil, false
	}
	for {
		if i, ok := healthy(); ok && i != nil {
			break
		}
	}
	// B, whose reads may lag (Nacos), sees the instance a moment later.
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		h, err := regB.GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Namespace: ns, Group: group, Service: svc, Id: id})
		if err == nil && h.Runner == "gw-b" {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the checks run on %q (%v), want gw-b", h.GetRunner(), err)
		}
	}

	// The store's own write latency, which bounds any verdict too: what a
	// write through A costs before A's watcher shows it.
	// (Its own session: Nacos keeps one ephemeral instance of a service per
	// connection.)
	probe, err := regA.CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(30 * time.Second)})
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	wrote := time.Now()
	if _, err := regA.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: ns, Group: group, Service: svc,
		Ip: "10.0.0.8", Port: 80, Session: probe.Id}); err != nil {
		t.Fatalf("register a second instance through A: %v", err)
	}
	for {
		e, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch on A: %v", err)
		}
		if e.Instance.GetId() == "10.0.0.8:80" || slices.ContainsFunc(e.Instances, func(i *pb.Instance) bool { return i.Id == "10.0.0.8:80" }) {
			break
		}
	}
	writeLatency := time.Since(wrote)
	if _, err := regA.DeleteSession(ctx, &pb.DeleteSessionRequest{Id: probe.Id}); err != nil {
		t.Fatalf("close the probe's session: %v", err)
	}
	// And what a write through B costs before A reads it: the path a
	// verdict takes where only A may write the instance (Nacos: Polaris
	// serves other connections from caches refreshed every second).
	cfgA, cfgB := pb.NewConfigServiceClient(dial(t, a.addr)), pb.NewConfigServiceClient(dial(t, b.addr))
	wrote = time.Now()
	if _, err := cfgB.PutConfig(ctx, &pb.PutConfigRequest{Namespace: ns, Group: group, DataId: "probe", Content: "b"}); err != nil {
		t.Fatalf("a config write through B: %v", err)
	}
	for {
		if c, err := cfgA.GetConfig(ctx, &pb.GetConfigRequest{Namespace: ns, Group: group, DataId: "probe"}); err == nil && c.Config.GetContent() == "b" {
			break
		}
		if time.Since(wrote) > 10*time.Second {
			t.Fatal("a config written through B never read through A")
		}
		time.Sleep(20 * time.Millisecond)
	}
	writeLatency = max(writeLatency, time.Since(wrote))

	failing.Store(true)
	down := time.Now()
	var inst *pb.Instance
	for {
		i, ok := healthy()
		if i != nil && !ok {
			inst = i
			break
		}
	}
	took := time.Since(down)
	bound := interval*fall + time.Second + writeLatency
	t.Logf("measured: unhealthy on A's watcher %v after the target went down (bound: interval %v × fall %d + 1s + the store's write latency %v = %v)",
		took.Round(time.Millisecond), interval, fall, writeLatency.Round(time.Millisecond), bound.Round(time.Millisecond))
	if took > bound {
		t.Errorf("the verdict took %v, over interval × fall + 1s + write latency = %v", took, bound)
	}
	if inst.Weight != weight || inst.Metadata["zone"] != "a" || inst.Session != sess.Id {
		t.Errorf("the verdict changed more than the health: %+v", inst)
	}

	// Still the session's: closing it removes the instance.
	if _, err := regA.DeleteSession(ctx, &pb.DeleteSessionRequest{Id: sess.Id}); err != nil {
		t.Fatalf("close session: %v", err)
	}
	for {
		e, err := watch.Recv()
		if err != nil {
			t.Fatalf("watch on A: %v", err)
		}
		if e.Type == pb.EventType_DELETE && e.Instance.GetId() == id {
			break
		}
		if e.Type == pb.EventType_RESET && len(e.Instances) == 0 {
			break
		}
	}
}

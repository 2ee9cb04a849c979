package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/junctionhq/junction/conformance/faults"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

func instance(port int) model.Instance {
	return model.Instance{IP: "10.0.0.1", Port: port} // the SDK registers it enabled, weight 1
}

func has(s sdk.Snapshot, id string) bool {
	_, ok := find(s, id)
	return ok
}

// find returns the snapshot's instance whose ID is id.
func find(s sdk.Snapshot, id string) (model.Instance, bool) {
	for _, i := range s.Instances {
		if i.ID == id {
			return i, true
		}
	}
	return model.Instance{}, false
}

// Kill the gateway and start a fresh one (its store empty, as after losing
// it): the client creates a new session and registers again, and a
// subscriber converges within 2×TTL, with no manual step.
func TestGatewayRestartRedo(t *testing.T) {
	const ttl = 2 * time.Second
	g := mustGateway(t, t.TempDir(), "127.0.0.1:0")
	addr := g.addr
	var mu sync.Mutex
	var states []sdk.State
	provider := newClient(t, sdk.WithAddrs(addr), sdk.WithSessionTTL(ttl), sdk.WithNamespace("redo"),
		sdk.WithStateListener(func(s sdk.State, _ error) { mu.Lock(); states = append(states, s); mu.Unlock() }))
	reg, err := provider.Register(ctxT(t), "orders", instance(8080))
	if err != nil {
		t.Fatal(err)
	}
	consumer := newClient(t, sdk.WithAddrs(addr), sdk.WithNamespace("redo"))
	sub, err := consumer.Subscribe(ctxT(t), "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	first, ok := find(sub.Current(), reg.Instance().ID)
	if !ok || first.Session == "" {
		t.Fatalf("subscriber does not see the instance with its session: %+v", sub.Current())
	}

	g.stop()
	restarted := time.Now()
	g = mustGateway(t, t.TempDir(), addr) // a new, empty store on the same address
	defer g.stop()
	// The instance as the new store holds it: under the new session the
	// provider created there, not the one the old store's view showed
	// (which a subscriber that has not yet noticed the restart still shows).
	waitFor(t, 2*ttl, "subscriber sees the re-registered instance", func() bool {
		i, ok := find(sub.Current(), reg.Instance().ID)
		return ok && i.Session != "" && i.Session != first.Session && sub.Err() == nil
	})
	t.Logf("re-registered and seen by the subscriber %v after the restart (TTL %v)", time.Since(restarted).Round(time.Millisecond), ttl)
	// The provider's listener hears "registered" once the register call
	// has returned, which may be after the subscriber saw its effect.
	waitFor(t, time.Second, "the provider reports session-lost, then registered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return containsState(states, sdk.StateSessionLost) && states[len(states)-1] == sdk.StateRegistered
	})
}

func containsState(states []sdk.State, s sdk.State) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// Partition the provider from the gateway for longer than its TTL: its
// instance disappears; when the partition heals it comes back on its own.
func TestPartitionLongerThanTTL(t *testing.T) {
	const ttl = time.Second
	proxy, err := faults.NewProxy(gatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	provider := newClient(t, sdk.WithAddrs(proxy.Addr()), sdk.WithSessionTTL(ttl), sdk.WithNamespace("partition"))
	reg, err := provider.Register(ctxT(t), "pay", instance(9090))
	if err != nil {
		t.Fatal(err)
	}
	observer := newClient(t, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("partition"))
	sub, err := observer.Subscribe(ctxT(t), "pay")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	id := reg.Instance().ID

	proxy.Cut()
	cut := time.Now()
	waitFor(t, ttl+2*time.Second, "instance disappears during the partition", func() bool { return !has(sub.Current(), id) })
	t.Logf("gone %v after the partition began (TTL %v)", time.Since(cut).Round(time.Millisecond), ttl)
	time.Sleep(ttl) // stay partitioned past the expiry
	proxy.Heal()
	healed := time.Now()
	waitFor(t, 4*ttl+5*time.Second, "instance comes back after healing", func() bool { return has(sub.Current(), id) })
	t.Logf("back %v after the partition healed", time.Since(healed).Round(time.Millisecond))
}

// A subscriber never misses a change made between its list and its watch,
// whatever concurrent writers do: its final view equals the store's, and
// no instance's version ever goes backwards in its snapshots.
func TestSubscriberNeverMisses(t *testing.T) {
	writer := newClient(t, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("ltw"))
	ctx := ctxT(t)
	const writers, rounds = 4, 25
	for w := range writers {
		if _, err := writer.Register(ctx, "busy", instance(100+w), sdk.Persistent()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= rounds; n++ {
				i := instance(100 + w)
				i.Metadata = map[string]string{"n": fmt.Sprintf("%03d", n)}
				if _, err := writer.Register(ctx, "busy", i, sdk.Persistent()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	reader := newClient(t, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("ltw"))
	time.Sleep(5 * time.Millisecond)
	sub, err := reader.Subscribe(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	seen := map[string]string{}
	go func() {
		for snap := range sub.Updates() {
			for _, i := range snap.Instances {
				if i.Metadata["n"] < seen[i.ID] {
					t.Errorf("%s went back from %s to %s", i.ID, seen[i.ID], i.Metadata["n"])
				}
				seen[i.ID] = i.Metadata["n"]
			}
		}
	}()
	wg.Wait()
	final, rev, err := reader.Instances(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "subscriber reaches the final revision", func() bool { return sub.Current().Revision >= rev })
	view := sub.Current().Instances
	if len(view) != len(final) {
		t.Fatalf("subscriber has %d instances, store %d", len(view), len(final))
	}
	for n := range final {
		if view[n].ID != final[n].ID || view[n].Metadata["n"] != fmt.Sprintf("%03d", rounds) {
			t.Fatalf("subscriber has %s at %s, store %s at %s", view[n].ID, view[n].Metadata["n"], final[n].ID, final[n].Metadata["n"])
		}
	}
}

// The last instance leaving is delivered as an empty set; with ProtectEmpty
// the subscriber keeps the last non-empty set and says so.
func TestEmptySetAndProtection(t *testing.T) {
	c := newClient(t, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("empty"))
	ctx := ctxT(t)
	reg, err := c.Register(ctx, "solo", instance(1))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := c.Subscribe(ctx, "solo")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	protected, err := c.Subscribe(ctx, "solo", sdk.ProtectEmpty())
	if err != nil {
		t.Fatal(err)
	}
	defer protected.Close()
	if err := reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "empty set delivered", func() bool {
		s := plain.Current()
		return len(s.Instances) == 0 && len(s.Removed) == 1 && !s.Protected
	})
	waitFor(t, 5*time.Second, "protected view", func() bool {
		s := protected.Current()
		return s.Protected && len(s.Instances) == 1
	})
}

// The config snapshot serves the last value when no gateway is up at start.
func TestConfigCacheWhenGatewayDown(t *testing.T) {
	cache := t.TempDir()
	g := mustGateway(t, t.TempDir(), "127.0.0.1:0")
	c := newClient(t, sdk.WithAddrs(g.addr), sdk.WithConfigCache(cache))
	ctx := ctxT(t)
	if _, err := c.PublishConfig(ctx, "app.yaml", []byte("port: 8080\n"), sdk.ContentType("yaml")); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetConfig(ctx, "app.yaml"); err != nil || got.Stale() {
		t.Fatalf("fresh read: %+v %v", got, err)
	}
	c.Close()
	g.stop()

	// A new process starts while the gateway is down.
	later := newClient(t, sdk.WithAddrs(g.addr), sdk.WithConfigCache(cache), sdk.WithRPCTimeout(time.Second))
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	got, err := later.GetConfig(gctx, "app.yaml")
	if err != nil {
		t.Fatalf("gateway down: %v", err)
	}
	if !got.Stale() || got.Source != sdk.FromCache || string(got.Content) != "port: 8080\n" || got.ContentType != "yaml" {
		t.Fatalf("cached value: %+v", got)
	}
	if _, err := later.GetConfig(gctx, "never-seen"); !errors.Is(err, model.ErrUnavailable) {
		t.Fatalf("uncached item with gateway down: %v, want ErrUnavailable", err)
	}
}

func TestConfigPublishCASAndWatch(t *testing.T) {
	c := newClient(t, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("cfg"))
	ctx := ctxT(t)
	changes := make(chan sdk.ConfigChange, 10)
	if err := c.WatchConfig(ctx, "feature.properties", func(ch sdk.ConfigChange) { changes <- ch }); err != nil {
		t.Fatal(err)
	}
	if first := <-changes; !first.Deleted {
		t.Fatalf("first change of an absent item: %+v", first)
	}
	v1, err := c.PublishConfig(ctx, "feature.properties", []byte("on=true"), sdk.IfRevision(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishConfig(ctx, "feature.properties", []byte("on=false"), sdk.IfRevision(0)); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("create-only on an existing item: %v", err)
	}
	select {
	case ch := <-changes:
		if ch.Deleted || string(ch.Content) != "on=true" || ch.Revision != v1.Revision {
			t.Fatalf("change: %+v", ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change delivered")
	}
	if err := c.DeleteConfig(ctx, "feature.properties", sdk.IfRevision(v1.Revision)); err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-changes:
		if !ch.Deleted {
			t.Fatalf("delete: %+v", ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delete delivered")
	}
}

// grpc.NewClient("junction:///ns/group/service") reaches a real gRPC server
// registered through the SDK, and follows it.
func TestResolver(t *testing.T) {
	lis, err := (&netListen{}).listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()
	host, port := splitAddr(t, lis.Addr().String())

	c := newClient(t, sdk.WithAddrs(gatewayAddr))
	ctx := ctxT(t)
	if _, err := c.Register(ctx, "greeter", model.Instance{IP: host, Port: port}, sdk.InNamespace("rpc")); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("junction:///rpc/DEFAULT_GROUP/greeter", grpc.WithResolvers(c.Resolver()),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("call through the junction resolver: %v %v", resp, err)
	}
}

func TestSelectOneHealthyWeighted(t *testing.T) {
	c := newClient(t, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("select"))
	ctx := ctxT(t)
	for port, w := range map[int]float64{1: 1, 2: 3, 3: 5} {
		i := instance(port)
		i.Weight = w
		var opts []sdk.CallOption
		if port == 3 {
			opts = append(opts, sdk.Disabled()) // in maintenance: never picked
		}
		if _, err := c.Register(ctx, "w", i, opts...); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.Subscribe(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	counts := map[int]int{}
	for range 4000 {
		i, err := sub.SelectOneHealthy()
		if err != nil {
			t.Fatal(err)
		}
		counts[i.Port]++
	}
	if counts[3] != 0 || counts[2] < 2700 || counts[2] > 3300 {
		t.Fatalf("picks %v: want ~1000/3000/0 for weights 1/3/disabled", counts)
	}
	if _, err := c.SelectOneHealthy(ctx, "nobody"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("no instance: %v", err)
	}
}

// The SDK must not pull server code into applications.
func TestSDKDoesNotImportServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"junction/gateway", "junction/backends", "hashicorp/raft", "etcd/server", "go-zookeeper"} {
			if strings.Contains(dep, banned) {
				t.Errorf("sdk depends on %s", dep)
			}
		}
	}
}

// With several gateway addresses the client uses one that answers.
func TestFailoverAcrossAddrs(t *testing.T) {
	dead := (&netListenClosed{}).addr(t)
	c := newClient(t, sdk.WithAddrs(dead, gatewayAddr), sdk.WithNamespace("failover"))
	if _, err := c.Register(ctxT(t), "svc", instance(1)); err != nil {
		t.Fatalf("register with the first address dead: %v", err)
	}
	if got, _, err := c.Instances(ctxT(t), "svc"); err != nil || len(got) != 1 {
		t.Fatalf("instances: %v %v", got, err)
	}
}

// Under access control, an ephemeral registration works with a token that
// may write the service and sessions: the client's session handle keeps
// it alive, and Close ends it; a reader sees it, and cannot register.
func TestEphemeralRegistrationUnderAccessControl(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := sdk.New(ctx, sdk.WithAddrs(authGatewayAddr), sdk.WithToken(writerToken), sdk.WithNamespace("prod"), sdk.WithSessionTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Register(ctx, "checkout", model.Instance{IP: "10.0.0.9", Port: 80}); err != nil {
		t.Fatalf("register: %v", err)
	}
	time.Sleep(2 * time.Second) // past the TTL: the keepalives hold it
	insts, _, err := w.Instances(ctx, "checkout")
	if err != nil || len(insts) != 1 || !insts[0].Ephemeral {
		t.Fatalf("instances after the TTL: %v %v", insts, err)
	}
	r, err := sdk.New(ctx, sdk.WithAddrs(authGatewayAddr), sdk.WithToken(readerToken), sdk.WithNamespace("prod"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Register(ctx, "checkout", model.Instance{IP: "10.0.0.10", Port: 80}, sdk.Persistent()); !errors.Is(err, model.ErrPermissionDenied) {
		t.Errorf("a reader registers: %v, want PERMISSION_DENIED", err)
	}
	if _, _, err := r.Instances(ctx, "checkout"); !errors.Is(err, model.ErrPermissionDenied) {
		t.Errorf("a reader of configs lists instances: %v, want PERMISSION_DENIED", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, err := sdk.New(ctx, sdk.WithAddrs(authGatewayAddr), sdk.WithToken(writerToken), sdk.WithNamespace("prod"))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if insts, _, err := w2.Instances(ctx, "checkout"); err != nil || len(insts) != 0 {
		t.Errorf("after Close: %v %v, want no instance", insts, err)
	}
}

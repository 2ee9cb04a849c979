package consul_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

func plainClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// passing lists the IP:port of the passing instances Consul's own health
// API returns for a service name.
func passing(t *testing.T, c *api.Client, name string) []string {
	t.Helper()
	entries, _, err := c.Health().Service(name, "", true, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, net.JoinHostPort(e.Service.Address, fmtPort(e.Service.Port)))
	}
	slices.Sort(out)
	return out
}

func fmtPort(p int) string { return (&net.TCPAddr{Port: p}).String()[1:] }

// A service registered through Junction is a first-class Consul service:
// the health API and DNS return it while it is healthy and enabled, and
// drop it when Junction marks it unhealthy or disabled.
func TestInteropJunctionToConsul(t *testing.T) {
	c := servertest.ConsulAgent(t)
	d := open(t, c.HTTPAddr, "")
	plain := plainClient(t, c.HTTPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "orders"}
	inst := model.Instance{IP: "10.0.0.7", Port: 8080, Weight: 3, Healthy: true, Enabled: true,
		Metadata: map[string]string{"version": "v2"}}
	if err := inst.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Register(ctx, svc, inst); err != nil {
		t.Fatal(err)
	}
	if got := passing(t, plain, "orders"); !slices.Equal(got, []string{"10.0.0.7:8080"}) {
		t.Fatalf("/v1/health/service/orders?passing = %v, want the Junction instance", got)
	}
	entries, _, err := plain.Health().Service("orders", "", true, nil)
	if err != nil || len(entries) != 1 {
		t.Fatal(entries, err)
	}
	if s := entries[0].Service; s.Meta["version"] != "v2" || s.Weights.Passing != 3 {
		t.Fatalf("Consul sees meta %v weights %+v, want version=v2 and weight 3", s.Meta, s.Weights)
	}

	// DNS: an SRV lookup on the agent's DNS server.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dd net.Dialer
		return dd.DialContext(ctx, network, c.DNSAddr)
	}}
	_, srvs, err := r.LookupSRV(ctx, "", "", "orders.service.consul")
	if err != nil {
		t.Fatalf("SRV orders.service.consul: %v", err)
	}
	if len(srvs) != 1 || srvs[0].Port != 8080 {
		t.Fatalf("SRV orders.service.consul = %+v, want one record on port 8080", srvs)
	}

	// Unhealthy, then disabled: Consul's passing filter drops it each time.
	inst.Healthy = false
	if _, err := d.Register(ctx, svc, inst); err != nil {
		t.Fatal(err)
	}
	if got := passing(t, plain, "orders"); len(got) != 0 {
		t.Fatalf("an unhealthy instance is passing in Consul: %v", got)
	}
	inst.Healthy, inst.Enabled = true, false
	if _, err := d.Register(ctx, svc, inst); err != nil {
		t.Fatal(err)
	}
	if got := passing(t, plain, "orders"); len(got) != 0 {
		t.Fatalf("a disabled instance is passing in Consul: %v", got)
	}
	list, _, err := d.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil || len(list) != 1 || list[0].Enabled || !list[0].Healthy {
		t.Fatalf("Junction reads back %+v (%v), want one healthy, disabled instance", list, err)
	}
	inst.Enabled = true
	if _, err := d.Register(ctx, svc, inst); err != nil {
		t.Fatal(err)
	}
	if got := passing(t, plain, "orders"); len(got) != 1 {
		t.Fatalf("re-enabled instance not passing: %v", got)
	}
}

// A service registered directly in Consul, with its own check, is visible
// through Junction in public/DEFAULT_GROUP, and its health follows the check.
func TestInteropConsulToJunction(t *testing.T) {
	c := servertest.ConsulAgent(t)
	d := open(t, c.HTTPAddr, "")
	plain := plainClient(t, c.HTTPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "billing"}
	w, err := d.Watch(ctx, backends.WatchRequest{Service: &svc})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if e, err := w.Next(ctx); err != nil || e.Type != model.EventReset || len(e.Instances) != 0 {
		t.Fatalf("first event %+v %v, want an empty RESET", e, err)
	}
	err = plain.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "billing-1", Name: "billing", Address: "10.1.1.1",
		Port: 9000, Meta: map[string]string{"zone": "a"}, Check: &api.AgentServiceCheck{CheckID: "billing-ttl", TTL: "1h", Status: api.HealthPassing}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := w.Next(ctx)
	if err != nil || e.Type != model.EventPut || e.Instance.ID != "billing-1" || e.Instance.Metadata["zone"] != "a" || !e.Instance.Healthy || e.Instance.Ephemeral {
		t.Fatalf("after a native registration: %+v %v, want PUT of billing-1, healthy, persistent, zone=a", e.Instance, err)
	}
	if err := plain.Agent().UpdateTTL("billing-ttl", "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	e, err = w.Next(ctx)
	if err != nil || e.Type != model.EventPut || e.Instance.Healthy {
		t.Fatalf("after the native check failed: %+v %v, want PUT with healthy=false", e.Instance, err)
	}
	sums, _, err := d.Services(ctx, model.DefaultNamespace, "", model.ServiceKey{}, 0, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sums, func(s model.ServiceSummary) bool { return s.Key == svc })
	if i < 0 || sums[i].Instances != 1 || sums[i].Healthy != 0 {
		t.Fatalf("services list %+v, want billing with 1 instance, 0 healthy", sums)
	}
	rev, err := d.Deregister(ctx, svc, "billing-1")
	if err != nil {
		t.Fatal(err)
	}
	e, err = w.Next(ctx)
	if err != nil || e.Type != model.EventDelete || e.Revision != rev {
		t.Fatalf("after deregistering through Junction: %+v %v, want DELETE at %d", e, err, rev)
	}
}

// Consul is the backstop when the gateway dies: its session checks are no
// longer passed, Consul marks the instance critical after check-ttl and
// deregisters it after deregister-after (at least 1m, reaped every 30s).
func TestGatewayDeathBackstop(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Consul's reaper (over a minute)")
	}
	c := servertest.ConsulAgent(t)
	d := open(t, c.HTTPAddr, "check-ttl=2s")
	plain := plainClient(t, c.HTTPAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sess, _, err := d.CreateSession(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	svc := model.ServiceKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, Service: "orphan"}
	inst := model.Instance{IP: "10.2.2.2", Port: 1, Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, Session: sess.ID}
	_ = inst.Normalize()
	if _, err := d.Register(ctx, svc, inst); err != nil {
		t.Fatal(err)
	}
	d.Close() // the gateway dies: no deregistration, no more check passes
	died := time.Now()
	var critical time.Duration
	for ctx.Err() == nil {
		entries, _, err := plain.Health().Service("orphan", "", false, &api.QueryOptions{RequireConsistent: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			t.Logf("measured: gateway died → instance critical after %v, deregistered by Consul after %v",
				critical.Round(100*time.Millisecond), time.Since(died).Round(100*time.Millisecond))
			return
		}
		if critical == 0 && entries[0].Checks.AggregatedStatus() == api.HealthCritical {
			critical = time.Since(died)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the dead gateway's instance was still registered %v later", time.Since(died))
}

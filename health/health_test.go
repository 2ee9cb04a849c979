package health_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
)

func TestValidateNamesTheField(t *testing.T) {
	ok := health.Check{Kind: health.TCP, Target: "127.0.0.1:80"}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid check: %v", err)
	}
	for field, c := range map[string]health.Check{
		"check.kind":         {Kind: "icmp", Target: "x:1"},
		"check.target":       {Kind: health.HTTP, Target: "ftp://x/"},
		"check.expectStatus": {Kind: health.HTTP, Target: "http://x/", ExpectStatus: 42},
		"check.interval":     {Kind: health.TCP, Target: "x:1", Interval: time.Millisecond},
		"check.timeout":      {Kind: health.TCP, Target: "x:1", Interval: time.Second, Timeout: 2 * time.Second},
		"check.rise":         {Kind: health.GRPC, Target: "x:1", Rise: -1},
		"check.fall":         {Kind: health.GRPC, Target: "x:1", Fall: 101},
	} {
		err := c.WithDefaults().Validate()
		if !errors.Is(err, model.ErrInvalidArgument) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

// steps runs n probes and returns the transitions they caused.
func steps(m *health.Monitor, n int) []health.Transition {
	var out []health.Transition
	for range n {
		if tr, ok := m.Step(context.Background()); ok {
			out = append(out, tr)
		}
	}
	return out
}

func TestHTTPThresholds(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
		w.Write([]byte("db ok"))
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	metrics := health.NewMetrics(reg)
	m := health.NewMonitor(health.Check{Kind: health.HTTP, Target: srv.URL + "/health", Rise: 2, Fall: 3}, true, metrics)

	if trs := steps(m, 3); len(trs) != 0 || !m.Healthy() {
		t.Fatalf("passing target: transitions %v", trs)
	}
	status.Store(503)
	if trs := steps(m, 2); len(trs) != 0 || !m.Healthy() {
		t.Fatalf("two failures of fall=3 must not turn it unhealthy: %v", trs)
	}
	trs := steps(m, 4) // the third failure turns it; the fourth changes nothing
	if len(trs) != 1 || trs[0].Healthy || m.Healthy() || !strings.Contains(trs[0].Last.Output, "503") {
		t.Fatalf("after 3+1 failures: %+v", trs)
	}
	status.Store(200)
	if trs := steps(m, 1); len(trs) != 0 {
		t.Fatalf("one pass of rise=2 must not turn it healthy: %v", trs)
	}
	trs = steps(m, 3)
	if len(trs) != 1 || !trs[0].Healthy || trs[0].Last.Output != "200 OK: db ok" {
		t.Fatalf("after recovery: %+v", trs)
	}
	if h := m.History(); len(h) != 13 || h[0].Pass != true || h[5].Pass != false {
		t.Errorf("history: %d results", len(h))
	}
	want := map[string]float64{"junction_health_checks_total": 13, "junction_health_check_failures_total": 6,
		"junction_health_transitions_total": 2}
	families, _ := reg.Gather()
	for _, f := range families {
		sum := 0.0
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		if w, ok := want[f.GetName()]; ok && sum != w {
			t.Errorf("%s = %v, want %v", f.GetName(), sum, w)
		}
	}

	// An expected status other than 2xx.
	status.Store(204)
	m = health.NewMonitor(health.Check{Kind: health.HTTP, Target: srv.URL, ExpectStatus: 200, Rise: 1, Fall: 1}, true, nil)
	if trs := steps(m, 1); len(trs) != 1 || trs[0].Healthy {
		t.Fatalf("204 with expectStatus 200: %+v", trs)
	}
}

func TestFlappingIsDamped(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	m := health.NewMonitor(health.Check{Kind: health.HTTP, Target: srv.URL, Rise: 2, Fall: 2}, true, nil)
	if trs := steps(m, 30); len(trs) != 0 {
		t.Fatalf("a target alternating pass and fail turned %d times", len(trs))
	}
}

func TestHTTPTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	p := health.NewProber(health.Check{Kind: health.HTTP, Target: srv.URL, Interval: time.Second, Timeout: 200 * time.Millisecond})
	defer p.Close()
	r := p.Probe(context.Background())
	if r.Pass || r.Latency > time.Second || !strings.Contains(r.Output, "200ms") {
		t.Fatalf("slow target: %+v", r)
	}
}

func TestTCP(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	m := health.NewMonitor(health.Check{Kind: health.TCP, Target: lis.Addr().String(), Rise: 1, Fall: 2}, false, nil)
	if trs := steps(m, 1); len(trs) != 1 || !trs[0].Healthy {
		t.Fatalf("listening port: %+v", trs)
	}
	lis.Close()
	if trs := steps(m, 2); len(trs) != 1 || trs[0].Healthy || !strings.Contains(trs[0].Last.Output, "refused") {
		t.Fatalf("closed port: %+v", trs)
	}
}

func TestGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := grpchealth.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	defer srv.Stop()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	m := health.NewMonitor(health.Check{Kind: health.GRPC, Target: lis.Addr().String(), GRPCService: "orders", Rise: 1, Fall: 1}, false, nil)
	if trs := steps(m, 1); len(trs) != 1 || !trs[0].Healthy {
		t.Fatalf("serving: %+v", trs)
	}
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	if trs := steps(m, 1); len(trs) != 1 || trs[0].Healthy || !strings.Contains(trs[0].Last.Output, "NOT_SERVING") {
		t.Fatalf("not serving: %+v", trs)
	}
	unknown := health.NewProber(health.Check{Kind: health.GRPC, Target: lis.Addr().String(), GRPCService: "nosuch"})
	defer unknown.Close()
	if r := unknown.Probe(context.Background()); r.Pass || !strings.Contains(r.Output, "NotFound") {
		t.Fatalf("unknown service: %+v", r)
	}
}

// Run delivers each transition once, on the check's interval.
func TestRunDeliversEachTransitionOnce(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) }))
	defer srv.Close()
	m := health.NewMonitor(health.Check{Kind: health.HTTP, Target: srv.URL, Interval: 100 * time.Millisecond, Rise: 2, Fall: 2}, true, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan health.Transition, 8)
	go m.Run(ctx, changes)
	status.Store(500)
	start := time.Now()
	select {
	case tr := <-changes:
		if tr.Healthy {
			t.Fatalf("first transition: %+v", tr)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("turned unhealthy after %v with fall=2 every 100ms", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no transition")
	}
	select {
	case tr := <-changes:
		t.Fatalf("a second transition while still failing: %+v", tr)
	case <-time.After(500 * time.Millisecond):
	}
	status.Store(200)
	select {
	case tr := <-changes:
		if !tr.Healthy {
			t.Fatalf("recovery: %+v", tr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no recovery")
	}
}

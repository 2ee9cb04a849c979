package nacos_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	nacosdriver "github.com/junctionhq/junction/backends/nacos"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/ports"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/gateway/nacos"
)

// driverHarness runs the shared contract through Junction's own nacos://
// driver, pointed at Junction's own Nacos front end: the Nacos protocol
// served by Junction.
type driverHarness struct {
	d    backends.Backend
	addr string
}

func (h *driverHarness) Backend(t *testing.T) backends.Backend { return h.d }
func (h *driverHarness) Peer(t *testing.T) backends.Backend    { return openDriver(t, h.addr) }
func (h *driverHarness) HistoryWindow() int                    { return 50 }

func openDriver(t testing.TB, addr string) backends.Backend {
	t.Helper()
	u, _ := url.Parse("nacos://" + addr + "?cas=native&watch-history=50&timeout=3s&system-namespace=nacos-junction-system")
	cfg, err := nacosdriver.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := nacosdriver.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// The self-test: Junction's nacos:// driver, an unmodified Nacos client
// of Junction's front end over the built-in store, passes the contract
// every backend passes.
func TestDriverOverFrontEnd(t *testing.T) {
	l, err := gateway.ServeLoopback(stores["raft"](t), gateway.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	// The driver dials gRPC at the HTTP port + 1000, as Nacos clients do.
	httpLis, grpcLis, err := ports.ListenPair(1000)
	if err != nil {
		t.Fatal(err)
	}
	cfg := nacos.DefaultConfig()
	cfg.Authorizer, cfg.Thresholds, cfg.Grays, cfg.Logins, cfg.Watches = l.Server(), l.Server(), l.Server(), l.Server(), l.Server()
	front := nacos.New(l.Server().Backend(), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- front.Serve(ctx, grpcLis, httpLis) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := httpLis.Addr().String()
	conformance.Run(t, &driverHarness{d: openDriver(t, addr), addr: addr})
}

package consul_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/consul"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servers"
)

type harness struct{ d *consul.Driver }

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }
func (h *harness) HistoryWindow() int                    { return 0 } // blocking queries replay nothing

func open(t testing.TB, addr, query string) *consul.Driver {
	t.Helper()
	u, _ := url.Parse("consul://" + addr + "?" + query)
	cfg, err := consul.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := consul.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	c := servers.ConsulAgent(t)
	conformance.Run(t, &harness{d: open(t, c.HTTPAddr, "")})
}

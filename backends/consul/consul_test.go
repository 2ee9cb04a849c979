package consul_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/consul"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

type harness struct {
	d    *consul.Driver
	addr string
}

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }

// Peer opens a second driver on the same agent.
func (h *harness) Peer(t *testing.T) backends.Backend { return open(t, h.addr, "") }
func (h *harness) HistoryWindow() int                 { return 0 } // blocking queries replay nothing

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
	c := servertest.ConsulAgent(t)
	conformance.Run(t, &harness{d: open(t, c.HTTPAddr, ""), addr: c.HTTPAddr})
}

// Concurrent registrations of one instance all return once the catalog
// holds theirs or a later one: none waits for a write another replaced
// before the agent synced it.
func TestConcurrentRegistrationsOfOneInstance(t *testing.T) {
	c := servertest.ConsulAgent(t)
	d := open(t, c.HTTPAddr, "")
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "same"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Go(func() {
			for i := range 8 {
				inst := model.Instance{ID: "one", IP: "10.0.0.1", Port: 80, Weight: 1, Healthy: true, Enabled: true,
					Metadata: map[string]string{"writer": fmt.Sprint(w, "-", i)}}
				if _, err := d.Register(ctx, svc, inst); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, _, err := d.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil || len(list) != 1 || list[0].Metadata["writer"] == "" {
		t.Fatalf("after the registrations: %+v %v", list, err)
	}
}

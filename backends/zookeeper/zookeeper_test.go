package zookeeper_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servers"
)

type harness struct{ d *zookeeper.Driver }

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }
func (h *harness) HistoryWindow() int                    { return 0 } // ZooKeeper keeps no history

func open(t *testing.T, addr string) *zookeeper.Driver {
	t.Helper()
	u, _ := url.Parse("zk://" + addr)
	cfg, err := zookeeper.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := zookeeper.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	z := servers.ZooKeeper(t)
	conformance.Run(t, &harness{d: open(t, z.Addr)})
}

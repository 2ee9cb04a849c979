package etcd_test

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servertest"
)

type harness struct {
	d   *etcd.Driver
	srv *embed.Etcd
}

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }

// Peer opens a second driver, with a client of its own, on the same server.
func (h *harness) Peer(t *testing.T) backends.Backend {
	return openAt(t, h.srv.Clients[0].Addr().String())
}
func (h *harness) HistoryWindow() int { return 0 }

// Compact discards etcd's history up to rev (conformance.Compactor).
func (h *harness) Compact(ctx context.Context, t *testing.T, rev int64) {
	if _, err := h.d.Client().Compact(ctx, rev, clientv3Physical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
}

func open(t *testing.T) (*etcd.Driver, *embed.Etcd) {
	t.Helper()
	ep, srv := servertest.Etcd(t)
	return openAt(t, ep), srv
}

// openAt opens a driver, with a client of its own, on the server at ep.
func openAt(t *testing.T, ep string) *etcd.Driver {
	t.Helper()
	return openURL(t, "etcd://"+ep+"?prefix=/jtest")
}

func TestConformance(t *testing.T) {
	d, srv := open(t)
	conformance.Run(t, &harness{d: d, srv: srv})
}

func clientv3Physical() clientv3.CompactOption { return clientv3.WithCompactPhysical() }

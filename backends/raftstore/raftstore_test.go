package raftstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance"
)

type harness struct{ b *raftstore.Store }

func (h *harness) Backend(t *testing.T) backends.Backend { return h.b }
func (h *harness) HistoryWindow() int                    { return 64 }

func open(t *testing.T, dir string) *raftstore.Store {
	t.Helper()
	cfg := raftstore.DefaultConfig(dir)
	cfg.History = 64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := raftstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	s := open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	conformance.Run(t, &harness{b: s})
}

package raftstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/model"
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

// A closed store can be opened again in the same process, with its data:
// Close releases every file lock (raft-wal alone leaves its metadata
// database open, and a second open then waits on its lock forever).
func TestReopenInProcess(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: "kept"}
	if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: []byte("v1")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *raftstore.Store, 1)
	go func() { opened <- open(t, dir) }()
	select {
	case s = <-opened:
	case <-time.After(20 * time.Second):
		t.Fatal("reopening the store in the same process hangs")
	}
	defer s.Close()
	got, _, err := s.GetConfig(ctx, key, backends.ReadOptions{})
	if err != nil || string(got.Content) != "v1" {
		t.Fatalf("after reopening: %q %v", got.Content, err)
	}
}

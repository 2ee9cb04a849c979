package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/junctionhq/junction/model"
)

// A configuration entry that reads but does not decode passes checkLog;
// raft.NewRaft panics on it, and newRaft returns that as an error.
func TestNewRaftPanicIsAnError(t *testing.T) {
	logs := raft.NewInmemStore()
	if err := logs.StoreLog(&raft.Log{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("not a configuration")}); err != nil {
		t.Fatal(err)
	}
	if err := logs.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	snaps := raft.NewInmemSnapshotStore()
	if err := checkLog(&startLogs{LogStore: logs}, snaps); err != nil {
		t.Fatalf("checkLog: %v", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = "n1"
	_, trans := raft.NewInmemTransport("n1")
	r, err := newRaft(rc, newFSM(16), logs, logs, snaps, trans)
	if err == nil {
		r.Shutdown()
		t.Fatal("raft started on a configuration entry that does not decode")
	}
	if !strings.Contains(err.Error(), "raft refused the data at start") {
		t.Fatalf("err = %v", err)
	}
}

// Errors from the operating system are not damage: the advice to wipe the
// data would be wrong. Everything else is.
func TestDataErr(t *testing.T) {
	cfg := Config{Dir: "/var/lib/junction", RaftAddr: "10.0.0.1:7490"}
	for _, tc := range []struct {
		err     error
		damaged bool
	}{
		{&fs.PathError{Op: "open", Path: "/var/lib/junction/wal/wal-meta.db", Err: syscall.ENOSPC}, false},
		{&fs.PathError{Op: "open", Path: "/var/lib/junction/wal", Err: os.ErrPermission}, false},
		{syscall.EMFILE, false},
		{errors.New("sealed segment has no index block"), true},
		{errors.New("unsealed segment is not at tail"), true},
	} {
		err := dataErr(cfg, "10.0.0.1:7480", tc.err)
		if got := errors.Is(err, ErrLogDamaged); got != tc.damaged {
			t.Errorf("%v: damaged = %v, want %v", tc.err, got, tc.damaged)
		}
		if !strings.Contains(err.Error(), cfg.Dir) || !errors.Is(err, tc.err) {
			t.Errorf("%v: the error %q must name the directory and wrap the cause", tc.err, err)
		}
	}
}

// BenchmarkStartup measures what reading the whole log before starting
// costs a restart: Open of a store whose log holds 16,384 entries of 1 KiB
// (16 MiB, the default snapshot-threshold's worth and more), against
// checkLog alone over the same log.
func BenchmarkStartup(b *testing.B) {
	dir := b.TempDir()
	cfg := DefaultConfig(dir)
	cfg.SnapshotThreshold, cfg.TrailingLogs = 1<<20, 1<<20 // keep every entry in the log
	cfg.SnapshotBytes = 1 << 40
	ctx := context.Background()
	s, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	content := bytes.Repeat([]byte("x"), 1024)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 1024 {
				key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: fmt.Sprintf("k-%d-%d", w, i)}
				if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: content}, model.Precondition{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			s.Close()
			b.StartTimer()
		}
	})
	b.Run("checkLog", func(b *testing.B) {
		s, err := Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if err := checkLog(&startLogs{LogStore: s.wal}, snaps); err != nil {
				b.Fatal(err)
			}
		}
	})
}

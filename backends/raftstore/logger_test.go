package raftstore

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/conformance/servertest"
)

// Raft's own logs reach the store's slog logger, at its level: a node that
// starts logs raft's state changes there at info, and nothing below it.
func TestRaftLogsGoThroughSlog(t *testing.T) {
	w := &servertest.Buffer{}
	cfg := DefaultConfig(t.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out := w.String()
	if !strings.Contains(out, "component=raft") || !strings.Contains(out, "level=INFO") {
		t.Fatalf("raft's logs did not reach slog at info:\n%s", out)
	}
	if strings.Contains(out, "level=DEBUG") {
		t.Fatalf("debug logs at info level:\n%s", out)
	}
}

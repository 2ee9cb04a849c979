package raftstore

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// Raft's own logs reach the store's slog logger, at its level: a node that
// starts logs raft's state changes there at info, and nothing below it.
func TestRaftLogsGoThroughSlog(t *testing.T) {
	w := &syncWriter{b: &bytes.Buffer{}}
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

// syncWriter is a buffer raft's goroutines may write to concurrently.
type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

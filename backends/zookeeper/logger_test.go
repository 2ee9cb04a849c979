package zookeeper_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance/servertest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// The driver logs to the logger its Config names: losing the server is
// logged there, marked with the backend.
func TestLoggerFromConfig(t *testing.T) {
	z := servertest.ZooKeeper(t)
	u, _ := url.Parse("zk://" + z.Addr)
	cfg, err := zookeeper.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	w := &lockedBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := zookeeper.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	z.Kill()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.String(), "backend=zk"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing logged to the configured logger after the server went away:\n%s", w)
		}
	}
}

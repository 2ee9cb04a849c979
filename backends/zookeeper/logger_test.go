package zookeeper_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends/zookeeper"
	"github.com/junctionhq/junction/conformance/servertest"
)

// The driver logs to the logger its Config names: losing the server is
// logged there, marked with the backend.
func TestLoggerFromConfig(t *testing.T) {
	z := servertest.ZooKeeper(t)
	u, _ := url.Parse("zk://" + z.Addr)
	cfg, err := zookeeper.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	w := &servertest.Buffer{}
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

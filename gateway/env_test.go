package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/gateway"
)

// env is a real server: the built-in store and the gateway on a loopback port.
type env struct {
	base  string
	store *raftstore.Store
	reg   pb.RegistryServiceClient
	cfg   pb.ConfigServiceClient
	conn  *grpc.ClientConn
}

type option func(*raftstore.Config, *gateway.Config)

func start(t testing.TB, opts ...option) *env {
	t.Helper()
	scfg := raftstore.DefaultConfig(t.TempDir())
	gcfg := gateway.DefaultConfig()
	for _, o := range opts {
		o(&scfg, &gcfg)
	}
	store, err := raftstore.Open(context.Background(), scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := startOn(t, store, gcfg)
	e.store = store
	return e
}

// startOn serves any backend through a gateway on a loopback port.
func startOn(t testing.TB, b backends.Backend, gcfg gateway.Config) *env {
	t.Helper()
	l, err := gateway.ServeLoopback(b, gcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &env{base: "http://" + l.Addr, conn: l.Conn, reg: pb.NewRegistryServiceClient(l.Conn), cfg: pb.NewConfigServiceClient(l.Conn)}
}

// twoGateways serves two gateways over one built-in store, each with the
// defaults as tune (given the gateway's index) changes them.
func twoGateways(t *testing.T, tune func(i int, c *gateway.Config)) (*env, *env) {
	t.Helper()
	store, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var out [2]*env
	for i := range out {
		cfg := gateway.DefaultConfig()
		if tune != nil {
			tune(i, &cfg)
		}
		out[i] = startOn(t, store, cfg)
	}
	return out[0], out[1]
}

type response struct {
	status int
	header http.Header
	body   string
}

// errBody decodes the JSON error body.
func (r response) err() (code, field string) {
	var b struct{ Code, Field string }
	_ = json.Unmarshal([]byte(r.body), &b)
	return b.Code, b.Field
}

func (e *env) do(t testing.TB, method, path, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// restWatch opens a streamed REST watch and returns its events.
func (e *env) restWatch(t testing.TB, path string) <-chan map[string]any {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch %s: %s", path, resp.Status)
	}
	out := make(chan map[string]any, 100)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			var line struct{ Result map[string]any }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Result != nil {
				out <- line.Result
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return out
}

func recv(t testing.TB, ch <-chan map[string]any, d time.Duration) map[string]any {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch stream ended")
		}
		return e
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return nil
}

package sdk_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/ports"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/sdk"
)

// gatewayAddr is a gateway shared by the examples and the simple tests.
var gatewayAddr string

// authGatewayAddr is a gateway with access control on, readerToken a
// token whose policy reads the configs of namespace prod, writerToken one
// that may register services there (with sessions).
var authGatewayAddr, readerToken, writerToken string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "junction-sdk")
	if err != nil {
		panic(err)
	}
	g, err := startGateway(dir, "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	gatewayAddr = g.addr
	ag, err := startGateway(dir+"/auth", "127.0.0.1:0", func(c *gateway.Config) { c.Auth = true })
	if err != nil {
		panic(err)
	}
	authGatewayAddr = ag.addr
	if readerToken, writerToken, err = setUpTokens(ag.addr); err != nil {
		panic(err)
	}
	code := m.Run()
	ag.stop()
	g.stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a real gateway over the built-in store.
type server struct {
	addr  string
	store *raftstore.Store
	srv   *gateway.Server
	done  chan error
	stop  func()
}

// setUpTokens bootstraps the ACL at addr and returns a token that may
// read the configs of namespace prod (one of which it writes), and one
// that may register services there.
func setUpTokens(addr string) (reader, writer string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	a := pb.NewAclServiceClient(conn)
	boot, err := a.Bootstrap(ctx, &pb.BootstrapRequest{})
	if err != nil {
		return "", "", err
	}
	m := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+boot.Secret)
	for _, p := range []string{
		"name: prod-reader\nrules:\n  - namespace: prod\n    config: \"*\"\n    access: read\n",
		"name: prod-services\nrules:\n  - namespace: prod\n    service: \"*\"\n    access: write\n  - session: \"*\"\n    access: write\n",
	} {
		if _, err := a.CreatePolicy(m, &pb.CreatePolicyRequest{Rules: p}); err != nil {
			return "", "", err
		}
	}
	if _, err := pb.NewConfigServiceClient(conn).PutConfig(m, &pb.PutConfigRequest{Namespace: "prod", DataId: "app.yaml", Content: "replicas: 3\n"}); err != nil {
		return "", "", err
	}
	var secrets [2]string
	for i, pol := range []string{"prod-reader", "prod-services"} {
		ts, err := a.CreateToken(m, &pb.CreateTokenRequest{Description: pol, Policies: []string{pol}})
		if err != nil {
			return "", "", err
		}
		secrets[i] = ts.Secret
	}
	return secrets[0], secrets[1], nil
}

func startGateway(dir, addr string, tune ...func(*gateway.Config)) (*server, error) {
	cfg := raftstore.DefaultConfig(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	store, err := raftstore.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	gcfg := gateway.DefaultConfig()
	for _, f := range tune {
		f(&gcfg)
	}
	srv, err := gateway.New(store, gcfg)
	if err != nil {
		store.Close()
		return nil, err
	}
	var lis net.Listener
	for range 50 { // the port may linger briefly after a restart
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	s := &server{addr: lis.Addr().String(), store: store, srv: srv, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(sctx, lis) }()
	s.stop = func() {
		scancel()
		<-s.done
		srv.Close()
		store.Close()
	}
	return s, nil
}

func mustGateway(t *testing.T, dir, addr string) *server {
	t.Helper()
	s, err := startGateway(dir, addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newClient(t *testing.T, opts ...sdk.Option) *sdk.Client {
	t.Helper()
	c, err := sdk.New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or d passes, returning how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, d)
	return 0
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type netListen struct{}

func (netListen) listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(port, &p)
	return host, p
}

type netListenClosed struct{}

// addr returns a loopback address nobody listens on.
func (netListenClosed) addr(t *testing.T) string {
	a, err := ports.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	anypb "github.com/golang/protobuf/ptypes/any"
	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	nacosclients "github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/junctionhq/junction/conformance/servertest"
)

// junction server --nacos-listen: an unmodified nacos-sdk-go client
// registers through it, and the CLI lists the instance.
func TestServerNacosListen(t *testing.T) {
	addr, httpAddr, grpcAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	startServerArgs(t, addr, "--data-dir", t.TempDir(), "--nacos-listen", httpAddr, "--nacos-grpc-listen", grpcAddr)
	_, port, _ := strings.Cut(grpcAddr, ":")
	p, _ := strconv.ParseUint(port, 10, 64)
	_, hport, _ := strings.Cut(httpAddr, ":")
	hp, _ := strconv.ParseUint(hport, 10, 64)
	dir := t.TempDir()
	cc := constant.NewClientConfig(constant.WithTimeoutMs(5000), constant.WithNotLoadCacheAtStart(true),
		constant.WithLogDir(dir), constant.WithCacheDir(dir), constant.WithLogLevel("warn"))
	nc, err := nacosclients.NewNamingClient(vo.NacosClientParam{ClientConfig: cc,
		ServerConfigs: []constant.ServerConfig{*constant.NewServerConfig("127.0.0.1", hp, constant.WithGrpcPort(p))}})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseClient()
	if ok, err := nc.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.5", Port: 8080, ServiceName: "orders",
		Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("register: %v %v", ok, err)
	}
	out, err := runCLI(t, addr, "service", "instances", "orders")
	if err != nil || !strings.Contains(out, "10.0.0.5") {
		t.Fatalf("the CLI lists: %v\n%s", err, out)
	}
	nc.CloseClient()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ = runCLI(t, addr, "service", "instances", "orders")
		if !strings.Contains(out, "10.0.0.5") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed client's instance is still listed:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The Nacos addresses: PORT+1000 by default, refused when malformed.
func TestNacosAddr(t *testing.T) {
	for _, c := range []struct {
		listen, grpc string
		want, err    string
	}{
		{"", "", "", ""},
		{"127.0.0.1:8848", "", "127.0.0.1:9848", ""},
		{"[::1]:8848", "", "[::1]:9848", ""},
		{"127.0.0.1:8848", "127.0.0.1:7000", "127.0.0.1:7000", ""},
		{"127.0.0.1:65000", "", "", "at most 64535"},
		{"8848", "", "", "not HOST:PORT"},
		{"", "nope", "", "not HOST:PORT"},
	} {
		got, err := nacosAddr(c.listen, c.grpc)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("nacosAddr(%q, %q) = %q, %v; want %q, %q", c.listen, c.grpc, got, err, c.want, c.err)
		}
	}
	// Reachable from other hosts with access control off: refused.
	out, err := exec.Command(binary(t), "server", "--data-dir", t.TempDir(), "--listen", freeAddr(t),
		"--nacos-listen", "0.0.0.0:8848").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "access control is off") {
		t.Errorf("--nacos-listen 0.0.0.0 without --auth: %v\n%s", err, out)
	}
}

// With TLS on, the Nacos ports speak TLS as the API does: a plaintext
// client is refused, one that trusts the server's authority is served.
func TestServerNacosOverTLS(t *testing.T) {
	ca := servertest.NewCA(t)
	cert, key := ca.Issue(t, "server", 10)
	addr, grpcAddr := freeAddr(t), freeAddr(t)
	srv := launchServer(t, addr, "--data-dir", t.TempDir(), "--tls-cert", cert, "--tls-key", key, "--nacos-grpc-listen", grpcAddr)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.Path("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	check := func(creds credentials.TransportCredentials) error {
		cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = nacosgrpc.NewRequestClient(cc).Request(ctx, &nacosgrpc.Payload{Metadata: &nacosgrpc.Metadata{Type: "ServerCheckRequest"}, Body: &anypb.Any{Value: []byte(`{}`)}})
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for check(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("a TLS client was never served:\n%s", srv.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := check(insecure.NewCredentials()); err == nil {
		t.Error("a plaintext client was served on the Nacos port of a TLS server")
	}
}

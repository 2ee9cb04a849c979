package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/localcluster"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

// serverSerial dials addr over TLS and returns the serial of the
// certificate the server presents.
func serverSerial(t *testing.T, addr string, c *tls.Config) (int64, error) {
	conn, err := tls.Dial("tcp", addr, c)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// The API over mutual TLS: gRPC and REST (HTTP/1.1 and HTTP/2) with a
// client certificate work; plaintext and a client without a certificate
// are refused; a new certificate is served after a reload, and after the
// files change; files that do not load leave the old one serving.
func TestTLSServesAndReloads(t *testing.T) {
	ca := servertest.NewCA(t)
	certFile, keyFile := ca.Issue(t, "server", 100)
	clientCert, clientKey := ca.Issue(t, "client", 200)
	tl, err := gateway.LoadTLS(gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Path("ca.pem")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := gateway.DefaultConfig()
	cfg.TLS = tl
	l, err := gateway.ServeLoopback(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pair, _ := tls.LoadX509KeyPair(clientCert, clientKey)
	good := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}}

	status := func(creds credentials.TransportCredentials) error {
		cc, err := grpc.NewClient(l.Addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer cc.Close()
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		defer ccancel()
		_, err = pb.NewStatusServiceClient(cc).GetStatus(cctx, &pb.GetStatusRequest{})
		return err
	}
	if err := status(credentials.NewTLS(good)); err != nil {
		t.Fatalf("gRPC over mutual TLS: %v", err)
	}
	if err := status(insecure.NewCredentials()); err == nil {
		t.Error("plaintext gRPC to a TLS server succeeded")
	}
	if err := status(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()})); err == nil {
		t.Error("gRPC without a client certificate succeeded")
	}
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: good.Clone(), ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + l.Addr + "/v1/status")
		if err != nil {
			t.Fatalf("REST over TLS (HTTP/2 %v): %v", h2, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || (h2 && resp.ProtoMajor != 2) {
			t.Errorf("REST over TLS (HTTP/2 %v): %s %s", h2, resp.Proto, resp.Status)
		}
		tr.CloseIdleConnections()
	}
	if resp, err := http.Get("http://" + l.Addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP to a TLS server was served")
		}
	}

	// A reload (what SIGHUP does) serves the new certificate.
	ca.Issue(t, "server", 101)
	if err := tl.Reload(); err != nil {
		t.Fatal(err)
	}
	if serial, err := serverSerial(t, l.Addr, good); err != nil || serial != 101 {
		t.Fatalf("after a reload the server presents serial %d (%v), want 101", serial, err)
	}
	// Files that do not load: the old certificate stays.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tl.Reload(); err == nil {
		t.Error("a reload of a broken certificate succeeded")
	}
	if serial, err := serverSerial(t, l.Addr, good); err != nil || serial != 101 {
		t.Fatalf("after a failed reload the server presents serial %d (%v), want 101", serial, err)
	}
	// The files change: the server notices by itself.
	ca.Issue(t, "server", 102)
	deadline := time.Now().Add(10 * time.Second)
	for {
		serial, err := serverSerial(t, l.Addr, good)
		if err == nil && serial == 102 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the files changed the server presents serial %d (%v), want 102", serial, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A cluster over mutual TLS: the Raft transport refuses a peer without a
// certificate of the cluster's authority, and a follower forwards a write
// to the leader over TLS.
func TestClusterOverMutualTLS(t *testing.T) {
	ca := servertest.NewCA(t)
	certFile, keyFile := ca.Issue(t, "node", 300)
	tl, err := gateway.LoadTLS(gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Path("ca.pem")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err := tl.PeerServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	var raftAddrs []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localcluster.Start(ctx, t.TempDir(), 3, func(cfg *raftstore.Config) {
		cfg.PeerTLS = &raftstore.PeerTLS{Server: server, Client: tl.ClientConfig()}
		raftAddrs = append(raftAddrs, cfg.RaftAddr)
	}, localcluster.WithGateway(func(cfg *gateway.Config) { cfg.TLS = tl }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(f.ID, grpc.WithTransportCredentials(credentials.NewTLS(tl.ClientConfig())))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	put, err := pb.NewConfigServiceClient(cc).PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "a: 1\n"})
	if err != nil {
		t.Fatalf("a write at a follower, forwarded over TLS: %v", err)
	}
	l, _ := c.Leader(ctx)
	key := model.ConfigKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, DataID: "app.yaml"}
	if got, _, err := l.Store.GetConfig(ctx, key, backends.ReadOptions{}); err != nil || got.Revision != put.Config.Revision {
		t.Fatalf("the leader has %v %v, want revision %d", got, err, put.Config.Revision)
	}
	for _, addr := range raftAddrs {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool()})
		if err == nil {
			// TLS 1.3 completes the client's side first; the server's
			// refusal arrives on the first read.
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		var ne net.Error
		switch {
		case err == nil:
			t.Errorf("the Raft transport at %s talks to a peer without a certificate", addr)
		case errors.As(err, &ne) && ne.Timeout():
			t.Errorf("the Raft transport at %s neither served nor refused a peer without a certificate", addr)
		}
	}
}

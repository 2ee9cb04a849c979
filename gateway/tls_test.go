package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
	cfg := gateway.DefaultConfig()
	cfg.TLS = tl
	l := serveRaft(t, cfg)
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

// A cluster over mutual TLS, the nodes' authority apart from the
// clients': the Raft transport refuses a peer without a node certificate
// (a client certificate included), and a follower forwards a write to the
// leader's API over TLS with its node certificate; one authority for both
// is refused.
func TestClusterOverMutualTLS(t *testing.T) {
	nodes, clients := servertest.NewCA(t), servertest.NewCA(t)
	certFile, keyFile := nodes.Issue(t, "node", 300)
	files := gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clients.Path("ca.pem"), CAFile: nodes.Path("ca.pem")}
	tl, err := gateway.LoadTLS(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err := tl.PeerServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	same := files
	same.CAFile = same.ClientCAFile
	if one, err := gateway.LoadTLS(same, nil); err != nil {
		t.Fatal(err)
	} else if _, err := one.PeerServerConfig(); err == nil {
		t.Error("a cluster whose nodes' authority is the clients' was accepted")
	}
	var raftAddrs []string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := localcluster.Start(ctx, t.TempDir(), 3, func(cfg *raftstore.Config) {
		cfg.PeerTLS = &raftstore.PeerTLS{Server: server, Client: tl.ClientConfig}
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
	ccert, ckey := clients.Issue(t, "client", 301)
	pair, _ := tls.LoadX509KeyPair(ccert, ckey)
	asClient := &tls.Config{RootCAs: nodes.Pool(), Certificates: []tls.Certificate{pair}}
	cc, err := grpc.NewClient(f.ID, grpc.WithTransportCredentials(credentials.NewTLS(asClient)))
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
		for what, cfg := range map[string]*tls.Config{
			"no certificate":       {RootCAs: nodes.Pool()},
			"a client certificate": asClient,
		} {
			conn, err := tls.Dial("tcp", addr, cfg)
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
				t.Errorf("the Raft transport at %s talks to a peer with %s", addr, what)
			case errors.As(err, &ne) && ne.Timeout():
				t.Errorf("the Raft transport at %s neither served nor refused a peer with %s", addr, what)
			}
		}
	}
}

// REST over HTTP/2 shares the port with gRPC, over TLS and in clear
// (prior knowledge): the gRPC matcher's SETTINGS, which the client
// acknowledges, never reach the HTTP server (which closed such
// connections with PROTOCOL_ERROR now and then).
func TestRESTOverHTTP2(t *testing.T) {
	l := serveRaft(t, gateway.DefaultConfig())
	for i := range 30 {
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: protocols}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + l.Addr + "/v1/status")
		if err != nil {
			t.Fatalf("request %d over h2c: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
			t.Fatalf("request %d over h2c: %s %s", i, resp.Proto, resp.Status)
		}
		tr.CloseIdleConnections()
	}
	// gRPC on the same port still works.
	if _, err := pb.NewStatusServiceClient(l.Conn).GetStatus(context.Background(), &pb.GetStatusRequest{}); err != nil {
		t.Fatal(err)
	}
}

// A token bound to a client certificate identity authenticates a mutual
// TLS connection that sends no token, over gRPC and REST alike; another
// certificate, a forged identity header, or the token's revoke end that.
func TestCertificateIdentityAuthenticates(t *testing.T) {
	ca := servertest.NewCA(t)
	certFile, keyFile := ca.Issue(t, "server", 1)
	// CAFile: the loopback client that bootstraps verifies the server.
	tl, err := gateway.LoadTLS(gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.Path("ca.pem"), CAFile: ca.Path("ca.pem")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, mgmt := authOn(t, func(c *gateway.Config) { c.TLS = tl })
	pair := func(name string) tls.Certificate {
		c, k := ca.Issue(t, name, 2)
		p, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	runner, other := pair("ci-runner"), pair("someone-else")
	dial := func(cert tls.Certificate, token string) *grpc.ClientConn {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}))}
		if token != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(bearerOverTLS(token)))
		}
		cc, err := grpc.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	ctx := context.Background()
	m := dial(other, mgmt)
	if _, err := pb.NewConfigServiceClient(m).PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "a: 1\n"}); err != nil {
		t.Fatal(err)
	}
	a := pb.NewAclServiceClient(m)
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: r\nrules:\n  - config: \"*\"\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}, CertIdentity: "CN=ci-runner"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}, CertIdentity: "CN=ci-runner"}); status.Code(err) != codes.Aborted {
		t.Errorf("a second token bound to one identity: %v, want CONFLICT", err)
	}
	if _, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}, CertIdentity: "ci-runner"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an identity without its kind: %v, want INVALID_ARGUMENT", err)
	}

	cfg := pb.NewConfigServiceClient(dial(runner, ""))
	if _, err := cfg.GetConfig(ctx, &pb.GetConfigRequest{DataId: "app.yaml"}); err != nil {
		t.Errorf("gRPC read by the bound certificate: %v", err)
	}
	if _, err := cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "a: 2\n"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC write by the bound certificate: %v, want PERMISSION_DENIED", err)
	}
	rest := func(cert tls.Certificate, header ...string) int {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+addr+"/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := rest(runner); code != 200 {
		t.Errorf("REST read by the bound certificate: %d", code)
	}
	if code := rest(other); code != http.StatusUnauthorized {
		t.Errorf("REST read by an unbound certificate: %d, want 401", code)
	}
	if code := rest(other, "Junction-Cert-Identity", "CN=ci-runner", "Grpc-Metadata-Junction-Cert-Identity", "CN=ci-runner"); code != http.StatusUnauthorized {
		t.Errorf("REST with a forged identity header: %d, want 401", code)
	}
	forged := metadata.AppendToOutgoingContext(ctx, "junction-cert-identity", "CN=ci-runner")
	if _, err := pb.NewConfigServiceClient(dial(other, "")).GetConfig(forged, &pb.GetConfigRequest{DataId: "app.yaml"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC with a forged identity: %v, want UNAUTHENTICATED", err)
	}
	if _, err := a.RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: tok.Token.AccessorId}); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.GetConfig(ctx, &pb.GetConfigRequest{DataId: "app.yaml"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the bound certificate after the revoke: %v, want UNAUTHENTICATED", err)
	}
}

// bearerOverTLS sends a token over a TLS connection.
type bearerOverTLS string

func (b bearerOverTLS) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerOverTLS) RequireTransportSecurity() bool { return true }

// The filter that keeps cmux's SETTINGS ACKs from the HTTP server drops as
// many as cmux sent: a client that sends two SETTINGS frames before its
// request gets its answer, not a PROTOCOL_ERROR; and a frame header that
// claims more than a first frame may carry ends the connection.
func TestHTTP2ClientWithTwoSettingsFrames(t *testing.T) {
	l := serveRaft(t, gateway.DefaultConfig())
	conn, err := net.Dial("tcp", l.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fr := http2.NewFramer(conn, conn)
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	_ = fr.WriteSettings()
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", l.Addr}, {":path", "/healthz"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	acked := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				acked++
				_ = fr.WriteSettingsAck() // cmux's two, and the server's
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v after %d SETTINGS acknowledged", f.ErrCode, acked)
		case *http2.HeadersFrame:
			var status string
			_, _ = hpack.NewDecoder(4096, func(h hpack.HeaderField) {
				if h.Name == ":status" {
					status = h.Value
				}
			}).Write(f.HeaderBlockFragment())
			if status != "200" {
				t.Fatalf("status %q", status)
			}
			if acked != 3 {
				t.Errorf("%d SETTINGS frames came, want cmux's two and the server's", acked)
			}
			return
		}
	}
}

func TestHTTP2OversizedFirstFrameEndsTheConnection(t *testing.T) {
	l := serveRaft(t, gateway.DefaultConfig())
	conn, err := net.Dial("tcp", l.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	fr := http2.NewFramer(conn, conn)
	_, _ = conn.Write([]byte(http2.ClientPreface))
	_ = fr.WriteSettings()
	// A HEADERS frame so that cmux hands the connection to HTTP, then a
	// DATA frame header claiming just under 1 MiB (which the HTTP server
	// itself would take, and wait for) before the server's SETTINGS are
	// acknowledged: the filter ends the connection rather than wait.
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", l.Addr}, {":path", "/v1/sessions"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	_, _ = conn.Write([]byte{0x0f, 0xff, 0xff, 0x0, 0x0, 0, 0, 0, 1})
	for {
		if _, err := fr.ReadFrame(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the connection still waits for the frame's payload")
			}
			return // closed
		}
	}
}

// serveRaft serves a new built-in store through a gateway with cfg on a
// loopback port, for the test.
func serveRaft(t *testing.T, cfg gateway.Config) *gateway.Loopback {
	t.Helper()
	st, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := gateway.ServeLoopback(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

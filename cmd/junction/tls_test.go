package main

import (
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junctionhq/junction/conformance/servertest"
)

// `junction server` over mutual TLS, and the CLI with --cacert, --cert
// and --key: gRPC commands and the REST snapshot work, a client without
// its certificate is refused, and SIGHUP serves a new certificate.
func TestServerOverMutualTLS(t *testing.T) {
	ca := servertest.NewCA(t)
	cert, key := ca.Issue(t, "server", 10)
	ccert, ckey := ca.Issue(t, "client", 20)
	addr := freeAddr(t)
	srv := launchServer(t, addr, "--data-dir", t.TempDir(), "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca.Path("ca.pem"))
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binary(t), append([]string{"--addr", addr}, args...)...).CombinedOutput()
		return string(out), err
	}
	tlsArgs := []string{"--cacert", ca.Path("ca.pem"), "--cert", ccert, "--key", ckey}
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := run(append(tlsArgs, "status")...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status over mutual TLS: %v %s\n%s", err, out, srv.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := run(append(tlsArgs, "snapshot", "save", filepath.Join(t.TempDir(), "snap.json"))...); err != nil {
		t.Errorf("snapshot save over mutual TLS: %v %s", err, out)
	}
	if out, err := run("--cacert", ca.Path("ca.pem"), "status"); err == nil {
		t.Errorf("status without a client certificate succeeded: %s", out)
	}
	if out, err := run("status"); err == nil {
		t.Errorf("plaintext status succeeded: %s", out)
	}

	pair, _ := tls.LoadX509KeyPair(ccert, ckey)
	serial := func() int64 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 10 {
		t.Fatalf("serial %d, want 10", s)
	}
	ca.Issue(t, "server", 11)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for serial() != 11 {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the server still presents serial %d:\n%s", serial(), srv.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The new certificate is served before the reload's log line is
	// written: wait for it.
	for deadline = time.Now().Add(5 * time.Second); !strings.Contains(srv.log.String(), "TLS certificates reloaded"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the reload is not logged:\n%s", srv.log)
			break
		}
	}
	_ = os.Remove(cert)
}

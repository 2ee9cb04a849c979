package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/sdk"
)

// notifySocket listens where a service manager would for sd_notify, and
// returns its path and the states received.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	states := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			states <- string(buf[:n])
		}
	}()
	return path, states
}

func awaitState(t *testing.T, states <-chan string, want string) {
	t.Helper()
	select {
	case got := <-states:
		if !strings.Contains(got, want) {
			t.Fatalf("sd_notify sent %q, want %s", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("sd_notify never sent %s", want)
	}
}

// SIGTERM: the server tells the service manager it is stopping, ends an
// open watch cleanly (UNAVAILABLE, saying why), and exits 0; the SDK's
// watch carries on through the second gateway over the same store. The
// server tells the service manager it is ready only once it serves.
func TestSIGTERMWithOpenWatch(t *testing.T) {
	ep, _ := servertest.Etcd(t)
	backend := "etcd://" + ep + "?prefix=/lifecycle"
	sock, states := notifySocket(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	cmd := exec.Command(binary(t), "server", "--listen", addrA, "--backend", backend)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	a := launchCmd(t, addrA, cmd)
	awaitState(t, states, "READY=1")
	a.waitReady(t) // READY=1 came once it serves: no wait here
	startServerArgs(t, addrB, "--backend", backend)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A raw watch on A, to see how it ends.
	conn, err := grpc.NewClient(addrA, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw, err := pb.NewRegistryServiceClient(conn).WatchInstances(ctx, &pb.WatchInstancesRequest{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Recv(); err != nil { // the RESET
		t.Fatal(err)
	}
	// The SDK, A first and B second.
	c, err := sdk.New(ctx, sdk.WithAddrs(addrA, addrB))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitState(t, states, "STOPPING=1")
	for {
		_, err := raw.Recv()
		if err == nil {
			continue
		}
		if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "shutting down") {
			t.Fatalf("the open watch ended with %v, want UNAVAILABLE saying the server is shutting down", err)
		}
		break
	}
	if err := a.wait(t, 20*time.Second); err != nil {
		t.Fatalf("after SIGTERM the server exited with %v:\n%s", err, a.log)
	}
	if !strings.Contains(a.log.String(), "shutting down") {
		t.Errorf("the server did not log its shutdown:\n%s", a.log)
	}

	// Registered through B after A is gone: the SDK's watch hears of it.
	if out, err := runCLI(t, addrB, "service", "register", "orders", "--ip", "10.0.0.7", "--port", "80"); err != nil {
		t.Fatal(err, out)
	}
	for {
		select {
		case snap := <-sub.Updates():
			for _, i := range snap.Instances {
				if i.IP == "10.0.0.7" {
					return
				}
			}
		case <-ctx.Done():
			t.Fatal("the SDK's watch never heard, through the second gateway, of an instance registered after the first stopped")
		}
	}
}

// A second SIGTERM exits at once, while the first waits for a call under
// way (a REST request whose body is still coming) up to --shutdown-timeout.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	addr := freeAddr(t)
	s := startServerArgs(t, addr, "--data-dir", t.TempDir(), "--shutdown-timeout", "1m", "--body-timeout", "1m")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PUT /v1/namespaces/public/groups/DEFAULT_GROUP/configs/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the request is under way
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
		t.Fatalf("the server exited (%v) with a call under way, within its shutdown timeout:\n%s", s.err, s.log)
	case <-time.After(time.Second):
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = s.wait(t, 5*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("after a second SIGTERM the server exited with %v, want killed by SIGTERM", err)
	}
}

// SIGHUP reloads the log level from the settings file: debug logs every
// request.
func TestSIGHUPReloadsTheLogLevel(t *testing.T) {
	addr := freeAddr(t)
	file := writeFile(t, "log-level: info\n")
	s := startServerArgs(t, addr, "--data-dir", t.TempDir(), "--config", file)
	status := func() {
		t.Helper()
		if out, err := runCLI(t, addr, "status"); err != nil {
			t.Fatal(err, out)
		}
	}
	status()
	if strings.Contains(s.log.String(), "method=GetStatus") {
		t.Fatalf("a request logged at info level:\n%s", s.log)
	}
	if err := os.WriteFile(file, []byte("log-level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.log.String(), "SIGHUP: reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	status()
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(s.log.String(), "method=GetStatus") {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP to debug, no request logged:\n%s", s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A bad level in the file: the level stays, and the server runs on.
	if err := os.WriteFile(file, []byte("log-level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(s.log.String(), "SIGHUP: the log level stays") {
		if time.Now().After(deadline) {
			t.Fatalf("a bad level reloaded without a word:\n%s", s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	status()
}

// The profiles exist only with --pprof, and with access control on only
// for the management token.
func TestPprof(t *testing.T) {
	off := freeAddr(t)
	startServerArgs(t, off, "--data-dir", t.TempDir())
	if code := httpStatus(t, "http://"+off+"/debug/pprof/", ""); code == 200 {
		t.Errorf("without --pprof, /debug/pprof/ answers %d", code)
	}
	on := freeAddr(t)
	startServerArgs(t, on, "--data-dir", t.TempDir(), "--pprof", "--auth")
	cli := func(token, stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(binary(t), append([]string{"--addr", on}, args...)...)
		cmd.Env = append(os.Environ(), "JUNCTION_TOKEN="+token)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("junction %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	secretOf := func(out string) string {
		t.Helper()
		var ts struct{ Secret string }
		if err := json.Unmarshal([]byte(out), &ts); err != nil || !strings.HasPrefix(ts.Secret, "jct_") {
			t.Fatalf("no secret in %q: %v", out, err)
		}
		return ts.Secret
	}
	mgmt := secretOf(cli("", "", "acl", "bootstrap", "-o", "json"))
	cli(mgmt, "name: readers\nrules:\n  - config: \"*\"\n    access: read\n", "acl", "policy", "create", "-f", "-")
	reader := secretOf(cli(mgmt, "", "acl", "token", "create", "--policy", "readers", "-o", "json"))
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {"jct_not-a-token", 401}, {reader, 403}, {mgmt, 200}} {
		if code := httpStatus(t, "http://"+on+"/debug/pprof/heap?debug=1", c.token); code != c.want {
			t.Errorf("/debug/pprof/heap with token %.8q: %d, want %d", c.token, code, c.want)
		}
	}
	// The command line, which may hold secrets, is not served at all.
	if code := httpStatus(t, "http://"+on+"/debug/pprof/cmdline", mgmt); code == 200 {
		t.Errorf("/debug/pprof/cmdline answers %d", code)
	}
	// Open profiles on an address other hosts reach are refused.
	out, err := exec.Command(binary(t), "server", "--listen", "0.0.0.0:0", "--insecure-no-auth", "--pprof", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--auth") {
		t.Errorf("--pprof open on 0.0.0.0: %v\n%s", err, out)
	}
}

// httpStatus is the status of a GET of url, with token as its bearer.
func httpStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

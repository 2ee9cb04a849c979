package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// instancesOf lists a service's instances over REST.
func instancesOf(t *testing.T, addr, service string) []map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/namespaces/public/groups/DEFAULT_GROUP/services/" + service + "/instances")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Instances []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Instances
}

// `service register --ttl` holds an ephemeral registration through the
// SDK: it outlives its TTL many times over, carries its metadata and the
// health check the gateway runs, and is removed when the command is
// interrupted.
func TestRegisterWithTTLHoldsUntilInterrupted(t *testing.T) {
	addr := freeAddr(t)
	startServerArgs(t, addr, "--data-dir", t.TempDir(), "--health-scan", "50ms")
	var failing atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()

	cmd := exec.Command(binary(t), "--addr", addr, "service", "register", "orders", "--ip", "10.0.0.5", "--port", "8080",
		"--ttl", "3s", "--meta", "zone=a", "--check", "http", "--check-target", target.URL, "--check-interval", "100ms",
		"--check-fall", "2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "registered 10.0.0.5:8080 of orders (ephemeral") {
		t.Fatalf("first line %q, want the registration; stderr:\n%s", lines.Text(), stderr.String())
	}

	// Past its TTL the instance is still there, as registered.
	time.Sleep(4 * time.Second)
	insts := instancesOf(t, addr, "orders")
	if len(insts) != 1 || insts[0]["ephemeral"] != true || insts[0]["metadata"].(map[string]any)["zone"] != "a" || insts[0]["healthy"] != true {
		t.Fatalf("after its TTL: %v; want the ephemeral, healthy instance with zone=a", insts)
	}
	// Its check is the gateway's: the target failing turns it unhealthy.
	failing.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		insts = instancesOf(t, addr, "orders")
		if len(insts) == 1 && insts[0]["healthy"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the check target has failed for 10s and the instance is %v", insts)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Interrupted: it deregisters and exits cleanly.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(string(rest), "deregistered") {
		t.Errorf("output after SIGINT %q, want deregistered", rest)
	}
	if insts := instancesOf(t, addr, "orders"); len(insts) != 0 {
		t.Fatalf("after the command ended: %v, want no instance", insts)
	}
}

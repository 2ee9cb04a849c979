package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/junctionhq/junction/conformance/ports"
	"github.com/junctionhq/junction/conformance/servertest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the junction binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "junction-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "junction")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := ports.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// server runs `junction server` as a real process until the test ends.
type server struct {
	cmd    *exec.Cmd
	addr   string
	log    *servertest.Buffer
	exited chan struct{} // closed once the process has exited
	err    error         // how it exited, once exited is closed
}

func startServer(t *testing.T, dataDir, addr string) *server {
	t.Helper()
	return startServerArgs(t, addr, "--data-dir", dataDir)
}

func startServerArgs(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	s := launchServer(t, addr, args...)
	s.waitReady(t)
	return s
}

// launchServer starts `junction server` without waiting for it.
func launchServer(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	return launchCmd(t, addr, exec.Command(binary(t), append([]string{"server", "--listen", addr}, args...)...))
}

// launchCmd starts cmd, a server that listens on addr, without waiting
// for it, and kills it when the test ends.
func launchCmd(t *testing.T, addr string, cmd *exec.Cmd) *server {
	t.Helper()
	s := &server{cmd: cmd, addr: addr, log: &servertest.Buffer{}, exited: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.kill() })
	return s
}

// waitReady waits until the server answers /readyz, and fails the test
// with the server's output if it exits first or is not ready within 20s.
func (s *server) waitReady(t *testing.T) {
	t.Helper()
	addr := s.addr
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.exited:
			t.Fatalf("server %s exited (%v) before it was ready:\n%s", addr, s.err, s.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("server %s not ready within 20s:\n%s", addr, s.log)
}

// wait waits up to limit for the server to exit by itself and returns how
// it exited.
func (s *server) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case <-s.exited:
		return s.err
	case <-time.After(limit):
		t.Fatalf("server %s still running after %v:\n%s", s.addr, limit, s.log)
		return nil
	}
}

// kill ends the server with SIGKILL (if it still runs) and waits for it.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// configURL is the REST address of a config item of public/DEFAULT_GROUP.
func configURL(addr, dataID string) string {
	return "http://" + addr + "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/" + dataID
}

func put(addr, dataID, content string) (int, error) {
	req, _ := http.NewRequest(http.MethodPut, configURL(addr, dataID), strings.NewReader(content))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Every write acknowledged before a kill -9 is there after a restart.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	srv := startServer(t, dir, addr)

	var (
		mu    sync.Mutex
		acked = map[string]string{}
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("k-%d-%d", w, n), fmt.Sprintf("value %d of writer %d", n, w)
				code, err := put(addr, key, val)
				if err != nil {
					return // the server is gone
				}
				if code == 200 {
					mu.Lock()
					acked[key] = val
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	srv.kill() // SIGKILL while writes are in flight
	close(stop)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d writes acknowledged before the kill", len(acked))
	}

	startServer(t, dir, addr)
	for key, want := range acked {
		resp, err := http.Get("http://" + addr + "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/" + key)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		_, _ = got.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || got.String() != want {
			t.Fatalf("acknowledged write %s lost after kill -9: %d %q", key, resp.StatusCode, got.String())
		}
	}
	t.Logf("%d acknowledged writes all present after kill -9 and restart", len(acked))
}

// The CLI drives a real server over every backend: register, list, config
// put/get, errors.
func TestCLI(t *testing.T) {
	for name, backend := range map[string]func(*testing.T) string{
		"raft": func(t *testing.T) string { return "raft://" + t.TempDir() },
		"etcd": func(t *testing.T) string { ep, _ := servertest.Etcd(t); return "etcd://" + ep + "?prefix=/cli" },
		"zk":   func(t *testing.T) string { return "zk://" + servertest.ZooKeeper(t).Addr },
	} {
		t.Run(name, func(t *testing.T) { testCLI(t, backend(t)) })
	}
}

func testCLI(t *testing.T, backend string) {
	addr := freeAddr(t)
	startServerArgs(t, addr, "--backend", backend)
	run := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(binary(t), append([]string{"--addr", addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(stdin string, args ...string) string {
		t.Helper()
		out, err := run(stdin, args...)
		if err != nil {
			t.Fatalf("junction %v: %v\n%s", args, err, out)
		}
		return out
	}
	must("", "service", "register", "orders", "--ip", "10.0.0.5", "--port", "8080", "--meta", "zone=a")
	if out := must("", "service", "instances", "orders"); !strings.Contains(out, "10.0.0.5:8080") || !strings.Contains(out, "zone=a") {
		t.Fatalf("instances: %s", out)
	}
	if out := must("", "service", "list", "-o", "json"); !strings.Contains(out, `"service": "orders"`) {
		t.Fatalf("list -o json: %s", out)
	}
	must("a: 1\n", "config", "put", "app.yaml", "--type", "yaml")
	if out := must("", "config", "get", "app.yaml"); out != "a: 1\n" {
		t.Fatalf("config get: %q", out)
	}
	if out, err := run("b: 2\n", "config", "put", "app.yaml", "--if-revision", "1"); err == nil || !strings.Contains(out, "is at revision") {
		t.Fatalf("stale CAS through the CLI: %v %s", err, out)
	}
	// History: who changed it, what changed, and a rollback.
	must("a: 2\n", "config", "put", "app.yaml", "-m", "raise a")
	if out := must("", "config", "history", "app.yaml"); !strings.Contains(out, "raise a") || !strings.Contains(out, "127.0.0.1") ||
		strings.Index(out, "update") > strings.Index(out, "create") {
		t.Fatalf("config history, newest first: %s", out)
	}
	if out := must("", "config", "get", "app.yaml", "--version", "1"); out != "a: 1\n" {
		t.Fatalf("config get --version 1: %q", out)
	}
	if out := must("", "config", "diff", "app.yaml"); !strings.Contains(out, "-a: 1\n+a: 2\n") {
		t.Fatalf("config diff: %s", out)
	}
	if out, err := run("", "config", "rollback", "app.yaml", "--to", "7"); err == nil || !strings.Contains(out, "no version 7") {
		t.Fatalf("rollback to a version that does not exist: %v %s", err, out)
	}
	must("", "config", "rollback", "app.yaml", "--to", "1")
	if out := must("", "config", "get", "app.yaml"); out != "a: 1\n" {
		t.Fatalf("after the rollback: %q", out)
	}
	// Export, and import into another namespace: a dry run first.
	archive := filepath.Join(t.TempDir(), "public.zip")
	must("", "config", "export", "-f", archive)
	if out := must("", "config", "import", archive, "-n", "copy", "--dry-run"); !strings.Contains(out, "would import") ||
		!strings.Contains(out, "create") || !strings.Contains(out, "app.yaml") {
		t.Fatalf("import --dry-run: %s", out)
	}
	if out, err := run("", "config", "get", "app.yaml", "-n", "copy"); err == nil {
		t.Fatalf("a dry run wrote app.yaml: %s", out)
	}
	must("", "config", "import", archive, "-n", "copy")
	if out := must("", "config", "get", "app.yaml", "-n", "copy"); out != "a: 1\n" {
		t.Fatalf("the imported item: %q", out)
	}
	if out, err := run("", "config", "import", archive, "--policy", "merge"); err == nil || !strings.Contains(out, "abort, skip or overwrite") {
		t.Fatalf("a bad policy: %v %s", err, out)
	}
	// A gray release: the canaries get it, the others the release.
	must("a: 9\n", "config", "put", "app.yaml", "--gray", "--labels", "env=canary")
	if out := must("", "config", "get", "app.yaml", "--client-labels", "env=canary,zone=a"); out != "a: 9\n" {
		t.Fatalf("a canary's get: %q", out)
	}
	if out := must("", "config", "get", "app.yaml"); out != "a: 1\n" {
		t.Fatalf("another client's get during the gray: %q", out)
	}
	if out := must("", "config", "gray", "show", "app.yaml"); !strings.Contains(out, "labels env=canary") || !strings.HasSuffix(out, "a: 9\n") {
		t.Fatalf("config gray show: %s", out)
	}
	must("", "config", "gray", "abort", "app.yaml")
	if out, err := run("", "config", "gray", "abort", "app.yaml"); err == nil || !strings.Contains(out, "no gray release") {
		t.Fatalf("abort with no gray: %v %s", err, out)
	}
	if out, err := run("x: 1\n", "config", "put", "never.yaml", "--gray", "--percent", "10"); err == nil || !strings.Contains(out, "does not exist") {
		t.Fatalf("a gray of an item that does not exist: %v %s", err, out)
	}
	if out, err := run("x: 1\n", "config", "put", "app.yaml", "--labels", "env=canary"); err == nil || !strings.Contains(out, "add --gray") {
		t.Fatalf("--labels without --gray: %v %s", err, out)
	}
	if out := must("", "config", "listeners", "app.yaml"); !strings.Contains(out, "0 watches through 1 gateways") {
		t.Fatalf("config listeners: %s", out)
	}
	if out := must("", "status"); !strings.Contains(out, "config history") || !strings.Contains(out, "true (atomic true)") {
		t.Fatalf("status: %s", out)
	}
	if out, err := run("", "service", "register", "bad name", "--ip", "1.2.3.4", "--port", "1"); err == nil || !strings.Contains(out, "service:") {
		t.Fatalf("bad name through the CLI: %v %s", err, out)
	}
	must("", "service", "deregister", "orders", "10.0.0.5:8080")
	if out := must("", "service", "instances", "orders"); strings.Contains(out, "10.0.0.5") {
		t.Fatalf("after deregister: %s", out)
	}

	// Health checks, maintenance and the protect threshold. The check
	// targets a port nobody listens on, so it fails.
	closed := freeAddr(t)
	must("", "service", "register", "pay", "--ip", "10.0.0.7", "--port", "80", "--check", "tcp", "--check-target", closed,
		"--check-interval", "100ms", "--check-fall", "1")
	must("", "service", "register", "pay", "--ip", "10.0.0.8", "--port", "80")
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := must("", "service", "health", "pay", "10.0.0.7:80")
		if strings.Contains(out, "healthy          false") || strings.Contains(out, "healthy\tfalse") || strings.Contains(out, "healthy  false") {
			if !strings.Contains(out, "tcp "+closed) || !strings.Contains(out, "refused") {
				t.Fatalf("service health: %s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failing check never turned the instance unhealthy:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	must("", "service", "maintenance", "pay", "10.0.0.8:80", "on")
	if out := must("", "service", "instances", "pay", "--healthy-only"); strings.Contains(out, "10.0.0.") {
		t.Fatalf("healthy-only with one unhealthy and one in maintenance: %s", out)
	}
	must("", "service", "settings", "pay", "--protect-threshold", "0.5")
	if out := must("", "service", "instances", "pay", "--healthy-only"); !strings.Contains(out, "protect threshold reached") ||
		!strings.Contains(out, "10.0.0.7") || !strings.Contains(out, "10.0.0.8") {
		t.Fatalf("healthy-only under the protect threshold: %s", out)
	}
	if out := must("", "service", "health", "pay", "10.0.0.7:80", "--remove-check"); !strings.Contains(out, "check") || !strings.Contains(out, "none") {
		t.Fatalf("after removing the check: %s", out)
	}
}

// `junction conformance` measures and reports.
func TestConformanceCommand(t *testing.T) {
	out, err := exec.Command(binary(t), "conformance", "--backend", "raft", "--scenarios", "cas,burst", "--quick",
		"--via", "both", "--format", "json").Output()
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	var rep struct {
		Results []struct {
			Scenario string
			Outcome  struct{ Verdict string }
		}
	}
	if err := json.Unmarshal(out, &rep); err != nil || len(rep.Results) != 4 { // 2 scenarios × (driver, gateway)
		t.Fatalf("report: %v\n%s", err, out)
	}
	for _, r := range rep.Results {
		if r.Outcome.Verdict != "pass" {
			t.Errorf("%s: %s", r.Scenario, r.Outcome.Verdict)
		}
	}
	if _, err := exec.Command(binary(t), "conformance", "--format", "pdf").Output(); err == nil {
		t.Error("a bad format must fail")
	}
}

func TestBenchCommand(t *testing.T) {
	out, err := exec.Command(binary(t), "bench", "all", "--local", "raft", "--total", "200", "--keys", "20",
		"--subscribers", "20", "--updates", "5", "-o", "json").Output()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var results []struct {
		Workload         string
		Ops, Errors      int64
		OpsPerSec, P99Ms float64
		Subscribers      int
		Deliveries       int64
	}
	if err := json.Unmarshal(out, &results); err != nil || len(results) != 7 {
		t.Fatalf("results: %v\n%s", err, out)
	}
	for _, r := range results {
		switch {
		case r.Errors != 0:
			t.Errorf("%s: %d errors", r.Workload, r.Errors)
		case r.Workload == "watch-fanout" && (r.Ops != 5 || r.Deliveries != 100 || r.Subscribers != 20):
			t.Errorf("watch-fanout: %d updates, %d deliveries to %d subscribers; want 5 and 5×20", r.Ops, r.Deliveries, r.Subscribers)
		case r.Workload != "watch-fanout" && r.Ops != 200:
			t.Errorf("%s: %d operations, want --total 200", r.Workload, r.Ops)
		case r.OpsPerSec <= 0 || r.P99Ms <= 0:
			t.Errorf("%s: %v ops/s, p99 %v ms", r.Workload, r.OpsPerSec, r.P99Ms)
		}
	}

	// Against a running server: the writes are really there.
	addr := freeAddr(t)
	startServerArgs(t, addr, "--backend", "raft://"+t.TempDir())
	out, err = exec.Command(binary(t), "--addr", addr, "bench", "config-put", "watch-fanout", "--total", "50", "--keys", "5",
		"--value-size", "33", "--service", "bt", "--subscribers", "30", "--updates", "4").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "config-put") || !strings.Contains(string(out), "30 subscribers, 120 deliveries") {
		t.Fatalf("bench --addr: %v\n%s", err, out)
	}
	got, err := exec.Command(binary(t), "--addr", addr, "config", "get", "bt-4").Output()
	if want := "abcdefghijklmnopqrstuvwxyzabcdefg"; err != nil || strings.TrimSpace(string(got)) != want {
		t.Fatalf("config bt-4 after the bench: %q %v", got, err)
	}
	if out, err := exec.Command(binary(t), "bench", "nosuch", "--local", "raft").CombinedOutput(); err == nil || !strings.Contains(string(out), "workload") {
		t.Fatalf("an unknown workload must fail naming it: %v %s", err, out)
	}
	if out, err := exec.Command(binary(t), "--addr", addr, "bench", "register", "--via", "client").CombinedOutput(); err == nil || !strings.Contains(string(out), "--local") {
		t.Fatalf("--via client without --local must fail saying so: %v %s", err, out)
	}

	// Side by side with a report: the generated section is rewritten, the
	// rest of the document kept.
	doc := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := os.WriteFile(doc, []byte("# Benchmarks\n\nBy hand.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(binary(t), "bench", "config-get", "instances", "--local", "raft", "--via", "gateway,driver",
		"--total", "100", "--keys", "5", "--report", doc).CombinedOutput()
	if err != nil {
		t.Fatalf("bench --report: %v\n%s", err, out)
	}
	md, _ := os.ReadFile(doc)
	for _, want := range []string{"By hand.", "| raft | config-get |", "| raft | instances |", "2 CPUs", "--report"} {
		if !strings.Contains(string(md), want) && !(want == "2 CPUs" && runtime.NumCPU() != 2) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// Two servers over one store run each health check once; when the one
// running them is killed (SIGKILL: its lease is not released), the other
// takes the checks over within the lease.
func TestHealthCheckFailoverBetweenProcesses(t *testing.T) {
	ep, _ := servertest.Etcd(t)
	addrs := map[string]string{"gw-a": freeAddr(t), "gw-b": freeAddr(t)}
	procs := map[string]*server{}
	for id, addr := range addrs {
		procs[id] = startServerArgs(t, addr, "--backend", "etcd://"+ep+"?prefix=/failover", "--gateway-id", id, "--health-lease", "1s")
	}
	var failing atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()
	run := func(addr string, args ...string) (string, error) {
		out, err := exec.Command(binary(t), append([]string{"--addr", addr}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := run(addrs["gw-a"], "service", "register", "pay", "--ip", "10.0.0.7", "--port", "80", "--check", "http",
		"--check-target", target.URL, "--check-interval", "100ms", "--check-fall", "2"); err != nil {
		t.Fatalf("register: %v\n%s", err, out)
	}
	var runner string
	deadline := time.Now().Add(15 * time.Second)
	for runner == "" {
		out, err := run(addrs["gw-b"], "service", "health", "pay", "10.0.0.7:80", "-o", "json")
		var h struct{ Runner string }
		if err == nil && json.Unmarshal([]byte(out), &h) == nil && procs[h.Runner] != nil {
			runner = h.Runner
		} else if time.Now().After(deadline) {
			t.Fatalf("no runner: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	other := map[string]string{"gw-a": "gw-b", "gw-b": "gw-a"}[runner]
	procs[runner].kill()
	killed := time.Now()
	failing.Store(true)
	for {
		out, err := run(addrs[other], "service", "instances", "pay", "-o", "json")
		if err == nil && strings.Contains(out, `"healthy": false`) {
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("the check did not move to %s within 20s of killing %s: %v\n%s\n%s", other, runner, err, out, procs[other].log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s killed; %s checked the instance unhealthy %v later (lease 1s, fall 2 × 100ms)", runner, other,
		time.Since(killed).Round(time.Millisecond))
}

// junction snapshot save/restore against a running server: the restore
// brings the saved state back and survives a restart; a store with its own
// backup tool says so.
func TestSnapshotCommands(t *testing.T) {
	addr := freeAddr(t)
	dataDir := t.TempDir()
	srv := startServerArgs(t, addr, "--backend", "raft://"+dataDir)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binary(t), append([]string{"--addr", addr}, args...)...).CombinedOutput()
		return string(out), err
	}
	if _, err := put(addr, "app", "v1"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.json")
	if out, err := run("snapshot", "save", file); err != nil || !strings.Contains(out, "saved revision") {
		t.Fatalf("save: %v %s", err, out)
	}
	if _, err := put(addr, "app", "v2"); err != nil {
		t.Fatal(err)
	}
	if out, err := run("snapshot", "restore", file); err != nil || !strings.Contains(out, "restored") {
		t.Fatalf("restore: %v %s", err, out)
	}
	if out, _ := run("config", "get", "app"); out != "v1" {
		t.Fatalf("after the restore: %q", out)
	}
	srv.kill()
	startServerArgs(t, addr, "--backend", "raft://"+dataDir)
	if out, _ := run("config", "get", "app"); out != "v1" {
		t.Fatalf("after the restore and a restart: %q", out)
	}
	if err := os.WriteFile(file, []byte("not a snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("snapshot", "restore", file); err == nil || !strings.Contains(out, "INVALID_ARGUMENT") {
		t.Fatalf("restoring garbage: %v %s", err, out)
	}

	ep, _ := servertest.Etcd(t)
	other := freeAddr(t)
	startServerArgs(t, other, "--backend", "etcd://"+ep)
	out, err := exec.Command(binary(t), "--addr", other, "snapshot", "save", file).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "etcdctl snapshot save") {
		t.Fatalf("snapshot of an etcd backend: %v %s", err, out)
	}
}

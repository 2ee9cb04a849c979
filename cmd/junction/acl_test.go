package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/conformance/servertest"
)

// The access control commands against a real `junction server --auth`:
// bootstrap once, policies and tokens, a reader refused a write, a revoke,
// the documented reset of a lost bootstrap (once per code), and no secret
// in the server's log or its audit log.
func TestACLCommands(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	audit := filepath.Join(dir, "audit.log")
	srv := startServerArgs(t, addr, "--data-dir", filepath.Join(dir, "data"), "--auth", "--audit-log", audit)
	run := func(token, stdin string, args ...string) (string, error) {
		cmd := exec.Command(binary(t), append([]string{"--addr", addr}, args...)...)
		cmd.Env = append(os.Environ(), "JUNCTION_TOKEN="+token)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(token, stdin string, args ...string) string {
		t.Helper()
		out, err := run(token, stdin, args...)
		if err != nil {
			t.Fatalf("junction %v: %v\n%s", args, err, out)
		}
		return out
	}
	fails := func(want, token, stdin string, args ...string) string {
		t.Helper()
		out, err := run(token, stdin, args...)
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("junction %v: %v %q, want a failure saying %q", args, err, out, want)
		}
		return out
	}
	secretOf := func(out string) string {
		t.Helper()
		var ts struct{ Secret string }
		if err := json.Unmarshal([]byte(out), &ts); err != nil || !strings.HasPrefix(ts.Secret, "jct_") {
			t.Fatalf("no secret in %q: %v", out, err)
		}
		return ts.Secret
	}

	fails("no token", "", "", "status")
	mgmt := secretOf(must("", "", "acl", "bootstrap", "-o", "json"))
	out := fails("already", "", "", "acl", "bootstrap")
	code := regexp.MustCompile(`--acl-bootstrap-reset ([0-9a-f]+)`).FindStringSubmatch(out)
	if code == nil {
		t.Fatalf("the second bootstrap's error names no reset code: %s", out)
	}
	must(mgmt, "", "status")

	fails("line 4", mgmt, "name: bad\nrules:\n  - config: \"*\"\n    acces: read\n", "acl", "policy", "create", "-f", "-")
	must(mgmt, "name: readers\ndescription: read the configs\nrules:\n  - config: \"*\"\n    access: read\n", "acl", "policy", "create", "-f", "-")
	if out := must(mgmt, "", "acl", "policy", "list"); !strings.Contains(out, "readers") || !strings.Contains(out, "read the configs") {
		t.Fatalf("policy list: %s", out)
	}
	if out := must(mgmt, "", "acl", "policy", "read", "readers"); !strings.Contains(out, "access: read") {
		t.Fatalf("policy read: %s", out)
	}
	table := must(mgmt, "", "acl", "token", "create", "--policy", "readers", "--description", "ci reader", "--ttl", "1h")
	reader := regexp.MustCompile(`SecretID:\s+(jct_\S+)`).FindStringSubmatch(table)
	accessor := regexp.MustCompile(`AccessorID:\s+(\S+)`).FindStringSubmatch(table)
	if reader == nil || accessor == nil || !strings.Contains(table, "shown this once") {
		t.Fatalf("token create: %s", table)
	}
	list := must(mgmt, "", "acl", "token", "list")
	if !strings.Contains(list, accessor[1]) || !strings.Contains(list, "ci reader") || strings.Contains(list, reader[1]) {
		t.Fatalf("token list (accessor shown, secret never): %s", list)
	}
	if out := must(reader[1], "", "acl", "token", "read", "self"); !strings.Contains(out, accessor[1]) {
		t.Fatalf("token read self: %s", out)
	}

	must(mgmt, "a: 1\n", "config", "put", "app.yaml", "--type", "yaml")
	if out := must(reader[1], "", "config", "get", "app.yaml"); out != "a: 1\n" {
		t.Fatalf("the reader's config get: %q", out)
	}
	fails("may not write config:public/DEFAULT_GROUP/app.yaml", reader[1], "a: 2\n", "config", "put", "app.yaml")
	fails("may not", reader[1], "", "acl", "token", "list")
	must(mgmt, "", "acl", "token", "revoke", accessor[1])
	fails("unknown token", reader[1], "", "config", "get", "app.yaml")

	// The reset: a restart with the code allows one bootstrap; the old
	// tokens stay; the same code a second time resets nothing.
	srv.kill()
	srv = startServerArgs(t, addr, "--data-dir", filepath.Join(dir, "data"), "--auth", "--audit-log", audit, "--acl-bootstrap-reset", code[1])
	var second string
	deadline := time.Now().Add(10 * time.Second)
	for second == "" {
		out, err := run("", "", "acl", "bootstrap", "-o", "json")
		if err == nil {
			second = secretOf(out)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bootstrap after the reset: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(second, "", "status")
	must(mgmt, "", "status")
	srv.kill()
	srv = startServerArgs(t, addr, "--data-dir", filepath.Join(dir, "data"), "--auth", "--audit-log", audit, "--acl-bootstrap-reset", code[1])
	time.Sleep(500 * time.Millisecond)
	fails("already", "", "", "acl", "bootstrap")
	if !strings.Contains(srv.log.String(), "reset ignored") {
		t.Errorf("a stale reset code is not reported:\n%s", srv.log)
	}

	for _, args := range [][]string{{"--help"}, {"server", "--help"}, {"acl", "token", "list", "--help"}} {
		if out := must(mgmt, "", args...); strings.Contains(out, mgmt) {
			t.Errorf("junction %v prints the token from JUNCTION_TOKEN", args)
		}
	}

	logs, _ := os.ReadFile(audit)
	if !strings.Contains(string(logs), `"method":"PutConfig"`) || !strings.Contains(string(logs), `"outcome":"PERMISSION_DENIED"`) {
		t.Errorf("the audit log lacks the write or the denial:\n%s", logs)
	}
	for _, secret := range []string{mgmt, reader[1], second} {
		if strings.Contains(srv.log.String(), secret) || strings.Contains(string(logs), secret) {
			t.Errorf("a secret appears in the server's log or the audit log")
		}
	}
}

// With access control off the server says so, and it refuses an address
// other hosts can reach unless told --insecure-no-auth.
func TestServerRefusesOpenExposure(t *testing.T) {
	addr := freeAddr(t)
	srv := startServerArgs(t, addr, "--data-dir", t.TempDir())
	if !strings.Contains(srv.log.String(), "access control is off") {
		t.Errorf("the server does not say access control is off:\n%s", srv.log)
	}
	_, port, _ := strings.Cut(freeAddr(t), ":")
	for _, listen := range []string{"0.0.0.0:" + port, ":" + port, "[::]:" + port} {
		out, err := exec.Command(binary(t), "server", "--data-dir", t.TempDir(), "--listen", listen).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--insecure-no-auth") {
			t.Errorf("server --listen %s with access control off: %v %s, want a refusal naming --insecure-no-auth", listen, err, out)
		}
	}
}

// A store's credentials reach the driver from the URL or a file, and never
// the server's log: the logged URL is masked.
func TestBackendCredentialsStayOutOfLogs(t *testing.T) {
	z := servertest.ZooKeeper(t)
	const secret = "zk-digest-secret-91"
	file := filepath.Join(t.TempDir(), "zk-password")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{
		"zk://" + z.Addr + "?username=junction&password=" + secret,
		"zk://" + z.Addr + "?username=junction&password-file=" + file,
	} {
		addr := freeAddr(t)
		srv := startServerArgs(t, addr, "--backend", backend, "--log-level", "debug")
		out, err := exec.Command(binary(t), "--addr", addr, "service", "register", "orders", "--ip", "10.0.0.5", "--port", "80").CombinedOutput()
		if err != nil {
			t.Fatalf("register through a server on a secured ZooKeeper: %v %s", err, out)
		}
		srv.kill()
		if strings.Contains(srv.log.String(), secret) {
			t.Errorf("the server's log shows the store's password:\n%s", srv.log)
		}
		if !strings.Contains(srv.log.String(), "zk://") {
			t.Errorf("the server's log does not name the backend:\n%s", srv.log)
		}
	}
}

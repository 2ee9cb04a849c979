// Package servertest starts the real stores of package servers for a
// test: each is stopped when the test ends, and one that cannot start skips
// the test, or fails it when JUNCTION_REQUIRE_BACKENDS names it (as CI
// does: CI never passes by skipping). It is the only part that needs
// package testing, so that the junction binary, which starts the same
// servers for `junction conformance`, does not link it.
package servertest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/junctionhq/junction/conformance/servers"
)

// ZooKeeper starts a standalone ZooKeeper for a test; it is killed when the
// test ends.
func ZooKeeper(t testing.TB) *servers.ZK {
	t.Helper()
	z, err := servers.StartZooKeeper(t.TempDir())
	if err != nil {
		unavailable(t, "zookeeper", "%v", err)
	}
	t.Cleanup(func() {
		z.Kill()
		if t.Failed() {
			t.Logf("zookeeper %s output:\n%s", z.Addr, z.Output())
		}
	})
	return z
}

// Etcd starts an embedded etcd for a test; it stops when the test ends.
func Etcd(t testing.TB, tune ...func(*embed.Config)) (string, *embed.Etcd) {
	t.Helper()
	s, err := servers.StartEtcd(t.TempDir(), tune...)
	if err != nil {
		unavailable(t, "etcd", "%v", err)
	}
	t.Cleanup(s.Stop)
	return s.Addr, s.Server()
}

// ConsulAgent starts a dev-mode Consul agent for a test; it is stopped when the
// test ends. Without a consul binary the test skips, or fails when
// JUNCTION_REQUIRE_BACKENDS lists consul.
func ConsulAgent(t testing.TB) *servers.Consul {
	t.Helper()
	return consulFor(t, func() (*servers.Consul, error) { return servers.StartConsul("") })
}

// consulFor starts an agent with start for a test, kills it when the test
// ends, and shows its output if the test failed.
func consulFor(t testing.TB, start func() (*servers.Consul, error)) *servers.Consul {
	t.Helper()
	c, err := start()
	if err != nil {
		unavailable(t, "consul", "%v", err)
	}
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("consul %s output:\n%s", c.HTTPAddr, c.Output())
		}
	})
	return c
}

// ConsulACL starts a dev-mode Consul agent with ACLs on and the default
// policy deny for a test, with management as its management token.
func ConsulACL(t testing.TB, management string) *servers.Consul {
	t.Helper()
	return consulFor(t, func() (*servers.Consul, error) { return servers.StartConsulACL(management) })
}

// NeedPolaris starts Polaris for a test, or fails it when nacos is a
// required backend, or skips it.
func NeedPolaris(t testing.TB) *servers.Polaris {
	t.Helper()
	p, err := servers.StartPolaris(t.TempDir())
	if err != nil {
		unavailable(t, "nacos", "%v", err)
	}
	t.Cleanup(p.Kill)
	return p
}

// InPrivateNetwork runs the tests of a package in a network namespace of
// their own, with only a loopback interface: call it from TestMain. Polaris
// listens on fixed ports and opens a UDP socket on every interface that no
// setting removes; inside the namespace neither can collide with anything
// or reach any network. The test binary re-executes itself under `unshare
// --net` (root, or a kernel allowing unprivileged user namespaces), and
// returns its exit code. When unshare is refused it returns -1 and the
// caller runs the tests as they are (the nacos tests then fail or skip as
// JUNCTION_REQUIRE_BACKENDS says).
func InPrivateNetwork(m *testing.M) int {
	if os.Getenv(servers.PrivateNetnsEnv) == "1" {
		return m.Run()
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return -1
	}
	self, err := os.Executable()
	if err != nil {
		return -1
	}
	var opts []string
	if os.Geteuid() != 0 {
		opts = []string{"--map-root-user"}
	}
	opts = append(opts, "--net", "--")
	// Probe first, so that a refused unshare is told apart from failing tests.
	if err := exec.Command(unshare, append(opts, "true")...).Run(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot enter a private network namespace (%v); running in this one\n", err)
		return -1
	}
	args := append(opts, "sh", "-c", `ip link set lo up && exec "$0" "$@"`, self)
	cmd := exec.Command(unshare, append(args, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), servers.PrivateNetnsEnv+"=1")
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() > 0 {
			return exit.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "the tests in a private network namespace: %v\n", err)
		return 2
	}
	return 0
}

// unavailable skips the test, or fails it when the backend is required.
func unavailable(t testing.TB, name, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf("%s server unavailable: %s", name, fmt.Sprintf(format, args...))
	if servers.Required(name) {
		t.Fatalf("%s (required by %s)", msg, servers.RequireEnv)
	}
	t.Skip(msg + " (set " + servers.RequireEnv + "=" + name + " to make this a failure)")
}

// Package servers starts real coordination stores on loopback for tests:
// etcd embedded in the test process, ZooKeeper from Debian's package and
// Consul (built by .ci/consul) as child processes. Each is stopped when the
// test ends.
//
// A store that cannot be started skips the test with a clear message,
// unless its name is listed in JUNCTION_REQUIRE_BACKENDS (comma-separated,
// as CI sets it), in which case the test fails: CI never passes by skipping.
package servers

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
)

// RequireEnv names the environment variable listing required backends.
const RequireEnv = "JUNCTION_REQUIRE_BACKENDS"

// Required reports whether JUNCTION_REQUIRE_BACKENDS lists name.
func Required(name string) bool {
	return slices.Contains(strings.Split(os.Getenv(RequireEnv), ","), name)
}

// unavailable skips the test, or fails it when the backend is required.
func unavailable(t testing.TB, name, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf("%s server unavailable: %s", name, fmt.Sprintf(format, args...))
	if Required(name) {
		t.Fatalf("%s (required by %s)", msg, RequireEnv)
	}
	t.Skip(msg + " (set " + RequireEnv + "=" + name + " to make this a failure)")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

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
	"net"
	"os"
	"slices"
	"strings"
)

// RequireEnv names the environment variable listing required backends.
const RequireEnv = "JUNCTION_REQUIRE_BACKENDS"

// Required reports whether JUNCTION_REQUIRE_BACKENDS lists name.
func Required(name string) bool {
	return slices.Contains(strings.Split(os.Getenv(RequireEnv), ","), name)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

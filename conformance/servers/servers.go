// Package servers starts real coordination stores on loopback, for tests
// and for the guarantee runner: etcd embedded in the process, ZooKeeper from
// Debian's package, and Consul (built by .ci/consul) and Polaris (built by
// .ci/polaris) as child processes. Package servertest wraps them for a
// test; this package does not import testing, so the junction binary links
// it.
//
// JUNCTION_REQUIRE_BACKENDS (comma-separated, as CI sets it) lists the
// stores that must start: servertest fails a test whose store is listed and
// cannot start, instead of skipping it, so CI never passes by skipping.
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

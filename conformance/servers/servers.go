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
	"os"
	"slices"
	"strings"

	"github.com/junctionhq/junction/conformance/ports"
)

// RequireEnv names the environment variable listing required backends.
const RequireEnv = "JUNCTION_REQUIRE_BACKENDS"

// Required reports whether JUNCTION_REQUIRE_BACKENDS lists name.
func Required(name string) bool {
	return slices.Contains(strings.Split(os.Getenv(RequireEnv), ","), name)
}

// freePort is a loopback port for a server to listen on: see package ports.
func freePort() (int, error) { return ports.Free() }

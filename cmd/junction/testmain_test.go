package main

import (
	"os"
	"testing"

	"github.com/junctionhq/junction/conformance/servers"
)

// The tests run in a private network namespace (servers.InPrivateNetwork):
// Polaris, the Nacos-protocol server, listens on fixed ports, and every
// other server here on loopback alone.
func TestMain(m *testing.M) {
	if code := servers.InPrivateNetwork(m); code >= 0 {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

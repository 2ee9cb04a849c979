package main

import (
	"os"
	"testing"

	"github.com/junctionhq/junction/conformance/servertest"
)

// The tests run in a private network namespace (servertest.InPrivateNetwork):
// Polaris, the Nacos-protocol server, listens on fixed ports, and every
// other server here on loopback alone.
func TestMain(m *testing.M) {
	if code := servertest.InPrivateNetwork(m); code >= 0 {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

//go:build !race

// nacos-sdk-go's RPC client starts and swaps its connection without a lock
// (v2.3.2, common/remote/rpc/rpc_client.go), which the race detector
// reports whenever the server restarts under load, as these scenarios make
// it: `make test` runs this test in its second pass, without the detector.

package guarantees_test

import (
	"testing"

	"github.com/junctionhq/junction/conformance/guarantees"
)

// TestBoundedRunNacos measures the nacos driver (the Nacos protocol served
// by Polaris, in this package's private network namespace) and fails on
// any violation. Only the driver: through the gateway, after the driver's
// fault scenarios on the same server, new subscriptions time out (open;
// make guarantees-nacos reproduces it).
func TestBoundedRunNacos(t *testing.T) {
	if testing.Short() {
		t.Skip("the bounded guarantee run takes about a minute")
	}
	ts, err := guarantees.LocalTargets(t.TempDir(), "nacos")
	if err != nil {
		t.Fatalf("nacos: %v", err) // required: CI builds Polaris
	}
	defer ts[0].Close()
	boundedRun(t, ts)
}

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
// by Polaris, in this package's private network namespace), alone and
// through the gateway, and fails on any violation. Polaris is restarted
// before each of the two (Target.BeforeRun): the driver's fault scenarios
// leave it wedged (TestPolarisWedgesAfterPartition).
func TestBoundedRunNacos(t *testing.T) {
	if testing.Short() {
		t.Skip("the bounded guarantee run takes about two minutes")
	}
	ts, err := guarantees.LocalTargets(t.TempDir(), "nacos")
	if err != nil {
		t.Fatalf("nacos: %v", err) // required: CI builds Polaris
	}
	defer ts[0].Close()
	gw := guarantees.ThroughGateway(ts[0])
	defer gw.Close()
	boundedRun(t, []*guarantees.Target{ts[0], gw})
}

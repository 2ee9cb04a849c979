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
// any violation. Only the driver: through the gateway, instance-patch
// fails now and then (a patch relayed by a second gateway shows at that
// gateway, while the session's holder still reads the instance
// unhealthy 5 s later; open, see the issue 15 note); make guarantees
// measures that column too.
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

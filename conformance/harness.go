package conformance

import (
	"context"
	"testing"

	"github.com/junctionhq/junction/backends"
)

// Harness gives the suite a backend to test.
type Harness interface {
	// Backend returns the backend under test. The suite isolates its tests
	// by namespace, so one backend may serve every test.
	Backend(t *testing.T) backends.Backend
	// HistoryWindow is how many events the backend retains for resumable
	// watches; the suite writes more than that to force a RESET. Harnesses
	// whose store can be compacted on demand implement Compactor instead.
	HistoryWindow() int
}

// Compactor is implemented by harnesses whose store can discard its
// history up to a revision on demand (etcd's Compact).
type Compactor interface {
	Compact(ctx context.Context, t *testing.T, rev int64)
}

// Peers is implemented by harnesses that can open a second driver on the
// same store, as a second gateway would: the suite sends patches through it
// to instances whose sessions the first driver holds.
type Peers interface {
	Peer(t *testing.T) backends.Backend
}

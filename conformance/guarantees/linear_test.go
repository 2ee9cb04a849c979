package guarantees_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/guarantees"
	"github.com/junctionhq/junction/conformance/localcluster"
)

// keepOpen is a backend its owner closes, not the runner.
type keepOpen struct{ backends.Backend }

func (keepOpen) Close() error { return nil }

// A history in which no operation completed proves nothing: measured on a
// cluster follower's bare store, which refuses every write and
// linearizable read, the linearizability scenario fails instead of
// passing an empty history.
func TestLinearizabilityNeedsCompletedOperations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := localcluster.Start(ctx, t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	follower, err := c.Follower(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tg := &guarantees.Target{Name: "refusing", Label: "a cluster follower's store, without the gateway's forwarding",
		Open:            func(context.Context) (backends.Backend, error) { return keepOpen{follower.Store}, nil },
		NoProcessFaults: "in process", Close: func() {}}
	rep, err := guarantees.Run(ctx, []*guarantees.Target{tg}, guarantees.Options{Scenarios: []string{"linearizability"}, Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	res, ok := rep.Result("linearizability", "refusing")
	if !ok || res.Outcome.Verdict != guarantees.Fail || !strings.Contains(res.Outcome.Detail, "operations completed") {
		t.Fatalf("linearizability over a store that refuses everything: %+v", res.Outcome)
	}
}

package guarantees_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/junctionhq/junction/conformance/guarantees"
	"github.com/junctionhq/junction/conformance/servers"
	"github.com/junctionhq/junction/conformance/servertest"
)

func TestMain(m *testing.M) {
	// Polaris, the Nacos-protocol server, listens on fixed ports: the run
	// happens in a private network namespace.
	if code := servertest.InPrivateNetwork(m); code >= 0 {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestBoundedRun measures every scenario on every backend this machine can
// run (what CI runs) and fails on any violation: a violation found in
// Junction's own drivers is a bug to fix, not a figure to report.
func TestBoundedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the bounded guarantee run takes about two minutes")
	}
	// nacos and zookeeper run in TestBoundedRunNacos and
	// TestBoundedRunZooKeeper, without the race detector: their client
	// libraries race on reconnect.
	names := []string{"raft", "raft-3", "etcd", "consul"}
	var targets []*guarantees.Target
	for _, n := range names {
		ts, err := guarantees.LocalTargets(t.TempDir(), n)
		if err != nil {
			if servers.Required(n) || n == "raft" || n == "raft-3" || n == "etcd" { // in process: always available
				t.Fatalf("%s: %v", n, err)
			}
			t.Logf("skipping %s: %v", n, err)
			continue
		}
		targets = append(targets, ts...)
	}
	defer func() {
		for _, tg := range targets {
			tg.Close()
		}
	}()
	var measured []*guarantees.Target
	for _, tg := range targets {
		gw := guarantees.ThroughGateway(tg)
		defer gw.Close()
		measured = append(measured, tg, gw) // each driver, and the whole stack over it
	}
	boundedRun(t, measured)
}

// boundedRun runs the quick scenarios on the targets and fails on any
// violation.
func boundedRun(t *testing.T, measured []*guarantees.Target) {
	t.Helper()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := guarantees.Run(ctx, measured, guarantees.Options{Quick: true, Out: t.TempDir(), Progress: &progress,
		Command: "go test ./conformance/guarantees"})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Outcome.Verdict == guarantees.Fail {
			t.Errorf("%s on %s: %s", r.Scenario, r.Target, r.Outcome.Detail)
		}
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("JUNCTION_GUARANTEES_OUT"); out != "" {
		_ = os.WriteFile(out, md.Bytes(), 0o644)
	}
}

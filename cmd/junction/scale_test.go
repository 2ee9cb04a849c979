package main

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The bounded scale run: `junction bench scale` at two small sizes loads
// real servers, checks what it loaded (each service's instances, every
// service paged through, the state after a restart, a new follower's
// replica once it has caught up in a 3-node cluster, every delivery over
// one gateway and over two), and writes its section and charts. make
// bench-scale runs the full one.
func TestBenchScale(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "benchmarks.md")
	if err := os.WriteFile(report, []byte("# Benchmarks\n\nkept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "bench", "scale", "--sizes", "1000/100/100,4000/400/400", "--samples", "50",
		"--startups", "2", "-c", "8", "--fanouts", "50,200", "--updates", "3", "--catch-up-sizes", "1000/100/100,4000/400/400",
		"--watched-services", "100", "--watchers", "2", "--watched-duration", "2s", "--report", report,
		"--baseline", binary(t), "--baseline-name", "self").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	doc, _ := os.ReadFile(report)
	for _, want := range []string{"kept", "<!-- junction bench scale: begin", "| empty |", "| 1,000 / 100 / 100 |", "| 4,000 / 400 / 400 |",
		"**Start-up** of an empty store", "At the largest size, 4,000 instances", "![scale-memory](scale/scale-memory.svg)",
		"**Watch fan-out**", "| 200 |", "At 200 subscribers", "![scale-fanout-memory](scale/scale-fanout-memory.svg)",
		"**Against the baseline** `self`", "--baseline <a build of self>",
		"two gateways: p99", "Over two gateways", "multiplexed: p99", "multiplexed ÷ streams: memory", "Multiplexed, the same subscribers are watches", "Multiplexed: p99", "**A new follower's catch-up:**", "| 4,000 / 400 / 400 | ", "![scale-catchup](scale/scale-catchup.svg)",
		"**Many services watched at once:** 100 services", "| built-in (in the gateway's process) | 100 |", "| etcd (embedded in the bench's process) | 100 |"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("the report has no %q:\n%s", want, doc)
		}
	}
	if strings.Contains(string(doc), binary(t)) {
		t.Errorf("the report names the baseline's path, a machine path:\n%s", doc)
	}
	for _, name := range []string{"scale-memory.svg", "scale-restart.svg", "scale-latency.svg", "scale-fanout-latency.svg", "scale-fanout-memory.svg", "scale-catchup.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, "scale", name))
		if err != nil {
			t.Fatal(err)
		}
		var svg struct {
			XMLName   xml.Name
			Polylines []struct {
				Points string `xml:"points,attr"`
			} `xml:"polyline"`
		}
		if err := xml.Unmarshal(b, &svg); err != nil || svg.XMLName.Local != "svg" {
			t.Fatalf("%s is not SVG: %v", name, err)
		}
		// Each curve has a point per size.
		if len(svg.Polylines) == 0 {
			t.Errorf("%s has no curves", name)
		}
		for _, p := range svg.Polylines {
			if n := len(strings.Fields(p.Points)); n != 2 {
				t.Errorf("%s: a curve of %d points, want 2: %q", name, n, p.Points)
			}
		}
	}
	// Bad sizes are refused before anything starts.
	for _, bad := range [][]string{{"--sizes", "10/0/0"}, {"--sizes", "5/10/0"}, {"--sizes", "1000/100"}, {"--sizes", "x/1/1"},
		{"--sizes", "-1/1/1"}, {"--fanouts", "0"}, {"--fanouts", "x"}, {"--catch-up-sizes", "1000/100"}, {"--watched-stores", "zk"}, {"--watched-stores", "raft,raft"}, {"--watchers", "0"}, {"--watched-duration", "100ms"}, {"--watched-services", "-1"}, {"--updates", "0"}, {"--baseline", "/nonexistent/junction"}} {
		out, err := exec.Command(binary(t), append([]string{"bench", "scale"}, bad...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("%s: %v %s", bad, err, out)
		}
	}
}

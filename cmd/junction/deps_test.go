package main

import (
	"os/exec"
	"strings"
	"testing"
)

// No package of this module that the junction binary links imports package
// testing: test harnesses (conformance/servertest, the conformance suite)
// stay out of the server. Two dependencies still link it, and are named
// so that a new one shows: hashicorp/raft (its exported testing.go) and
// alibabacloud-go/tea/utils (assert.go, through nacos-sdk-go).
func TestBinaryLinksNoTestHarness(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	known := map[string]bool{"github.com/hashicorp/raft": true, "github.com/alibabacloud-go/tea/utils": true}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg := fields[0]
		for _, imp := range fields[1:] {
			if imp != "testing" {
				continue
			}
			if strings.HasPrefix(pkg, "github.com/junctionhq/junction") {
				t.Errorf("%s, linked into the junction binary, imports testing", pkg)
			} else if !known[pkg] {
				t.Errorf("%s, a dependency linked into the junction binary, imports testing (new: review it)", pkg)
			}
		}
	}
}

// The layers stay apart: no driver under backends/ imports the gateway
// (forwarding and everything else cross-cutting lives above the driver),
// and the built-in store speaks only Raft: it imports neither the API nor
// gRPC.
func TestDriversStayBelowTheGateway(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}`, "../../backends/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for pkg := range strings.Lines(string(out)) {
		if strings.TrimSpace(pkg) == "github.com/junctionhq/junction/gateway" {
			t.Error("a package under backends/ depends on the gateway")
		}
	}
	out, err = exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}`, "../../backends/raftstore").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for pkg := range strings.Lines(string(out)) {
		pkg = strings.TrimSpace(pkg)
		if strings.HasPrefix(pkg, "google.golang.org/grpc") || strings.HasPrefix(pkg, "github.com/junctionhq/junction/api/") ||
			pkg == "github.com/junctionhq/junction/backends/remote" {
			t.Errorf("backends/raftstore depends on %s", pkg)
		}
	}
}

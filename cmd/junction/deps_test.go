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

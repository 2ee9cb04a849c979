package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A server given a conformance report shows its target's column in the
// status, beside the declared capabilities; a report without the target
// is refused at start, naming the targets it has.
func TestServerShowsMeasuredGuarantees(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command(binary(t), "conformance", "--backend", "raft", "--scenarios", "revisions,cas",
		"--quick", "--format", "json", "--out", dir).CombinedOutput(); err != nil {
		t.Fatalf("conformance: %v\n%s", err, out)
	}
	report := filepath.Join(dir, "guarantees.json")
	// A report of a store run elsewhere names its URL, secret and all:
	// the status must not show the secret.
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["command"] = "junction conformance --backend etcd=etcd://root:s3cret@10.0.0.1:2379 --backend consul://tok3n@h:8500"
	raw, _ = json.Marshal(doc)
	if err := os.WriteFile(report, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	startServerArgs(t, addr, "--data-dir", t.TempDir(), "--guarantees", report)
	resp, err := http.Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st struct {
		Measured struct {
			Target  string
			Results []struct{ Scenario, Rule, Verdict, Figures string }
		}
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(body), "s3cret") || strings.Contains(string(body), "tok3n") {
		t.Errorf("the status shows a store's secret: %s", body)
	}
	m := st.Measured
	if m.Target != "raft+gateway" || len(m.Results) != 2 {
		t.Fatalf("measured: %s", body)
	}
	for _, r := range m.Results {
		if r.Verdict != "pass" || r.Rule == "" || (r.Scenario != "revisions" && r.Scenario != "cas") {
			t.Errorf("measured %+v", r)
		}
	}
	out, err := exec.Command(binary(t), "server", "--data-dir", t.TempDir(), "--listen", freeAddr(t),
		"--guarantees", report, "--guarantees-target", "etcd").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "measured no target etcd") || !strings.Contains(string(out), "raft+gateway") {
		t.Errorf("a target the report lacks: %v\n%s", err, out)
	}
	out, err = exec.Command(binary(t), "server", "--data-dir", t.TempDir(), "--listen", freeAddr(t), "--guarantees", binary(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a report") {
		t.Errorf("not a report: %v\n%s", err, out)
	}
}

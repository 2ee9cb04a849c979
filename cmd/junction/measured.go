package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/guarantees"
)

// loadMeasured reads a report of junction conformance --format json and
// takes one target's column: target when given, otherwise the backend's
// kind through the gateway (raft+gateway), or the kind itself.
func loadMeasured(path, target, kind string) (*pb.MeasuredGuarantees, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--guarantees: %w", err)
	}
	var rep guarantees.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, fmt.Errorf("--guarantees %s: not a report of junction conformance --format json: %w", path, err)
	}
	var names []string
	var info *guarantees.TargetInfo
	want := []string{target}
	if target == "" {
		want = []string{kind + "+gateway", kind}
	}
	for _, w := range want {
		for i, t := range rep.Targets {
			if t.Name == w && info == nil {
				info = &rep.Targets[i]
			}
		}
	}
	if info == nil {
		for _, t := range rep.Targets {
			names = append(names, t.Name)
		}
		return nil, fmt.Errorf("--guarantees %s measured no target %s; it has %s (choose one with --guarantees-target)",
			path, strings.Join(want, " or "), strings.Join(names, ", "))
	}
	rules := map[string]string{}
	for _, r := range rep.Rules {
		rules[r.Name] = r.Rule
	}
	out := &pb.MeasuredGuarantees{Target: info.Name, Label: info.Label, Started: timestamppb.New(rep.Started),
		Command: redactArgs(strings.Fields(rep.Command))} // an older report may hold a store's secret
	for _, r := range rep.Results {
		if r.Target != info.Name {
			continue
		}
		out.Results = append(out.Results, &pb.MeasuredGuarantee{Scenario: r.Scenario, Rule: rules[r.Scenario],
			Verdict: string(r.Outcome.Verdict), Figures: r.Outcome.FiguresText(), Detail: r.Outcome.Detail})
	}
	return out, nil
}

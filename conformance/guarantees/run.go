package guarantees

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/junctionhq/junction/backends"
)

// Options tune a run.
type Options struct {
	// Scenarios to run, by name; empty runs all.
	Scenarios []string
	// Quick runs bounded versions, as CI does.
	Quick bool
	// Out receives artifacts.
	Out string
	// Progress, when set, receives a line per scenario as it runs.
	Progress io.Writer
	// Command is recorded in the report.
	Command string
}

// Result is one scenario on one target.
type Result struct {
	Scenario string        `json:"scenario"`
	Target   string        `json:"target"`
	Outcome  Outcome       `json:"outcome"`
	Took     time.Duration `json:"took"`
}

// TargetInfo describes a measured target.
type TargetInfo struct {
	Name     string                `json:"name"`
	Label    string                `json:"label"`
	Declared backends.Capabilities `json:"declared"`
}

// Report is a whole run.
type Report struct {
	Started   time.Time    `json:"started"`
	Took      string       `json:"took"`
	Command   string       `json:"command,omitempty"`
	Quick     bool         `json:"quick"`
	Targets   []TargetInfo `json:"targets"`
	Scenarios []Scenario   `json:"-"`
	Rules     []ruleInfo   `json:"scenarios"`
	Results   []Result     `json:"results"`
}

type ruleInfo struct {
	Name string `json:"name"`
	Rule string `json:"rule"`
}

// Result returns the result of a scenario on a target.
func (r *Report) Result(scenario, target string) (Result, bool) {
	for _, x := range r.Results {
		if x.Scenario == scenario && x.Target == target {
			return x, true
		}
	}
	return Result{}, false
}

// Run runs the scenarios on every target, one target at a time.
func Run(ctx context.Context, targets []*Target, opts Options) (*Report, error) {
	all := Scenarios()
	var chosen []Scenario
	for _, s := range all {
		if len(opts.Scenarios) == 0 || slices.Contains(opts.Scenarios, s.Name) {
			chosen = append(chosen, s)
		}
	}
	for _, name := range opts.Scenarios {
		if !slices.ContainsFunc(all, func(s Scenario) bool { return s.Name == name }) {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
	}
	rep := &Report{Started: time.Now().UTC(), Command: opts.Command, Quick: opts.Quick, Scenarios: chosen}
	for _, s := range chosen {
		rep.Rules = append(rep.Rules, ruleInfo{s.Name, s.Rule})
	}
	total, done := len(chosen)*len(targets), 0
	for _, t := range targets {
		if t.BeforeRun != nil {
			bctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := t.BeforeRun(bctx)
			cancel()
			if err != nil {
				return rep, fmt.Errorf("%s: before the run: %w", t.Name, err)
			}
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		b, err := t.Open(octx)
		cancel()
		if err != nil {
			return rep, fmt.Errorf("%s: %w", t.Name, err)
		}
		info := TargetInfo{Name: t.Name, Label: t.Label}
		if t.BeforeRunIs != "" {
			info.Label += "; " + t.BeforeRunIs
		}
		if st, err := b.Status(ctx); err == nil {
			info.Declared = st.Capabilities
		}
		rep.Targets = append(rep.Targets, info)
		env := &Env{Target: t, B: b, Quick: opts.Quick, Out: opts.Out}
		for _, s := range chosen {
			done++
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "[%2d/%d] %-18s %-26s ", done, total, t.Name, s.Name)
			}
			start := time.Now()
			sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			o := s.Run(sctx, env)
			cancel()
			took := time.Since(start)
			rep.Results = append(rep.Results, Result{Scenario: s.Name, Target: t.Name, Outcome: o, Took: took})
			if opts.Progress != nil {
				fmt.Fprintf(opts.Progress, "%-4s %6.1fs  %s\n", o.Verdict, took.Seconds(), summary(o))
			}
			if ctx.Err() != nil {
				b.Close()
				return rep, ctx.Err()
			}
		}
		b.Close()
	}
	rep.Took = time.Since(rep.Started).Round(time.Second).String()
	return rep, nil
}

// FiguresText renders an outcome's figures on one line, as the report
// prints them ("p99 12ms, events 1000").
func (o Outcome) FiguresText() string {
	s := ""
	for i, f := range o.Figures {
		if i > 0 {
			s += ", "
		}
		s += f.Name + " " + formatValue(f)
	}
	return s
}

// summary is a one-line rendering of an outcome's figures.
func summary(o Outcome) string {
	s := o.FiguresText()
	if o.Verdict != Pass && o.Detail != "" {
		if s != "" {
			s += "; "
		}
		s += o.Detail
	}
	return s
}

func formatValue(f Figure) string {
	switch f.Unit {
	case "bool":
		if f.Value != 0 {
			return "yes"
		}
		return "no"
	case "s":
		return fmt.Sprintf("%.2fs", f.Value)
	case "ms":
		return fmt.Sprintf("%.2fms", f.Value)
	}
	return fmt.Sprintf("%g", f.Value)
}

package guarantees

import (
	"context"
	"fmt"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/contract"
)

// Verdict is a scenario's outcome on one target.
type Verdict string

// Verdicts.
const (
	Pass Verdict = "pass"
	Fail Verdict = "fail"
	NA   Verdict = "n/a" // the target cannot take this scenario's fault
	// Declared: the store falls short of the rule and its driver says so
	// in its capabilities (a Nacos server serves no linearizable reads).
	// The shortfall is measured and shown, not counted as a failure.
	Declared Verdict = "declared"
)

// Figure is one measured value.
type Figure = contract.Figure

// Outcome is what a scenario measured on one target.
type Outcome struct {
	Verdict  Verdict  `json:"verdict"`
	Figures  []Figure `json:"figures,omitempty"`
	Detail   string   `json:"detail,omitempty"`
	Artifact string   `json:"artifact,omitempty"`
}

// Figure returns the value of the named figure.
func (o Outcome) Figure(name string) (float64, bool) {
	for _, f := range o.Figures {
		if f.Name == name {
			return f.Value, true
		}
	}
	return 0, false
}

// Scenario is one measured behaviour.
type Scenario struct {
	Name string
	// Rule is the contract line the scenario measures, in one sentence.
	Rule string
	Run  func(ctx context.Context, e *Env) Outcome
}

// Env is what a scenario runs with.
type Env struct {
	Target *Target
	// B is a driver connected to the target, shared by the scenarios.
	B backends.Backend
	// Quick runs bounded versions (fewer operations, shorter faults).
	Quick bool
	// Out is where artifacts (porcupine visualizations) are written.
	Out string
}

func (e *Env) n(full, quick int) int {
	if e.Quick {
		return quick
	}
	return full
}

func pass(figs ...Figure) Outcome { return Outcome{Verdict: Pass, Figures: figs} }

func fail(figs []Figure, format string, args ...any) Outcome {
	return Outcome{Verdict: Fail, Figures: figs, Detail: fmt.Sprintf(format, args...)}
}

func na(why string) Outcome { return Outcome{Verdict: NA, Detail: why} }

func errOutcome(err error) Outcome { return Outcome{Verdict: Fail, Detail: err.Error()} }

func fig(name string, v float64, unit string) Figure { return Figure{Name: name, Value: v, Unit: unit} }

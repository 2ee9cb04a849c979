// Package contract checks the driver contract (backends/doc.go) once: each
// rule is a scenario that runs against a backend and returns every
// misbehaviour it saw together with the figures it measured, in the spirit
// of testing/fstest.TestFS. conformance.Run turns the misbehaviours into
// test failures; the guarantee runner (conformance/guarantees) reports the
// figures and adds faults of its own on top.
//
// The package does not import testing: the guarantee runner is part of the
// junction binary.
package contract

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Env is what a scenario runs with.
type Env struct {
	// B is the driver under test. Scenarios isolate themselves by
	// namespace, so one driver may serve them all.
	B backends.Backend
	// Peer opens a second driver on the same store, as a second gateway
	// would; the scenario closes it. Nil: scenarios that want a second
	// driver use B.
	Peer func(ctx context.Context) (backends.Backend, error)
	// HistoryWindow is how many events the store retains for resumable
	// watches: a scenario writes more than that to push a revision out of
	// it, unless Compact is set.
	HistoryWindow int
	// Compact, when set, discards the store's history up to rev.
	Compact func(ctx context.Context, rev int64) error
	// Quick runs bounded versions (fewer operations, shorter sessions).
	Quick bool
	// Forwards says that B's writes pass through a gateway (a follower's,
	// which forwards them to the leader's), which applies its own
	// configuration to them, not what a write's context carries. A
	// backend that is a gateway (remote: its status names it gateway/...)
	// needs no saying.
	Forwards bool
}

func (e *Env) n(full, quick int) int {
	if e.Quick {
		return quick
	}
	return full
}

func (e *Env) dur(full, quick time.Duration) time.Duration {
	if e.Quick {
		return quick
	}
	return full
}

// Figure is one measured value.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// Result is what a scenario saw on one backend.
type Result struct {
	// Problems are the misbehaviours seen, one sentence each. None: the
	// backend keeps the rule.
	Problems []string
	// Figures are what was measured.
	Figures []Figure
	// Notes are allowed behaviours worth knowing (a RESET where a store
	// that declares no resumable watch may send one).
	Notes []string
	// NotApplicable, when set, says why the backend cannot take the
	// scenario at all (a driver has no gray releases: a gateway serves
	// them); it is then neither kept nor broken.
	NotApplicable string
}

// OK reports whether the backend kept the rule.
func (r Result) OK() bool { return len(r.Problems) == 0 }

// Scenario is one rule of the contract, checked.
type Scenario struct {
	// Name identifies the scenario in the guarantee report and on the
	// command line: "list-then-watch".
	Name string
	// Test names it as a Go subtest of conformance.Run: "ListThenWatch".
	Test string
	// Rule is the contract line checked, in one sentence, its number
	// first.
	Rule string
	// Run runs the scenario; it returns when done or when ctx ends.
	Run func(ctx context.Context, e *Env) Result
}

// check collects one run's result.
type check struct{ r Result }

// problem records a misbehaviour.
func (c *check) problem(format string, args ...any) {
	c.r.Problems = append(c.r.Problems, fmt.Sprintf(format, args...))
}

// fatal records a misbehaviour (or an error that stops the scenario) and
// returns the result so far.
func (c *check) fatal(format string, args ...any) Result {
	c.problem(format, args...)
	return c.r
}

func (c *check) note(format string, args ...any) {
	c.r.Notes = append(c.r.Notes, fmt.Sprintf(format, args...))
}

func (c *check) fig(name string, v float64, unit string) {
	c.r.Figures = append(c.r.Figures, Figure{Name: name, Value: v, Unit: unit})
}

func (c *check) done() Result { return c.r }

func (c *check) na(why string) Result {
	c.r.NotApplicable = why
	return c.r
}

func unique(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Service is a service named name in a namespace of its own, so that
// scenarios sharing a store never see each other's writes.
func Service(name string) model.ServiceKey {
	return model.ServiceKey{Namespace: unique("conf"), Group: model.DefaultGroup, Service: name}
}

// ConfigKey is a config item named name in a namespace of its own.
func ConfigKey(name string) model.ConfigKey {
	return model.ConfigKey{Namespace: unique("conf"), Group: model.DefaultGroup, DataID: name}
}

// Instance is a normalized instance on 10.0.0.1:port with metadata m=meta.
func Instance(port int, meta string) model.Instance {
	i := model.Instance{IP: "10.0.0.1", Port: port, Weight: 1, Healthy: true, Enabled: true,
		Metadata: map[string]string{"m": meta}}
	if err := i.Normalize(); err != nil {
		panic(err)
	}
	return i
}

// within bounds one call by d (and ctx).
func within(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// NextEvent waits up to d for a watch event.
func NextEvent(ctx context.Context, w backends.Watcher, d time.Duration) (model.Event, error) {
	ctx, cancel := within(ctx, d)
	defer cancel()
	return w.Next(ctx)
}

// capabilities returns what the backend declares.
func capabilities(ctx context.Context, b backends.Backend) (backends.Capabilities, error) {
	ctx, cancel := within(ctx, 10*time.Second)
	defer cancel()
	st, err := b.Status(ctx)
	if err != nil {
		return backends.Capabilities{}, fmt.Errorf("status: %w", err)
	}
	return st.Capabilities, nil
}

// find reads one instance through b.
func find(ctx context.Context, b backends.Backend, svc model.ServiceKey, id string) (model.Instance, bool, error) {
	ctx, cancel := within(ctx, 10*time.Second)
	defer cancel()
	list, _, err := b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return model.Instance{}, false, err
	}
	for _, i := range list {
		if i.ID == id {
			return i, true, nil
		}
	}
	return model.Instance{}, false, nil
}

// eventually polls read until it reports done, for up to d: stores that
// serve reads from a cache show a write a moment later. It returns the
// last reason read gave when it never did.
func eventually(ctx context.Context, d time.Duration, read func() (bool, string)) (string, bool) {
	deadline := time.Now().Add(d)
	for {
		ok, why := read()
		if ok {
			return "", true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return why, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

package health

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// HistorySize is how many recent results a Monitor keeps.
const HistorySize = 16

// Transition is a change of a monitored target's health.
type Transition struct {
	Healthy bool
	// Last is the result that completed the threshold.
	Last Result
}

// Observer is told of every probe a Monitor runs; kind is the check's.
// It lets the caller count probes and their latency (see Metrics).
type Observer interface {
	Probed(kind Kind, r Result)
	Transitioned(kind Kind, healthy bool)
}

// Monitor runs one check on its interval and decides the target's health
// with hysteresis: Fall consecutive failures turn it unhealthy, Rise
// consecutive passes turn it healthy again; anything in between keeps the
// current state, so a flapping target does not flap its instance.
type Monitor struct {
	check    Check
	prober   *Prober
	observer Observer

	mu      sync.Mutex
	healthy bool
	streak  int // consecutive results that disagree with healthy
	history []Result
}

// NewMonitor returns a monitor of c (defaults applied) whose target is
// believed healthy or not to begin with; observer may be nil.
func NewMonitor(c Check, healthy bool, observer Observer) *Monitor {
	c = c.WithDefaults()
	return &Monitor{check: c, prober: NewProber(c), observer: observer, healthy: healthy}
}

// Check returns the monitored check, defaults applied.
func (m *Monitor) Check() Check { return m.check }

// Run probes until ctx ends, sending each transition on changes (which it
// never closes). The first probe comes after a random part of the
// interval, so that many monitors started together spread their probes.
func (m *Monitor) Run(ctx context.Context, changes chan<- Transition) {
	defer m.prober.Close()
	t := time.NewTimer(rand.N(m.check.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if tr, ok := m.Step(ctx); ok {
			select {
			case changes <- tr:
			case <-ctx.Done():
				return
			}
		}
		t.Reset(m.check.Interval)
	}
}

// Step runs one probe and applies it; it returns the transition it caused,
// if any.
func (m *Monitor) Step(ctx context.Context) (Transition, bool) {
	r := m.prober.Probe(ctx)
	if ctx.Err() != nil {
		return Transition{}, false // cancelled, not the target's fault
	}
	if m.observer != nil {
		m.observer.Probed(m.check.Kind, r)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.history = append(m.history, r)
	if len(m.history) > HistorySize {
		m.history = slices.Delete(m.history, 0, len(m.history)-HistorySize)
	}
	if r.Pass == m.healthy {
		m.streak = 0
		return Transition{}, false
	}
	m.streak++
	need := m.check.Fall
	if !m.healthy {
		need = m.check.Rise
	}
	if m.streak < need {
		return Transition{}, false
	}
	m.healthy, m.streak = r.Pass, 0
	if m.observer != nil {
		m.observer.Transitioned(m.check.Kind, m.healthy)
	}
	return Transition{Healthy: m.healthy, Last: r}, true
}

// Healthy reports the target's current health.
func (m *Monitor) Healthy() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.healthy
}

// History returns the recent results, oldest first.
func (m *Monitor) History() []Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.history)
}

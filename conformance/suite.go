package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/contract"
)

// Run runs every contract scenario against the harness's backend, one
// subtest each: every misbehaviour a scenario reports is a test failure,
// and its figures and notes are logged. The scenarios are the ones the
// guarantee runner measures (conformance/contract), in their bounded form.
func Run(t *testing.T, h Harness) {
	for _, s := range contract.Scenarios() {
		t.Run(s.Test, func(t *testing.T) {
			t.Logf("contract line %s", s.Rule)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			env := &contract.Env{B: h.Backend(t), HistoryWindow: h.HistoryWindow(), Quick: true}
			if c, ok := h.(Compactor); ok {
				env.Compact = func(ctx context.Context, rev int64) error {
					c.Compact(ctx, t, rev)
					return nil
				}
			}
			if p, ok := h.(Peers); ok {
				env.Peer = func(context.Context) (backends.Backend, error) { return keepOpen{p.Peer(t)}, nil }
			}
			r := s.Run(ctx, env)
			if r.NotApplicable != "" {
				t.Logf("not applicable: %s", r.NotApplicable)
			}
			for _, f := range r.Figures {
				t.Logf("measured: %s %g%s", f.Name, f.Value, f.Unit)
			}
			for _, n := range r.Notes {
				t.Log(n)
			}
			for _, p := range r.Problems {
				t.Error(p)
			}
		})
	}
}

// keepOpen is a peer the harness closes when the test ends.
type keepOpen struct{ backends.Backend }

func (keepOpen) Close() error { return nil }

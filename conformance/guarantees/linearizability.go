package guarantees

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/contract"
	"github.com/junctionhq/junction/conformance/linear"
	"github.com/junctionhq/junction/model"
)

func linearizability(ctx context.Context, e *Env) Outcome {
	b, key := e.B, contract.ConfigKey("linear")
	duration := time.Duration(e.n(6, 3)) * time.Second
	const clients = 3
	var history linear.History
	k := key.String()
	start := time.Now()
	end := start.Add(duration)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lastValue string
			var lastRev int64
			var seen int
			for n := 0; time.Now().Before(end); n++ {
				octx, cancel := context.WithTimeout(ctx, 2*time.Second)
				call := time.Now()
				switch x := rand.IntN(10); {
				case x < 4:
					cfg, _, err := b.GetConfig(octx, key, backends.ReadOptions{})
					ret := time.Now()
					switch {
					case err == nil:
						lastValue, lastRev = string(cfg.Content), cfg.Revision
						history.Record(c, linear.Input{Key: k, Kind: linear.Get}, linear.Output{Value: lastValue}, call, ret)
					case errors.Is(err, model.ErrNotFound):
						lastValue, lastRev = "", 0
						history.Record(c, linear.Input{Key: k, Kind: linear.Get}, linear.Output{}, call, ret)
					} // a failed read says nothing: not recorded
				case x < 7:
					v := fmt.Sprintf("c%d-%d", c, n)
					_, err := b.PutConfig(octx, model.Config{Key: key, Content: []byte(v)}, model.Precondition{})
					history.Record(c, linear.Input{Key: k, Kind: linear.Put, Value: v}, linear.Output{Unknown: err != nil}, call, time.Now())
				default:
					v := fmt.Sprintf("c%d-%d", c, n)
					_, err := b.PutConfig(octx, model.Config{Key: key, Content: []byte(v)}, model.IfRevision(lastRev))
					out := linear.Output{OK: err == nil, Unknown: err != nil && !errors.Is(err, model.ErrConflict)}
					history.Record(c, linear.Input{Key: k, Kind: linear.CAS, Value: v, Expected: lastValue}, out, call, time.Now())
				}
				cancel()
				n := history.Unknown()
				failed := n > seen
				seen = n
				if failed {
					// Back off after a failed write, as a real client does: a
					// store that is down would otherwise collect hundreds of
					// unknown-outcome writes, each of which may take effect at
					// any later time, and the checker's search grows
					// exponentially with them.
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
	}
	fault := "none"
	if e.Target.Restart != nil {
		fault = cmp.Or(e.Target.RestartIs, "store killed and restarted") + " mid-run"
		time.Sleep(duration / 3)
		if err := e.Target.Restart(ctx); err != nil {
			wg.Wait()
			return errOutcome(fmt.Errorf("restart: %w", err))
		}
	}
	wg.Wait()
	res, info := history.Check(60 * time.Second)
	figs := []Figure{fig("operations", float64(history.Len()), ""), fig("unknown outcome", float64(history.Unknown()), "")}
	o := Outcome{Figures: figs, Detail: "fault: " + fault}
	known := history.Len() - history.Unknown()
	switch {
	case known < minKnownOperations && res != porcupine.Illegal:
		// A history of calls that all failed or timed out is trivially
		// linearizable: it proves nothing.
		o.Verdict = Fail
		o.Detail += fmt.Sprintf("; only %d of %d operations completed, fewer than the %d a verdict needs", known, history.Len(), minKnownOperations)
	case res == porcupine.Ok:
		o.Verdict = Pass
	case res == porcupine.Illegal:
		o.Verdict = Fail
		o.Detail += "; porcupine found a history that is not linearizable"
		if st, err := e.B.Status(ctx); err == nil && !st.Capabilities.LinearizableReads {
			o.Verdict = Declared
			o.Detail += " (declared: the driver serves no linearizable reads)"
		}
		if e.Out != "" {
			p := filepath.Join(e.Out, fmt.Sprintf("linearizability-%s.html", e.Target.Name))
			if err := os.MkdirAll(e.Out, 0o750); err == nil && linear.Visualize(info, p) == nil {
				o.Artifact = p
			}
		}
	default:
		o.Verdict = Fail
		o.Detail += "; the checker timed out"
	}
	return o
}

// minKnownOperations is how many operations with a known outcome a
// history needs for its verdict to mean something.
const minKnownOperations = 20

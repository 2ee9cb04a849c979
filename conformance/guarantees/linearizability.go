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
	"github.com/junctionhq/junction/model"
)

// A history of one config item. Every written value is unique, so a value
// names the write that produced it and the register model needs no
// revisions: state is the current value ("" when absent).
type regInput struct {
	op       string // get, put, cas
	value    string // put/cas: the new value
	expected string // cas: the value the client read
}

type regOutput struct {
	value    string // get: the value read
	ok       bool   // cas: succeeded
	unknown  bool   // the call failed: it may or may not have taken effect
	conflict bool   // cas: precondition failed
}

var registerModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(regInput), output.(regOutput)
		switch in.op {
		case "get":
			return out.value == s, s
		case "put":
			return true, in.value
		case "cas":
			switch {
			case out.unknown:
				if s == in.expected {
					return true, in.value
				}
				return true, s
			case out.ok:
				return s == in.expected, in.value
			default:
				return s != in.expected, s
			}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		switch {
		case out.unknown:
			return fmt.Sprintf("%s(%s) → ?", in.op, in.value)
		case in.op == "get":
			return fmt.Sprintf("get() → %q", out.value)
		case in.op == "put":
			return fmt.Sprintf("put(%q)", in.value)
		}
		return fmt.Sprintf("cas(%q→%q) → %v", in.expected, in.value, out.ok)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

func linearizability(ctx context.Context, e *Env) Outcome {
	b, key := e.B, cfgKey("linear")
	duration := time.Duration(e.n(6, 3)) * time.Second
	const clients = 3
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		unknown int
	)
	record := func(client int, in regInput, out regOutput, call, ret time.Time) {
		mu.Lock()
		defer mu.Unlock()
		r := ret.UnixNano()
		if out.unknown {
			unknown++
			r = time.Now().Add(time.Hour).UnixNano() // may take effect at any later time
		}
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call.UnixNano(), Return: r})
	}
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
						record(c, regInput{op: "get"}, regOutput{value: lastValue}, call, ret)
					case errors.Is(err, model.ErrNotFound):
						lastValue, lastRev = "", 0
						record(c, regInput{op: "get"}, regOutput{value: ""}, call, ret)
					} // a failed read says nothing: not recorded
				case x < 7:
					v := fmt.Sprintf("c%d-%d", c, n)
					_, err := b.PutConfig(octx, model.Config{Key: key, Content: []byte(v)}, model.Precondition{})
					record(c, regInput{op: "put", value: v}, regOutput{unknown: err != nil}, call, time.Now())
				default:
					v := fmt.Sprintf("c%d-%d", c, n)
					_, err := b.PutConfig(octx, model.Config{Key: key, Content: []byte(v)}, model.IfRevision(lastRev))
					out := regOutput{ok: err == nil, conflict: errors.Is(err, model.ErrConflict)}
					out.unknown = err != nil && !out.conflict
					record(c, regInput{op: "cas", value: v, expected: lastValue}, out, call, time.Now())
				}
				cancel()
				mu.Lock()
				failed := unknown > seen
				seen = unknown
				mu.Unlock()
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
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, 60*time.Second)
	figs := []Figure{fig("operations", float64(len(history)), ""), fig("unknown outcome", float64(unknown), "")}
	o := Outcome{Figures: figs, Detail: "fault: " + fault}
	switch res {
	case porcupine.Ok:
		o.Verdict = Pass
	case porcupine.Illegal:
		o.Verdict = Fail
		o.Detail += "; porcupine found a history that is not linearizable"
		if st, err := e.B.Status(ctx); err == nil && !st.Capabilities.LinearizableReads {
			o.Verdict = Declared
			o.Detail += " (declared: the driver serves no linearizable reads)"
		}
		if e.Out != "" {
			p := filepath.Join(e.Out, fmt.Sprintf("linearizability-%s.html", e.Target.Name))
			if err := os.MkdirAll(e.Out, 0o750); err == nil && porcupine.VisualizePath(registerModel, info, p) == nil {
				o.Artifact = p
			}
		}
	default:
		o.Verdict = Fail
		o.Detail += "; the checker timed out"
	}
	return o
}

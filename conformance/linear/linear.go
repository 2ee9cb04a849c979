// Package linear records concurrent histories of reads and writes of
// key-value registers and checks them for linearizability with porcupine.
// The guarantee runner's linearizability scenario and the process-level
// cluster tests share it, so both judge a history by the same model.
//
// Every written value must be unique within its key, so that a value names
// the write that produced it and the model needs no revisions: a register's
// state is its current value, "" when absent.
package linear

import (
	"fmt"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is what an operation did.
type Kind int

// The operations a history holds.
const (
	Get Kind = iota // read the register
	Put             // write it unconditionally
	CAS             // write it if it holds Expected
)

func (k Kind) String() string {
	return [...]string{"get", "put", "cas"}[k]
}

// Input is an operation as the client called it.
type Input struct {
	Key      string
	Kind     Kind
	Value    string // Put, CAS: the value written
	Expected string // CAS: the value the client last read
}

// Output is what the client saw come back.
type Output struct {
	Value string // Get: the value read ("" when absent)
	OK    bool   // CAS: the precondition held and the write took effect
	// Unknown is a write whose outcome the client cannot know (a timeout,
	// a lost connection, an unavailable store): it may take effect at any
	// time after its call, or never.
	Unknown bool
}

// Model is the register model, partitioned by key.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		parts := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, byKey[k])
		}
		return parts
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(Input), output.(Output)
		switch in.Kind {
		case Get:
			return out.Value == s, s
		case Put:
			return true, in.Value
		case CAS:
			switch {
			case out.Unknown:
				if s == in.Expected {
					return true, in.Value
				}
				return true, s
			case out.OK:
				return s == in.Expected, in.Value
			default:
				return s != in.Expected, s
			}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		switch {
		case out.Unknown:
			return fmt.Sprintf("%s %s(%s) → ?", in.Key, in.Kind, in.Value)
		case in.Kind == Get:
			return fmt.Sprintf("%s get() → %q", in.Key, out.Value)
		case in.Kind == Put:
			return fmt.Sprintf("%s put(%q)", in.Key, in.Value)
		}
		return fmt.Sprintf("%s cas(%q→%q) → %v", in.Key, in.Expected, in.Value, out.OK)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// History collects the operations of concurrent clients. It is safe for
// concurrent use.
type History struct {
	mu      sync.Mutex
	origin  time.Time
	ops     []porcupine.Operation
	unknown int
}

// Record adds one operation by client, called at call and returned at ret.
// An operation whose Output is Unknown is recorded as still pending at the
// end of the history, since it may take effect at any later time. A read
// that failed says nothing and should not be recorded.
func (h *History) Record(client int, in Input, out Output, call, ret time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Times on the monotonic clock (a step of the wall clock mid-run would
	// reorder operations), as offsets from the history's first call.
	if h.origin.IsZero() {
		h.origin = call
	}
	r := ret.Sub(h.origin)
	if out.Unknown {
		h.unknown++
		r = time.Since(h.origin) + 24*time.Hour
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Output: out,
		Call: int64(call.Sub(h.origin)), Return: int64(r)})
}

// Len is the number of operations recorded.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ops)
}

// Unknown is the number of writes recorded with an unknown outcome.
func (h *History) Unknown() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unknown
}

// Check checks the history against Model within timeout. The result is
// porcupine.Ok, porcupine.Illegal (the info then shows why, see Visualize),
// or porcupine.Unknown when the checker ran out of time.
func (h *History) Check(timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	return porcupine.CheckOperationsVerbose(Model, ops, timeout)
}

// Visualize writes porcupine's HTML view of a checked history to path.
func Visualize(info porcupine.LinearizationInfo, path string) error {
	return porcupine.VisualizePath(Model, info, path)
}

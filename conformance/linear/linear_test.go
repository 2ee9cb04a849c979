package linear

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// at returns the instant ms milliseconds after a fixed origin.
func at(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  func(h *History)
		want porcupine.CheckResult
	}{
		{"a read sees the write before it", func(h *History) {
			h.Record(0, Input{Key: "a", Kind: Put, Value: "1"}, Output{}, at(0), at(1))
			h.Record(1, Input{Key: "a", Kind: Get}, Output{Value: "1"}, at(2), at(3))
		}, porcupine.Ok},
		{"a read misses a write that returned before it started", func(h *History) {
			h.Record(0, Input{Key: "a", Kind: Put, Value: "1"}, Output{}, at(0), at(1))
			h.Record(1, Input{Key: "a", Kind: Get}, Output{Value: ""}, at(2), at(3))
		}, porcupine.Illegal},
		{"keys are independent registers", func(h *History) {
			h.Record(0, Input{Key: "a", Kind: Put, Value: "1"}, Output{}, at(0), at(1))
			h.Record(1, Input{Key: "b", Kind: Get}, Output{Value: ""}, at(2), at(3))
		}, porcupine.Ok},
		{"a write of unknown outcome may take effect later", func(h *History) {
			h.Record(0, Input{Key: "a", Kind: Put, Value: "1"}, Output{Unknown: true}, at(0), at(1))
			h.Record(1, Input{Key: "a", Kind: Get}, Output{Value: ""}, at(2), at(3))
			h.Record(1, Input{Key: "a", Kind: Get}, Output{Value: "1"}, at(4), at(5))
		}, porcupine.Ok},
		{"a value that was never written cannot be read", func(h *History) {
			h.Record(0, Input{Key: "a", Kind: Put, Value: "1"}, Output{}, at(0), at(1))
			h.Record(1, Input{Key: "a", Kind: Get}, Output{Value: "2"}, at(2), at(3))
		}, porcupine.Illegal},
		{"a failed compare-and-set leaves the value", func(h *History) {
			h.Record(0, Input{Key: "a", Kind: Put, Value: "1"}, Output{}, at(0), at(1))
			h.Record(1, Input{Key: "a", Kind: CAS, Value: "2", Expected: ""}, Output{OK: false}, at(2), at(3))
			h.Record(1, Input{Key: "a", Kind: Get}, Output{Value: "1"}, at(4), at(5))
		}, porcupine.Ok},
		{"a compare-and-set cannot succeed on a stale value", func(h *History) {
			h.Record(0, Input{Key: "a", Kind: Put, Value: "1"}, Output{}, at(0), at(1))
			h.Record(1, Input{Key: "a", Kind: CAS, Value: "2", Expected: ""}, Output{OK: true}, at(2), at(3))
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h History
			tc.ops(&h)
			if got, _ := h.Check(5 * time.Second); got != tc.want {
				t.Fatalf("Check = %v, want %v", got, tc.want)
			}
		})
	}
}

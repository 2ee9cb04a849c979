// Package eventlog is a bounded, in-memory log of watch events read through
// cursors. Writers append; any number of readers follow at their own pace,
// each holding only a cursor. A reader that falls behind the retained window
// learns it is compacted (and its owner sends a RESET) instead of stalling
// the writer or growing memory: memory is bounded by the log's capacity,
// whatever the number and speed of readers.
//
// The Raft store keeps its watch history in one Log; the gateway's fan-out
// hub keeps one per watched key.
package eventlog

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/junctionhq/junction/model"
)

// ErrCompacted reports that a cursor points before the retained window.
var ErrCompacted = errors.New("eventlog: cursor is behind the retained history")

// Cursor is a reader's position: the sequence number of the next event.
type Cursor struct{ seq uint64 }

// Log is a bounded event log. The zero value is not usable; call New.
type Log struct {
	mu       sync.Mutex
	ring     []model.Event // doubles as events arrive, up to capacity
	capacity int
	start    uint64 // sequence number of the oldest retained event
	end      uint64 // sequence number of the next event to append
	floor    int64  // every event with a revision above floor is retained
	wake     chan struct{}
}

// initialRing is how many events a new log has room for before its ring
// first grows: a gateway keeps a log per watched key, most of them quiet,
// so a log's memory follows the history it holds, not its capacity.
const initialRing = 4

// New returns a log that retains the newest capacity events and whose
// history is complete after revision floor.
func New(capacity int, floor int64) *Log {
	capacity = max(capacity, 1)
	return &Log{ring: make([]model.Event, min(capacity, initialRing)), capacity: capacity, floor: floor, wake: make(chan struct{})}
}

// Append adds events, in revision order, and wakes waiting readers.
func (l *Log) Append(evs ...model.Event) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	for _, e := range evs {
		n := uint64(len(l.ring))
		if l.end-l.start == n {
			if len(l.ring) < l.capacity {
				l.grow()
				n = uint64(len(l.ring))
			} else {
				l.floor = l.ring[l.start%n].Revision
				l.ring[l.start%n] = model.Event{}
				l.start++
			}
		}
		l.ring[l.end%n] = e
		l.end++
	}
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// grow doubles the ring, up to the capacity.
func (l *Log) grow() { l.resize(min(2*len(l.ring), l.capacity)) }

// resize moves the events into a ring of size slots, each at its sequence
// number.
func (l *Log) resize(size int) {
	n := uint64(len(l.ring))
	ring := make([]model.Event, size)
	m := uint64(len(ring))
	for s := l.start; s < l.end; s++ {
		ring[s%m] = l.ring[s%n]
	}
	l.ring = ring
}

// Trim drops the events at or below revision rev, as if the log had
// reached its capacity: cursors before them are compacted. The ring
// shrinks with what is left.
func (l *Log) Trim(rev int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := uint64(len(l.ring))
	dropped := false
	for l.start < l.end && l.ring[l.start%n].Revision <= rev {
		l.ring[l.start%n] = model.Event{}
		l.start++
		dropped = true
	}
	if !dropped {
		return
	}
	l.floor = max(l.floor, rev)
	if count := int(l.end - l.start); len(l.ring) > initialRing && count <= len(l.ring)/4 {
		l.resize(max(initialRing, 2*count))
	}
}

// Reset drops the whole history: only events after revision floor will be
// retained. Cursors taken before are compacted.
func (l *Log) Reset(floor int64) {
	l.mu.Lock()
	n := uint64(len(l.ring))
	for s := l.start; s < l.end; s++ {
		l.ring[s%n] = model.Event{}
	}
	// Skip a sequence number so that every cursor taken before, even on an
	// empty log, is behind the start and reads ErrCompacted.
	l.end++
	l.start = l.end
	l.floor = floor
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// Floor returns the revision after which history is complete.
func (l *Log) Floor() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.floor
}

// After returns a cursor at the first event with a revision above rev, or
// ErrCompacted when events after rev may have been dropped.
func (l *Log) After(rev int64) (Cursor, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rev < l.floor {
		return Cursor{}, ErrCompacted
	}
	n := uint64(len(l.ring))
	count := int(l.end - l.start)
	i := sort.Search(count, func(i int) bool { return l.ring[(l.start+uint64(i))%n].Revision > rev })
	return Cursor{seq: l.start + uint64(i)}, nil
}

// End returns a cursor after the newest event.
func (l *Log) End() Cursor {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Cursor{seq: l.end}
}

// Read returns up to max events at the cursor that match (all when match is
// nil), the advanced cursor, and a channel closed when more events arrive.
func (l *Log) Read(c Cursor, limit int, match func(*model.Event) bool) ([]model.Event, Cursor, <-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.seq < l.start {
		return nil, c, nil, ErrCompacted
	}
	n := uint64(len(l.ring))
	var out []model.Event
	for ; c.seq < l.end && len(out) < limit; c.seq++ {
		e := &l.ring[c.seq%n]
		if match == nil || match(e) {
			out = append(out, *e)
		}
	}
	return out, c, l.wake, nil
}

// Next blocks until at least one matching event is past the cursor, then
// returns up to limit of them and advances the cursor. It returns
// ErrCompacted when the cursor fell behind, or ctx's error.
func (l *Log) Next(ctx context.Context, c *Cursor, limit int, match func(*model.Event) bool) ([]model.Event, error) {
	for {
		evs, next, wake, err := l.Read(*c, limit, match)
		if err != nil {
			return nil, err
		}
		*c = next
		if len(evs) > 0 {
			return evs, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

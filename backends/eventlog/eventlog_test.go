package eventlog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/junctionhq/junction/model"
)

func ev(rev int64) model.Event { return model.Event{Type: model.EventPut, Revision: rev} }

func revs(evs []model.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Revision
	}
	return out
}

func TestAfterAndRead(t *testing.T) {
	l := New(4, 10)
	l.Append(ev(11), ev(12), ev(12), ev(14))
	c, err := l.After(12)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, err := l.Read(c, 10, nil)
	if err != nil || len(got) != 1 || got[0].Revision != 14 {
		t.Fatalf("after 12: %v %v", revs(got), err)
	}
	// Appending past capacity drops the oldest and raises the floor.
	l.Append(ev(15))
	if l.Floor() != 11 {
		t.Fatalf("floor = %d, want 11", l.Floor())
	}
	if _, err := l.After(10); !errors.Is(err, ErrCompacted) {
		t.Fatalf("After below floor: %v", err)
	}
	if _, _, _, err := l.Read(Cursor{seq: 0}, 10, nil); !errors.Is(err, ErrCompacted) {
		t.Fatalf("stale cursor: %v", err)
	}
	c, _ = l.After(11)
	got, _, _, _ = l.Read(c, 10, nil)
	if want := []int64{12, 12, 14, 15}; len(got) != 4 || got[0].Revision != want[0] || got[3].Revision != want[3] {
		t.Fatalf("after 11: %v, want %v", revs(got), want)
	}
}

func TestNextWaitsAndFilters(t *testing.T) {
	l := New(16, 0)
	c := l.End()
	done := make(chan []model.Event)
	go func() {
		evs, err := l.Next(context.Background(), &c, 10, func(e *model.Event) bool { return e.Revision%2 == 0 })
		if err != nil {
			t.Error(err)
		}
		done <- evs
	}()
	time.Sleep(10 * time.Millisecond)
	l.Append(ev(1)) // filtered out: the reader keeps waiting
	l.Append(ev(2))
	if got := <-done; len(got) != 1 || got[0].Revision != 2 {
		t.Fatalf("got %v", revs(got))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Next(ctx, &c, 10, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Next: %v", err)
	}
}

func TestSlowReaderIsCompactedNotBlocking(t *testing.T) {
	l := New(8, 0)
	slow := l.End()
	for i := int64(1); i <= 100; i++ {
		l.Append(ev(i)) // never blocks, whatever the readers do
	}
	if _, err := l.Next(context.Background(), &slow, 10, nil); !errors.Is(err, ErrCompacted) {
		t.Fatalf("slow reader: %v", err)
	}
	l.Reset(100)
	if _, err := l.After(99); !errors.Is(err, ErrCompacted) {
		t.Fatal("Reset must compact older revisions")
	}
	// Even on an empty log, a cursor taken before a Reset is compacted.
	empty := New(4, 0)
	c := empty.End()
	empty.Reset(5)
	if _, _, _, err := empty.Read(c, 10, nil); !errors.Is(err, ErrCompacted) {
		t.Fatalf("cursor from before a Reset of an empty log: %v", err)
	}
}

// A log's ring grows with the history it holds, up to its capacity, and
// keeps every event and cursor through each growth.
func TestRingGrowsWithItsHistory(t *testing.T) {
	l := New(100, 0)
	if n := len(l.ring); n != initialRing {
		t.Fatalf("a new log of capacity 100 holds room for %d events, want %d", n, initialRing)
	}
	first := l.End()
	for rev := int64(1); rev <= 50; rev++ {
		l.Append(ev(rev))
	}
	if n := len(l.ring); n != 64 {
		t.Fatalf("50 events: a ring of %d, want 64", n)
	}
	got, _, _, err := l.Read(first, 1000, nil)
	if err != nil || len(got) != 50 || got[0].Revision != 1 || got[49].Revision != 50 {
		t.Fatalf("after growing: %v %v", revs(got), err)
	}
	mid, err := l.After(20)
	if err != nil {
		t.Fatal(err)
	}
	for rev := int64(51); rev <= 130; rev++ {
		l.Append(ev(rev))
	}
	if n := len(l.ring); n != 100 {
		t.Fatalf("130 events: a ring of %d, want the capacity, 100", n)
	}
	if _, _, _, err := l.Read(mid, 1, nil); !errors.Is(err, ErrCompacted) {
		t.Fatalf("a cursor at revision 21, 130 events later in a log of 100: %v, want ErrCompacted", err)
	}
	c, err := l.After(30)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, _ = l.Read(c, 1000, nil)
	if len(got) != 100 || got[0].Revision != 31 || got[99].Revision != 130 {
		t.Fatalf("the newest 100: %d events, %v", len(got), revs(got))
	}
	if f := l.Floor(); f != 30 {
		t.Fatalf("floor %d, want 30", f)
	}
}

// Trim drops what is at or below a revision: cursors before it are
// compacted, the rest reads on in order, the floor rises, and the ring
// shrinks with what is left; it then grows again as events come.
func TestTrim(t *testing.T) {
	l := New(1000, 0)
	first := l.End()
	for rev := int64(1); rev <= 100; rev++ {
		l.Append(ev(rev))
	}
	keep, err := l.After(95)
	if err != nil {
		t.Fatal(err)
	}
	l.Trim(90)
	if _, _, _, err := l.Read(first, 1, nil); !errors.Is(err, ErrCompacted) {
		t.Fatalf("a cursor before the trim: %v, want ErrCompacted", err)
	}
	if _, err := l.After(89); !errors.Is(err, ErrCompacted) {
		t.Fatalf("After(89) once trimmed at 90: %v, want ErrCompacted", err)
	}
	if f := l.Floor(); f != 90 {
		t.Fatalf("floor %d, want 90", f)
	}
	if n := len(l.ring); n != 20 {
		t.Fatalf("10 events left: a ring of %d, want 20", n)
	}
	got, _, _, err := l.Read(keep, 100, nil)
	if err != nil || len(got) != 5 || got[0].Revision != 96 {
		t.Fatalf("a cursor after the trim: %v %v", revs(got), err)
	}
	for rev := int64(101); rev <= 200; rev++ {
		l.Append(ev(rev))
	}
	c, _ := l.After(90)
	got, _, _, _ = l.Read(c, 1000, nil)
	if len(got) != 110 || got[0].Revision != 91 || got[109].Revision != 200 {
		t.Fatalf("after growing again: %d events, %v", len(got), revs(got))
	}
	l.Trim(50) // below the floor: nothing to drop
	if f := l.Floor(); f != 90 {
		t.Fatalf("floor %d after a trim below it, want 90", f)
	}
}

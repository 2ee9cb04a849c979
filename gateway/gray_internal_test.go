package gateway

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/junctionhq/junction/model"
)

// Waiting for an item's gray change costs nothing once no one waits: the
// channels of items that never changed go with their last waiter, and a
// change wakes every waiter of its item.
func TestGrayWaitersAreBounded(t *testing.T) {
	g := newGrays(nil, slog.New(slog.DiscardHandler))
	var unwaits []func()
	for i := range 1000 {
		_, _, unwait := g.changed(model.ConfigKey{Namespace: "public", Group: "g", DataID: fmt.Sprintf("item-%d", i)})
		unwaits = append(unwaits, unwait)
	}
	key := model.ConfigKey{Namespace: "public", Group: "g", DataID: "item-0"}
	second, _, unwaitSecond := g.changed(key)
	for _, u := range unwaits {
		u()
		u() // twice: once only
	}
	g.mu.Lock()
	left := len(g.waiters)
	g.mu.Unlock()
	if left != 1 {
		t.Fatalf("%d channels left with one waiter left, want 1", left)
	}
	g.mu.Lock()
	g.set(key, nil, "", 1)
	g.mu.Unlock()
	select {
	case <-second:
	default:
		t.Fatal("a gray change did not wake its item's waiter")
	}
	unwaitSecond()
	if len(g.waiters) != 0 {
		t.Fatalf("%d channels left with no waiter", len(g.waiters))
	}
}

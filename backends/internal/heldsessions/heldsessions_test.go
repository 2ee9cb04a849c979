package heldsessions

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestExpireRetriesFailedRemovals(t *testing.T) {
	tb := New[string, int]()
	tb.Add("a", 10*time.Millisecond)
	tb.Add("b", time.Hour)
	if !tb.Own("a", "n1", 1) || !tb.Own("b", "n2", 2) || tb.Own("gone", "n3", 3) {
		t.Fatal("Own on live sessions must succeed, on an unknown one fail")
	}
	if !tb.Own("b", "n1", 1) { // moves n1 from a to b
		t.Fatal("Own b")
	}
	if id, _ := tb.Owner("n1"); id != "b" {
		t.Fatalf("n1 owned by %q, want b", id)
	}
	tb.Own("a", "n1", 1)
	time.Sleep(20 * time.Millisecond)
	var removed []string
	fail := errors.New("store down")
	attempts := 0
	remove := func(id string, owned map[string]int) error {
		attempts++
		if attempts == 1 {
			return fail
		}
		removed = append(removed, id)
		if owned["n1"] != 1 || len(owned) != 1 {
			t.Errorf("removing %s with %v, want n1", id, owned)
		}
		return nil
	}
	tb.Expire(slog.Default(), remove) // a expired; the first removal fails
	if tb.Live("a") || len(removed) != 0 {
		t.Fatalf("after a failed removal: live %v, removed %v", tb.Live("a"), removed)
	}
	if _, ok := tb.KeepAlive("a"); ok {
		t.Fatal("an expired session was kept alive")
	}
	tb.Expire(slog.Default(), remove) // retried
	tb.Expire(slog.Default(), remove) // nothing left
	if len(removed) != 1 || removed[0] != "a" {
		t.Fatalf("removed %v, want a once", removed)
	}
	if _, ok := tb.KeepAlive("b"); !ok {
		t.Fatal("b expired early")
	}
	owned, ok := tb.Close("b")
	if !ok || owned["n2"] != 2 {
		t.Fatalf("Close b: %v %v", owned, ok)
	}
	if _, ok := tb.Close("b"); ok {
		t.Fatal("closed twice")
	}
}

// Owned returns a copy of one live session's resources, and nothing for
// an unknown session.
func TestOwned(t *testing.T) {
	tab := New[string, int]()
	tab.Add("a", time.Minute)
	tab.Add("b", time.Minute)
	tab.Own("a", "x", 1)
	tab.Own("b", "y", 2)
	got, ok := tab.Owned("a")
	if !ok || len(got) != 1 || got["x"] != 1 {
		t.Fatalf("Owned(a) = %v, %v", got, ok)
	}
	got["z"] = 3 // a copy: the table is unchanged
	if again, _ := tab.Owned("a"); len(again) != 1 {
		t.Fatalf("Owned returned the table's own map: %v", again)
	}
	if _, ok := tab.Owned("nope"); ok {
		t.Fatal("Owned of an unknown session reported ok")
	}
}

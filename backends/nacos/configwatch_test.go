package nacos_test

import (
	"context"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/nacos"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// A watch from a revision this driver issued is never answered from what
// the driver saw before it followed the item: there, A and then B were
// written through this driver, another client wrote A again, and the
// item's first watch, from B's revision, must end on A (the store's
// value), not stay on B.
func TestConfigWatchAfterAnotherClientsWrite(t *testing.T) {
	p := servertest.NeedPolaris(t)
	d, other := open(t, p.Addr, "cas=check"), open(t, p.Addr, "cas=check")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: "came-back.txt"}
	put := func(b backends.Backend, content string) model.Config {
		t.Helper()
		c, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte(content)}, model.Precondition{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	put(d, "A")
	b := put(d, "B")
	time.Sleep(500 * time.Millisecond)
	put(other, "A")
	// Let the server serve A and this driver's settle time for B pass.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _, err := other.GetConfig(ctx, key, backends.ReadOptions{})
		if err == nil && string(got.Content) == "A" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server does not serve A: %v %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(4 * time.Second)

	w, err := d.Watch(ctx, backends.WatchRequest{Config: &key, FromRevision: b.Revision})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var view model.View
	view.Config = &b
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	for view.Config == nil || string(view.Config.Content) != "A" {
		ev, err := w.Next(wctx)
		if err != nil {
			t.Fatalf("a watch from B's revision %d is still on %v: %v", b.Revision, view.Config, err)
		}
		if ev.Revision <= b.Revision && ev.Type != model.EventReset {
			t.Errorf("event %v at %d, not after %d", ev.Type, ev.Revision, b.Revision)
		}
		view.Apply(ev)
	}
}

// An empty notice is a delete only when the server agrees: the SDK also
// announces "" when it could not fetch a content (its limit of five reads
// a second of one item). A real delete by another client is delivered.
func TestEmptyNoticeIsConfirmed(t *testing.T) {
	p := servertest.NeedPolaris(t)
	d, other := open(t, p.Addr, "cas=check"), open(t, p.Addr, "cas=check")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: "empty-notice.txt"}
	if _, err := d.PutConfig(ctx, model.Config{Key: key, Content: []byte("here")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the server serves the write, and its settle time passes
	w, err := d.Watch(ctx, backends.WatchRequest{Config: &key})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev, err := w.Next(ctx); err != nil || ev.Config == nil {
		t.Fatalf("first event %+v %v", ev, err)
	}
	nacos.AnnounceForTest(d, key, "")
	wctx, wcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	if ev, err := w.Next(wctx); err == nil {
		t.Errorf("an empty notice of an item the server still has was delivered: %+v", ev)
	}
	wcancel()
	if _, err := other.DeleteConfig(ctx, key, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("the real delete was not delivered: %v", err)
		}
		if ev.Type == model.EventDelete {
			return
		}
	}
}

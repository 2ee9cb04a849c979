package nacos_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// historyAcrossDrivers checks the history that two drivers write of one
// item, each reading the other's from the server: the second driver's
// first version follows the first's, whose head the server may not serve
// yet (its create-only head write is refused, and retried once the server
// shows the head); the first driver reads that version once its own copy
// of the head settles, and numbers on after it. The system namespace keeps
// no history, and the history's own items cannot be written as
// configuration items.
func historyAcrossDrivers(t *testing.T, addr string) {
	a, b := open(t, addr, "cas=check"), open(t, addr, "cas=check")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := model.ConfigKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, DataID: fmt.Sprintf("history-%d.yaml", time.Now().UnixNano())}
	as := func(author string) context.Context {
		return backends.WithChange(ctx, backends.Change{Author: author, Message: "by " + author})
	}
	put := func(d backends.Backend, author, content string, cond model.Precondition) int64 {
		t.Helper()
		c, err := d.PutConfig(as(author), model.Config{Key: key, Content: []byte(content)}, cond)
		if err != nil {
			t.Fatalf("%s's write: %v", author, err)
		}
		return c.Revision
	}
	// The second driver connects first, so that its write comes before
	// the server serves the first's.
	if _, _, err := b.ConfigHistory(ctx, key, backends.ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.GetConfig(ctx, key, backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("a new item: %v, want ErrNotFound", err)
	}
	first := put(a, "alice", "a: 1", model.IfRevision(0))
	second := put(b, "bob", "a: 2", model.Precondition{})
	eventually(t, 10*time.Second, "the first driver reads the second's version", func() bool {
		v, err := a.ConfigVersion(ctx, key, 2, backends.ReadOptions{})
		return err == nil && v.Revision == second && v.Author == "bob"
	})
	gone, err := a.DeleteConfig(as("alice"), key, model.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		rev     int64
		op      model.ConfigOp
		content string
		author  string
	}{{first, model.OpCreate, "a: 1", "alice"}, {second, "", "a: 2", "bob"}, {gone, model.OpDelete, "a: 2", "alice"}}
	vs, _, err := a.ConfigHistory(ctx, key, backends.ReadOptions{})
	if err != nil || len(vs) != len(want) {
		t.Fatalf("history: %+v (%v), want %d versions", vs, err, len(want))
	}
	for i, w := range want {
		v := vs[i]
		// The second driver could not tell whether the item existed: the
		// server may not have served its creation yet.
		if v.Number != int64(i+1) || v.Revision != w.rev || (w.op != "" && v.Op != w.op) || string(v.Content) != w.content ||
			v.Author != w.author || v.Message != "by "+w.author || v.ContentType != model.ContentYAML {
			t.Errorf("version %d is %+v, want %s %q by %s at %d", i+1, v, w.op, w.content, w.author, w.rev)
		}
	}

	sys := model.ConfigKey{Namespace: model.SystemNamespace, Group: "history-test", DataID: key.DataID}
	if _, err := a.PutConfig(as("alice"), model.Config{Key: sys, Content: []byte("x")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if vs, _, err := a.ConfigHistory(ctx, sys, backends.ReadOptions{}); err != nil || len(vs) != 0 {
		t.Errorf("history of a system item: %+v (%v), want none", vs, err)
	}
	own := model.ConfigKey{Namespace: model.SystemNamespace, Group: "junction-config-history", DataID: "x"}
	if _, err := a.PutConfig(ctx, model.Config{Key: own, Content: []byte("x")}, model.Precondition{}); !errors.Is(err, model.ErrInvalidArgument) {
		t.Errorf("a write among the history's own items: %v, want ErrInvalidArgument", err)
	}
}

// historyWrittenBeforeClose checks that the versions a driver writes after
// its puts have returned are written before it closes: a driver closed
// right after a put leaves the version for the next driver to read.
func historyWrittenBeforeClose(t *testing.T, addr string) {
	a := open(t, addr, "cas=check")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := model.ConfigKey{Namespace: model.DefaultNamespace, Group: model.DefaultGroup, DataID: fmt.Sprintf("closing-%d", time.Now().UnixNano())}
	c, err := a.PutConfig(backends.WithChange(ctx, backends.Change{Author: "alice"}), model.Config{Key: key, Content: []byte("a: 1")}, model.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	b := open(t, addr, "cas=check")
	eventually(t, 10*time.Second, "the version of a put made just before its driver closed", func() bool {
		v, err := b.ConfigVersion(ctx, key, 1, backends.ReadOptions{})
		return err == nil && v.Revision == c.Revision && v.Author == "alice"
	})
}

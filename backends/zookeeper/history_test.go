package zookeeper_test

import (
	"context"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// Writes go on when a version that retention drops was already removed by
// another client, and leave in ZooKeeper only what retention keeps; items
// of the system namespace keep no history.
func TestHistoryVersionRemovedByHand(t *testing.T) {
	z := servertest.ZooKeeper(t)
	d := open(t, z.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := model.ConfigKey{Namespace: "public", Group: "g", DataID: "app.yaml"}
	keep2 := backends.WithChange(ctx, backends.Change{Retention: backends.Retention{Versions: 2, MaxAge: time.Hour}})
	put := func(content string) model.Config {
		t.Helper()
		c, err := d.PutConfig(keep2, model.Config{Key: key, Content: []byte(content)}, model.Precondition{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	put("n: 1")
	put("n: 2")
	plain := plainClient(t, z.Addr)
	head := "/junction/config-history/public/g/app.yaml"
	if err := plain.Delete(head+"/00000000000000000001", -1); err != nil {
		t.Fatal(err)
	}
	last := put("n: 3") // drops version 1, which is gone already
	vs, _, err := d.ConfigHistory(ctx, key, backends.ReadOptions{})
	if err != nil || len(vs) != 2 || vs[0].Number != 2 || vs[1].Number != 3 || vs[1].Revision != last.Revision {
		t.Fatalf("history: %+v (%v), want versions 2 and 3", vs, err)
	}
	if kids, _, err := plain.Children(head); err != nil || len(kids) != 2 {
		t.Errorf("version nodes: %v (%v), want 2", kids, err)
	}

	sys := model.ConfigKey{Namespace: model.SystemNamespace, Group: "g", DataID: "lease"}
	if _, err := d.PutConfig(ctx, model.Config{Key: sys, Content: []byte("x")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteConfig(ctx, sys, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := plain.Exists("/junction/config-history/" + model.SystemNamespace); err != nil || ok {
		t.Errorf("history of a system item: %v (%v), want none", ok, err)
	}
}

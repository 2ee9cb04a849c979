package consul_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// A write that drops more versions than one Consul transaction can delete
// (at most 64 operations) still leaves only what its retention keeps, both
// in what the driver reads and in the KV store; items of the system
// namespace keep no history.
func TestHistoryDropsBeyondOneTransaction(t *testing.T) {
	c := servertest.ConsulAgent(t)
	d := open(t, c.HTTPAddr, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := model.ConfigKey{Namespace: "public", Group: "g", DataID: "many.yaml"}
	wide := backends.WithChange(ctx, backends.Change{Retention: backends.Retention{Versions: 1000, MaxAge: time.Hour}})
	for n := range 70 {
		if _, err := d.PutConfig(wide, model.Config{Key: key, Content: fmt.Appendf(nil, "n: %d", n)}, model.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	one := backends.WithChange(ctx, backends.Change{Author: "trim", Retention: backends.Retention{Versions: 1, MaxAge: time.Hour}})
	last, err := d.PutConfig(one, model.Config{Key: key, Content: []byte("n: last")}, model.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	vs, _, err := d.ConfigHistory(ctx, key, backends.ReadOptions{})
	if err != nil || len(vs) != 1 || vs[0].Number != 71 || vs[0].Revision != last.Revision || vs[0].Author != "trim" {
		t.Fatalf("history after a write keeping 1 of 71 versions: %+v (%v), want version 71 only", vs, err)
	}
	if _, err := d.ConfigVersion(ctx, key, 70, backends.ReadOptions{}); err == nil {
		t.Error("version 70 is still readable")
	}
	plain := plainClient(t, c.HTTPAddr)
	left, _, err := plain.KV().Keys("junction/config-history/public/g/many.yaml/v/", "", &api.QueryOptions{RequireConsistent: true})
	if err != nil || len(left) != 1 {
		t.Errorf("records left in the KV store: %v (%v), want 1", left, err)
	}

	sys := model.ConfigKey{Namespace: model.SystemNamespace, Group: "g", DataID: "lease"}
	if _, err := d.PutConfig(ctx, model.Config{Key: sys, Content: []byte("x")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteConfig(ctx, sys, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if keys, _, err := plain.KV().Keys("junction/config-history/"+model.SystemNamespace+"/", "", nil); err != nil || len(keys) != 0 {
		t.Errorf("history of a system item: %v (%v), want none", keys, err)
	}
}

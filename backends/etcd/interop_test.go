package etcd_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// An instance registered through Junction is read by etcd's own endpoints
// manager (what grpc-go's etcd resolver uses), and an endpoint written by it
// is visible through Junction.
func TestInteropWithEndpointsManager(t *testing.T) {
	d, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "greeter"}
	target := "/jtest/services/public/DEFAULT_GROUP/greeter"

	i := model.Instance{IP: "10.0.0.7", Port: 50051, Weight: 3, Healthy: true, Enabled: true,
		Metadata: map[string]string{"zone": "a"}}
	if err := i.Normalize(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Register(ctx, svc, i); err != nil {
		t.Fatal(err)
	}
	em, err := endpoints.NewManager(d.Client(), target)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := em.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ep, ok := eps[target+"/10.0.0.7:50051"]
	if !ok || ep.Addr != "10.0.0.7:50051" {
		t.Fatalf("etcd's endpoints manager sees %v, want 10.0.0.7:50051", eps)
	}
	meta, _ := json.Marshal(ep.Metadata)
	var got model.Instance
	if err := json.Unmarshal(meta, &got); err != nil || got.Weight != 3 || got.Metadata["zone"] != "a" {
		t.Fatalf("endpoint metadata %s does not carry the Junction instance", meta)
	}

	// Written by etcd's own client, with a lease, in the endpoints format.
	lease, err := d.Client().Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if err := em.AddEndpoint(ctx, target+"/native-1", endpoints.Endpoint{Addr: "10.0.0.8:50052"}, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	list, _, err := d.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var native *model.Instance
	for n := range list {
		if list[n].ID == "native-1" {
			native = &list[n]
		}
	}
	if len(list) != 2 || native == nil || native.IP != "10.0.0.8" || native.Port != 50052 || !native.Ephemeral || !native.Healthy {
		t.Fatalf("Junction sees %+v, want the native endpoint as an ephemeral, healthy instance", list)
	}
}

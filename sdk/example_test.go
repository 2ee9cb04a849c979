package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

// Register an instance; the client keeps it registered until Close.
func ExampleClient_Register() {
	ctx := context.Background()
	c, err := sdk.New(ctx, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("example-register"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	reg, err := c.Register(ctx, "orders", model.Instance{IP: "10.0.0.5", Port: 8080,
		Metadata: map[string]string{"version": "1.4.2"}})
	if err != nil {
		panic(err)
	}
	fmt.Println("registered", reg.Instance().ID, "ephemeral:", reg.Instance().Ephemeral)
	// Output: registered 10.0.0.5:8080 ephemeral: true
}

// Subscribe to a service and follow its instances.
func ExampleClient_Subscribe() {
	ctx := context.Background()
	c, err := sdk.New(ctx, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("example-subscribe"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	sub, err := c.Subscribe(ctx, "payments")
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	fmt.Println("instances at start:", len((<-sub.Updates()).Instances))

	if _, err := c.Register(ctx, "payments", model.Instance{IP: "10.0.0.7", Port: 9090}); err != nil {
		panic(err)
	}
	snap := <-sub.Updates()
	fmt.Println("added:", snap.Added[0].ID)
	// Output:
	// instances at start: 0
	// added: 10.0.0.7:9090
}

// Publish configuration with compare-and-set.
func ExampleClient_PublishConfig() {
	ctx := context.Background()
	c, err := sdk.New(ctx, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("example-config"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	v1, err := c.PublishConfig(ctx, "app.yaml", []byte("replicas: 2\n"), sdk.ContentType("yaml"), sdk.IfRevision(0))
	if err != nil {
		panic(err)
	}
	// A writer holding an old revision loses, and is told so.
	_, err = c.PublishConfig(ctx, "app.yaml", []byte("replicas: 3\n"), sdk.IfRevision(v1.Revision-1))
	fmt.Println("stale write conflicts:", errors.Is(err, model.ErrConflict))

	got, err := c.GetConfig(ctx, "app.yaml")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q version %d from %s\n", got.Content, got.Version, got.Source)
	// Output:
	// stale write conflicts: true
	// "replicas: 2\n" version 1 from server
}

// Find who changed a configuration item and roll a bad change back.
func ExampleClient_RollbackConfig() {
	ctx := context.Background()
	c, err := sdk.New(ctx, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("example-history"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	if _, err := c.PublishConfig(ctx, "app.yaml", []byte("replicas: 2\n"), sdk.ContentType("yaml")); err != nil {
		panic(err)
	}
	bad, err := c.PublishConfig(ctx, "app.yaml", []byte("replicas: 0\n"), sdk.Message("scale down for the night"))
	if err != nil {
		panic(err)
	}
	diff, err := c.DiffConfig(ctx, "app.yaml", 0, 0) // the last two versions
	if err != nil {
		panic(err)
	}
	fmt.Print(diff)

	// Roll back to version 1, unless someone changed the item meanwhile.
	if _, err := c.RollbackConfig(ctx, "app.yaml", 1, sdk.IfRevision(bad.Revision)); err != nil {
		panic(err)
	}
	versions, err := c.ConfigHistory(ctx, "app.yaml")
	if err != nil {
		panic(err)
	}
	for _, v := range versions {
		fmt.Println(v.Number, v.Op, v.Message)
	}
	// Output:
	// --- app.yaml@1
	// +++ app.yaml@2
	// @@ -1 +1 @@
	// -replicas: 2
	// +replicas: 0
	// 3 update rollback to version 1
	// 2 update scale down for the night
	// 1 create
}

// Give an instance a health check: the gateways probe it and set its
// healthy flag. Here nothing listens on the checked port, so the instance
// turns unhealthy after one failed probe (fall 1).
func ExampleWithHealthCheck() {
	ctx := context.Background()
	c, err := sdk.New(ctx, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("example-health"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := lis.Addr().String()
	lis.Close()
	_, err = c.Register(ctx, "orders", model.Instance{IP: "10.0.0.5", Port: 8080}, sdk.Persistent(),
		sdk.WithHealthCheck(health.Check{Kind: health.TCP, Target: closed, Interval: 100 * time.Millisecond, Fall: 1}))
	if err != nil {
		panic(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		insts, _, err := c.Instances(ctx, "orders")
		if err == nil && len(insts) == 1 && !insts[0].Healthy {
			fmt.Println(insts[0].ID, "healthy:", insts[0].Healthy)
			break
		}
	}
	// Output: 10.0.0.5:8080 healthy: false
}

// Connect with a token to a server run with --auth: the token's policies
// decide, and a refusal is model.ErrPermissionDenied.
func ExampleWithToken() {
	ctx := context.Background()
	c, err := sdk.New(ctx, sdk.WithAddrs(authGatewayAddr), sdk.WithToken(readerToken), sdk.WithNamespace("prod"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	cfg, err := c.GetConfig(ctx, "app.yaml")
	if err != nil {
		panic(err)
	}
	fmt.Print("read: ", string(cfg.Content))
	_, err = c.PublishConfig(ctx, "app.yaml", []byte("replicas: 30\n"))
	fmt.Println("write refused:", errors.Is(err, model.ErrPermissionDenied))
	// Output:
	// read: replicas: 3
	// write refused: true
}

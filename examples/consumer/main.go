// Command consumer calls a service found through Junction, with grpc-go's
// round-robin balancing over the instances the subscription reports; start
// and stop providers while it runs and watch it follow them.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/junctionhq/junction/sdk"
)

func main() {
	gateway := flag.String("junction", "127.0.0.1:7480", "Junction gateway address")
	service := flag.String("service", "greeter", "service to call")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *gateway, *service); err != nil {
		slog.Error("consumer failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, gateway, service string) error {
	c, err := sdk.New(ctx, sdk.WithAddrs(gateway))
	if err != nil {
		return err
	}
	defer c.Close()
	conn, err := grpc.NewClient("junction:///public/DEFAULT_GROUP/"+service, grpc.WithResolvers(c.Resolver()),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var p peer.Peer
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := health.Check(callCtx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
		cancel()
		if err != nil {
			slog.Warn("call failed", "err", err)
		} else {
			slog.Info("called", "instance", p.Addr.String(), "status", resp.Status.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

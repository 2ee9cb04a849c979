// Command provider is a gRPC server that registers itself in Junction and
// stays registered until interrupted. Run several, then the consumer:
//
//	go run ./examples/provider -listen 127.0.0.1:9001
//	go run ./examples/provider -listen 127.0.0.1:9002
//	go run ./examples/consumer
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

func main() {
	gateway := flag.String("junction", "127.0.0.1:7480", "Junction gateway address")
	listen := flag.String("listen", "127.0.0.1:9001", "address to serve on")
	service := flag.String("service", "greeter", "service name to register")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *gateway, *listen, *service); err != nil {
		slog.Error("provider failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, gateway, listen, service string) error {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.GracefulStop()

	c, err := sdk.New(ctx, sdk.WithAddrs(gateway),
		sdk.WithStateListener(func(s sdk.State, err error) { slog.Info("registration", "state", s.String(), "err", err) }))
	if err != nil {
		return err
	}
	defer c.Close() // deregisters
	host, portStr, _ := net.SplitHostPort(lis.Addr().String())
	port, _ := strconv.Atoi(portStr)
	reg, err := c.Register(ctx, service, model.Instance{IP: host, Port: port, Metadata: map[string]string{"protocol": "grpc"}})
	if err != nil {
		return err
	}
	slog.Info("serving and registered", "service", service, "instance", reg.Instance().ID)
	<-ctx.Done()
	return nil
}

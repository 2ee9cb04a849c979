// Command junction is Junction's one binary: the server (`junction server`)
// and the command-line client for services, configuration and status.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	pb "github.com/junctionhq/junction/api/junction/v1"
)

func main() {
	// The first SIGINT or SIGTERM ends ctx: the server shuts down within
	// its --shutdown-timeout. Then the signals get their default action
	// back, so that a second one ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "junction:", describe(err))
		os.Exit(1)
	}
}

// describe renders an error for people: the server's message, not gRPC's framing.
func describe(err error) string {
	return pb.Error(err).Error()
}

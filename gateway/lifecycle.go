package gateway

import (
	"context"
	"path"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errShuttingDown ends the streams of a gateway that is shutting down, as
// UNAVAILABLE: a client retries it, at another gateway where it has one
// (the SDK's WithAddrs).
var errShuttingDown = status.Error(codes.Unavailable, "junction is shutting down: reconnect, to another server if there is one")

// drainer ends the open streams (watches, the console's live lists) of a
// gateway that begins to shut down, so that their clients reconnect
// elsewhere at once rather than when the connection drops.
type drainer struct {
	ctx   context.Context // done once draining began
	begin context.CancelFunc
	once  sync.Once
}

func newDrainer() *drainer {
	ctx, cancel := context.WithCancel(context.Background())
	return &drainer{ctx: ctx, begin: cancel}
}

// drain ends every stream, open and to come.
func (d *drainer) drain() { d.once.Do(d.begin) }

// stream is the gRPC stream interceptor: the stream's context ends when
// draining begins, and a stream the drain ended, its client still there,
// ends with errShuttingDown.
func (d *drainer) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if d.ctx.Err() != nil {
		return errShuttingDown
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel)
	defer stop()
	err := handler(srv, drainedStream{ss, ctx})
	if d.ctx.Err() != nil && ss.Context().Err() == nil {
		return errShuttingDown
	}
	return err
}

type drainedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s drainedStream) Context() context.Context { return s.ctx }

// logUnary and logStream log each request at debug level: its method, its
// result's reason and how long it took.
func (s *Server) logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	s.log.Debug("request", "method", path.Base(info.FullMethod), "result", reasonOf(err), "took", time.Since(start), "client", clientAddr(ctx))
	return resp, err
}

func (s *Server) logStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	s.log.Debug("stream", "method", path.Base(info.FullMethod), "result", reasonOf(err), "took", time.Since(start), "client", clientAddr(ss.Context()))
	return err
}

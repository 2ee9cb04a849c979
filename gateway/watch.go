package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// MaxStreamWatches bounds the live watches of one WatchService stream: a
// create beyond it ends that watch with TOO_LARGE (open another stream).
const MaxStreamWatches = 10000

// watchService serves many watches on one stream. Each watch is the
// single-stream call it stands for (watchInstances, watchConfig), admitted
// by the authorizer as that call, and runs in a goroutine of its own that
// hands its responses to the stream's one sender: a watch costs a small
// goroutine and its hub cursor, not a gRPC stream.
type watchService struct {
	pb.UnimplementedWatchServiceServer
	reg *registryService
	cfg *configService
}

// muxWatch is one live watch of a stream.
type muxWatch struct {
	end       context.CancelFunc
	cancelled bool // by the client: it ends with OK, whatever its cause
}

// Watch implements pb.WatchServiceServer.
func (ws *watchService) Watch(stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	reqs := make(chan *pb.WatchRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	// One goroutine (this one) owns the watches and sends every response;
	// each watch's goroutine hands it its responses through out, the last
	// being its ended.
	out := make(chan *pb.WatchResponse, 128)
	watches := map[int64]*muxWatch{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			if !errors.Is(err, io.EOF) {
				return err
			}
			// The client sends no more requests: its watches go on
			// until it goes away.
			recvErr = nil
		case req := <-reqs:
			var resp *pb.WatchResponse
			switch r := req.Request.(type) {
			case *pb.WatchRequest_Create:
				id := r.Create.WatchId
				if _, live := watches[id]; live {
					return model.Invalid("create.watchId", "%d is a live watch of this stream", id)
				}
				if len(watches) >= MaxStreamWatches {
					resp = ended(id, fmt.Errorf("the stream holds %d watches, the most one may: open another stream: %w",
						MaxStreamWatches, model.ErrTooLarge))
					break
				}
				w, err := ws.open(ctx, r.Create, out)
				if err != nil {
					resp = ended(id, err)
					break
				}
				watches[id] = w
			case *pb.WatchRequest_Cancel:
				if w := watches[r.Cancel.WatchId]; w != nil && !w.cancelled {
					w.cancelled = true
					w.end()
				}
			default:
				return model.Invalid("request", "is neither create nor cancel")
			}
			if resp != nil {
				if err := stream.Send(resp); err != nil {
					return err
				}
			}
		case resp := <-out:
			if e, ok := resp.Response.(*pb.WatchResponse_Ended); ok {
				if w := watches[resp.WatchId]; w != nil && w.cancelled {
					e.Ended = pb.NewWatchEnded(nil)
				}
				delete(watches, resp.WatchId)
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
	}
}

// open admits and starts one watch; its goroutine ends by handing its
// ended response to out (or when the stream ends).
func (ws *watchService) open(ctx context.Context, req *pb.WatchCreateRequest, out chan<- *pb.WatchResponse) (*muxWatch, error) {
	id := req.WatchId
	var method string
	var target any
	var serve func(ctx context.Context, ready func() error) error
	post := func(watch context.Context, resp *pb.WatchResponse) error {
		resp.WatchId = id
		if watch.Err() != nil {
			return context.Cause(watch) // cut: nothing more is sent
		}
		select {
		case out <- resp:
			return nil
		case <-watch.Done():
			return context.Cause(watch)
		}
	}
	switch t := req.Target.(type) {
	case *pb.WatchCreateRequest_Instances:
		if t.Instances == nil {
			return nil, model.Invalid("create.instances", "is missing")
		}
		method, target = pb.RegistryService_WatchInstances_FullMethodName, t.Instances
		serve = func(watch context.Context, ready func() error) error {
			return ws.reg.watchInstances(watch, t.Instances, ready, func(e *pb.InstanceEvent) error {
				return post(watch, &pb.WatchResponse{Response: &pb.WatchResponse_Instance{Instance: e}})
			})
		}
	case *pb.WatchCreateRequest_Config:
		if t.Config == nil {
			return nil, model.Invalid("create.config", "is missing")
		}
		method, target = pb.ConfigService_WatchConfig_FullMethodName, t.Config
		serve = func(watch context.Context, ready func() error) error {
			return ws.cfg.watchConfig(watch, t.Config, ready, func(e *pb.ConfigEvent) error {
				return post(watch, &pb.WatchResponse{Response: &pb.WatchResponse_Config{Config: e}})
			})
		}
	default:
		return nil, model.Invalid("create.target", "names neither instances nor config")
	}
	watch, end, err := admit(ctx, method, target)
	if err != nil {
		return nil, err
	}
	go func() {
		defer end()
		err := serve(watch, func() error {
			return post(watch, &pb.WatchResponse{Response: &pb.WatchResponse_Created{Created: &pb.WatchCreated{}}})
		})
		if cause := context.Cause(watch); watch.Err() != nil && cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause // cut by the authorizer: its denial
		}
		select {
		case out <- &pb.WatchResponse{WatchId: id, Response: &pb.WatchResponse_Ended{Ended: pb.NewWatchEnded(err)}}:
		case <-ctx.Done():
		}
	}()
	return &muxWatch{end: end}, nil
}

// ended is the response that ends watch id with err.
func ended(id int64, err error) *pb.WatchResponse {
	return &pb.WatchResponse{WatchId: id, Response: &pb.WatchResponse_Ended{Ended: pb.NewWatchEnded(err)}}
}

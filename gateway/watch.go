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
	ctx       context.Context // ends when the watch is cancelled or cut
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
	halfClosed := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			if !errors.Is(err, io.EOF) {
				return err
			}
			// The client sends no more requests: its watches go on
			// until it goes away, or until the last one ends.
			recvErr, halfClosed = nil, true
			if len(watches) == 0 {
				return nil
			}
		case req := <-reqs:
			var resp *pb.WatchResponse
			switch r := req.Request.(type) {
			case *pb.WatchRequest_Create:
				if r.Create == nil {
					return model.Invalid("create", "is empty")
				}
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
				if w := watches[r.Cancel.GetWatchId()]; w != nil && !w.cancelled {
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
			w := watches[resp.WatchId]
			if e, ok := resp.Response.(*pb.WatchResponse_Ended); ok {
				if w != nil && w.cancelled {
					e.Ended = pb.NewWatchEnded(nil)
				}
				delete(watches, resp.WatchId)
			} else if w == nil || w.ctx.Err() != nil {
				break // queued before its watch was cancelled or cut: dropped
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
			if halfClosed && len(watches) == 0 {
				return nil
			}
		}
	}
}

// open admits and starts one watch; its goroutine ends by handing its
// ended response to out (or when the stream ends).
func (ws *watchService) open(ctx context.Context, req *pb.WatchCreateRequest, out chan<- *pb.WatchResponse) (*muxWatch, error) {
	switch t := req.Target.(type) {
	case *pb.WatchCreateRequest_Instances:
		if t.Instances == nil {
			return nil, model.Invalid("create.instances", "is missing")
		}
		key, err := instancesTopic(t.Instances)
		if err != nil {
			return nil, err
		}
		watch, end, err := admit(ctx, pb.RegistryService_WatchInstances_FullMethodName, t.Instances)
		if err != nil {
			return nil, err
		}
		w := &sink{stream: ctx, watch: watch, id: req.WatchId, out: out}
		go w.instances(ws.reg.s.hub, key, t.Instances.Revision, end)
		return &muxWatch{ctx: watch, end: end}, nil
	case *pb.WatchCreateRequest_Config:
		if t.Config == nil {
			return nil, model.Invalid("create.config", "is missing")
		}
		watch, end, err := admit(ctx, pb.ConfigService_WatchConfig_FullMethodName, t.Config)
		if err != nil {
			return nil, err
		}
		w := &sink{stream: ctx, watch: watch, id: req.WatchId, out: out}
		go func() {
			defer end()
			w.ended(ws.cfg.watchConfig(watch, t.Config, w.created, func(e *pb.ConfigEvent) error {
				return w.post(&pb.WatchResponse{Response: &pb.WatchResponse_Config{Config: e}})
			}))
		}()
		return &muxWatch{ctx: watch, end: end}, nil
	}
	return nil, model.Invalid("create.target", "names neither instances nor config")
}

// sink is where one watch's goroutine hands its responses: the stream's
// sender, through out.
type sink struct {
	stream, watch context.Context
	id            int64
	out           chan<- *pb.WatchResponse
}

// instances serves a watch of instances. It is its goroutine's top frame,
// and serveWatch waits in its own: a watch parked between changes keeps
// a small stack.
func (w *sink) instances(h *hub, key topicKey, from int64, end context.CancelFunc) {
	defer end()
	w.ended(serveWatch(w.watch, h, key, from, w.created, w.instance))
}

func (w *sink) instance(e *model.Event) error {
	return w.post(&pb.WatchResponse{Response: &pb.WatchResponse_Instance{Instance: pb.NewInstanceEvent(*e)}})
}

func (w *sink) created() error {
	return w.post(&pb.WatchResponse{Response: &pb.WatchResponse_Created{Created: &pb.WatchCreated{}}})
}

// post hands a response to the sender, unless the watch has ended.
func (w *sink) post(resp *pb.WatchResponse) error {
	resp.WatchId = w.id
	if w.watch.Err() != nil {
		return context.Cause(w.watch) // cut: nothing more is sent
	}
	select {
	case w.out <- resp:
		return nil
	case <-w.watch.Done():
		return context.Cause(w.watch)
	}
}

// ended hands over the watch's last response: how it ended.
func (w *sink) ended(err error) {
	if cause := context.Cause(w.watch); w.watch.Err() != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause // cut by the authorizer: its denial
	}
	select {
	case w.out <- ended(w.id, err):
	case <-w.stream.Done():
	}
}

// ended is the response that ends watch id with err.
func ended(id int64, err error) *pb.WatchResponse {
	return &pb.WatchResponse{WatchId: id, Response: &pb.WatchResponse_Ended{Ended: pb.NewWatchEnded(err)}}
}

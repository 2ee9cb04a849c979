package sdk

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// watchesPerStream is how many watches the client carries on one
// WatchService stream before it opens another.
const watchesPerStream = 1000

// muxer carries the client's subscriptions as watches of WatchService
// streams, many to a stream, instead of a stream each: a gateway holds a
// watch for a fraction of a stream's memory. Against a gateway without
// WatchService (an older one) it falls back to a stream per watch.
type muxer struct {
	c *Client

	mu  sync.Mutex
	cur *muxStream // where new watches go, until it is full or ends
	// oldUntil: the gateway answered UNIMPLEMENTED; until then, watches
	// take a stream each (a rolling upgrade may bring WatchService later).
	oldUntil time.Time
}

// retryMux is how long the client takes a gateway for one without
// WatchService once it said so.
const retryMux = time.Minute

// muxStream is one WatchService stream and its watches.
type muxStream struct {
	m      *muxer
	s      grpc.BidiStreamingClient[pb.WatchRequest, pb.WatchResponse]
	cancel context.CancelFunc
	sendMu sync.Mutex // one Send at a time

	mu      sync.Mutex // guards what follows
	watches map[int64]*muxWatch
	opened  int64         // watch ids are never used twice on a stream
	err     error         // the stream's end
	done    chan struct{} // closed once err is set
}

// muxWatch is one watch of a stream, read like a stream of its own.
type muxWatch struct {
	st     *muxStream
	id     int64
	events chan *pb.WatchResponse
	gone   chan struct{} // closed when the watch is cancelled or its stream ends
	once   sync.Once
	err    error // why it is gone, set before gone is closed
}

// instanceStream is what a subscription reads its events from: a
// WatchInstances stream, or a watch of a multiplexed one.
type instanceStream interface {
	Recv() (*pb.InstanceEvent, error)
}

// watchInstances opens a watch of req, until ctx ends or stop is called.
func (m *muxer) watchInstances(ctx context.Context, req *pb.WatchInstancesRequest) (s instanceStream, stop func(), err error) {
	m.mu.Lock()
	unsupported := time.Now().Before(m.oldUntil)
	m.mu.Unlock()
	if unsupported {
		ctx, cancel := context.WithCancel(ctx)
		s, err := m.c.reg.WatchInstances(ctx, req)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		return s, cancel, nil
	}
	w, err := m.open(&pb.WatchCreateRequest{Target: &pb.WatchCreateRequest_Instances{Instances: req}})
	if err != nil {
		return nil, nil, err
	}
	after := context.AfterFunc(ctx, func() { w.close(ctx.Err()) })
	return w, func() {
		after()
		w.close(context.Canceled)
	}, nil
}

// open starts a watch on the current stream, opening one when there is
// none or it is full.
func (m *muxer) open(req *pb.WatchCreateRequest) (*muxWatch, error) {
	m.mu.Lock()
	st := m.cur
	if st != nil {
		st.mu.Lock()
		full := st.err != nil || len(st.watches) >= watchesPerStream
		st.mu.Unlock()
		if full {
			st = nil
		}
	}
	if st == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := pb.NewWatchServiceClient(m.c.conn).Watch(ctx)
		if err != nil {
			cancel()
			if status.Code(err) == codes.Unimplemented {
				m.oldUntil = time.Now().Add(retryMux)
			}
			m.mu.Unlock()
			return nil, err
		}
		st = &muxStream{m: m, s: s, cancel: cancel, watches: map[int64]*muxWatch{}, done: make(chan struct{})}
		m.cur = st
		go st.receive()
	}
	m.mu.Unlock()

	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return nil, st.err
	}
	st.opened++
	w := &muxWatch{st: st, id: st.opened, events: make(chan *pb.WatchResponse, 16), gone: make(chan struct{})}
	st.watches[w.id] = w
	st.mu.Unlock()
	req.WatchId = w.id
	if err := st.send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: req}}); err != nil {
		if errors.Is(err, io.EOF) {
			// The gateway ended the stream (refused the token, say): its
			// status is what the stream's receive gets.
			<-st.done
			err = st.err
		}
		w.close(err)
		return nil, err
	}
	return w, nil
}

func (st *muxStream) send(req *pb.WatchRequest) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	return st.s.Send(req)
}

// receive hands each response to its watch until the stream ends, then
// ends every watch with the stream's error.
func (st *muxStream) receive() {
	for {
		resp, err := st.s.Recv()
		if err != nil {
			st.end(err)
			return
		}
		st.mu.Lock()
		w := st.watches[resp.WatchId]
		ended := resp.GetEnded()
		if ended != nil {
			// The gateway dropped it: no cancel is sent. This goroutine
			// never sends, so it always reads, and a gateway blocked
			// sending to it always gets unblocked.
			delete(st.watches, resp.WatchId)
		}
		st.mu.Unlock()
		if w == nil {
			continue // cancelled
		}
		if ended != nil {
			w.close(cmp.Or(ended.Err(), errWatchEnded))
			continue
		}
		select {
		case w.events <- resp:
		case <-w.gone:
		}
	}
}

// errWatchEnded is how a watch the gateway ended without an error (it
// does not, unless asked) ends.
var errWatchEnded = fmt.Errorf("the gateway ended the watch: %w", model.ErrUnavailable)

func (st *muxStream) end(err error) {
	st.cancel()
	st.mu.Lock()
	st.err = err
	watches := st.watches
	st.watches = map[int64]*muxWatch{}
	st.mu.Unlock()
	close(st.done)
	if status.Code(err) == codes.Unimplemented {
		st.m.mu.Lock()
		st.m.oldUntil = time.Now().Add(retryMux)
		st.m.mu.Unlock()
	}
	st.m.mu.Lock()
	if st.m.cur == st {
		st.m.cur = nil
	}
	st.m.mu.Unlock()
	for _, w := range watches {
		w.close(err)
	}
}

// close ends the watch with err: it is cancelled on the stream, unless the
// stream ended; a stream no longer current and left with no watch is
// closed.
func (w *muxWatch) close(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.gone)
		st := w.st
		st.mu.Lock()
		_, live := st.watches[w.id]
		delete(st.watches, w.id)
		idle := len(st.watches) == 0
		st.mu.Unlock()
		if live {
			_ = st.send(&pb.WatchRequest{Request: &pb.WatchRequest_Cancel{Cancel: &pb.WatchCancelRequest{WatchId: w.id}}})
		}
		st.m.mu.Lock()
		retired := st.m.cur != st
		st.m.mu.Unlock()
		if idle && retired {
			st.cancel()
		}
	})
}

// Recv implements instanceStream: the watch's next instance event, or
// why it ended.
func (w *muxWatch) Recv() (*pb.InstanceEvent, error) {
	for {
		select {
		case resp := <-w.events:
			if ev := resp.GetInstance(); ev != nil {
				return ev, nil
			}
		case <-w.gone:
			return nil, w.err
		}
	}
}

// close stops every stream.
func (m *muxer) close() {
	m.mu.Lock()
	st := m.cur
	m.cur = nil
	m.mu.Unlock()
	if st != nil {
		st.cancel()
	}
}

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
)

// Gateway drives a Junction gateway over gRPC.
type Gateway struct {
	reg              pb.RegistryServiceClient
	cfg              pb.ConfigServiceClient
	watch            pb.WatchServiceClient
	namespace, group string
}

// NewGateway returns a client of the gateway behind conn, working in
// namespace and group (empty: the defaults). Close does not close conn.
func NewGateway(conn grpc.ClientConnInterface, namespace, group string) *Gateway {
	return &Gateway{reg: pb.NewRegistryServiceClient(conn), cfg: pb.NewConfigServiceClient(conn), watch: pb.NewWatchServiceClient(conn),
		namespace: namespace, group: group}
}

// Prepare implements Client.
func (g *Gateway) Prepare(ctx context.Context, workload string, o Options) (Op, func(), error) {
	return prepare(ctx, g, workload, o)
}

// Close implements Client.
func (g *Gateway) Close() error { return nil }

func (g *Gateway) supports(string) error { return nil }

func (g *Gateway) newSession(ctx context.Context) (string, error) {
	s, err := g.reg.CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(30 * time.Second)})
	return s.GetId(), err
}

func (g *Gateway) closeSession(ctx context.Context, id string) {
	_, _ = g.reg.DeleteSession(ctx, &pb.DeleteSessionRequest{Id: id})
}

func (g *Gateway) registerIn(ctx context.Context, service string, k int64, session string, meta map[string]string) error {
	_, err := g.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: g.namespace, Group: g.group, Service: service,
		Ip: ip(k), Port: 80, Session: session, Metadata: meta})
	return err
}

func (g *Gateway) register(ctx context.Context, o Options, k int64, session string) error {
	return g.registerIn(ctx, o.Service, k, session, nil)
}

func (g *Gateway) keepAlive(ctx context.Context, session string) error {
	_, err := g.reg.KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: session})
	return err
}

func (g *Gateway) seedList(ctx context.Context, o Options, k int64) error {
	return g.registerIn(ctx, listService(o), k, "", nil)
}

func (g *Gateway) list(ctx context.Context, o Options) error {
	_, err := g.reg.ListInstances(ctx, &pb.ListInstancesRequest{Namespace: g.namespace, Group: g.group, Service: listService(o), Stale: o.Stale})
	return err
}

func (g *Gateway) putConfig(ctx context.Context, o Options, k int, value string) error {
	_, err := g.cfg.PutConfig(ctx, &pb.PutConfigRequest{Namespace: g.namespace, Group: g.group, DataId: configID(o, k), Content: value})
	return err
}

func (g *Gateway) getConfig(ctx context.Context, o Options, k int) error {
	_, err := g.cfg.GetConfig(ctx, &pb.GetConfigRequest{Namespace: g.namespace, Group: g.group, DataId: configID(o, k), Stale: o.Stale})
	return err
}

// Subscribe implements Fanout: n gRPC watch streams of one service.
func (g *Gateway) Subscribe(ctx context.Context, o Options, n int, arrived func(seq string)) error {
	streams := make([]pb.RegistryService_WatchInstancesClient, 0, n)
	for range n {
		s, err := g.reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Namespace: g.namespace, Group: g.group, Service: o.Service + "-watch"})
		if err != nil {
			return err
		}
		streams = append(streams, s)
	}
	// Each stream begins with a RESET of the current state; once it has
	// arrived the subscriber is attached.
	for _, s := range streams {
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
	for _, s := range streams {
		go follow(s, arrived)
	}
	return nil
}

// follow calls arrived with the "seq" metadata of every instance the
// stream's events carry (one, or a RESET's every one), until it ends.
func follow(s pb.RegistryService_WatchInstancesClient, arrived func(seq string)) {
	for {
		ev, err := s.Recv()
		if err != nil {
			return
		}
		arrivedIn(ev, arrived)
	}
}

func arrivedIn(ev *pb.InstanceEvent, arrived func(seq string)) {
	for _, in := range append([]*pb.Instance{ev.GetInstance()}, ev.GetInstances()...) {
		if seq, ok := in.GetMetadata()["seq"]; ok {
			arrived(seq)
		}
	}
}

// WatchesPerStream is how many subscribers Multiplexed carries on each
// WatchService stream.
const WatchesPerStream = 1000

// Multiplexed is a Fanout over a gateway's WatchService: its subscribers
// are watches carried WatchesPerStream to a stream, as a client following
// many services would carry them.
type Multiplexed struct{ *Gateway }

// Subscribe implements Fanout: n watches of one service, on as few
// WatchService streams as carry them.
func (m Multiplexed) Subscribe(ctx context.Context, o Options, n int, arrived func(seq string)) error {
	for first := 0; first < n; first += WatchesPerStream {
		k := min(WatchesPerStream, n-first)
		s, err := m.watch.Watch(ctx)
		if err != nil {
			return err
		}
		for id := range k {
			if err := s.Send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: &pb.WatchCreateRequest{WatchId: int64(id),
				Target: &pb.WatchCreateRequest_Instances{Instances: &pb.WatchInstancesRequest{Namespace: m.namespace, Group: m.group,
					Service: o.Service + "-watch"}}}}}); err != nil {
				return err
			}
		}
		// Each watch begins with created and a RESET of the current
		// state; once every one's RESET has arrived, the stream's
		// subscribers are attached.
		for resets := 0; resets < k; {
			resp, err := s.Recv()
			if err != nil {
				return err
			}
			if e := resp.GetEnded(); e != nil {
				return fmt.Errorf("watch %d ended: %w", resp.WatchId, e.Err())
			}
			if resp.GetInstance().GetType() == pb.EventType_RESET {
				resets++
			}
		}
		go func() {
			for {
				resp, err := s.Recv()
				if err != nil {
					return
				}
				arrivedIn(resp.GetInstance(), arrived)
			}
		}()
	}
	return nil
}

// Update implements Fanout: it re-registers one instance with new metadata.
func (g *Gateway) Update(ctx context.Context, o Options, seq string) error {
	return g.registerIn(ctx, o.Service+"-watch", 0xff0001, "", map[string]string{"seq": seq})
}

// MemoryFromMetrics reads the memory in use of the gateway at addr, heap
// and goroutine stacks (go_memstats_heap_inuse_bytes and
// go_memstats_stack_inuse_bytes on its /metrics), for Options.ServerMemory.
func MemoryFromMetrics(addr string) func(ctx context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
		if err != nil {
			return 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		var total float64
		found := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			name, v, _ := strings.Cut(sc.Text(), " ")
			if name == "go_memstats_heap_inuse_bytes" || name == "go_memstats_stack_inuse_bytes" {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return 0, fmt.Errorf("%s: %w", name, err)
				}
				total += f
				found++
			}
		}
		if err := sc.Err(); err != nil {
			return 0, err
		}
		if found != 2 {
			return 0, errors.New("/metrics lacks go_memstats_heap_inuse_bytes or go_memstats_stack_inuse_bytes")
		}
		return uint64(total), nil
	}
}

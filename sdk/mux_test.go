package sdk_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/sdk"
)

// streams counts the streams a client opens, by method.
type streams struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *streams) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[method]
}

func (s *streams) interceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s.mu.Lock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[method]++
	s.mu.Unlock()
	return streamer(ctx, desc, cc, method, opts...)
}

// A client's subscriptions share WatchService streams, a thousand to a
// stream: 1,500 of them open two streams and no stream of their own. Each
// sees its own service's changes; closed ones leave the gateway, and the
// rest go on.
func TestSubscriptionsShareStreams(t *testing.T) {
	g := mustGateway(t, t.TempDir(), "127.0.0.1:0")
	t.Cleanup(g.stop)
	var opened streams
	c := newClient(t, sdk.WithAddrs(g.addr), sdk.WithNamespace("mux"), sdk.WithDialOptions(grpc.WithChainStreamInterceptor(opened.interceptor)))
	ctx := ctxT(t)
	const n, services = 1500, 3
	subs := make([]*sdk.Subscription, n)
	for i := range subs {
		var err error
		if subs[i], err = c.Subscribe(ctx, fmt.Sprintf("svc-%d", i%services)); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + g.addr
	servertest.WaitGauge(t, base, "junction_watch_subscribers", n)
	if got, single := opened.count(pb.WatchService_Watch_FullMethodName), opened.count(pb.RegistryService_WatchInstances_FullMethodName); got != 2 || single != 0 {
		t.Errorf("%d subscriptions opened %d WatchService streams and %d WatchInstances streams, want 2 and 0", n, got, single)
	}
	r9001, err := c.Register(ctx, "svc-1", instance(9001), sdk.Persistent())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every subscriber of svc-1 sees the instance, and no other", func() bool {
		for i, s := range subs {
			if has(s.Current(), r9001.Instance().ID) != (i%services == 1) {
				return false
			}
		}
		return true
	})
	for _, s := range subs[:1000] {
		s.Close()
	}
	servertest.WaitGauge(t, base, "junction_watch_subscribers", n-1000)
	r9002, err := c.Register(ctx, "svc-2", instance(9002), sdk.Persistent())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the open subscribers of svc-2 see the instance", func() bool {
		for i, s := range subs[1000:] {
			if (1000+i)%services == 2 && !has(s.Current(), r9002.Instance().ID) {
				return false
			}
		}
		return true
	})
}

// unimplemented makes WatchService streams fail as a gateway without it
// (an older one) fails them: the stream opens, and its first receive says
// UNIMPLEMENTED.
func unimplemented(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if method != pb.WatchService_Watch_FullMethodName {
		return streamer(ctx, desc, cc, method, opts...)
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return oldGateway{s}, nil
}

type oldGateway struct{ grpc.ClientStream }

func (oldGateway) RecvMsg(any) error {
	return status.Error(codes.Unimplemented, "unknown service junction.v1.WatchService")
}

// Against a gateway without WatchService, subscriptions fall back to a
// stream each, and see every change.
func TestSubscribeWithoutWatchService(t *testing.T) {
	var opened streams
	c := newClient(t, sdk.WithAddrs(gatewayAddr), sdk.WithNamespace("mux-old"),
		sdk.WithDialOptions(grpc.WithChainStreamInterceptor(opened.interceptor, unimplemented)))
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	r9101, err := c.Register(ctx, "old", instance(9101), sdk.Persistent())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the subscriber sees the instance", func() bool { return has(sub.Current(), r9101.Instance().ID) })
	if n := opened.count(pb.RegistryService_WatchInstances_FullMethodName); n == 0 {
		t.Errorf("no WatchInstances stream opened")
	}
	sub2, err := c.Subscribe(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	r9102, err := c.Register(ctx, "old", instance(9102), sdk.Persistent())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a second subscriber sees the instance", func() bool { return has(sub2.Current(), r9102.Instance().ID) })
	if n := opened.count(pb.WatchService_Watch_FullMethodName); n != 1 {
		t.Errorf("%d WatchService streams tried, want 1: the client learns the gateway has none", n)
	}
}

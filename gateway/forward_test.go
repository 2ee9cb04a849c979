package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/ports"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// leaderRecorder is a gRPC server standing where a cluster's leader
// gateway would: it records the calls forwarded to it and their metadata.
type leaderRecorder struct {
	pb.UnimplementedRegistryServiceServer
	mu    sync.Mutex
	calls []metadata.MD
}

func (l *leaderRecorder) RegisterInstance(ctx context.Context, _ *pb.RegisterInstanceRequest) (*pb.RegisterInstanceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	l.mu.Lock()
	l.calls = append(l.calls, md)
	l.mu.Unlock()
	return &pb.RegisterInstanceResponse{Revision: 4242}, nil
}

func (l *leaderRecorder) ListInstances(ctx context.Context, _ *pb.ListInstancesRequest) (*pb.ListInstancesResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	l.mu.Lock()
	l.calls = append(l.calls, md)
	l.mu.Unlock()
	return &pb.ListInstancesResponse{Revision: 4242, Consistency: string(model.Linearizable)}, nil
}

func (l *leaderRecorder) seen() []metadata.MD {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]metadata.MD(nil), l.calls...)
}

// followerOf is a store node whose leader is at leader: a built-in store
// (which serves what reaches it) that reports another node as leading.
type followerOf struct {
	*raftstore.Store
	leader string
}

func (f followerOf) Leader() (string, bool) { return f.leader, false }

// The gateway over a follower forwards writes and linearizable reads to
// the leader's gateway, from gRPC and REST alike, as a peer: proven with
// the store's peer secret and naming the caller's accessor, never with
// the caller's own secret; it serves stale reads itself; a call another
// gateway forwarded is never forwarded again; an unreachable leader is
// UNAVAILABLE naming it, not a hang.
func TestForwardingRoutesAndCarriesTheCaller(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &leaderRecorder{}
	leaderSrv := grpc.NewServer()
	pb.RegisterRegistryServiceServer(leaderSrv, rec)
	go func() { _ = leaderSrv.Serve(lis) }()
	defer leaderSrv.Stop()

	// The follower's store holds an ACL with one token that may write.
	store := openStore(ctx, t)
	st, err := acl.NewState()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutPolicy("name: w\nrules:\n  - service: \"*\"\n    access: write\n", "", true); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := st.AddToken("caller", []string{"w"}, time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	content, _ := st.Encode()
	if _, err := store.PutConfig(ctx, model.Config{Key: aclKey, Content: content, ContentType: model.ContentJSON}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Auth = true
	gw, err := ServeLoopback(followerOf{store, lis.Addr().String()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	reg := pb.NewRegistryServiceClient(gw.Conn)
	register := &pb.RegisterInstanceRequest{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders", Ip: "10.0.0.1", Port: 80}
	as := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)

	// gRPC: forwarded as the peer, naming the caller.
	resp, err := reg.RegisterInstance(as, register)
	if err != nil || resp.GetRevision() != 4242 {
		t.Fatalf("a write on the follower's gateway: %v %v, want the leader's answer", resp, err)
	}
	// REST: the same, through the in-process gRPC connection.
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+gw.Addr+"/v1/namespaces/public/groups/DEFAULT_GROUP/services/orders/instances",
		strings.NewReader(`{"ip":"10.0.0.2","port":80}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	if hr.StatusCode != 200 || !strings.Contains(string(body), "4242") {
		t.Fatalf("a REST write on the follower's gateway: %d %s, want the leader's answer", hr.StatusCode, body)
	}
	// A linearizable read is the leader's too; a stale one is not.
	if r, err := reg.ListInstances(as, &pb.ListInstancesRequest{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders"}); err != nil || r.GetRevision() != 4242 {
		t.Fatalf("a linearizable read on the follower's gateway: %v %v, want the leader's answer", r, err)
	}
	if r, err := reg.ListInstances(as, &pb.ListInstancesRequest{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders", Stale: true}); err != nil || r.GetRevision() == 4242 {
		t.Fatalf("a stale read on the follower's gateway: %v %v, want this node's answer", r, err)
	}
	// A call marked as forwarded is served here (by this node's store,
	// which here happens to accept it), not sent on again; the mark proves
	// nothing: the call still needs the caller's token.
	if _, err := reg.RegisterInstance(metadata.AppendToOutgoingContext(ctx, forwardedHeader, "1"), register); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a forwarded-marked write without a token: %v, want UNAUTHENTICATED", err)
	}
	if r, err := reg.RegisterInstance(metadata.AppendToOutgoingContext(as, forwardedHeader, "1"), register); err != nil || r.GetRevision() == 4242 {
		t.Fatalf("a forwarded write: %v %v, want this node's answer", r, err)
	}

	seen := rec.seen()
	if len(seen) != 3 {
		t.Fatalf("the leader got %d calls, want 3 (two writes, one linearizable read): %v", len(seen), seen)
	}
	for i, md := range seen {
		if got, want := strings.Join(md.Get("authorization"), ","), "Bearer "+st.PeerSecret; got != want {
			t.Errorf("forwarded call %d carried authorization %q, want the peer secret", i, got)
		}
		if got := strings.Join(md.Get(callerHeader), ","); got != tok.AccessorID {
			t.Errorf("forwarded call %d named the caller %q, want %s", i, got, tok.AccessorID)
		}
		if len(md.Get(forwardedHeader)) != 1 {
			t.Errorf("forwarded call %d is not marked as forwarded: %v", i, md)
		}
		for k, v := range md {
			if strings.Contains(strings.Join(v, ","), secret) {
				t.Errorf("forwarded call %d carried the caller's secret in %s", i, k)
			}
		}
	}

	// The leader gone: UNAVAILABLE naming it, within the forward wait.
	leaderSrv.Stop()
	start := time.Now()
	_, err = reg.RegisterInstance(as, register)
	if !errors.Is(pb.Error(err), model.ErrUnavailable) || !strings.Contains(err.Error(), lis.Addr().String()) {
		t.Fatalf("a write while the leader is unreachable: %v, want UNAVAILABLE naming %s", err, lis.Addr())
	}
	if d := time.Since(start); d > forwardWait+3*time.Second {
		t.Errorf("the refusal took %v", d)
	}
}

// Forwarding leaves a backend that does not lead by itself as it is.
func TestForwardingOnlyWrapsLeadership(t *testing.T) {
	ctx := context.Background()
	s := openStore(ctx, t)
	if _, ok := Forwarding(s, nil).(*forwarding); !ok {
		t.Error("the built-in store is not routed")
	}
	var plain backends.Backend = struct{ backends.Backend }{s}
	if got := Forwarding(plain, nil); got != plain {
		t.Errorf("a backend without Leadership came back as %T", got)
	}
}

// A follower's watch starts only once its replica has caught up with the
// leader: with no leader known, or the leader unreachable, it is refused
// as UNAVAILABLE rather than started from a replica that may be behind.
func TestForwardingWatchNeedsTheLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store := openStore(ctx, t)
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders"}
	nowhere, err := ports.Addr() // reserved, and nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	for name, leader := range map[string]string{"no leader": "", "unreachable leader": nowhere} {
		f := Forwarding(followerOf{store, leader}, slog.New(slog.DiscardHandler))
		start := time.Now()
		w, err := f.Watch(ctx, backends.WatchRequest{Service: &svc})
		if err == nil {
			w.Close()
			t.Errorf("%s: the watch started", name)
		} else if !errors.Is(err, model.ErrUnavailable) || (leader != "" && !strings.Contains(err.Error(), leader)) {
			t.Errorf("%s: %v, want UNAVAILABLE naming the leader", name, err)
		}
		if d := time.Since(start); d > forwardWait+3*time.Second {
			t.Errorf("%s: the refusal took %v", name, d)
		}
		f.(*forwarding).release()
	}
	// The node that leads serves its watch at once.
	w, err := Forwarding(store, nil).Watch(ctx, backends.WatchRequest{Service: &svc})
	if err != nil {
		t.Fatalf("a watch on the leader: %v", err)
	}
	w.Close()
}

// A gateway releases the connections of the router it put over its store,
// and only those: a gateway over a backend that is already routed (the
// guarantee runner's raft-3+gateway) leaves that router working when it
// closes.
func TestGatewayReleasesOnlyItsOwnRouter(t *testing.T) {
	ctx := context.Background()
	routed := Forwarding(followerOf{openStore(ctx, t), "127.0.0.1:9"}, slog.New(slog.DiscardHandler))
	defer routed.(*forwarding).release()
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(routed, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if srv.fwd != nil {
		t.Fatal("a gateway over a routed backend routed it again")
	}
	srv.Close()
	if _, err := routed.(*forwarding).leader("127.0.0.1:9"); err != nil {
		t.Fatalf("the router outlived by its user is released: %v", err)
	}
	own, err := New(followerOf{openStore(ctx, t), "127.0.0.1:9"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	own.Close()
	if _, err := own.fwd.leader("127.0.0.1:9"); !errors.Is(err, errForwardingClosed) {
		t.Fatalf("a closed gateway's own router still connects: %v", err)
	}
}

package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

// muxStream is a WatchService stream under test: its responses sorted by
// watch, and the stream's own end.
type muxStream struct {
	t      *testing.T
	s      grpc.BidiStreamingClient[pb.WatchRequest, pb.WatchResponse]
	mu     sync.Mutex
	byID   map[int64]chan *pb.WatchResponse
	closed chan struct{}
	err    error
}

func openMux(t *testing.T, ctx context.Context, cc *grpc.ClientConn) *muxStream {
	t.Helper()
	s, err := pb.NewWatchServiceClient(cc).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := &muxStream{t: t, s: s, byID: map[int64]chan *pb.WatchResponse{}, closed: make(chan struct{})}
	go func() {
		defer close(m.closed)
		for {
			resp, err := s.Recv()
			if err != nil {
				m.err = err
				return
			}
			m.of(resp.WatchId) <- resp
		}
	}()
	return m
}

func (m *muxStream) of(id int64) chan *pb.WatchResponse {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := m.byID[id]
	if ch == nil {
		ch = make(chan *pb.WatchResponse, 64)
		m.byID[id] = ch
	}
	return ch
}

// send sends a request. io.EOF is the stream's end (the gateway may refuse
// it before the first request is sent): why it ended is Recv's to tell, so
// streamEnded and endedWith report it.
func (m *muxStream) send(req *pb.WatchRequest) {
	m.t.Helper()
	if err := m.s.Send(req); err != nil && !errors.Is(err, io.EOF) {
		m.t.Fatalf("send %v: %v", req, err)
	}
}

func (m *muxStream) instances(id int64, service string) {
	m.t.Helper()
	m.send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: &pb.WatchCreateRequest{WatchId: id,
		Target: &pb.WatchCreateRequest_Instances{Instances: &pb.WatchInstancesRequest{Namespace: "a", Service: service}}}}})
}

func (m *muxStream) cancel(id int64) {
	m.t.Helper()
	m.send(&pb.WatchRequest{Request: &pb.WatchRequest_Cancel{Cancel: &pb.WatchCancelRequest{WatchId: id}}})
}

// next returns watch id's next response, failing after 5s.
func (m *muxStream) next(id int64) *pb.WatchResponse {
	m.t.Helper()
	return m.nextWithin(id, 5*time.Second)
}

func (m *muxStream) nextWithin(id int64, d time.Duration) *pb.WatchResponse {
	m.t.Helper()
	select {
	case r := <-m.of(id):
		return r
	case <-m.closed:
		select {
		case r := <-m.of(id):
			return r
		default:
		}
		m.t.Fatalf("watch %d: the stream ended: %v", id, m.err)
	case <-time.After(d):
		m.t.Fatalf("watch %d: nothing in %v", id, d)
	}
	return nil
}

// started reads watch id's created and first RESET.
func (m *muxStream) started(id int64) *pb.InstanceEvent {
	m.t.Helper()
	if r := m.next(id); r.GetCreated() == nil {
		m.t.Fatalf("watch %d: first response %v, want created", id, r)
	}
	ev := m.next(id).GetInstance()
	if ev.GetType() != pb.EventType_RESET {
		m.t.Fatalf("watch %d: %v after created, want a RESET", id, ev)
	}
	return ev
}

// endedWith reads watch id's next response, which must end it with code.
func (m *muxStream) endedWith(id int64, code codes.Code) error {
	m.t.Helper()
	r := m.next(id)
	if r.GetEnded() == nil || codes.Code(r.GetEnded().Code) != code {
		m.t.Fatalf("watch %d: %v, want it ended with %v", id, r, code)
	}
	return r.GetEnded().Err()
}

// quiet checks that watch id receives nothing for a while.
func (m *muxStream) quiet(id int64, d time.Duration) {
	m.t.Helper()
	select {
	case r := <-m.of(id):
		m.t.Errorf("watch %d received %v, want nothing", id, r)
	case <-time.After(d):
	}
}

// streamEnded waits for the stream to end and returns its error.
func (m *muxStream) streamEnded() error {
	m.t.Helper()
	select {
	case <-m.closed:
		return m.err
	case <-time.After(5 * time.Second):
		m.t.Fatal("the stream still runs 5s later")
	}
	return nil
}

func register(t *testing.T, cc *grpc.ClientConn, service, ip string) {
	t.Helper()
	if _, err := pb.NewRegistryServiceClient(cc).RegisterInstance(context.Background(), &pb.RegisterInstanceRequest{
		Namespace: "a", Service: service, Ip: ip, Port: 80}); err != nil {
		t.Fatal(err)
	}
}

// Many watches share one stream: each gets its own created, RESET and
// events and nothing of the others'; a cancelled one ends with OK and
// its id may then be used again; a bad create ends that watch alone; a
// live id used twice, or a request that is neither create nor cancel,
// ends the stream.
func TestMultiplexedWatch(t *testing.T) {
	l := serveRaft(t, gateway.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	register(t, l.Conn, "x", "10.0.0.1")
	m := openMux(t, ctx, l.Conn)
	m.instances(1, "x")
	m.instances(2, "y")
	m.send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: &pb.WatchCreateRequest{WatchId: 3,
		Target: &pb.WatchCreateRequest_Config{Config: &pb.WatchConfigRequest{Namespace: "a", DataId: "app.yaml"}}}}})
	if reset := m.started(1); len(reset.Instances) != 1 || reset.Instances[0].Ip != "10.0.0.1" {
		t.Errorf("watch of x began with %v, want its one instance", reset)
	}
	if reset := m.started(2); len(reset.Instances) != 0 {
		t.Errorf("watch of y began with %v, want no instance", reset)
	}
	if r := m.next(3); r.GetCreated() == nil {
		t.Fatalf("config watch: %v, want created", r)
	}
	if r := m.next(3); r.GetConfig().GetType() != pb.EventType_RESET || r.GetConfig().Config != nil {
		t.Fatalf("config watch began with %v, want an empty RESET", r)
	}

	register(t, l.Conn, "y", "10.0.0.2")
	if ev := m.next(2).GetInstance(); ev.GetType() != pb.EventType_PUT || ev.Instance.Ip != "10.0.0.2" {
		t.Errorf("watch of y: %v, want the PUT of 10.0.0.2", ev)
	}
	if _, err := pb.NewConfigServiceClient(l.Conn).PutConfig(ctx, &pb.PutConfigRequest{Namespace: "a", DataId: "app.yaml", Content: "v: 1\n"}); err != nil {
		t.Fatal(err)
	}
	if ev := m.next(3).GetConfig(); ev.GetType() != pb.EventType_PUT || ev.Config.Content != "v: 1\n" {
		t.Errorf("config watch: %v, want the PUT", ev)
	}
	m.quiet(1, 200*time.Millisecond)

	// Cancelled: ended with OK, nothing after, and the id is free again.
	m.cancel(1)
	if err := m.endedWith(1, codes.OK); err != nil {
		t.Errorf("a cancelled watch ended with %v", err)
	}
	register(t, l.Conn, "x", "10.0.0.3")
	m.quiet(1, 200*time.Millisecond)
	m.instances(1, "y")
	if reset := m.started(1); len(reset.Instances) != 1 {
		t.Errorf("id 1 again, on y: began with %v, want y's one instance", reset)
	}
	m.cancel(99) // unknown: ignored

	// Bad creates end their own watch, with the field at fault.
	m.send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: &pb.WatchCreateRequest{WatchId: 4}}})
	if err := m.endedWith(4, codes.InvalidArgument); model.FieldOf(err) != "create.target" {
		t.Errorf("a create naming nothing: %v, want field create.target", err)
	}
	m.send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: &pb.WatchCreateRequest{WatchId: 5,
		Target: &pb.WatchCreateRequest_Instances{Instances: &pb.WatchInstancesRequest{Namespace: "a", Service: "x", Revision: -1}}}}})
	if err := m.endedWith(5, codes.InvalidArgument); model.FieldOf(err) != "revision" {
		t.Errorf("a negative revision: %v, want field revision", err)
	}
	m.instances(6, strings.Repeat("s", model.MaxNameLen+1))
	if err := m.endedWith(6, codes.InvalidArgument); model.FieldOf(err) != "service" {
		t.Errorf("a name too long: %v, want field service", err)
	}
	// The others go on.
	register(t, l.Conn, "y", "10.0.0.4")
	for _, id := range []int64{1, 2} {
		if ev := m.next(id).GetInstance(); ev.GetType() != pb.EventType_PUT || ev.Instance.Ip != "10.0.0.4" {
			t.Errorf("watch %d after the bad creates: %v, want the PUT of 10.0.0.4", id, ev)
		}
	}

	// A live id used again ends the stream.
	m.instances(2, "x")
	if err := m.streamEnded(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "live watch") {
		t.Errorf("a live id used again: %v, want the stream ended with INVALID_ARGUMENT", err)
	}
	// Half-closed by the client: its watches go on; with none, the
	// stream ends, OK.
	m = openMux(t, ctx, l.Conn)
	m.instances(1, "y")
	m.started(1)
	if err := m.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	register(t, l.Conn, "y", "10.0.0.5")
	if ev := m.next(1).GetInstance(); ev.GetType() != pb.EventType_PUT || ev.Instance.Ip != "10.0.0.5" {
		t.Errorf("a watch after its client half-closed: %v, want the PUT of 10.0.0.5", ev)
	}
	m = openMux(t, ctx, l.Conn)
	if err := m.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := m.streamEnded(); !errors.Is(err, io.EOF) {
		t.Errorf("half-closed with no watch: %v, want the stream ended OK", err)
	}
	m = openMux(t, ctx, l.Conn)
	m.send(&pb.WatchRequest{})
	if err := m.streamEnded(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a request that is neither: %v, want the stream ended with INVALID_ARGUMENT", err)
	}
}

// One stream holds at most MaxStreamWatches live watches: the next is
// refused on its own, and the stream goes on.
func TestMultiplexedWatchIsBounded(t *testing.T) {
	l := serveRaft(t, gateway.DefaultConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := openMux(t, ctx, l.Conn)
	for id := range int64(gateway.MaxStreamWatches) {
		m.instances(id, "x")
	}
	m.instances(gateway.MaxStreamWatches, "x")
	// The refusal comes once the 10,000 creates before it are served:
	// seconds under the race detector.
	if r := m.nextWithin(gateway.MaxStreamWatches, time.Minute); r.GetEnded() == nil {
		t.Fatalf("watch %d: %v, want it ended", gateway.MaxStreamWatches, r)
	} else if err := r.GetEnded().Err(); codes.Code(r.GetEnded().Code) != codes.InvalidArgument || !errors.Is(err, model.ErrTooLarge) {
		t.Errorf("watch %d: %v, want TOO_LARGE", gateway.MaxStreamWatches, err)
	}
	m.started(0)
	m.cancel(0)
	m.endedWith(0, codes.OK)
	m.instances(gateway.MaxStreamWatches, "x")
	m.started(gateway.MaxStreamWatches)
}

// Access control from the attacker's side, on a stream of many watches:
// no token opens none; each watch is authorized as its own stream would
// be, and a refused one leaves the others running; the ACL's own record
// is refused even to the management token; a policy that loses a right
// cuts that watch alone, and the stream takes new watches; a revoked or
// expired token ends the whole stream.
func TestMultiplexedWatchAuthorization(t *testing.T) {
	audit := filepath.Join(t.TempDir(), "audit.log")
	cfg := authConfig(t, &servertest.Buffer{}, audit)
	l := serveRaft(t, cfg)
	boot, err := pb.NewAclServiceClient(l.Conn).Bootstrap(context.Background(), &pb.BootstrapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	mc := withToken(t, addr, boot.Secret)
	a := pb.NewAclServiceClient(mc)
	const pubAndOther = "name: r\nrules:\n  - namespace: a\n    service: \"pub*\"\n    access: read\n  - namespace: a\n    service: other\n    access: read\n"
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: pubAndOther}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}

	// No token, or a forged one: the stream is refused.
	for _, secret := range []string{"", "forged-" + strings.Repeat("0", 32)} {
		m := openMux(t, ctx, withToken(t, addr, secret))
		m.instances(1, "pub-a")
		if err := m.streamEnded(); status.Code(err) != codes.Unauthenticated {
			t.Errorf("token %q: %v, want UNAUTHENTICATED", secret, err)
		}
	}

	m := openMux(t, ctx, withToken(t, addr, tok.Secret))
	m.instances(1, "pub-a")
	m.instances(2, "private")
	m.instances(3, "other")
	m.started(1)
	if err := m.endedWith(2, codes.PermissionDenied); !errors.Is(err, model.ErrPermissionDenied) {
		t.Errorf("a watch the token may not read: %v", err)
	}
	m.started(3)
	register(t, mc, "pub-a", "10.0.0.1")
	register(t, mc, "private", "10.0.0.9")
	if ev := m.next(1).GetInstance(); ev.GetType() != pb.EventType_PUT {
		t.Errorf("watch of pub-a after a refused neighbour: %v, want the PUT", ev)
	}
	m.quiet(2, 200*time.Millisecond)

	// The ACL's own record, even with the management token.
	mm := openMux(t, ctx, mc)
	mm.send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: &pb.WatchCreateRequest{WatchId: 1,
		Target: &pb.WatchCreateRequest_Config{Config: &pb.WatchConfigRequest{Namespace: gateway.SystemNamespace, Group: "acl", DataId: "state"}}}}})
	mm.endedWith(1, codes.PermissionDenied)

	// The policy loses pub*: watch 1 is cut within a second, 3 goes on.
	changed := time.Now()
	if _, err := a.UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: "r",
		Rules: "name: r\nrules:\n  - namespace: a\n    service: other\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	if err := m.endedWith(1, codes.PermissionDenied); !errors.Is(err, model.ErrPermissionDenied) {
		t.Errorf("cut: %v", err)
	}
	t.Logf("the watch was cut %v after the policy changed", time.Since(changed).Round(time.Millisecond))
	register(t, mc, "other", "10.0.0.2")
	if ev := m.next(3).GetInstance(); ev.GetType() != pb.EventType_PUT || ev.Instance.Ip != "10.0.0.2" {
		t.Errorf("watch of other after its neighbour was cut: %v, want the PUT", ev)
	}
	m.instances(1, "pub-a") // refused now
	m.endedWith(1, codes.PermissionDenied)
	m.instances(4, "other")
	m.started(4)
	// A right granted after the stream opened: a new watch has it.
	if _, err := a.UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: "r",
		Rules: "name: r\nrules:\n  - namespace: a\n    service: other\n    access: read\n  - namespace: a\n    service: private\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	m.instances(5, "private")
	m.started(5)
	// Each refusal and cut is in the audit log, under the call the watch
	// stands for and its resource.
	b, err := os.ReadFile(audit)
	if err != nil {
		t.Fatal(err)
	}
	denied := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ Accessor, Method, Resource, Outcome string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if e.Outcome == "PERMISSION_DENIED" && e.Method == "WatchInstances" && e.Accessor == tok.Token.AccessorId {
			denied[e.Resource]++
		}
	}
	if denied["service:a/DEFAULT_GROUP/private"] != 1 || denied["service:a/DEFAULT_GROUP/pub-a"] != 2 {
		t.Errorf("audited denials %v, want private once and pub-a twice (cut, then refused); the log:\n%s", denied, b)
	}

	// The token is revoked: the whole stream ends.
	if _, err := a.RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: tok.Token.AccessorId}); err != nil {
		t.Fatal(err)
	}
	if err := m.streamEnded(); status.Code(err) != codes.Unauthenticated && status.Code(err) != codes.PermissionDenied {
		t.Errorf("revoked: %v, want the stream ended", err)
	}

	// A token that expires: the whole stream ends with it.
	if _, err := a.UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: "r", Rules: pubAndOther}); err != nil {
		t.Fatal(err)
	}
	short, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}, Ttl: durationpb.New(1500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	m = openMux(t, ctx, withToken(t, addr, short.Secret))
	m.instances(1, "pub-a")
	m.started(1)
	if err := m.streamEnded(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("expired: %v, want UNAUTHENTICATED", err)
	}
	if time.Until(short.Token.Expires.AsTime()) > 0 {
		t.Errorf("the stream ended before the token expired")
	}
}

package gateway

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway/acl"
)

// Every RPC the server registers is in the rules table, so none is
// served with access control on without a rule saying what it needs (a
// method missing from it is refused to everyone: this keeps that from
// happening by accident); and no rule names a method that does not exist.
func TestEveryMethodHasARule(t *testing.T) {
	s, err := New(openStore(context.Background(), t), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	served := map[string]bool{}
	for svc, info := range s.grpc.GetServiceInfo() {
		for _, m := range info.Methods {
			name := "/" + svc + "/" + m.Name
			served[name] = true
			if _, ok := rules[name]; !ok {
				t.Errorf("%s has no rule", name)
			}
		}
	}
	for name := range rules {
		if !served[name] {
			t.Errorf("the rule for %s names no served method", name)
		}
	}
	if len(served) < 30 {
		t.Errorf("only %d methods served", len(served))
	}
}

// BenchmarkAuthorizer measures what access control adds to one call: the
// interceptor's authentication and decision over a six-rule policy, with
// access control off and on, side by side.
func BenchmarkAuthorizer(b *testing.B) {
	st, err := acl.NewState()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.PutPolicy(benchRules, "", true); err != nil {
		b.Fatal(err)
	}
	_, secret, err := st.AddToken("bench", []string{"bench"}, time.Time{}, "")
	if err != nil {
		b.Fatal(err)
	}
	cache := newACLCache(nil, nil, slog.New(slog.DiscardHandler))
	raw, _ := st.Encode()
	cache.install(st, 1, raw, true)
	req := &pb.GetConfigRequest{Namespace: "public", Group: "DEFAULT_GROUP", DataId: "bench-7"}
	ctx := peer.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+secret)),
		&peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}})
	info := &grpc.UnaryServerInfo{FullMethod: pb.ConfigService_GetConfig_FullMethodName}
	handler := func(context.Context, any) (any, error) { return &pb.GetConfigResponse{}, nil }
	for _, on := range []bool{false, true} {
		a := &authorizer{on: on, acl: cache, audit: newAuditLog(AuditConfig{}, newMetrics(BuildInfo{})), fails: newFailLimiter(5), m: newMetrics(BuildInfo{})}
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.unary(ctx, req, info, handler); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchRules is a policy of six rules, two of them the grants the call
// needs, written out rule by rule.
var benchRules = func() string {
	text := "name: bench\nrules:\n"
	for _, r := range [][4]string{
		{"*", "", "service: \"bench*\"", "write"},
		{"*", "", "config: \"bench*\"", "write"},
		{"", "", "session: \"*\"", "write"},
		{"prod", "", "service: \"*\"", "deny"},
		{"prod", "", "config: \"*\"", "deny"},
		{"public", "internal", "config: \"secret*\"", "deny"},
	} {
		text += "  - " + r[2] + "\n"
		if r[0] != "" {
			text += "    namespace: \"" + r[0] + "\"\n"
		}
		if r[1] != "" {
			text += "    group: " + r[1] + "\n"
		}
		text += "    access: " + r[3] + "\n"
	}
	return text
}()

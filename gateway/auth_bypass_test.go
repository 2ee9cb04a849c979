package gateway_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
)

// authOn serves a new built-in store through a gateway with access
// control on and returns its address and management secret.
func authOn(t *testing.T, tune ...func(*gateway.Config)) (addr, mgmt string) {
	t.Helper()
	cfg := authConfig(t, &servertest.Buffer{}, "")
	for _, f := range tune {
		f(&cfg)
	}
	l := serveRaft(t, cfg)
	boot, err := pb.NewAclServiceClient(l.Conn).Bootstrap(context.Background(), &pb.BootstrapRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Addr, boot.Secret
}

// Each of the ways around authentication that Nacos' CVEs and the usual
// suspects suggest fails closed: forged headers, path tricks, a token in
// the query string, other schemes, a token of another cluster, and the
// ACL's own record read through the config API.
func TestBypassesFailClosed(t *testing.T) {
	addr, mgmt := authOn(t)
	ctx := context.Background()
	m := withToken(t, addr, mgmt)
	if _, err := pb.NewConfigServiceClient(m).PutConfig(ctx, &pb.PutConfigRequest{Namespace: "public", Group: "DEFAULT_GROUP",
		DataId: "secret.yaml", Content: "password: hunter2\n"}); err != nil {
		t.Fatal(err)
	}
	who, err := pb.NewAclServiceClient(m).WhoAmI(ctx, &pb.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, header ...string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req) // follows redirects, as a browser would
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b := make([]byte, 4096)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	const cfg = "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/secret.yaml"
	refused := func(what string, code int, body string) {
		t.Helper()
		if code == http.StatusOK || strings.Contains(body, "hunter2") || strings.Contains(body, "revision") && code < 300 {
			t.Errorf("%s: %d %q, want a refusal", what, code, body)
		}
	}

	// Forged headers: the Nacos CVE-2021-29441 header, a loopback
	// forwarded-for, the gateways' own marks, metadata smuggled through
	// grpc-gateway's Grpc-Metadata- prefix.
	for _, h := range [][]string{
		{"User-Agent", "Nacos-Server"},
		{"X-Forwarded-For", "127.0.0.1"},
		{"Junction-Forwarded", "1"},
		{"Junction-Caller", who.AccessorId},
		{"Grpc-Metadata-Junction-Caller", who.AccessorId},
		{"Grpc-Metadata-Junction-Forwarded", "1"},
		{"Grpc-Metadata-Authorization", "Bearer " + strings.Repeat("x", 10)},
		{"Authorization", "Basic " + "YWRtaW46YWRtaW4="},
		{"Authorization", "Bearer"},
		{"Authorization", "Bearer jct_" + strings.Repeat("A", 43)},
		{"Authorization", mgmt}, // no scheme
	} {
		code, body := get(cfg, h...)
		refused("header "+h[0]+": "+h[1], code, body)
	}
	// Two Authorization headers, the second a valid one.
	code, body := get(cfg, "Authorization", "Bearer jct_"+strings.Repeat("B", 43), "Authorization", "Bearer "+mgmt)
	refused("two Authorization headers", code, body)

	// The same marks over gRPC.
	anon := pb.NewConfigServiceClient(withToken(t, addr, ""))
	mctx := metadata.AppendToOutgoingContext(ctx, "junction-forwarded", "1", "junction-caller", who.AccessorId, "user-agent", "Nacos-Server")
	if _, err := anon.GetConfig(mctx, &pb.GetConfigRequest{DataId: "secret.yaml"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC with forged marks: %v, want UNAUTHENTICATED", err)
	}

	// Path tricks: whatever the mux cleans them to needs a token too.
	for _, p := range []string{
		"/" + cfg, "/v1/../" + cfg[1:], "/v1/%2e%2e/" + cfg[1:], "/./" + cfg[1:], "/healthz/.." + cfg,
		"/v1/snapshot", "//v1/snapshot", "/v1/snapshot/", "/v1/%2e%2e/v1/snapshot", "/readyz/../v1/snapshot",
		"/metrics", "//metrics", "/v1/acl/tokens", "//v1/acl/tokens", "/v1/acl/tokens/", "/V1/acl/tokens",
		cfg + "?token=" + mgmt, cfg + "?access_token=" + mgmt, cfg + "?authorization=Bearer%20" + mgmt,
		"/v1/acl/tokens?token=" + mgmt,
	} {
		code, body := get(p)
		refused("path "+p, code, body)
	}

	// A token of another cluster: well formed, unknown here.
	_, other := authOn(t)
	code, body = get(cfg, "Authorization", "Bearer "+other)
	if code != http.StatusUnauthorized {
		t.Errorf("another cluster's management token: %d %s, want 401", code, body)
	}

	// The ACL's own record is not reached through the config API, even
	// by the management token; a broad grant does not reach the gateways'
	// namespace at all.
	for _, ns := range []string{"junction-system"} {
		_, err := pb.NewConfigServiceClient(m).GetConfig(ctx, &pb.GetConfigRequest{Namespace: ns, Group: "acl", DataId: "state"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("management reads the ACL record through the config API: %v, want PERMISSION_DENIED", err)
		}
	}
	a := pb.NewAclServiceClient(m)
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: everything\nrules:\n  - namespace: \"*\"\n    config: \"*\"\n    access: write\n"}); err != nil {
		t.Fatal(err)
	}
	broad, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"everything"}})
	if err != nil {
		t.Fatal(err)
	}
	bc := pb.NewConfigServiceClient(withToken(t, addr, broad.Secret))
	for _, k := range [][2]string{{"acl", "state"}, {"health-runner", "lease"}} {
		if _, err := bc.GetConfig(ctx, &pb.GetConfigRequest{Namespace: "junction-system", Group: k[0], DataId: k[1]}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("a namespace-* grant reads junction-system/%s/%s: %v, want PERMISSION_DENIED", k[0], k[1], err)
		}
		if _, err := bc.PutConfig(ctx, &pb.PutConfigRequest{Namespace: "junction-system", Group: k[0], DataId: k[1], Content: "{}"}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("a namespace-* grant writes junction-system/%s/%s: %v, want PERMISSION_DENIED", k[0], k[1], err)
		}
	}
	list, err := bc.ListConfigs(ctx, &pb.ListConfigsRequest{Namespace: "junction-system"})
	if err != nil || len(list.Configs) != 0 {
		t.Errorf("a namespace-* grant lists junction-system: %v %v, want nothing", list, err)
	}
}

// The ACL's own record stays out of the config API with access control
// off as well: it holds the peer secret.
func TestACLRecordIsNotAConfig(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	if _, err := pb.NewAclServiceClient(e.conn).Bootstrap(ctx, &pb.BootstrapRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cfg.GetConfig(ctx, &pb.GetConfigRequest{Namespace: "junction-system", Group: "acl", DataId: "state"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reading the ACL record with access control off: %v, want PERMISSION_DENIED", err)
	}
	w, err := e.cfg.WatchConfig(ctx, &pb.WatchConfigRequest{Namespace: "junction-system", Group: "acl", DataId: "state"})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("watching the ACL record with access control off: %v, want PERMISSION_DENIED", err)
	}
}

// A watch ends with PERMISSION_DENIED within a second once its token's
// policy loses the right, and with UNAUTHENTICATED once the token expires.
func TestWatchEndsWhenTheRightGoes(t *testing.T) {
	addr, mgmt := authOn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := pb.NewAclServiceClient(withToken(t, addr, mgmt))
	const readAll = "name: r\nrules:\n  - config: \"*\"\n    access: read\n"
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: readAll}); err != nil {
		t.Fatal(err)
	}
	watch := func(secret string) <-chan error {
		w, err := pb.NewConfigServiceClient(withToken(t, addr, secret)).WatchConfig(ctx, &pb.WatchConfigRequest{DataId: "app.yaml"})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		return streamEnd(w)
	}
	within := func(what string, ended <-chan error, from time.Time, want codes.Code) {
		t.Helper()
		select {
		case err := <-ended:
			took := time.Since(from)
			t.Logf("%s: the watch ended %v later: %v", what, took.Round(time.Millisecond), err)
			if status.Code(err) != want || took > time.Second {
				t.Errorf("%s: the watch ended %v later with %v, want %v within 1s", what, took, err, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: the watch still runs 3s later", what)
		}
	}

	tok, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	ended := watch(tok.Secret)
	changed := time.Now()
	if _, err := a.UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: "r", Rules: "name: r\nrules:\n  - config: \"other*\"\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	within("the policy lost the right", ended, changed, codes.PermissionDenied)

	if _, err := a.UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: "r", Rules: readAll}); err != nil {
		t.Fatal(err)
	}
	short, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}, Ttl: durationpb.New(1500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	ended = watch(short.Secret)
	within("the token expired", ended, short.Token.Expires.AsTime(), codes.Unauthenticated)
}

// A list shows only what the token may read, and its page tokens say
// nothing of the rest: paged one by one, every page holds one visible
// service, and no token decodes to a hidden name.
func TestListsSayNothingOfTheRest(t *testing.T) {
	addr, mgmt := authOn(t)
	ctx := context.Background()
	m := withToken(t, addr, mgmt)
	for i := range 30 {
		name := fmt.Sprintf("s%02d-pub", i)
		if i%3 != 0 {
			name = fmt.Sprintf("s%02d-priv", i)
		}
		if _, err := pb.NewRegistryServiceClient(m).RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: "a", Service: name, Ip: "10.0.0.1", Port: 80}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pb.NewConfigServiceClient(m).PutConfig(ctx, &pb.PutConfigRequest{Namespace: "a", DataId: "x", Content: "1"}); err != nil {
		t.Fatal(err)
	}
	a := pb.NewAclServiceClient(m)
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: pub\nrules:\n  - namespace: a\n    service: \"*-pub\"\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"pub"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := pb.NewRegistryServiceClient(withToken(t, addr, tok.Secret))
	var seen []string
	for page := ""; ; {
		resp, err := reg.ListServices(ctx, &pb.ListServicesRequest{Namespace: "a", PageSize: 1, PageToken: page})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.Services {
			seen = append(seen, s.Service)
		}
		if resp.NextPageToken == "" {
			break
		}
		if len(resp.Services) != 1 {
			t.Errorf("a page of %d services before the end, want 1", len(resp.Services))
		}
		if !strings.HasPrefix(resp.NextPageToken, "s.") {
			t.Errorf("page token %q is not sealed", resp.NextPageToken)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(resp.NextPageToken, "s."))
		if strings.Contains(string(raw), "priv") || strings.Contains(string(raw), "pub") {
			t.Errorf("page token %q reads %q", resp.NextPageToken, raw)
		}
		page = resp.NextPageToken
	}
	if len(seen) != 10 || slices.ContainsFunc(seen, func(s string) bool { return strings.HasSuffix(s, "-priv") }) {
		t.Errorf("paged through %v, want the 10 -pub services", seen)
	}
	// A page token forged in the clear is refused.
	forged := base64.RawURLEncoding.EncodeToString([]byte("DEFAULT_GROUP/s00-pub"))
	if _, err := reg.ListServices(ctx, &pb.ListServicesRequest{Namespace: "a", PageToken: forged}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a page token forged in the clear: %v, want INVALID_ARGUMENT", err)
	}
	// The management token sees every config but the ACL's own record.
	list, err := pb.NewConfigServiceClient(m).ListConfigs(ctx, &pb.ListConfigsRequest{Namespace: "junction-system"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Configs {
		if c.Group == "acl" {
			t.Errorf("management lists the ACL record %s/%s", c.Group, c.DataId)
		}
	}
}

// Snapshots and membership changes hand over the whole store, the ACL
// with it: a policy that grants them is not enough, only the management
// token is.
func TestSnapshotsAndMembersNeedManagement(t *testing.T) {
	addr, mgmt := authOn(t)
	ctx := context.Background()
	a := pb.NewAclServiceClient(withToken(t, addr, mgmt))
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: ops\nrules:\n  - snapshot: \"*\"\n    access: write\n  - cluster: \"*\"\n    access: write\n"}); err != nil {
		t.Fatal(err)
	}
	ops, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"ops"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := restCall(t, addr, ops.Secret, "GET", "/v1/snapshot", ""); code != http.StatusForbidden || !strings.Contains(body, "management") {
		t.Errorf("a snapshot with a snapshot-write policy: %d %s, want 403", code, body)
	}
	if code, body := restCall(t, addr, ops.Secret, "PUT", "/v1/snapshot", "{}"); code != http.StatusForbidden {
		t.Errorf("a restore with a snapshot-write policy: %d %s, want 403", code, body)
	}
	cl := pb.NewClusterServiceClient(withToken(t, addr, ops.Secret))
	if _, err := cl.AddMember(ctx, &pb.AddMemberRequest{Id: "127.0.0.1:1", RaftAddress: "127.0.0.1:2"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("AddMember with a cluster-write policy: %v, want PERMISSION_DENIED", err)
	}
	if _, err := cl.ListMembers(ctx, &pb.ListMembersRequest{}); err != nil {
		t.Errorf("ListMembers with a cluster-write policy: %v", err)
	}
}

// A snapshot restore keeps the store's ACL as it is: a token revoked after
// the snapshot was taken stays revoked, and one created since stays valid.
func TestRestoreKeepsTheACL(t *testing.T) {
	addr, mgmt := authOn(t)
	ctx := context.Background()
	a := pb.NewAclServiceClient(withToken(t, addr, mgmt))
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: r\nrules:\n  - config: \"*\"\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	old, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	code, snap := restCall(t, addr, mgmt, "GET", "/v1/snapshot", "")
	if code != 200 {
		t.Fatalf("save: %d %s", code, snap)
	}
	if _, err := a.RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: old.Token.AccessorId}); err != nil {
		t.Fatal(err)
	}
	fresh, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := restCall(t, addr, mgmt, "PUT", "/v1/snapshot", snap); code != 200 {
		t.Fatalf("restore: %d %s", code, body)
	}
	time.Sleep(500 * time.Millisecond) // past the gateway's next poll of the ACL
	st := func(secret string) error {
		_, err := pb.NewStatusServiceClient(withToken(t, addr, secret)).GetStatus(ctx, &pb.GetStatusRequest{})
		return err
	}
	if err := st(old.Secret); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the token revoked after the snapshot, after the restore: %v, want UNAUTHENTICATED", err)
	}
	if err := st(fresh.Secret); err != nil {
		t.Errorf("the token created after the snapshot, after the restore: %v", err)
	}
}

// A stream whose request comes after its token was revoked is refused:
// the token is checked again when the watch is held, not only when the
// stream opened.
func TestLateWatchRequestIsCheckedAgain(t *testing.T) {
	addr, mgmt := authOn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := pb.NewAclServiceClient(withToken(t, addr, mgmt))
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: r\nrules:\n  - config: \"*\"\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	tok, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	cc := withToken(t, addr, tok.Secret)
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, pb.ConfigService_WatchConfig_FullMethodName)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server has the stream, not its request
	if _, err := a.RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: tok.Token.AccessorId}); err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(&pb.WatchConfigRequest{DataId: "app.yaml"}); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseSend()
	var ev pb.ConfigEvent
	for {
		if err = s.RecvMsg(&ev); err != nil {
			break
		}
	}
	if !denied(err) {
		t.Errorf("a watch whose request came after the revoke ended with %v, want a denial", err)
	}
}

// Rate limiting holds back the guesser, not its neighbours: a valid token
// from the same address works while the guesses are refused, and the
// audit log records the refusals sampled, not one line each.
func TestRateLimitSparesValidTokens(t *testing.T) {
	audit := filepath.Join(t.TempDir(), "audit.log")
	addr, mgmt := authOn(t, func(c *gateway.Config) { c.AuthFailureRate, c.Audit.File = 5, audit })
	ctx := context.Background()
	bad := pb.NewStatusServiceClient(withToken(t, addr, "jct_"+strings.Repeat("D", 43)))
	good := pb.NewStatusServiceClient(withToken(t, addr, mgmt))
	limited := 0
	for range 200 {
		if _, err := bad.GetStatus(ctx, &pb.GetStatusRequest{}); status.Code(err) == codes.ResourceExhausted {
			limited++
		}
	}
	if limited < 150 {
		t.Fatalf("%d of 200 guesses rate-limited, want all but the burst", limited)
	}
	if _, err := good.GetStatus(ctx, &pb.GetStatusRequest{}); err != nil {
		t.Errorf("a valid token from the guesser's address: %v", err)
	}
	b, _ := os.ReadFile(audit)
	if n := strings.Count(string(b), `"RATE_LIMITED"`); n < 1 || n > 5 {
		t.Errorf("%d RATE_LIMITED lines in the audit log for %d refusals, want a sample", n, limited)
	}
	if strings.Contains(string(b), "--acl-bootstrap-reset") {
		t.Error("the audit log holds the bootstrap reset code")
	}
}

// A session belongs to the token that created it: another token with
// session write cannot keep it alive, end it or give it instances, neither
// with its handle nor with the session ID instance listings show.
func TestSessionsBelongToTheirToken(t *testing.T) {
	addr, mgmt := authOn(t)
	ctx := context.Background()
	a := pb.NewAclServiceClient(withToken(t, addr, mgmt))
	if _, err := a.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: team\nrules:\n  - service: \"*\"\n    access: write\n  - session: \"*\"\n    access: write\n"}); err != nil {
		t.Fatal(err)
	}
	var teams [2]pb.RegistryServiceClient
	for i := range teams {
		tok, err := a.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"team"}})
		if err != nil {
			t.Fatal(err)
		}
		teams[i] = pb.NewRegistryServiceClient(withToken(t, addr, tok.Secret))
	}
	own, other := teams[0], teams[1]
	sess, err := own.CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := own.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "orders", Ip: "10.0.0.1", Port: 80, Session: sess.Id}); err != nil {
		t.Fatalf("register under the token's own session: %v", err)
	}
	list, err := other.ListInstances(ctx, &pb.ListInstancesRequest{Service: "orders"})
	if err != nil || len(list.Instances) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	rawID := list.Instances[0].Session
	if rawID == "" || rawID == sess.Id {
		t.Fatalf("the listing shows session %q, the handle is %q", rawID, sess.Id)
	}
	for _, id := range []string{sess.Id, rawID} {
		if _, err := other.KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: id}); status.Code(err) != codes.NotFound {
			t.Errorf("another token keeps %q alive: %v, want NOT_FOUND", id, err)
		}
		if _, err := other.DeleteSession(ctx, &pb.DeleteSessionRequest{Id: id}); status.Code(err) != codes.NotFound {
			t.Errorf("another token ends %q: %v, want NOT_FOUND", id, err)
		}
		if _, err := other.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "orders", Ip: "10.0.0.2", Port: 80, Session: id}); status.Code(err) != codes.NotFound {
			t.Errorf("another token registers under %q: %v, want NOT_FOUND", id, err)
		}
	}
	if _, err := own.KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: sess.Id}); err != nil {
		t.Errorf("the token keeps its own session alive: %v", err)
	}
	if _, err := own.DeleteSession(ctx, &pb.DeleteSessionRequest{Id: sess.Id}); err != nil {
		t.Errorf("the token ends its own session: %v", err)
	}
	if list, _ := own.ListInstances(ctx, &pb.ListInstancesRequest{Service: "orders"}); len(list.GetInstances()) != 0 {
		t.Errorf("the session's instance outlived it: %v", list)
	}
}

// streamEnd receives a stream's messages and delivers the error it ends
// with.
func streamEnd[T any](w grpc.ServerStreamingClient[T]) <-chan error {
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := w.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	return ended
}

package gateway_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/consul"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/localcluster"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

// The namespaces, group and names the matrix touches.
const (
	nsA, nsB  = "team-a", "team-b"
	authGroup = "g"
	authSvc   = "payments"
	authCfg   = "app.yaml"
)

// authServer is one Junction deployment with access control on: the
// gateway requests enter at, and a second gateway over the same store.
type authServer struct {
	entry, other string // gateway addresses (gRPC and REST)
	audit        string // the entry gateway's audit log
	logs         *servertest.Buffer
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func authConfig(t testing.TB, logs *servertest.Buffer, audit string) gateway.Config {
	cfg := gateway.DefaultConfig()
	cfg.Auth = true
	cfg.AuthFailureRate = 1e6 // the matrix fails thousands of times from one address; TestFailedAuthIsRateLimited
	cfg.Audit.File = audit
	cfg.Logger = slogTo(logs)
	return cfg
}

// serveAuth serves two gateways over stores opened by open (one store, or
// two drivers of one store), the first writing an audit log.
func serveAuth(t *testing.T, open func() backends.Backend) *authServer {
	s := &authServer{audit: filepath.Join(t.TempDir(), "audit.log"), logs: &servertest.Buffer{}}
	for i, audit := range []string{s.audit, ""} {
		l, err := gateway.ServeLoopback(open(), authConfig(t, s.logs, audit))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if i == 0 {
			s.entry = l.Addr
		} else {
			s.other = l.Addr
		}
	}
	return s
}

func authTargets(t *testing.T) map[string]func(t *testing.T) *authServer {
	return map[string]func(t *testing.T) *authServer{
		"raft": func(t *testing.T) *authServer {
			st, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return serveAuth(t, func() backends.Backend { return st }) // ServeLoopback leaves it open
		},
		// Requests enter at a follower's gateway, which forwards writes to
		// the leader's as a peer.
		"raft-3": func(t *testing.T) *authServer {
			s := &authServer{audit: filepath.Join(t.TempDir(), "audit.log"), logs: &servertest.Buffer{}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := localcluster.Start(ctx, t.TempDir(), 3, nil, localcluster.WithGateway(func(cfg *gateway.Config) {
				*cfg = authConfig(t, s.logs, "")
			}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			f, err := c.Follower(ctx)
			if err != nil {
				t.Fatal(err)
			}
			l, _ := c.Leader(ctx)
			// The follower's own gateway has no audit log: serve the matrix
			// through a second gateway over the follower's store.
			lb, err := gateway.ServeLoopback(f.Store, authConfig(t, s.logs, s.audit))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lb.Close() })
			s.entry, s.other = lb.Addr, l.ID
			return s
		},
		"etcd": func(t *testing.T) *authServer {
			ep, _ := servertest.Etcd(t)
			return serveAuth(t, func() backends.Backend {
				u, _ := url.Parse("etcd://" + ep)
				cfg, _ := etcd.ConfigFromURL(u)
				d, err := etcd.Open(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.Close() })
				return d
			})
		},
		"consul": func(t *testing.T) *authServer {
			a := servertest.ConsulAgent(t)
			return serveAuth(t, func() backends.Backend {
				u, _ := url.Parse("consul://" + a.HTTPAddr)
				cfg, _ := consul.ConfigFromURL(u)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				d, err := consul.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { d.Close() })
				return d
			})
		},
	}
}

// Access classes: what an operation needs.
const (
	svcR  = "service read"
	svcW  = "service write"
	cfgR  = "config read"
	cfgW  = "config write"
	sessW = "session write"
	list  = "list (filtered)"
	anyOK = "any valid token"
	open  = "open (bootstrap)"
	clR   = "cluster read"
	clW   = "cluster write"
	aclR  = "acl read"
	aclW  = "acl write"
	snapR = "snapshot read"
)

// grants is the one table of the matrix: for each token, what it may do
// in namespace A, in namespace B, and anywhere (global kinds, lists).
// Every other cell is a denial.
var grants = map[string]struct{ a, b, all []string }{
	"none":      {all: []string{open}},
	"malformed": {},
	"unknown":   {},
	"expired":   {},
	"revoked":   {},
	"read-a":    {a: []string{svcR, cfgR}, all: []string{list, anyOK, open}},
	"write-a-g": {a: []string{svcR, svcW, cfgR, cfgW}, all: []string{sessW, list, anyOK, open}},
	"write-pay": {a: []string{svcR, svcW}, all: []string{list, anyOK, open}},
	"deny-over": {a: []string{svcR, svcW}, all: []string{list, anyOK, open}},
	"management": {a: []string{svcR, svcW, cfgR, cfgW}, b: []string{svcR, svcW, cfgR, cfgW},
		all: []string{sessW, list, anyOK, open, clR, clW, aclR, aclW, snapR}},
}

// The policies the tokens hold.
var authPolicies = map[string]string{
	"read-a": `name: read-a
rules:
  - namespace: team-a
    service: "*"
    access: read
  - namespace: team-a
    config: "*"
    access: read
`,
	"write-a-g": `name: write-a-g
rules:
  - namespace: team-a
    group: g
    service: "*"
    access: write
  - namespace: team-a
    group: g
    config: "*"
    access: write
  - session: "*"
    access: write
`,
	"write-pay": `name: write-pay
rules:
  - namespace: team-a
    service: "pay*"
    access: write
`,
	// A broad grant, and a deny that overrides it for the configs.
	"deny-over": `name: deny-over
rules:
  - namespace: "*"
    service: "*"
    access: read
  - namespace: team-a
    service: "*"
    access: write
  - namespace: team-a
    config: "*"
    access: write
  - namespace: team-a
    config: "app*"
    access: deny
  - namespace: team-b
    service: "*"
    access: deny
`,
}

func allowed(token, class, ns string) bool {
	g := grants[token]
	if slices.Contains(g.all, class) {
		return true
	}
	if ns == nsA {
		return slices.Contains(g.a, class)
	}
	return slices.Contains(g.b, class)
}

// authOp is one RPC, as each surface calls it.
type authOp struct {
	name, class string
	grpc        func(ctx context.Context, cc *grpc.ClientConn, ns string) error
	// rest returns the request; method "" when the RPC has no REST route.
	rest func(ns string) (method, path, body string)
	// sdk calls the SDK's equivalent; nil when it has none.
	sdk func(ctx context.Context, c *sdk.Client) error
}

// muxWatchOnce opens a WatchService stream with one watch and returns
// how it began: nil once created, the watch's ended error, or the
// stream's.
func muxWatchOnce(ctx context.Context, cc *grpc.ClientConn, create *pb.WatchCreateRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := pb.NewWatchServiceClient(cc).Watch(ctx)
	if err != nil {
		return err
	}
	create.WatchId = 7
	// A stream the gateway refused makes Send fail with io.EOF; Recv
	// then says why.
	if err := s.Send(&pb.WatchRequest{Request: &pb.WatchRequest_Create{Create: create}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	resp, err := s.Recv()
	switch {
	case err != nil:
		return err
	case resp.GetEnded() != nil:
		return pb.Status(resp.GetEnded().Err()).Err()
	case resp.GetCreated() == nil:
		return fmt.Errorf("watch began with %v, not created", resp)
	}
	return nil
}

func svcPathIn(ns string) string {
	return "/v1/namespaces/" + ns + "/groups/" + authGroup + "/services/" + authSvc
}

func cfgPathIn(ns, id string) string {
	return "/v1/namespaces/" + ns + "/groups/" + authGroup + "/configs/" + id
}

// importOne is an archive of one item of authGroup.
var importOne = func() []byte {
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	w, _ := z.Create(authGroup + "/" + authCfg)
	_, _ = w.Write([]byte("a: 1\n"))
	_ = z.Close()
	return buf.Bytes()
}()

func authOps() []authOp {
	reg := func(cc *grpc.ClientConn) pb.RegistryServiceClient { return pb.NewRegistryServiceClient(cc) }
	cfg := func(cc *grpc.ClientConn) pb.ConfigServiceClient { return pb.NewConfigServiceClient(cc) }
	acls := func(cc *grpc.ClientConn) pb.AclServiceClient { return pb.NewAclServiceClient(cc) }
	const unknownID = "00000000-0000-4000-8000-000000000000"
	return []authOp{
		{"CreateSession", sessW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := reg(cc).CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(5 * time.Second)})
			return err
		}, func(string) (string, string, string) { return "POST", "/v1/sessions", `{"ttl":"5s"}` }, nil},
		{"KeepAliveSession", sessW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := reg(cc).KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: "nope"})
			return err
		}, func(string) (string, string, string) { return "PUT", "/v1/sessions/nope/keepalive", "" }, nil},
		{"DeleteSession", sessW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := reg(cc).DeleteSession(ctx, &pb.DeleteSessionRequest{Id: "nope"})
			return err
		}, func(string) (string, string, string) { return "DELETE", "/v1/sessions/nope", "" }, nil},
		{"RegisterInstance", svcW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := reg(cc).RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: ns, Group: authGroup, Service: authSvc,
				Id: "i1", Ip: "10.0.0.1", Port: 80})
			return err
		}, func(ns string) (string, string, string) {
			return "POST", svcPathIn(ns) + "/instances", `{"id":"i1","ip":"10.0.0.1","port":80}`
		}, func(ctx context.Context, c *sdk.Client) error {
			_, err := c.Register(ctx, authSvc, model.Instance{ID: "i1", IP: "10.0.0.1", Port: 80}, sdk.Persistent())
			return err
		}},
		{"DeregisterInstance", svcW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := reg(cc).DeregisterInstance(ctx, &pb.DeregisterInstanceRequest{Namespace: ns, Group: authGroup, Service: authSvc, Id: "nope"})
			return err
		}, func(ns string) (string, string, string) { return "DELETE", svcPathIn(ns) + "/instances/nope", "" }, nil},
		{"ListInstances", svcR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := reg(cc).ListInstances(ctx, &pb.ListInstancesRequest{Namespace: ns, Group: authGroup, Service: authSvc})
			return err
		}, func(ns string) (string, string, string) { return "GET", svcPathIn(ns) + "/instances", "" },
			func(ctx context.Context, c *sdk.Client) error { _, _, err := c.Instances(ctx, authSvc); return err }},
		{"WatchInstances", svcR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			w, err := reg(cc).WatchInstances(ctx, &pb.WatchInstancesRequest{Namespace: ns, Group: authGroup, Service: authSvc})
			if err == nil {
				_, err = w.Recv()
			}
			return err
		}, func(ns string) (string, string, string) { return "WATCH", svcPathIn(ns) + "/instances:watch", "" },
			func(ctx context.Context, c *sdk.Client) error {
				s, err := c.Subscribe(ctx, authSvc)
				if err == nil {
					s.Close()
				}
				return err
			}},
		{"ListServices", list, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := reg(cc).ListServices(ctx, &pb.ListServicesRequest{Namespace: ns})
			return err
		}, func(ns string) (string, string, string) { return "GET", "/v1/namespaces/" + ns + "/services", "" },
			func(ctx context.Context, c *sdk.Client) error { _, err := c.Services(ctx); return err }},
		// Filtered, as ListServices is (checkFiltered); over REST the
		// stream says nothing until a visible service's summary.
		{"WatchServices", list, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			// Allowed: the stream's header says its watches are in place
			// (a service left out sends nothing more). Refused: no header,
			// and the status says why.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			w, err := reg(cc).WatchServices(ctx, &pb.WatchServicesRequest{Namespace: ns, Services: []string{authGroup + "/" + authSvc}})
			if err != nil {
				return err
			}
			if md, err := w.Header(); err == nil && len(md.Get(gateway.WatchEstablishedHeader)) > 0 {
				return nil
			}
			_, err = w.Recv()
			return err
		}, func(string) (string, string, string) { return "", "", "" }, nil},
		{"SetInstanceState", svcW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			w := float64(3)
			_, err := reg(cc).SetInstanceState(ctx, &pb.SetInstanceStateRequest{Namespace: ns, Group: authGroup, Service: authSvc, Id: "i1", Weight: &w})
			return err
		}, func(ns string) (string, string, string) {
			return "PATCH", svcPathIn(ns) + "/instances/i1", `{"weight":3}`
		}, nil},
		{"GetInstanceHealth", svcR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := reg(cc).GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Namespace: ns, Group: authGroup, Service: authSvc, Id: "i1"})
			return err
		}, func(ns string) (string, string, string) { return "GET", svcPathIn(ns) + "/instances/i1/health", "" }, nil},
		{"GetServiceSettings", svcR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := reg(cc).GetServiceSettings(ctx, &pb.GetServiceSettingsRequest{Namespace: ns, Group: authGroup, Service: authSvc})
			return err
		}, func(ns string) (string, string, string) { return "GET", svcPathIn(ns) + "/settings", "" }, nil},
		{"PutServiceSettings", svcW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := reg(cc).PutServiceSettings(ctx, &pb.PutServiceSettingsRequest{Namespace: ns, Group: authGroup, Service: authSvc,
				Settings: &pb.ServiceSettings{ProtectThreshold: 0.1}})
			return err
		}, func(ns string) (string, string, string) {
			return "PUT", svcPathIn(ns) + "/settings", `{"protectThreshold":0.1}`
		}, nil},
		{"GetConfig", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).GetConfig(ctx, &pb.GetConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			return err
		}, func(ns string) (string, string, string) { return "GET", cfgPathIn(ns, authCfg), "" },
			func(ctx context.Context, c *sdk.Client) error { _, err := c.GetConfig(ctx, authCfg); return err }},
		{"PutConfig", cfgW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).PutConfig(ctx, &pb.PutConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg, Content: "a: 1\n"})
			return err
		}, func(ns string) (string, string, string) { return "PUT", cfgPathIn(ns, authCfg), "a: 1\n" },
			func(ctx context.Context, c *sdk.Client) error {
				_, err := c.PublishConfig(ctx, authCfg, []byte("a: 1\n"))
				return err
			}},
		{"DeleteConfig", cfgW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).DeleteConfig(ctx, &pb.DeleteConfigRequest{Namespace: ns, Group: authGroup, DataId: "app-gone.yaml"})
			return err
		}, func(ns string) (string, string, string) { return "DELETE", cfgPathIn(ns, "app-gone.yaml"), "" },
			func(ctx context.Context, c *sdk.Client) error { return c.DeleteConfig(ctx, "app-gone.yaml") }},
		{"ListConfigs", list, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).ListConfigs(ctx, &pb.ListConfigsRequest{Namespace: ns})
			return err
		}, func(ns string) (string, string, string) { return "GET", "/v1/namespaces/" + ns + "/configs", "" }, nil},
		{"WatchConfig", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			w, err := cfg(cc).WatchConfig(ctx, &pb.WatchConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			if err == nil {
				_, err = w.Recv()
			}
			return err
		}, func(ns string) (string, string, string) { return "WATCH", cfgPathIn(ns, authCfg) + ":watch", "" }, nil},
		// A watch of a multiplexed stream is authorized as its own
		// stream would be: refused alone, with the stream's status only
		// when the token itself is refused.
		{"Watch (instances)", svcR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			return muxWatchOnce(ctx, cc, &pb.WatchCreateRequest{Target: &pb.WatchCreateRequest_Instances{
				Instances: &pb.WatchInstancesRequest{Namespace: ns, Group: authGroup, Service: authSvc}}})
		}, func(string) (string, string, string) { return "", "", "" }, nil},
		{"Watch (config)", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			return muxWatchOnce(ctx, cc, &pb.WatchCreateRequest{Target: &pb.WatchCreateRequest_Config{
				Config: &pb.WatchConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg}}})
		}, func(string) (string, string, string) { return "", "", "" }, nil},
		{"ListConfigHistory", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).ListConfigHistory(ctx, &pb.ListConfigHistoryRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			return err
		}, func(ns string) (string, string, string) { return "GET", cfgPathIn(ns, authCfg) + "/history", "" },
			func(ctx context.Context, c *sdk.Client) error { _, err := c.ConfigHistory(ctx, authCfg); return err }},
		{"GetConfigVersion", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).GetConfigVersion(ctx, &pb.GetConfigVersionRequest{Namespace: ns, Group: authGroup, DataId: authCfg, Number: 1})
			return err
		}, func(ns string) (string, string, string) { return "GET", cfgPathIn(ns, authCfg) + "/history/1", "" },
			func(ctx context.Context, c *sdk.Client) error { _, err := c.ConfigVersion(ctx, authCfg, 1); return err }},
		{"DiffConfig", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).DiffConfig(ctx, &pb.DiffConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			return err
		}, func(ns string) (string, string, string) { return "GET", cfgPathIn(ns, authCfg) + "/diff", "" },
			func(ctx context.Context, c *sdk.Client) error { _, err := c.DiffConfig(ctx, authCfg, 0, 0); return err }},
		{"RollbackConfig", cfgW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).RollbackConfig(ctx, &pb.RollbackConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg, Number: 1})
			return err
		}, func(ns string) (string, string, string) {
			return "POST", cfgPathIn(ns, authCfg) + "/rollback", `{"number":1}`
		},
			func(ctx context.Context, c *sdk.Client) error {
				_, err := c.RollbackConfig(ctx, authCfg, 1)
				return err
			}},
		{"ListConfigListeners", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).ListConfigListeners(ctx, &pb.ListConfigListenersRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			return err
		}, func(ns string) (string, string, string) { return "GET", cfgPathIn(ns, authCfg) + "/listeners", "" }, nil},
		{"GetGrayConfig", cfgR, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).GetGrayConfig(ctx, &pb.GetGrayConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			return err
		}, func(ns string) (string, string, string) { return "GET", cfgPathIn(ns, authCfg) + "/gray", "" }, nil},
		{"PromoteGrayConfig", cfgW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).PromoteGrayConfig(ctx, &pb.PromoteGrayConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			return err
		}, func(ns string) (string, string, string) {
			return "POST", cfgPathIn(ns, authCfg) + "/gray/promote", "{}"
		}, nil},
		{"AbortGrayConfig", cfgW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).AbortGrayConfig(ctx, &pb.AbortGrayConfigRequest{Namespace: ns, Group: authGroup, DataId: authCfg})
			return err
		}, func(ns string) (string, string, string) { return "DELETE", cfgPathIn(ns, authCfg) + "/gray", "" }, nil},
		{"ExportConfigs", list, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).ExportConfigs(ctx, &pb.ExportConfigsRequest{Namespace: ns})
			return err
		}, func(ns string) (string, string, string) { return "GET", "/v1/namespaces/" + ns + "/configs:export", "" }, nil},
		// An import of one item of the group: a dry run, so that the
		// matrix leaves the data as it found it.
		{"ImportConfigs", cfgW, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := cfg(cc).ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: ns, Archive: importOne, DryRun: true})
			return err
		}, func(ns string) (string, string, string) {
			return "POST", "/v1/namespaces/" + ns + "/configs:import", `{"archive":"` + base64.StdEncoding.EncodeToString(importOne) + `","dryRun":true}`
		}, nil},
		{"GetStatus", anyOK, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pb.NewStatusServiceClient(cc).GetStatus(ctx, &pb.GetStatusRequest{})
			return err
		}, func(string) (string, string, string) { return "GET", "/v1/status", "" }, nil},
		{"ListMembers", clR, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pb.NewClusterServiceClient(cc).ListMembers(ctx, &pb.ListMembersRequest{})
			return err
		}, func(string) (string, string, string) { return "GET", "/v1/members", "" }, nil},
		// Adding a member for real would break the quorum; a malformed
		// request is refused after the authorizer let it through.
		{"AddMember", clW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pb.NewClusterServiceClient(cc).AddMember(ctx, &pb.AddMemberRequest{})
			return err
		}, func(string) (string, string, string) { return "POST", "/v1/members", `{}` }, nil},
		{"RemoveMember", clW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := pb.NewClusterServiceClient(cc).RemoveMember(ctx, &pb.RemoveMemberRequest{})
			return err
		}, func(string) (string, string, string) { return "DELETE", "/v1/members/%20", "" }, nil},
		{"Metrics", clR, nil, func(string) (string, string, string) { return "GET", "/metrics", "" }, nil},
		{"SaveSnapshot", snapR, nil, func(string) (string, string, string) { return "GET", "/v1/snapshot", "" }, nil},
		{"Bootstrap", open, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).Bootstrap(ctx, &pb.BootstrapRequest{})
			return err
		}, func(string) (string, string, string) { return "POST", "/v1/acl/bootstrap", `{}` }, nil},
		{"CreateToken", aclW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"no-such-policy"}})
			return err
		}, func(string) (string, string, string) {
			return "POST", "/v1/acl/tokens", `{"policies":["no-such-policy"]}`
		}, nil},
		{"ListTokens", aclR, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).ListTokens(ctx, &pb.ListTokensRequest{})
			return err
		}, func(string) (string, string, string) { return "GET", "/v1/acl/tokens", "" }, nil},
		{"ReadToken", aclR, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).ReadToken(ctx, &pb.ReadTokenRequest{AccessorId: unknownID})
			return err
		}, func(string) (string, string, string) { return "GET", "/v1/acl/tokens/" + unknownID, "" }, nil},
		{"RevokeToken", aclW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: unknownID})
			return err
		}, func(string) (string, string, string) { return "DELETE", "/v1/acl/tokens/" + unknownID, "" }, nil},
		{"CreatePolicy", aclW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: "name: x\nrules: 3\n"})
			return err
		}, func(string) (string, string, string) {
			return "POST", "/v1/acl/policies", `{"rules":"name: x\nrules: 3\n"}`
		}, nil},
		{"UpdatePolicy", aclW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: "nope", Rules: "name: nope\n"})
			return err
		}, func(string) (string, string, string) {
			return "PUT", "/v1/acl/policies/nope", `{"rules":"name: nope\n"}`
		}, nil},
		{"ListPolicies", aclR, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).ListPolicies(ctx, &pb.ListPoliciesRequest{})
			return err
		}, func(string) (string, string, string) { return "GET", "/v1/acl/policies", "" }, nil},
		{"ReadPolicy", aclR, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).ReadPolicy(ctx, &pb.ReadPolicyRequest{Name: "read-a"})
			return err
		}, func(string) (string, string, string) { return "GET", "/v1/acl/policies/read-a", "" }, nil},
		{"DeletePolicy", aclW, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).DeletePolicy(ctx, &pb.DeletePolicyRequest{Name: "nope"})
			return err
		}, func(string) (string, string, string) { return "DELETE", "/v1/acl/policies/nope", "" }, nil},
		{"WhoAmI", anyOK, func(ctx context.Context, cc *grpc.ClientConn, _ string) error {
			_, err := acls(cc).WhoAmI(ctx, &pb.WhoAmIRequest{})
			return err
		}, func(string) (string, string, string) { return "GET", "/v1/acl/self", "" }, nil},
		{"CheckAccess", anyOK, func(ctx context.Context, cc *grpc.ClientConn, ns string) error {
			_, err := acls(cc).CheckAccess(ctx, &pb.CheckAccessRequest{Checks: []*pb.AccessCheck{{Kind: "service", Namespace: ns, Name: authSvc, Action: "write"}}})
			return err
		}, func(ns string) (string, string, string) {
			return "POST", "/v1/acl/self/check", `{"checks":[{"kind":"service","namespace":"` + ns + `","name":"x","action":"write"}]}`
		}, nil},
	}
}

// denied reports whether err is an access control refusal; any other
// outcome (success, NOT_FOUND, INVALID_ARGUMENT, UNSUPPORTED...) means the
// authorizer let the call through.
func denied(err error) bool {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted:
		return true
	}
	return errors.Is(err, model.ErrPermissionDenied) || errors.Is(err, model.ErrUnauthenticated) || errors.Is(err, model.ErrRateLimited)
}

func deniedHTTP(code int) bool {
	return code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusTooManyRequests
}

// withToken returns a gRPC connection to addr that sends secret.
func withToken(t testing.TB, addr, secret string) *grpc.ClientConn {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if secret != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(sdk.BearerToken(secret)))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// restCall makes a REST request with secret and returns its status; a
// WATCH is a GET whose stream is left once its status is known.
func restCall(t testing.TB, addr, secret, method, path, body string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watch := method == "WATCH"
	if watch {
		method = "GET"
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if watch {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		return resp.StatusCode, line
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// secrets are the matrix's tokens, by name ("" for none).
type secrets map[string]string

// setUpACL bootstraps the ACL at addr and creates the policies, the tokens
// and the data the matrix reads.
func setUpACL(t *testing.T, addr string) secrets {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	anon := pb.NewAclServiceClient(withToken(t, addr, ""))
	var boot *pb.TokenSecret
	var err error
	// A cluster's gateways may still be finding their leader, and the
	// leader's gateway creating the ACL record (with the peer secret the
	// entry forwards with).
	for ctx.Err() == nil {
		boot, err = anon.Bootstrap(ctx, &pb.BootstrapRequest{})
		if c := status.Code(err); c != codes.Unavailable && c != codes.Unauthenticated {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if !boot.Token.Management || !strings.HasPrefix(boot.Secret, "jct_") {
		t.Fatalf("bootstrap gave %v", boot.Token)
	}
	if _, err := anon.Bootstrap(ctx, &pb.BootstrapRequest{}); status.Code(err) != codes.Aborted || !strings.Contains(err.Error(), "--acl-bootstrap-reset") {
		t.Fatalf("second bootstrap: %v, want CONFLICT naming the reset", err)
	}
	mc := withToken(t, addr, boot.Secret)
	m := pb.NewAclServiceClient(mc)
	for _, text := range authPolicies {
		if _, err := m.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: text}); err != nil {
			t.Fatalf("create policy: %v", err)
		}
	}
	s := secrets{"none": "", "malformed": "jct_not-a-secret", "unknown": "jct_" + strings.Repeat("A", 43), "management": boot.Secret}
	for name := range authPolicies {
		ts, err := m.CreateToken(ctx, &pb.CreateTokenRequest{Description: name, Policies: []string{name}})
		if err != nil {
			t.Fatalf("create token: %v", err)
		}
		s[name] = ts.Secret
	}
	exp, err := m.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"read-a"}, Ttl: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := m.CreateToken(ctx, &pb.CreateTokenRequest{Policies: []string{"read-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: rev.Token.AccessorId}); err != nil {
		t.Fatal(err)
	}
	s["expired"], s["revoked"] = exp.Secret, rev.Secret
	reg, cfg := pb.NewRegistryServiceClient(mc), pb.NewConfigServiceClient(mc)
	for _, ns := range []string{nsA, nsB} {
		if _, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: ns, Group: authGroup, Service: authSvc,
			Id: "i1", Ip: "10.0.0.1", Port: 80}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{authCfg, "other.yaml"} {
			if _, err := cfg.PutConfig(ctx, &pb.PutConfigRequest{Namespace: ns, Group: authGroup, DataId: id, Content: "a: 0\n"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(time.Until(exp.Token.Expires.AsTime()))
	return s
}

// TestAuthMatrix asserts one table of tokens × RPCs × namespaces through
// gRPC, REST and the SDK, on the built-in store (one node, and a 3-node
// cluster entered at a follower), etcd and Consul: every cell allows or
// denies as the table says, every denial is in the audit log, lists are
// filtered, a revoke at one gateway holds at the other within a second,
// and no secret shows in logs, the audit log or /metrics.
func TestAuthMatrix(t *testing.T) {
	targets := authTargets(t)
	for _, name := range []string{"raft", "raft-3", "etcd", "consul"} {
		t.Run(name, func(t *testing.T) {
			srv := targets[name](t)
			s := setUpACL(t, srv.entry)
			denials := runMatrix(t, srv, s)
			checkAuthors(t, srv, s)
			checkAccessAnswers(t, srv, s)
			checkWatchServicesLosesRight(t, srv, s)
			checkFiltered(t, srv, s)
			checkRevokeEverywhere(t, srv, s)
			checkAudit(t, srv, denials)
			checkNoSecrets(t, srv, s)
		})
	}
}

// checkWatchServicesLosesRight: a WatchServices stream, filtered when it
// opened, ends with PERMISSION_DENIED once a policy change takes away the
// right to read a service it shows.
func checkWatchServicesLosesRight(t *testing.T, srv *authServer, s secrets) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := pb.NewAclServiceClient(withToken(t, srv.entry, s["management"]))
	const grant = "name: counts\nrules:\n  - namespace: team-a\n    service: \"*\"\n    access: read\n"
	if _, err := m.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: grant}); err != nil {
		t.Fatal(err)
	}
	ts, err := m.CreateToken(ctx, &pb.CreateTokenRequest{Description: "counts", Policies: []string{"counts"}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := pb.NewRegistryServiceClient(withToken(t, srv.entry, ts.Secret)).WatchServices(ctx,
		&pb.WatchServicesRequest{Namespace: nsA, Services: []string{authGroup + "/" + authSvc}})
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := w.Recv(); err != nil || sum.Service != authSvc {
		t.Fatalf("first summary: %v, %v", sum, err)
	}
	if _, err := m.UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: "counts",
		Rules: "name: counts\nrules:\n  - namespace: team-b\n    service: \"*\"\n    access: read\n"}); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	for {
		_, err := w.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("the stream ended with %v, want PERMISSION_DENIED", err)
		}
		t.Logf("WatchServices ended %v after the policy lost the right", time.Since(changed).Round(time.Millisecond))
		return
	}
}

// checkAccessAnswers checks that CheckAccess answers each token as the
// matrix's enforcement does, cell by cell, and refuses malformed checks.
func checkAccessAnswers(t *testing.T, srv *authServer, s secrets) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type cell struct{ kind, action, grant string }
	cells := []cell{{"service", "read", svcR}, {"service", "write", svcW}, {"config", "read", cfgR}, {"config", "write", cfgW}}
	for name, g := range grants {
		if len(g.all) == 0 || name == "none" {
			continue // refused before any check: the matrix covers it
		}
		var checks []*pb.AccessCheck
		var want []bool
		for _, ns := range []string{nsA, nsB} {
			granted := g.a
			if ns == nsB {
				granted = g.b
			}
			for _, c := range cells {
				res := authSvc
				if c.kind == "config" {
					res = authCfg
				}
				checks = append(checks, &pb.AccessCheck{Kind: c.kind, Namespace: ns, Group: authGroup, Name: res, Action: c.action})
				want = append(want, slices.Contains(granted, c.grant))
			}
		}
		resp, err := pb.NewAclServiceClient(withToken(t, srv.entry, s[name])).CheckAccess(ctx, &pb.CheckAccessRequest{Checks: checks})
		if err != nil {
			t.Fatalf("%s: CheckAccess: %v", name, err)
		}
		for i, ch := range checks {
			if resp.Allowed[i] != want[i] {
				t.Errorf("%s: CheckAccess %s %s in %s says %v; the matrix enforces %v", name, ch.Action, ch.Kind, ch.Namespace, resp.Allowed[i], want[i])
			}
		}
	}
	m := pb.NewAclServiceClient(withToken(t, srv.entry, s["read-a"]))
	for _, bad := range []*pb.CheckAccessRequest{
		{Checks: []*pb.AccessCheck{{Kind: "services", Action: "read"}}},
		{Checks: []*pb.AccessCheck{{Kind: "service", Action: "delete"}}},
		{Checks: make([]*pb.AccessCheck, 101)},
	} {
		for i := range bad.Checks {
			if bad.Checks[i] == nil {
				bad.Checks[i] = &pb.AccessCheck{Kind: "service", Action: "read"}
			}
		}
		if _, err := m.CheckAccess(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("CheckAccess %v: %v, want INVALID_ARGUMENT", bad.Checks[0], err)
		}
	}
}

// checkAuthors checks that a config version names the token that made it,
// through whichever gateway (a follower forwards it), and that a caller
// cannot name another author.
func checkAuthors(t *testing.T, srv *authServer, s secrets) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cc := withToken(t, srv.entry, s["write-a-g"])
	who, err := pb.NewAclServiceClient(cc).WhoAmI(ctx, &pb.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	forged := metadata.AppendToOutgoingContext(ctx, "junction-author", "someone-else")
	c := pb.NewConfigServiceClient(cc)
	if _, err := c.PutConfig(forged, &pb.PutConfigRequest{Namespace: nsA, Group: authGroup, DataId: "authored.yaml",
		Content: "a: 1\n", Message: "by write-a-g"}); err != nil {
		t.Fatal(err)
	}
	h, err := c.ListConfigHistory(ctx, &pb.ListConfigHistoryRequest{Namespace: nsA, Group: authGroup, DataId: "authored.yaml"})
	if err != nil || len(h.Versions) != 1 {
		t.Fatalf("history: %v (%v)", h, err)
	}
	if v := h.Versions[0]; v.Author != who.AccessorId || v.Message != "by write-a-g" {
		t.Errorf("the version names author %q (message %q), want the token's accessor %s", v.Author, v.Message, who.AccessorId)
	}
	if _, err := c.DeleteConfig(ctx, &pb.DeleteConfigRequest{Namespace: nsA, Group: authGroup, DataId: "authored.yaml"}); err != nil {
		t.Fatal(err)
	}
}

// runMatrix runs every cell and returns how many denials it saw.
func runMatrix(t *testing.T, srv *authServer, s secrets) int {
	ctx := context.Background()
	denials := 0
	for token := range grants {
		secret := s[token]
		cc := withToken(t, srv.entry, secret)
		for _, ns := range []string{nsA, nsB} {
			var sc *sdk.Client
			sdkOpts := []sdk.Option{sdk.WithAddrs(srv.entry), sdk.WithNamespace(ns), sdk.WithGroup(authGroup), sdk.WithLogger(slogTo(srv.logs))}
			if secret != "" {
				sdkOpts = append(sdkOpts, sdk.WithToken(secret))
			}
			sc, err := sdk.New(ctx, sdkOpts...)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range authOps() {
				want := allowed(token, op.class, ns)
				cell := fmt.Sprintf("%s × %s × %s (%s)", token, op.name, ns, op.class)
				if op.grpc != nil {
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := op.grpc(cctx, cc, ns)
					cancel()
					if denied(err) == want {
						t.Errorf("gRPC %s: allowed %v, want %v (%v)", cell, !denied(err), want, err)
					}
					if denied(err) {
						denials++
					}
				}
				if method, path, body := op.rest(ns); method != "" {
					code, resp := restCall(t, srv.entry, secret, method, path, body)
					if deniedHTTP(code) == want {
						t.Errorf("REST %s %s: %s: status %d, want allowed %v (%s)", method, path, cell, code, want, resp)
					}
					if deniedHTTP(code) {
						denials++
					}
				}
				if op.sdk != nil {
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := op.sdk(cctx, sc)
					cancel()
					if denied(err) == want {
						t.Errorf("SDK %s: allowed %v, want %v (%v)", cell, !denied(err), want, err)
					}
					if denied(err) {
						denials++
					}
				}
			}
			sc.Close()
		}
	}
	return denials
}

// checkFiltered: lists show only what the token may read.
func checkFiltered(t *testing.T, srv *authServer, s secrets) {
	ctx := context.Background()
	for token, want := range map[string]map[string][]string{
		"read-a":     {nsA + " configs": {authCfg, "other.yaml"}, nsB + " configs": nil, nsA + " services": {authSvc}, nsB + " services": nil},
		"write-pay":  {nsA + " configs": nil, nsA + " services": {authSvc}, nsB + " services": nil},
		"deny-over":  {nsA + " configs": {"other.yaml"}, nsB + " services": nil, nsB + " configs": nil},
		"management": {nsB + " configs": {authCfg, "other.yaml"}, nsB + " services": {authSvc}},
	} {
		cc := withToken(t, srv.entry, s[token])
		for what, names := range want {
			ns, kind, _ := strings.Cut(what, " ")
			var got []string
			if kind == "configs" {
				resp, err := pb.NewConfigServiceClient(cc).ListConfigs(ctx, &pb.ListConfigsRequest{Namespace: ns})
				if err != nil {
					t.Fatalf("%s lists %s: %v", token, what, err)
				}
				for _, c := range resp.Configs {
					if c.DataId != "app-gone.yaml" {
						got = append(got, c.DataId)
					}
				}
				// An export holds what the list shows, and nothing else.
				exp, err := pb.NewConfigServiceClient(cc).ExportConfigs(ctx, &pb.ExportConfigsRequest{Namespace: ns})
				if err != nil {
					t.Fatalf("%s exports %s: %v", token, ns, err)
				}
				z, err := zip.NewReader(bytes.NewReader(exp.Archive), int64(len(exp.Archive)))
				if err != nil {
					t.Fatal(err)
				}
				var exported []string
				for _, f := range z.File {
					if _, id, ok := strings.Cut(f.Name, "/"); ok && id != "app-gone.yaml" {
						exported = append(exported, id)
					}
				}
				slices.Sort(exported)
				if !slices.Equal(exported, names) {
					t.Errorf("%s exports %s: %v, want %v", token, ns, exported, names)
				}
			} else {
				resp, err := pb.NewRegistryServiceClient(cc).ListServices(ctx, &pb.ListServicesRequest{Namespace: ns})
				if err != nil {
					t.Fatalf("%s lists %s: %v", token, what, err)
				}
				for _, sv := range resp.Services {
					got = append(got, sv.Service)
				}
				// A watch of the service shows only what the list shows: its
				// first summary when visible, nothing otherwise (waited for a
				// second).
				wait := 5 * time.Second
				if len(names) == 0 {
					wait = time.Second
				}
				wctx, cancel := context.WithTimeout(ctx, wait)
				w, err := pb.NewRegistryServiceClient(cc).WatchServices(wctx, &pb.WatchServicesRequest{Namespace: ns,
					Services: []string{authGroup + "/" + authSvc}})
				if err != nil {
					t.Fatalf("%s watches %s: %v", token, what, err)
				}
				var watched []string
				for len(watched) <= len(names) {
					sum, err := w.Recv()
					if err != nil {
						if status.Code(err) != codes.DeadlineExceeded {
							t.Errorf("%s watches %s: %v", token, what, err)
						}
						break
					}
					watched = append(watched, sum.Service)
					if len(watched) == len(names) {
						break
					}
				}
				cancel()
				if !slices.Equal(watched, names) {
					t.Errorf("%s watches %s: %v, want %v", token, what, watched, names)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, names) {
				t.Errorf("%s lists %s: %v, want %v", token, what, got, names)
			}
		}
	}
}

// checkRevokeEverywhere: a watch opened at the second gateway ends with
// PERMISSION_DENIED (or UNAUTHENTICATED) within a second of a revoke made
// at the first, and the second gateway refuses the token as quickly.
func checkRevokeEverywhere(t *testing.T, srv *authServer, s secrets) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := pb.NewAclServiceClient(withToken(t, srv.entry, s["management"]))
	ts, err := m.CreateToken(ctx, &pb.CreateTokenRequest{Description: "watcher", Policies: []string{"read-a"}})
	if err != nil {
		t.Fatal(err)
	}
	cc := withToken(t, srv.other, ts.Secret)
	var w grpc.ServerStreamingClient[pb.ConfigEvent]
	for ctx.Err() == nil { // the other gateway learns the new token at once (a read from the store on a miss)
		w, err = pb.NewConfigServiceClient(cc).WatchConfig(ctx, &pb.WatchConfigRequest{Namespace: nsA, Group: authGroup, DataId: authCfg})
		if err == nil {
			_, err = w.Recv()
		}
		if err == nil {
			break
		}
		t.Fatalf("watch with a new token at the other gateway: %v", err)
	}
	ended := streamEnd(w)
	revoked := time.Now()
	if _, err := m.RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: ts.Token.AccessorId}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		took := time.Since(revoked)
		t.Logf("the watch at the other gateway ended %v after the revoke: %v", took.Round(time.Millisecond), err)
		if !denied(err) {
			t.Errorf("the watch ended with %v, want a denial", err)
		}
		if took > time.Second {
			t.Errorf("the watch ended %v after the revoke, bound 1s", took)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the watch still runs 3s after its token was revoked")
	}
	_, err = pb.NewConfigServiceClient(cc).GetConfig(ctx, &pb.GetConfigRequest{Namespace: nsA, Group: authGroup, DataId: authCfg})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("a read at the other gateway with the revoked token: %v, want UNAUTHENTICATED", err)
	}
}

// checkAudit: the entry gateway's audit log holds one line per denial the
// matrix saw, never a secret, and the writes with their accessor.
func checkAudit(t *testing.T, srv *authServer, denials int) {
	b, err := os.ReadFile(srv.audit)
	if err != nil {
		t.Fatal(err)
	}
	var refused, writes int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ Accessor, Client, Method, Resource, Outcome string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if e.Client == "" || e.Method == "" || e.Outcome == "" {
			t.Errorf("audit line lacks a field: %s", line)
		}
		switch e.Outcome {
		case "PERMISSION_DENIED", "UNAUTHENTICATED", "RATE_LIMITED":
			refused++
		default:
			writes++
		}
	}
	t.Logf("audit log: %d denials (the matrix saw %d), %d other entries", refused, denials, writes)
	// The setup's second bootstrap and the revoke check add no denial at
	// the entry gateway; the SDK's retries could add some.
	if refused < denials {
		t.Errorf("the audit log has %d denials, the matrix saw %d", refused, denials)
	}
	if writes == 0 {
		t.Error("the audit log has no write")
	}
}

// checkNoSecrets: no secret appears in the logs, the audit log or /metrics.
func checkNoSecrets(t *testing.T, srv *authServer, s secrets) {
	audit, _ := os.ReadFile(srv.audit)
	_, metrics := restCall(t, srv.entry, s["management"], "GET", "/metrics", "")
	if !strings.Contains(metrics, "junction_audit_events_total") {
		t.Errorf("/metrics lacks the audit counts")
	}
	_, openapi := restCall(t, srv.entry, "", "GET", "/openapi.json", "")
	for name, secret := range s {
		if len(secret) < 40 {
			continue // none, malformed: not secrets
		}
		for where, text := range map[string]string{"logs": srv.logs.String(), "audit log": string(audit), "/metrics": metrics, "openapi": openapi} {
			if strings.Contains(text, secret) || strings.Contains(text, secret[4:]) {
				t.Errorf("the %s secret appears in the %s", name, where)
			}
		}
	}
}

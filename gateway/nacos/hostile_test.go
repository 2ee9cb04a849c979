package nacos_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	anypb "github.com/golang/protobuf/ptypes/any"
	nacosgrpc "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// raw is a hand-made client of the protocol: what an attacker, or a
// broken client, sends.
type raw struct {
	t      *testing.T
	cc     *grpc.ClientConn
	stream nacosgrpc.BiRequestStream_RequestBiStreamClient
	token  string // sent as the accessToken header, when set
}

func dialRaw(t *testing.T, e *env, setUp bool) *raw {
	t.Helper()
	cc, err := grpc.NewClient("127.0.0.1:"+strconv.FormatUint(e.grpc, 10), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	r := &raw{t: t, cc: cc}
	if setUp {
		if typ, _ := r.call("ServerCheckRequest", `{}`); typ != "ServerCheckResponse" {
			t.Fatalf("server check: %s", typ)
		}
		s, err := nacosgrpc.NewBiRequestStreamClient(cc).RequestBiStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&nacosgrpc.Payload{Metadata: &nacosgrpc.Metadata{Type: "ConnectionSetupRequest"}, Body: &anypb.Any{Value: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		r.stream = s
	}
	return r
}

// call sends one request and returns the response's type and body.
func (r *raw) call(typ, body string) (string, map[string]any) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md := &nacosgrpc.Metadata{Type: typ}
	if r.token != "" {
		md.Headers = map[string]string{"accessToken": r.token}
	}
	p, err := nacosgrpc.NewRequestClient(r.cc).Request(ctx, &nacosgrpc.Payload{Metadata: md, Body: &anypb.Any{Value: []byte(body)}})
	if err != nil {
		r.t.Fatalf("%s: %v", typ, err)
	}
	var out map[string]any
	_ = json.Unmarshal(p.GetBody().GetValue(), &out)
	return p.GetMetadata().GetType(), out
}

func code(m map[string]any) int {
	n, _ := m["errorCode"].(float64)
	return int(n)
}

// From the attacker's side: junk, out-of-range paging, Junction's own
// namespace, requests on a connection never set up, persistent
// registrations on the ephemeral path, another client's instance, and
// encrypted publishes, or beta ones that make no gray release.
func TestNacosHostileRequests(t *testing.T) {
	e := start(t)
	r := dialRaw(t, e, true)

	// Junk and unknown types are answered, and the server stays up.
	if typ, m := r.call("ConfigQueryRequest", `{not json`); typ != "ConfigQueryResponse" || code(m) != 400 {
		t.Errorf("junk: %s %v", typ, m)
	}
	if typ, m := r.call("NoSuchRequest", `{}`); typ != "ErrorResponse" || code(m) == 0 {
		t.Errorf("an unknown type: %s %v", typ, m)
	}
	for _, body := range []string{`{"pageNo":1,"pageSize":-1}`, `{"pageNo":9223372036854775807,"pageSize":1000}`, `{"pageNo":-5,"pageSize":0}`} {
		if typ, m := r.call("ServiceListRequest", body); typ != "ServiceListResponse" || m["success"] != true {
			t.Errorf("service list %s: %s %v", body, typ, m)
		}
	}
	if code, body := e.nacosCall(t, "GET", "/nacos/v1/ns/service/list", url.Values{"pageNo": {"9223372036854775807"}, "pageSize": {"-3"}}); code != 200 {
		t.Errorf("HTTP service list out of range: %d %s", code, body)
	}

	// Junction's own namespace (the ACL's record, health leases, gray
	// indexes) is not reachable through the front end, on any path.
	e.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/probe", "x")
	for _, req := range []struct{ typ, body string }{
		{"ConfigQueryRequest", `{"tenant":"junction-system","group":"acl","dataId":"state"}`},
		{"ConfigPublishRequest", `{"tenant":"junction-system","group":"acl","dataId":"state","content":"{}"}`},
		{"ConfigRemoveRequest", `{"tenant":"junction-system","group":"acl","dataId":"state"}`},
		{"ConfigBatchListenRequest", `{"listen":true,"configListenContexts":[{"tenant":"junction-system","group":"acl","dataId":"state","md5":""}]}`},
		{"ServiceQueryRequest", `{"namespace":"junction-system","groupName":"g","serviceName":"s"}`},
		{"SubscribeServiceRequest", `{"namespace":"junction-system","groupName":"g","serviceName":"s","subscribe":true}`},
	} {
		typ, m := r.call(req.typ, req.body)
		if code(m) != 403 || m["content"] != nil && m["content"] != "" {
			t.Errorf("%s in junction-system: %s %v", req.typ, typ, m)
		}
	}
	for _, path := range []string{"/nacos/v1/cs/configs", "/nacos/v1/ns/instance/list"} {
		q := url.Values{"tenant": {"junction-system"}, "namespaceId": {"junction-system"}, "group": {"acl"}, "dataId": {"state"}, "serviceName": {"s"}}
		if code, body := e.nacosCall(t, "GET", path, q); code != 403 {
			t.Errorf("HTTP %s in junction-system: %d %s", path, code, body)
		}
	}

	// A connection that never set its stream up is told so at once.
	bare := dialRaw(t, e, false)
	start := time.Now()
	if typ, m := bare.call("InstanceRequest", `{"serviceName":"x","type":"registerInstance","instance":{"ip":"10.0.0.1","port":1,"ephemeral":true,"enabled":true,"healthy":true,"weight":1}}`); typ != "ErrorResponse" || code(m) != 301 {
		t.Errorf("a request on a connection never set up: %s %v", typ, m)
	}
	if time.Since(start) > time.Second {
		t.Errorf("a connection never set up waited %v for its answer", time.Since(start))
	}
	if typ, m := bare.call("HealthCheckRequest", `{}`); typ != "ErrorResponse" || code(m) != 301 {
		t.Errorf("a health check of a connection never set up: %s %v", typ, m)
	}

	// The ephemeral path takes no persistent instance, nor replaces one.
	if _, m := r.call("InstanceRequest", `{"serviceName":"p","type":"registerInstance","instance":{"ip":"10.0.0.1","port":1,"ephemeral":false,"enabled":true,"healthy":true,"weight":1}}`); m["success"] == true {
		t.Errorf("a persistent instance on the ephemeral path: %v", m)
	}
	e.restCall(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/p/instances", `{"ip":"10.0.0.2","port":1}`)
	if _, m := r.call("InstanceRequest", `{"serviceName":"p","type":"registerInstance","instance":{"ip":"10.0.0.2","port":1,"ephemeral":true,"enabled":true,"healthy":true,"weight":1}}`); m["success"] == true {
		t.Errorf("an ephemeral registration over a persistent instance: %v", m)
	}
	if got := e.instances(t, "p")["10.0.0.2:1"]; got.Ephemeral || got.Session != "" {
		t.Errorf("the persistent instance became %+v", got)
	}

	// A client cannot deregister another's instance, nor a persistent one.
	owner := namingClient(t, e)
	if ok, err := owner.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.3", Port: 80, ServiceName: "p", Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	for _, id := range []string{`"ip":"10.0.0.3","port":80`, `"ip":"10.0.0.2","port":1`} {
		r.call("InstanceRequest", `{"serviceName":"p","type":"deregisterInstance","instance":{`+id+`,"ephemeral":true}}`)
	}
	if ins := e.instances(t, "p"); len(ins) != 2 {
		t.Errorf("after another client's deregistrations: %v", ins)
	}

	// Encrypted publishes, and beta or tagged ones that cannot make a
	// gray release, are refused, not published to everyone.
	for _, add := range []string{`"encryptedDataKey":"k"`, `"betaIps":"not-an-address"`, `"betaIps":" , "`, `"tag":"a tag with spaces"`,
		`"betaIps":"10.0.0.9","encryptedDataKey":"k"`} {
		_, m := r.call("ConfigPublishRequest", `{"group":"DEFAULT_GROUP","dataId":"probe","content":"y","additionMap":{`+add+`}}`)
		if m["success"] == true {
			t.Errorf("a publish with %s succeeded", add)
		}
	}
	if _, m := r.call("ConfigPublishRequest", `{"group":"DEFAULT_GROUP","dataId":"probe","content":"y","casMd5":"0123456789abcdef0123456789abcdef","additionMap":{"betaIps":"10.0.0.9"}}`); m["success"] == true {
		t.Errorf("a beta publish with a casMd5 succeeded: %v", m)
	}
	if _, m := r.call("ConfigPublishRequest", `{"group":"DEFAULT_GROUP","dataId":"absent","content":"y","additionMap":{"betaIps":"10.0.0.9"}}`); m["success"] == true {
		t.Errorf("a beta publish of an item that does not exist succeeded: %v", m)
	}
	if code, body := e.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/probe/gray", ""); code != 404 {
		t.Errorf("after the refused publishes the item has a gray release: %d %s", code, body)
	}
	if _, body := e.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/probe", ""); !strings.Contains(body, `"content":"x"`) {
		t.Errorf("after the refused publishes: %s", body)
	}
}

// An empty content's md5, as the Go client spells it (""), is not a
// change: a listen of an empty config does not loop.
func TestNacosEmptyConfigListen(t *testing.T) {
	e := start(t)
	e.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/empty", "")
	r := dialRaw(t, e, true)
	typ, m := r.call("ConfigBatchListenRequest", `{"listen":true,"configListenContexts":[{"group":"DEFAULT_GROUP","dataId":"empty","md5":""}]}`)
	if changed, _ := m["changedConfigs"].([]any); typ != "ConfigChangeBatchListenResponse" || len(changed) != 0 {
		t.Errorf("a listen of an empty config with md5 \"\": %s %v", typ, m)
	}
}

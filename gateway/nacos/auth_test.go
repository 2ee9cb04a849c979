package nacos_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	nmodel "github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/gateway/nacos"
)

// startAuth serves a gateway with access control on, and the front end
// deciding with its authorizer; it returns the management token's secret.
func startAuth(t *testing.T, tune ...func(*nacos.Config)) (*env, string) {
	t.Helper()
	b := stores["raft"](t)
	cfg := gateway.DefaultConfig()
	cfg.Auth = true
	l, err := gateway.ServeLoopback(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	httpLis, _ := net.Listen("tcp", "127.0.0.1:0")
	nc := nacos.DefaultConfig()
	nc.Authorizer, nc.Logins = l.Server(), l.Server()
	for _, f := range tune {
		f(&nc)
	}
	front := nacos.New(l.Server().Backend(), nc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- front.Serve(ctx, lis, httpLis) }()
	t.Cleanup(func() { cancel(); <-done })
	e := &env{rest: "http://" + l.Addr, grpc: uint64(lis.Addr().(*net.TCPAddr).Port), http: uint64(httpLis.Addr().(*net.TCPAddr).Port), nacos: front}
	var boot struct{ Secret string }
	code, body := e.restCall(t, "POST", "/v1/acl/bootstrap", "")
	if code != 200 || json.Unmarshal([]byte(body), &boot) != nil {
		t.Fatalf("bootstrap: %d %s", code, body)
	}
	return e, boot.Secret
}

func (e *env) asToken(secret string) *env {
	c := *e
	c.token = secret
	return &c
}

func authClientParam(t testing.TB, e *env, password string) vo.NacosClientParam {
	p := clientParam(t, e.http, e.grpc)
	if password != "" {
		constant.WithUsername("junction")(p.ClientConfig)
		constant.WithPassword(password)(p.ClientConfig)
	}
	return p
}

// From the attacker's side: with access control on, a Nacos client with
// no token, or a wrong one, may do nothing; a token's policy decides each
// request, lists show only what it may read, and a revoked token's
// subscription gets no more pushes.
func TestNacosAccessControl(t *testing.T) {
	e, mgmt := startAuth(t)
	m := e.asToken(mgmt)
	policy := "name: orders\nrules:\n  - namespace: public\n    service: \"orders\"\n    access: write\n  - namespace: public\n    config: \"app.yaml\"\n    access: read\n"
	body, _ := json.Marshal(map[string]string{"rules": policy})
	if code, b := m.restCall(t, "POST", "/v1/acl/policies", string(body)); code != 200 {
		t.Fatal(code, b)
	}
	var tok struct {
		Secret string
		Token  struct{ AccessorId string }
	}
	code, b := m.restCall(t, "POST", "/v1/acl/tokens", `{"description":"orders","policies":["orders"]}`)
	if code != 200 || json.Unmarshal([]byte(b), &tok) != nil {
		t.Fatal(code, b)
	}
	m.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 1\n")
	m.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/secret.yaml", "k: v\n")
	m.restCall(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/payments/instances", `{"ip":"10.0.0.9","port":1}`)

	reg := func(password, svc string) error {
		t.Helper()
		c, err := clients.NewNamingClient(authClientParam(t, e, password))
		if err != nil {
			return err
		}
		defer c.CloseClient()
		ok, err := c.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.5", Port: 8080, ServiceName: svc, Weight: 1, Enable: true, Healthy: true, Ephemeral: true})
		if err == nil && !ok {
			err = errRefused
		}
		return err
	}
	if err := reg("", "orders"); err == nil {
		t.Error("a client with no token registered")
	}
	if err := reg("jct_not-a-token", "orders"); err == nil {
		t.Error("a client with a wrong token registered")
	}
	if err := reg(tok.Secret, "payments"); err == nil {
		t.Error("a token that may write orders registered payments")
	}
	if _, found := m.instances(t, "orders")["10.0.0.5:8080"]; found {
		t.Fatal("a refused registration is listed")
	}

	// The token's client: what its policy grants, and nothing more.
	nc, err := clients.NewNamingClient(authClientParam(t, e, tok.Secret))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.CloseClient()
	if ok, err := nc.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.5", Port: 8080, ServiceName: "orders", Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
		t.Fatalf("the token's registration: %v %v", ok, err)
	}
	if list, err := nc.GetAllServicesInfo(vo.GetAllServiceInfoParam{PageNo: 1, PageSize: 10}); err != nil || strings.Join(list.Doms, ",") != "orders" {
		t.Errorf("the token lists %v (%v); payments is not its to see", list.Doms, err)
	}
	cc, err := clients.NewConfigClient(authClientParam(t, e, tok.Secret))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.CloseClient()
	if got, err := cc.GetConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP"}); err != nil || got != "a: 1\n" {
		t.Errorf("a config the token may read: %q %v", got, err)
	}
	if got, _ := cc.GetConfig(vo.ConfigParam{DataId: "secret.yaml", Group: "DEFAULT_GROUP"}); got == "k: v\n" {
		t.Error("a config the token may not read was read")
	}
	if ok, _ := cc.PublishConfig(vo.ConfigParam{DataId: "app.yaml", Group: "DEFAULT_GROUP", Content: "a: 2\n"}); ok {
		t.Error("a read-only token published")
	}

	// HTTP: no token, a wrong one, the token; the login.
	for _, c := range []struct {
		token string
		id    string
		want  int
	}{{"", "app.yaml", 401}, {"jct_nope", "app.yaml", 401}, {tok.Secret, "app.yaml", 200}, {tok.Secret, "secret.yaml", 403}} {
		q := url.Values{"dataId": {c.id}, "group": {"DEFAULT_GROUP"}}
		if c.token != "" {
			q.Set("accessToken", c.token)
		}
		if code, b := e.nacosCall(t, "GET", "/nacos/v1/cs/configs", q); code != c.want {
			t.Errorf("GET %s with token %.8q: %d %s, want %d", c.id, c.token, code, b, c.want)
		}
	}
	if code, _ := e.nacosCall(t, "POST", "/nacos/v1/auth/login", url.Values{"username": {"u"}, "password": {"jct_nope"}}); code != 401 {
		t.Errorf("a login with a wrong token: %d", code)
	}
	if code, b := e.nacosCall(t, "POST", "/nacos/v1/auth/login", url.Values{"username": {"u"}, "password": {tok.Secret}}); code != 200 || !strings.Contains(b, "accessToken") {
		t.Errorf("a login with the token: %d %s", code, b)
	}

	// Revoked: the subscription gets no more pushes.
	pushes := make(chan []nmodel.Instance, 32)
	if err := nc.Subscribe(&vo.SubscribeParam{ServiceName: "orders", SubscribeCallback: func(insts []nmodel.Instance, _ error) {
		select {
		case pushes <- insts:
		default:
		}
	}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if code, b := m.restCall(t, "DELETE", "/v1/acl/tokens/"+tok.Token.AccessorId, ""); code != 200 {
		t.Fatal(code, b)
	}
	time.Sleep(300 * time.Millisecond)
	for len(pushes) > 0 {
		<-pushes
	}
	m.restCall(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/orders/instances", `{"ip":"10.0.0.77","port":1}`)
	select {
	case insts := <-pushes:
		for _, i := range insts {
			if i.Ip == "10.0.0.77" {
				t.Errorf("a revoked token's subscription was pushed %v", insts)
			}
		}
	case <-time.After(time.Second):
	}
	// And the instances it registered go too, as a revoked session's do.
	took := eventually(t, "a revoked token's instance removed", 10*time.Second, func() bool {
		_, found := m.instances(t, "orders")["10.0.0.5:8080"]
		return !found
	})
	t.Logf("a revoked token's nacos-sdk-go instance was gone %v after the revoke was checked", took)
	// A list asked without a token is refused, not answered empty.
	if code, b := e.nacosCall(t, "GET", "/nacos/v1/ns/service/list", url.Values{"pageNo": {"1"}, "pageSize": {"10"}}); code != 401 {
		t.Errorf("a service list without a token: %d %s", code, b)
	}
}

var errRefused = refused("refused")

type refused string

func (r refused) Error() string { return string(r) }

// Every gRPC request type and every HTTP route decides its request: with
// access control on, none but the open ones answers a client without a
// token with anything but 401 (and nothing is written).
func TestNacosEveryRouteDecides(t *testing.T) {
	e, mgmt := startAuth(t)
	e.asToken(mgmt).restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 1\n")
	r := dialRaw(t, e, true)
	bodies := map[string]string{
		"InstanceRequest":          `{"serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":1,"ephemeral":true,"enabled":true,"healthy":true,"weight":1}}`,
		"BatchInstanceRequest":     `{"serviceName":"s","type":"batchRegisterInstance","instances":[{"ip":"10.0.0.1","port":1,"ephemeral":true,"enabled":true,"healthy":true,"weight":1}]}`,
		"SubscribeServiceRequest":  `{"serviceName":"s","subscribe":true}`,
		"ServiceQueryRequest":      `{"serviceName":"s"}`,
		"ServiceListRequest":       `{"pageNo":1,"pageSize":10}`,
		"ConfigPublishRequest":     `{"group":"DEFAULT_GROUP","dataId":"app.yaml","content":"a: 2\n"}`,
		"ConfigQueryRequest":       `{"group":"DEFAULT_GROUP","dataId":"app.yaml"}`,
		"ConfigRemoveRequest":      `{"group":"DEFAULT_GROUP","dataId":"app.yaml"}`,
		"ConfigBatchListenRequest": `{"listen":true,"configListenContexts":[{"group":"DEFAULT_GROUP","dataId":"app.yaml","md5":""}]}`,
	}
	for typ, open := range nacos.RequestTypes() {
		if open {
			continue
		}
		body, found := bodies[typ]
		if !found {
			t.Errorf("%s: no request body in this test: add one", typ)
			continue
		}
		// 429: refused unlooked at, once the address failed too often.
		if _, m := r.call(typ, body); code(m) != 401 && code(m) != 429 {
			t.Errorf("%s without a token: %v, want errorCode 401", typ, m)
		}
	}
	forms := map[string]url.Values{
		"/nacos/v1/ns/instance":         {"serviceName": {"s"}, "ip": {"10.0.0.1"}, "port": {"1"}},
		"/nacos/v1/ns/instance/list":    {"serviceName": {"s"}},
		"/nacos/v1/ns/instance/beat":    {"serviceName": {"s"}, "ip": {"10.0.0.1"}, "port": {"1"}},
		"/nacos/v1/ns/service/list":     {"pageNo": {"1"}},
		"/nacos/v1/cs/configs":          {"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}, "content": {"a: 3\n"}},
		"/nacos/v1/cs/configs/listener": {"Listening-Configs": {"app.yaml\x02DEFAULT_GROUP\x02x\x01"}},
	}
	for pattern, open := range nacos.Routes() {
		if open {
			continue
		}
		method, path, _ := strings.Cut(pattern, " ")
		form, found := forms[path]
		if !found { // a v2 route: its v1 route's form
			form = forms[strings.Replace(strings.Replace(path, "/v2/", "/v1/", 1), "/cs/config", "/cs/configs", 1)]
		}
		if code, body := e.nacosCall(t, method, path, form); code != 401 && code != 429 {
			t.Errorf("%s without a token: %d %s, want 401", pattern, code, body)
		}
	}
	if _, body := e.asToken(mgmt).restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", ""); !strings.Contains(body, `"content":"a: 1\n"`) {
		t.Errorf("after the refused requests: %s", body)
	}
}

// A login answers a handle that stands for the token for a while, never
// the secret, which would travel in clients' query strings: the handle
// works until it expires; a forged or altered one, an expired one, and
// the handle of a revoked token are refused.
func TestNacosLoginHandle(t *testing.T) {
	e, mgmt := startAuth(t, func(c *nacos.Config) { c.LoginTTL = 2 * time.Second })
	login := func(secret string) string {
		t.Helper()
		code, b := e.nacosCall(t, "POST", "/nacos/v1/auth/login", url.Values{"username": {"u"}, "password": {secret}})
		var r struct {
			AccessToken string
			TokenTtl    int
		}
		if code != 200 || json.Unmarshal([]byte(b), &r) != nil {
			t.Fatalf("login: %d %s", code, b)
		}
		if r.AccessToken == "" || strings.Contains(r.AccessToken, secret) || strings.Contains(b, secret) || r.TokenTtl != 2 {
			t.Fatalf("the login answers %s: the secret, or no handle", b)
		}
		return r.AccessToken
	}
	e.asToken(mgmt).restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 1\n")
	get := func(token string) int {
		t.Helper()
		code, _ := e.nacosCall(t, "GET", "/nacos/v1/cs/configs", url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}, "accessToken": {token}})
		return code
	}
	h := login(mgmt)
	if code := get(h); code != 200 {
		t.Fatalf("the login's handle: %d", code)
	}
	r := dialRaw(t, e, true)
	r.token = h
	if _, m := r.call("ConfigQueryRequest", `{"group":"DEFAULT_GROUP","dataId":"app.yaml"}`); m["content"] != "a: 1\n" {
		t.Errorf("the handle over gRPC: %v", m)
	}
	altered := []byte(h)
	altered[len(altered)/2] ^= 1
	for _, bad := range []string{string(altered), h[:len(h)-2], "s.AAAA", "s." + strings.Repeat("A", 80)} {
		if code := get(bad); code != 401 {
			t.Errorf("a forged handle %.12q…: %d, want 401", bad, code)
		}
	}
	// A revoked token's handle.
	var tok struct {
		Secret string
		Token  struct{ AccessorId string }
	}
	m := e.asToken(mgmt)
	body, _ := json.Marshal(map[string]string{"rules": "name: app\nrules:\n  - namespace: public\n    config: \"app.yaml\"\n    access: read\n"})
	if code, b := m.restCall(t, "POST", "/v1/acl/policies", string(body)); code != 200 {
		t.Fatal(code, b)
	}
	code, b := m.restCall(t, "POST", "/v1/acl/tokens", `{"description":"short","policies":["app"]}`)
	if code != 200 || json.Unmarshal([]byte(b), &tok) != nil {
		t.Fatal(code, b)
	}
	revoked := login(tok.Secret)
	if code := get(revoked); code != 200 {
		t.Fatalf("the second token's handle: %d", code)
	}
	if code, b := m.restCall(t, "DELETE", "/v1/acl/tokens/"+tok.Token.AccessorId, ""); code != 200 {
		t.Fatal(code, b)
	}
	eventually(t, "a revoked token's handle refused", 5*time.Second, func() bool { return get(revoked) == 401 })
	// Expired: the client must log in again.
	eventually(t, "an expired handle refused", 5*time.Second, func() bool { return get(h) == 401 })
	if _, m := r.call("ConfigQueryRequest", `{"group":"DEFAULT_GROUP","dataId":"app.yaml"}`); m["content"] == "a: 1\n" {
		t.Errorf("an expired handle over gRPC: %v", m)
	}
	// A handle is no password, and the raw secret still works.
	if code, _ := e.nacosCall(t, "POST", "/nacos/v1/auth/login", url.Values{"username": {"u"}, "password": {h}}); code != 401 {
		t.Errorf("a login with a handle as its password: %d", code)
	}
	if code := get(mgmt); code != 200 {
		t.Errorf("the raw secret as the accessToken: %d", code)
	}
	if code := get(login(mgmt)); code != 200 {
		t.Errorf("a new login's handle: %d", code)
	}
}

// A connection whose client logs in again keeps what it holds when its
// first handle expires; one whose client never does loses its instances
// with the handle.
func TestNacosLoginAgainKeepsInstances(t *testing.T) {
	e, mgmt := startAuth(t, func(c *nacos.Config) { c.LoginTTL, c.SessionTTL = 2*time.Second, 1500*time.Millisecond })
	login := func() string {
		t.Helper()
		code, b := e.nacosCall(t, "POST", "/nacos/v1/auth/login", url.Values{"username": {"u"}, "password": {mgmt}})
		var r struct{ AccessToken string }
		if code != 200 || json.Unmarshal([]byte(b), &r) != nil {
			t.Fatalf("login: %d %s", code, b)
		}
		return r.AccessToken
	}
	register := func(r *raw, ip string) {
		t.Helper()
		if _, m := r.call("InstanceRequest", `{"serviceName":"kept","type":"registerInstance","instance":{"ip":"`+ip+`","port":1,"ephemeral":true,"enabled":true,"healthy":true,"weight":1}}`); m["success"] != true {
			t.Fatalf("register %s: %v", ip, m)
		}
	}
	again, stale := dialRaw(t, e, true), dialRaw(t, e, true)
	again.token, stale.token = login(), login()
	register(again, "10.0.0.1")
	register(stale, "10.0.0.2")
	m := e.asToken(mgmt)
	deadline := time.Now().Add(4 * time.Second) // twice the handles' life
	for time.Now().Before(deadline) {
		again.token = login()
		again.call("HealthCheckRequest", `{}`)
		time.Sleep(300 * time.Millisecond)
	}
	eventually(t, "the instance of a client that never logged in again removed", 5*time.Second, func() bool {
		_, found := m.instances(t, "kept")["10.0.0.2:1"]
		return !found
	})
	if _, found := m.instances(t, "kept")["10.0.0.1:1"]; !found {
		t.Error("the instance of a client that logged in again was removed with its first handle")
	}
}

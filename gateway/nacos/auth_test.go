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
	"github.com/junctionhq/junction/model"
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
	nc.Authorizer, nc.Logins, nc.Watches = l.Server(), l.Server(), l.Server()
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
	tok := tokenWith(t, m, "orders", "  - namespace: public\n    service: \"orders\"\n    access: write\n  - namespace: public\n    config: \"app.yaml\"\n    access: read\n")
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

// Every request type and route but the open ones is decided, on what it
// names, for what it does: each is sent with no token (401), with a
// token that may only read what it names (403 for a write), and with one
// that may write only other services and items (403, except a list,
// which answers without them). Nothing is written by a refused request.
func TestNacosEveryRouteDecides(t *testing.T) {
	e, mgmt := startAuth(t)
	m := e.asToken(mgmt)
	m.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 1\n")
	reader := tokenWith(t, m, "reader", "  - namespace: public\n    service: \"s\"\n    access: read\n  - namespace: public\n    config: \"app.yaml\"\n    access: read\n").Secret
	other := tokenWith(t, m, "other", "  - namespace: public\n    service: \"other\"\n    access: write\n  - namespace: public\n    config: \"other.yaml\"\n    access: write\n").Secret

	// What each does: "write", "read", or "list" (authenticated, then
	// filtered item by item).
	types := map[string]struct{ kind, body string }{
		"InstanceRequest":          {"write", `{"serviceName":"s","type":"registerInstance","instance":{"ip":"10.0.0.1","port":1,"ephemeral":true,"enabled":true,"healthy":true,"weight":1}}`},
		"BatchInstanceRequest":     {"write", `{"serviceName":"s","type":"batchRegisterInstance","instances":[{"ip":"10.0.0.1","port":1,"ephemeral":true,"enabled":true,"healthy":true,"weight":1}]}`},
		"SubscribeServiceRequest":  {"read", `{"serviceName":"s","subscribe":true}`},
		"ServiceQueryRequest":      {"read", `{"serviceName":"s"}`},
		"ServiceListRequest":       {"list", `{"pageNo":1,"pageSize":10}`},
		"ConfigPublishRequest":     {"write", `{"group":"DEFAULT_GROUP","dataId":"app.yaml","content":"a: 2\n"}`},
		"ConfigQueryRequest":       {"read", `{"group":"DEFAULT_GROUP","dataId":"app.yaml"}`},
		"ConfigRemoveRequest":      {"write", `{"group":"DEFAULT_GROUP","dataId":"app.yaml"}`},
		"ConfigBatchListenRequest": {"read", `{"listen":true,"configListenContexts":[{"group":"DEFAULT_GROUP","dataId":"app.yaml","md5":""}]}`},
	}
	routes := map[string]struct{ kind string }{
		"POST /nacos/v1/ns/instance": {"write"}, "PUT /nacos/v1/ns/instance": {"write"}, "DELETE /nacos/v1/ns/instance": {"write"},
		"GET /nacos/v1/ns/instance": {"read"}, "GET /nacos/v1/ns/instance/list": {"read"}, "PUT /nacos/v1/ns/instance/beat": {"write"},
		"GET /nacos/v1/ns/service/list": {"list"}, "GET /nacos/v1/cs/configs": {"read"}, "POST /nacos/v1/cs/configs": {"write"},
		"DELETE /nacos/v1/cs/configs": {"write"}, "POST /nacos/v1/cs/configs/listener": {"read"},
	}
	forms := map[string]url.Values{
		"/nacos/v1/ns/instance":         {"serviceName": {"s"}, "ip": {"10.0.0.1"}, "port": {"1"}},
		"/nacos/v1/ns/instance/list":    {"serviceName": {"s"}},
		"/nacos/v1/ns/instance/beat":    {"serviceName": {"s"}, "ip": {"10.0.0.1"}, "port": {"1"}},
		"/nacos/v1/ns/service/list":     {"pageNo": {"1"}},
		"/nacos/v1/cs/configs":          {"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}, "content": {"a: 3\n"}},
		"/nacos/v1/cs/configs/listener": {"Listening-Configs": {"app.yaml\x02DEFAULT_GROUP\x02x\x01"}},
	}
	v1Of := func(pattern string) (method, path, v1 string) {
		method, path, _ = strings.Cut(pattern, " ")
		v1 = strings.Replace(strings.Replace(path, "/v2/", "/v1/", 1), "/cs/config", "/cs/configs", 1)
		v1 = strings.Replace(v1, "/cs/configss", "/cs/configs", 1)
		return method, path, v1
	}
	// want is the refusal expected of a kind of request from a token
	// (0: none, it is served).
	want := func(token, kind string) int {
		switch {
		case token == "":
			return 401
		case token == reader && kind == "write", token == other && kind != "list":
			return 403
		}
		return 0
	}
	// The tokens first: the failed authentications of the no-token round
	// slow the address down (429).
	for _, token := range []string{reader, other, ""} {
		r := dialRaw(t, e, true)
		r.token = token
		for typ, open := range nacos.RequestTypes() {
			if open {
				continue
			}
			tc, found := types[typ]
			if !found {
				t.Errorf("%s: not in this test: add it", typ)
				continue
			}
			_, resp := r.call(typ, tc.body)
			switch w := want(token, tc.kind); {
			case w == 401 && (code(resp) == 401 || code(resp) == 429):
			case w != 0 && code(resp) != w:
				t.Errorf("%s (%s) as %s: %v, want errorCode %d", typ, tc.kind, name(token, reader, other), resp, w)
			case w == 0 && code(resp) != 0:
				t.Errorf("%s (%s) as %s: %v, want it served", typ, tc.kind, name(token, reader, other), resp)
			}
		}
		for pattern, open := range nacos.Routes() {
			if open {
				continue
			}
			method, path, v1 := v1Of(pattern)
			rt, found := routes[method+" "+v1]
			if !found {
				t.Errorf("%s: not in this test: add it", pattern)
				continue
			}
			var header []string
			if token != "" {
				header = []string{"accessToken", token}
			}
			got, body := e.nacosCall(t, method, path, forms[v1], header...)
			if path != v1 && got == 200 { // the v2 envelope
				var env struct{ Code int }
				_ = json.Unmarshal([]byte(body), &env)
				got = map[int]int{0: 200, 20004: 404, 40100: 401, 40300: 403, 42900: 429}[env.Code]
			}
			switch w := want(token, rt.kind); {
			case w == 401 && (got == 401 || got == 429):
			case w != 0 && got != w:
				t.Errorf("%s (%s) as %s: %d %s, want %d", pattern, rt.kind, name(token, reader, other), got, body, w)
			case w == 0 && got != 200 && !(got == 404 && method+" "+v1 == "GET /nacos/v1/ns/instance"): // no such instance
				t.Errorf("%s (%s) as %s: %d %s, want it served", pattern, rt.kind, name(token, reader, other), got, body)
			}
		}
	}
	if _, body := m.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", ""); !strings.Contains(body, `"content":"a: 1\n"`) {
		t.Errorf("after the refused requests: %s", body)
	}
	if code, body := m.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/s/instances", ""); code != 200 || strings.Contains(body, "10.0.0.1") {
		t.Errorf("after the refused requests, service s: %d %s", code, body)
	}
}

// token is a token tokenWith made.
type token struct {
	Secret string
	Token  struct{ AccessorId string }
}

// tokenWith creates a token with a policy of rules (YAML list items).
func tokenWith(t *testing.T, m *env, name, rules string) token {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"rules": "name: " + name + "\nrules:\n" + rules})
	if code, b := m.restCall(t, "POST", "/v1/acl/policies", string(body)); code != 200 {
		t.Fatal(code, b)
	}
	var tok token
	code, b := m.restCall(t, "POST", "/v1/acl/tokens", `{"description":"`+name+`","policies":["`+name+`"]}`)
	if code != 200 || json.Unmarshal([]byte(b), &tok) != nil {
		t.Fatal(code, b)
	}
	return tok
}

func name(token, reader, other string) string {
	switch token {
	case "":
		return "no token"
	case reader:
		return "a reader of what it names"
	case other:
		return "a writer of other things"
	}
	return "?"
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
	m := e.asToken(mgmt)
	tok := tokenWith(t, m, "app", "  - namespace: public\n    config: \"app.yaml\"\n    access: read\n")
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

// A long poll is held up to two minutes: when it wakes, its request is
// decided again, and a token revoked meanwhile gets a refusal, not the
// news of what it may no longer read.
func TestNacosLongPollDecidedAgain(t *testing.T) {
	e, mgmt := startAuth(t)
	m := e.asToken(mgmt)
	m.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 1\n")
	tok := tokenWith(t, m, "poller", "  - namespace: public\n    config: \"app.yaml\"\n    access: read\n")
	md5 := model.ContentMD5([]byte("a: 1\n"))
	poll := func() (int, string) {
		return e.nacosCall(t, "POST", "/nacos/v1/cs/configs/listener", url.Values{"Listening-Configs": {"app.yaml\x02DEFAULT_GROUP\x02" + md5 + "\x01"}},
			"accessToken", tok.Secret, "Long-Pulling-Timeout", "10000")
	}
	// Allowed: a change wakes it with the key.
	type answer struct {
		code int
		body string
	}
	got := make(chan answer, 1)
	go func() { c, b := poll(); got <- answer{c, b} }()
	time.Sleep(300 * time.Millisecond)
	m.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 2\n")
	if a := <-got; a.code != 200 || !strings.Contains(a.body, "app.yaml") {
		t.Fatalf("a long poll woken by a change: %d %q", a.code, a.body)
	}
	md5 = model.ContentMD5([]byte("a: 2\n"))
	// Revoked while held: refused when it wakes.
	go func() { c, b := poll(); got <- answer{c, b} }()
	time.Sleep(300 * time.Millisecond)
	if code, b := m.restCall(t, "DELETE", "/v1/acl/tokens/"+tok.Token.AccessorId, ""); code != 200 {
		t.Fatal(code, b)
	}
	m.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 3\n")
	if a := <-got; a.code != 401 || strings.Contains(a.body, "app.yaml") {
		t.Fatalf("a revoked token's long poll: %d %q, want 401", a.code, a.body)
	}
}

package nacos_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/gateway/nacos"
)

// nacosCall makes a call to the front end's HTTP open API.
func (e *env) nacosCall(t testing.TB, method, path string, form url.Values, header ...string) (int, string) {
	t.Helper()
	u := fmt.Sprintf("http://127.0.0.1:%d%s", e.http, path)
	var body io.Reader
	if method == "POST" || method == "PUT" {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		u += "?" + form.Encode()
	}
	req, _ := http.NewRequest(method, u, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// nacos-sdk-go v2 registers a persistent instance over HTTP: it is
// Junction's persistent instance, and outlives the client.
func TestNacosPersistentInstance(t *testing.T) {
	e := start(t)
	c := namingClient(t, e)
	if ok, err := c.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.8", Port: 8080, ServiceName: "db",
		Weight: 3, Enable: true, Healthy: true, Ephemeral: false, Metadata: map[string]string{"role": "primary"}}); err != nil || !ok {
		t.Fatalf("register: %v %v", ok, err)
	}
	got, found := e.instances(t, "db")["10.0.0.8:8080"]
	if !found || got.Ephemeral || got.Session != "" || got.Weight != 3 || got.Metadata["role"] != "primary" {
		t.Fatalf("REST shows %+v (found %v)", got, found)
	}
	c.CloseClient()
	time.Sleep(200 * time.Millisecond)
	if _, found := e.instances(t, "db")["10.0.0.8:8080"]; !found {
		t.Fatal("a persistent instance went with its client")
	}
	c2 := namingClient(t, e)
	if ok, err := c2.DeregisterInstance(vo.DeregisterInstanceParam{Ip: "10.0.0.8", Port: 8080, ServiceName: "db", Ephemeral: false}); err != nil || !ok {
		t.Fatalf("deregister: %v %v", ok, err)
	}
	if _, found := e.instances(t, "db")["10.0.0.8:8080"]; found {
		t.Error("deregistered, still listed")
	}
}

// The v1 naming API as the Java client and scripts call it: register,
// beat, list, update, service list, deregister; an ephemeral instance
// without beats goes after the beat TTL; bad input is refused.
func TestNacosHTTPNaming(t *testing.T) {
	e := startOn(t, stores["raft"](t), func(c *nacos.Config) { c.BeatTTL = 2 * time.Second })
	form := url.Values{"serviceName": {"DEFAULT_GROUP@@orders"}, "ip": {"10.0.0.5"}, "port": {"8080"}, "weight": {"2"},
		"metadata": {`{"zone":"a"}`}}
	if code, body := e.nacosCall(t, "POST", "/nacos/v1/ns/instance", form); code != 200 || body != "ok" {
		t.Fatalf("register: %d %q", code, body)
	}
	got := e.instances(t, "orders")["10.0.0.5:8080"]
	if !got.Ephemeral || got.Session == "" || got.Weight != 2 || got.Metadata["zone"] != "a" {
		t.Fatalf("REST shows %+v", got)
	}
	beat := url.Values{"serviceName": {"DEFAULT_GROUP@@orders"}, "beat": {`{"ip":"10.0.0.5","port":8080,"serviceName":"DEFAULT_GROUP@@orders"}`}}
	// Beats keep it past its TTL.
	for range 8 {
		code, body := e.nacosCall(t, "PUT", "/nacos/v1/ns/instance/beat", beat)
		if code != 200 || !strings.Contains(body, `"code":10200`) {
			t.Fatalf("beat: %d %s", code, body)
		}
		time.Sleep(400 * time.Millisecond)
	}
	if _, found := e.instances(t, "orders")["10.0.0.5:8080"]; !found {
		t.Fatal("a beating instance expired")
	}
	// The list, as a client reads it.
	code, body := e.nacosCall(t, "GET", "/nacos/v1/ns/instance/list", url.Values{"serviceName": {"orders"}, "healthyOnly": {"true"}})
	var list struct {
		Name  string
		Hosts []struct {
			IP     string `json:"ip"`
			Port   int    `json:"port"`
			Weight float64
		}
	}
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || list.Name != "DEFAULT_GROUP@@orders" || len(list.Hosts) != 1 || list.Hosts[0].Port != 8080 {
		t.Fatalf("list: %d %s", code, body)
	}
	// An update changes what it names, nothing else.
	if code, body := e.nacosCall(t, "PUT", "/nacos/v1/ns/instance", url.Values{"serviceName": {"orders"}, "ip": {"10.0.0.5"}, "port": {"8080"}, "weight": {"5"}}); code != 200 {
		t.Fatalf("update: %d %s", code, body)
	}
	if got := e.instances(t, "orders")["10.0.0.5:8080"]; got.Weight != 5 || got.Metadata["zone"] != "a" || got.Session == "" {
		t.Errorf("after the update REST shows %+v", got)
	}
	if code, body := e.nacosCall(t, "GET", "/nacos/v1/ns/service/list", url.Values{"pageNo": {"1"}, "pageSize": {"10"}}); code != 200 || !strings.Contains(body, `"count":1`) || !strings.Contains(body, `"orders"`) {
		t.Errorf("service list: %d %s", code, body)
	}
	// Without beats it goes within its TTL; a beat then says so (20404),
	// and the client registers again.
	took := eventually(t, "an instance without beats removed", 10*time.Second, func() bool {
		_, found := e.instances(t, "orders")["10.0.0.5:8080"]
		return !found
	})
	t.Logf("an HTTP-registered instance without beats was gone %v after the last beat check (TTL 2s)", took)
	if code, body := e.nacosCall(t, "PUT", "/nacos/v1/ns/instance/beat", beat); code != 200 || !strings.Contains(body, `"code":20404`) {
		t.Errorf("beat of a gone instance: %d %s", code, body)
	}
	// A persistent instance, and its deregistration.
	p := url.Values{"serviceName": {"orders"}, "ip": {"10.0.0.6"}, "port": {"8080"}, "ephemeral": {"false"}}
	if code, _ := e.nacosCall(t, "POST", "/nacos/v1/ns/instance", p); code != 200 {
		t.Fatal(code)
	}
	if got := e.instances(t, "orders")["10.0.0.6:8080"]; got.Ephemeral || got.Session != "" {
		t.Errorf("persistent registered as %+v", got)
	}
	if code, _ := e.nacosCall(t, "DELETE", "/nacos/v1/ns/instance", p); code != 200 {
		t.Fatal(code)
	}
	if _, found := e.instances(t, "orders")["10.0.0.6:8080"]; found {
		t.Error("deregistered, still listed")
	}
	// A beat keeps alive only the sessions the HTTP API made: not a
	// gRPC connection's.
	c := namingClient(t, e)
	if ok, err := c.RegisterInstance(vo.RegisterInstanceParam{Ip: "10.0.0.40", Port: 80, ServiceName: "orders", Weight: 1, Enable: true, Healthy: true, Ephemeral: true}); err != nil || !ok {
		t.Fatal(ok, err)
	}
	foreign := url.Values{"serviceName": {"orders"}, "beat": {`{"ip":"10.0.0.40","port":80}`}}
	if code, body := e.nacosCall(t, "PUT", "/nacos/v1/ns/instance/beat", foreign); code != 200 || !strings.Contains(body, `"code":20404`) {
		t.Errorf("a beat of a connection's instance: %d %s", code, body)
	}
	for _, bad := range []url.Values{
		{"serviceName": {"orders"}, "ip": {"10.0.0.5"}, "port": {"http"}},
		{"serviceName": {"orders"}, "ip": {"10.0.0.5"}, "port": {"80"}, "weight": {"heavy"}},
		{"serviceName": {"orders"}, "ip": {"10.0.0.5"}, "port": {"80"}, "metadata": {"{not json"}},
		{"serviceName": {""}, "ip": {"10.0.0.5"}, "port": {"80"}},
		{"serviceName": {"orders"}, "ip": {"not an ip!"}, "port": {"80"}},
	} {
		if code, body := e.nacosCall(t, "POST", "/nacos/v1/ns/instance", bad); code != 400 {
			t.Errorf("register %v: %d %s", bad, code, body)
		}
	}
}

// The v1 config API and its long poll: publish (with casMd5), get, remove;
// a listener answered at once when its md5 is stale, held until a change
// otherwise, and empty at its timeout.
func TestNacosHTTPConfig(t *testing.T) {
	e := start(t)
	cfg := url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}, "content": {"a: 1\n"}, "type": {"yaml"}}
	if code, body := e.nacosCall(t, "POST", "/nacos/v1/cs/configs", cfg); code != 200 || body != "true" {
		t.Fatalf("publish: %d %q", code, body)
	}
	code, body := e.nacosCall(t, "GET", "/nacos/v1/cs/configs", url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}})
	if code != 200 || body != "a: 1\n" {
		t.Fatalf("get: %d %q", code, body)
	}
	var r struct {
		Config struct{ ContentType, Md5 string }
	}
	_, restBody := e.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "")
	_ = json.Unmarshal([]byte(restBody), &r)
	if r.Config.ContentType != "yaml" {
		t.Errorf("REST reads the type %q", r.Config.ContentType)
	}
	if code, _ := e.nacosCall(t, "GET", "/nacos/v1/cs/configs", url.Values{"dataId": {"absent"}, "group": {"DEFAULT_GROUP"}}); code != 404 {
		t.Errorf("a missing config: %d", code)
	}
	stale := url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}, "content": {"a: 9\n"}, "casMd5": {"00000000000000000000000000000000"}}
	if code, _ := e.nacosCall(t, "POST", "/nacos/v1/cs/configs", stale); code != 409 {
		t.Errorf("a stale casMd5: %d", code)
	}

	listening := "app.yaml\x02DEFAULT_GROUP\x02" + r.Config.Md5 + "\x01"
	// A stale md5 is answered at once.
	code, body = e.nacosCall(t, "POST", "/nacos/v1/cs/configs/listener", url.Values{"Listening-Configs": {"app.yaml\x02DEFAULT_GROUP\x02old\x01"}}, "Long-Pulling-Timeout", "30000")
	if code != 200 || body != url.QueryEscape("app.yaml\x02DEFAULT_GROUP\x01") {
		t.Errorf("a stale listener: %d %q", code, body)
	}
	// The current md5 is held, and answered at the timeout with nothing.
	start := time.Now()
	code, body = e.nacosCall(t, "POST", "/nacos/v1/cs/configs/listener", url.Values{"Listening-Configs": {listening}}, "Long-Pulling-Timeout", "300")
	if code != 200 || body != "" || time.Since(start) < 250*time.Millisecond {
		t.Errorf("an idle listener: %d %q after %v", code, body, time.Since(start))
	}
	// A change during the hold answers it.
	go func() {
		time.Sleep(300 * time.Millisecond)
		e.restCall(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", "a: 2\n")
	}()
	start = time.Now()
	code, body = e.nacosCall(t, "POST", "/nacos/v1/cs/configs/listener", url.Values{"Listening-Configs": {listening}}, "Long-Pulling-Timeout", "30000")
	if code != 200 || body != url.QueryEscape("app.yaml\x02DEFAULT_GROUP\x01") || time.Since(start) > 10*time.Second {
		t.Errorf("a listener during a change: %d %q after %v", code, body, time.Since(start))
	}
	if code, _ := e.nacosCall(t, "POST", "/nacos/v1/cs/configs/listener", url.Values{"Listening-Configs": {"only-one-field\x01"}}); code != 400 {
		t.Errorf("a malformed listener: %d", code)
	}
	if code, body := e.nacosCall(t, "DELETE", "/nacos/v1/cs/configs", url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}}); code != 200 || body != "true" {
		t.Errorf("remove: %d %q", code, body)
	}
	if code, _ := e.restCall(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", ""); code != 404 {
		t.Errorf("removed through Nacos; REST reads %d", code)
	}
}

// The /nacos/v2 open API: the same operations, in an envelope.
func TestNacosV2OpenAPI(t *testing.T) {
	e := start(t)
	type envelope struct {
		Code    int
		Message string
		Data    json.RawMessage
	}
	call := func(method, path string, form url.Values) (int, envelope) {
		t.Helper()
		code, body := e.nacosCall(t, method, path, form)
		var env envelope
		if err := json.Unmarshal([]byte(body), &env); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, code, body)
		}
		return code, env
	}
	inst := url.Values{"serviceName": {"orders"}, "ip": {"10.0.0.5"}, "port": {"8080"}, "ephemeral": {"false"}}
	if code, env := call("POST", "/nacos/v2/ns/instance", inst); code != 200 || env.Code != 0 || string(env.Data) != `"ok"` {
		t.Errorf("register: %d %+v", code, env)
	}
	if code, env := call("GET", "/nacos/v2/ns/instance/list", url.Values{"serviceName": {"orders"}}); code != 200 || env.Code != 0 || !strings.Contains(string(env.Data), `"ip":"10.0.0.5"`) {
		t.Errorf("list: %d %+v", code, env)
	}
	cfg := url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}, "namespaceId": {"public"}, "content": {"a: 1\n"}}
	if code, env := call("POST", "/nacos/v2/cs/config", cfg); code != 200 || string(env.Data) != "true" {
		t.Errorf("publish: %d %+v", code, env)
	}
	if code, env := call("GET", "/nacos/v2/cs/config", url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}, "namespaceId": {"public"}}); code != 200 || string(env.Data) != `"a: 1\n"` {
		t.Errorf("get: %d %+v", code, env)
	}
	if code, env := call("GET", "/nacos/v2/cs/config", url.Values{"dataId": {"absent"}, "group": {"DEFAULT_GROUP"}}); code != 404 || env.Code != 20004 {
		t.Errorf("a missing config: %d %+v", code, env)
	}
	if code, env := call("POST", "/nacos/v2/ns/instance", url.Values{"serviceName": {"orders"}, "ip": {"10.0.0.5"}, "port": {"x"}}); code != 400 || env.Code != 10000 || env.Message == "" {
		t.Errorf("a bad port: %d %+v", code, env)
	}
	if code, env := call("DELETE", "/nacos/v2/cs/config", url.Values{"dataId": {"app.yaml"}, "group": {"DEFAULT_GROUP"}}); code != 200 || string(env.Data) != "true" {
		t.Errorf("remove: %d %+v", code, env)
	}
}

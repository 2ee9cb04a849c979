package consul_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// securedHarness opens drivers with a token in the URL.
type securedHarness struct {
	d     backends.Backend
	addr  string
	query string
}

func (h *securedHarness) Backend(t *testing.T) backends.Backend { return h.d }
func (h *securedHarness) Peer(t *testing.T) backends.Backend    { return open(t, h.addr, h.query) }
func (h *securedHarness) HistoryWindow() int                    { return 0 }

// junctionRules is the least a Junction token needs on Consul: its KV
// folder, services and sessions, reading nodes (and the agent, for its
// checks).
const junctionRules = `key_prefix "junction/" { policy = "write" }
service_prefix "" { policy = "write" }
session_prefix "" { policy = "write" }
node_prefix "" { policy = "read" }
agent_prefix "" { policy = "read" }`

// A Consul agent with ACLs on and the default policy deny, and Junction
// holding a token of its own least policy: the driver keeps the whole
// contract; an anonymous client reads and changes nothing of it.
func TestSecuredConsul(t *testing.T) {
	const management = "3f6a9e1c-8f7d-4b0e-9a55-1f2e3d4c5b6a"
	c := servertest.ConsulACL(t, management)
	api := func(method, path, token string, body any) (int, string) {
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "http://"+c.HTTPAddr+path, r)
		if token != "" {
			req.Header.Set("X-Consul-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := api("PUT", "/v1/acl/policy", management, map[string]any{"Name": "junction", "Rules": junctionRules}); code != 200 {
		t.Fatalf("create the policy: %d %s", code, body)
	}
	code, body := api("PUT", "/v1/acl/token", management, map[string]any{"Description": "junction", "Policies": []map[string]string{{"Name": "junction"}}})
	if code != 200 {
		t.Fatalf("create the token: %d %s", code, body)
	}
	var tok struct{ SecretID string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.SecretID == "" {
		t.Fatalf("token: %s", body)
	}
	query := "token=" + tok.SecretID
	d := open(t, c.HTTPAddr, query)
	conformance.Run(t, &securedHarness{d: d, addr: c.HTTPAddr, query: query})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := d.PutConfig(ctx, model.Config{Key: model.ConfigKey{Namespace: "public", Group: "g", DataID: "db.yaml"},
		Content: []byte("password: x\n")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Register(ctx, model.ServiceKey{Namespace: "public", Group: "g", Service: "orders"},
		model.Instance{ID: "i1", IP: "10.0.0.1", Port: 80, Weight: 1, Enabled: true, Healthy: true}); err != nil {
		t.Fatal(err)
	}
	// Anonymous: the KV folder reads as absent, writes are refused, the
	// catalog shows no service.
	if code, body := api("GET", "/v1/kv/junction/?recurse", "", nil); code == 200 || strings.Contains(body, "db.yaml") {
		t.Errorf("anonymous read of Junction's KV: %d %s", code, body)
	}
	if code, _ := api("PUT", "/v1/kv/junction/intruder", "", "x"); code != http.StatusForbidden {
		t.Errorf("anonymous write under Junction's KV: %d, want 403", code)
	}
	if code, body := api("GET", "/v1/catalog/services", "", nil); strings.Contains(body, "orders") {
		t.Errorf("anonymous read of the catalog: %d %s", code, body)
	}
	if code, _ := api("PUT", "/v1/agent/service/deregister/junction:public:g:orders:i1", "", nil); code != http.StatusForbidden {
		t.Errorf("anonymous deregistration: %d, want 403", code)
	}
	// Junction's token is held to its policy.
	if code, _ := api("PUT", "/v1/kv/elsewhere", tok.SecretID, "x"); code != http.StatusForbidden {
		t.Errorf("Junction's token writes outside its folder: %d, want 403", code)
	}
}

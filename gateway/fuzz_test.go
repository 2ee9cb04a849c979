package gateway

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends/raftstore"
)

// FuzzREST sends any request the HTTP server would parse to the REST
// surface over the built-in store. No request may panic, nor be answered
// with a 5xx other than 503 (a store that cannot serve now) and 504 once
// the fuzzer's own deadline has passed.
func FuzzREST(f *testing.F) {
	const svc = "/v1/namespaces/public/groups/DEFAULT_GROUP/services/"
	const cfg = "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"
	for _, seed := range []struct{ method, target, ctype, body string }{
		{"POST", svc + "orders/instances", "application/json", `{"ip":"10.0.0.1","port":80,"metadata":{"a":"b"}}`},
		{"POST", svc + "orders/instances", "application/json", `{"ip":10,"port":"80","weight":"x"}`},
		{"POST", svc + "orders/instances", "application/json", `{"ip":"10.0.0.1","port":80,"check":{"kind":"http","interval":"1ms"}}`},
		{"DELETE", svc + "orders/instances/10.0.0.1:80", "", ""},
		{"GET", svc + "orders/instances?healthyOnly=maybe", "", ""},
		{"GET", svc + "orders/instances:watch?revision=-1", "", ""},
		{"PATCH", svc + "orders/instances/10.0.0.1:80", "application/json", `{"enabled":false,"weight":1e309}`},
		{"PATCH", svc + "orders/instances/10.0.0.1:80", "application/json", `{"metadata":{"entries":{}},"ifRevision":"-1","removeCheck":true}`},
		{"PUT", svc + "orders/settings", "application/json", `{"protectThreshold":2}`},
		{"PUT", cfg + "app.yaml?type=yaml&ifRevision=0", "application/yaml", "a: [1"},
		{"PUT", cfg + "app.json", "application/json", "\xff\xfe"},
		{"GET", cfg + "app.yaml", "", ""},
		{"GET", cfg + "%ff%fe", "", ""},
		{"GET", cfg + "..%2F..%2Fetc", "", ""},
		{"DELETE", cfg + "app.yaml?ifRevision=abc", "", ""},
		{"GET", cfg + "app.yaml:watch?revision=9223372036854775807", "", ""},
		{"GET", "/v1/namespaces/public/services?pageSize=-1&pageToken=%00", "", ""},
		{"POST", "/v1/sessions", "application/json", `{"ttl":"-5s"}`},
		{"PUT", "/v1/sessions/%00/keepalive", "", ""},
		{"POST", "/v1/members", "application/json", `{"id":"","address":"::::"}`},
		{"DELETE", "/v1/members/node-1", "", ""},
		{"PUT", "/v1/snapshot", "application/octet-stream", "not a snapshot"},
		{"GET", "/v1/status", "", ""},
		{"PATCH", "/v1/../v1/status", "", ""},
		{"GET", "/readyz?x=" + strings.Repeat("a", 300), "", ""},
		{"POST", "/v1/acl/bootstrap", "application/json", `{}`},
		{"POST", "/v1/acl/tokens", "application/json", `{"policies":["x"],"ttl":"-1s","certIdentity":"CN="}`},
		{"POST", "/v1/acl/policies", "application/json", `{"rules":"name: p\nrules:\n  - service: \"a**\"\n    access: maybe\n"}`},
		{"PUT", "/v1/acl/policies/p", "application/json", `{"rules":"name: q\n"}`},
		{"GET", "/v1/acl/tokens/%00", "", ""},
		{"DELETE", "/v1/acl/policies/..%2F", "", ""},
		{"GET", "/v1/acl/self", "", ""},
		{"GET", cfg + "app.yaml/history", "", ""},
		{"GET", cfg + "app.yaml/history/-9223372036854775808", "", ""},
		{"GET", cfg + "app.yaml/diff?from=-1&to=x", "", ""},
		{"POST", cfg + "app.yaml/diff", "application/json", `{"content":"\u0000","to":"-1"}`},
		{"POST", "/v1/acl/self/check", "application/json", `{"checks":[{"kind":"\u202e","action":"write"},{}]}`},
		{"GET", "/v1/namespaces/public/services:watch?services=%2F&services=a/" + strings.Repeat("b", 300), "", ""},
		{"GET", "/v1/namespaces/public/services?name=**%00", "", ""},
		{"PUT", cfg + "app.yaml?grayLabels=%3D,a%3D%00&grayIps=::::&grayPercent=-9999999999", "text/plain", "x"},
		{"GET", "/ui/%2e%2e/%2e%2e/go.mod", "", ""},
		{"POST", cfg + "app.yaml/rollback", "application/json", `{"number":"1e3","ifRevision":-1,"message":"\u202e"}`},
		{"PUT", cfg + "app.yaml?message=%00%1b", "text/plain", "a"},
		{"PUT", cfg + "app.yaml", "application/json", `{"content":"x","gray":{"percent":-5,"ips":["::::"],"labels":{"":""}}}`},
		{"POST", cfg + "app.yaml/gray/promote", "application/json", `{"ifRevision":"abc"}`},
		{"DELETE", cfg + "app.yaml/gray", "", ""},
		{"GET", cfg + "app.yaml/listeners", "", ""},
		{"GET", "/v1/namespaces/junction-system/configs:export?group=%00", "", ""},
		{"POST", "/v1/namespaces/public/configs:import?policy=merge&dryRun=1", "application/zip", "PK\x03\x04junk"},
		{"POST", "/v1/namespaces/public/configs:import", "application/json", `{"archive":"!!notbase64","policy":7}`},
	} {
		f.Add(seed.method, seed.target, seed.ctype, []byte(seed.body))
	}
	store, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(f.TempDir()))
	if err != nil {
		f.Fatal(err)
	}
	defer store.Close()
	cfgG := DefaultConfig()
	cfgG.Logger = slog.New(slog.DiscardHandler)
	cfgG.MaxContentSize = 4096
	s, err := New(store, cfgG)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	f.Fuzz(func(t *testing.T, method, target, ctype string, body []byte) {
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: fuzz\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", method, target, ctype, len(body))
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + string(body))))
		if err != nil {
			return // the HTTP server answers 400 before any handler runs
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		rec := httptest.NewRecorder()
		s.rest.ServeHTTP(rec, req.WithContext(ctx))
		code := rec.Code
		// The deadline travels to the gRPC server, whose clock may pass it a
		// moment before ctx's.
		deadline, _ := ctx.Deadline()
		expired := time.Until(deadline) < 50*time.Millisecond
		if code >= 500 && code != http.StatusServiceUnavailable && !(code == http.StatusGatewayTimeout && expired) {
			t.Fatalf("%s %q (%s, %q): %d %s", method, target, ctype, body, code, rec.Body.String())
		}
	})
}

package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/gateway"
)

// The API the console needs, as any client uses it.

// A diff of a candidate content: against the current content, against a
// version, or against nothing when the item does not exist; over REST as a
// POST, since a content is too large for a query string.
func TestDiffCandidate(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	cand := func(c string) *string { return &c }
	d, err := e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: "new.yaml", Content: cand("a: 1\n")})
	if err != nil {
		t.Fatal(err)
	}
	if want := "--- /dev/null\n+++ new.yaml (candidate)\n@@ -0,0 +1 @@\n+a: 1\n"; d.Diff != want {
		t.Errorf("diff of a new item:\n%s\nwant:\n%s", d.Diff, want)
	}
	for _, c := range []string{"a: 1\n", "a: 2\n"} {
		if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: c}); err != nil {
			t.Fatal(err)
		}
	}
	d, err = e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: "app.yaml", Content: cand("a: 3\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Diff, "-a: 2\n+a: 3\n") || !strings.HasPrefix(d.Diff, "--- app.yaml (revision ") {
		t.Errorf("diff against the current content:\n%s", d.Diff)
	}
	d, err = e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: "app.yaml", From: 1, Content: cand("a: 3\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Diff, "--- app.yaml@1\n") || !strings.Contains(d.Diff, "-a: 1\n+a: 3\n") || d.From.GetNumber() != 1 {
		t.Errorf("diff against version 1:\n%s", d.Diff)
	}
	if d, err := e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: "app.yaml", Content: cand("a: 2\n")}); err != nil || d.Diff != "" {
		t.Errorf("an unchanged candidate: %q, %v", d.GetDiff(), err)
	}
	if r := e.do(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml/diff", `{"content":"a: 4\n"}`); r.status != 200 || !strings.Contains(r.body, `+a: 4`) {
		t.Errorf("REST POST diff: %d %s", r.status, r.body)
	}
	// Refused: a candidate and a version to; a version not kept.
	if r := e.do(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml/diff", `{"content":"x","to":"2"}`); r.status != 400 {
		t.Errorf("candidate and to: %d %s", r.status, r.body)
	} else if _, field := r.err(); field != "to" {
		t.Errorf("candidate and to: field %q", field)
	}
	if r := e.do(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml/diff", `{"content":"x","from":"9"}`); r.status != 404 {
		t.Errorf("candidate against a missing version: %d %s", r.status, r.body)
	}
}

// ListServices' name filter: exact, or a pattern; REST too; a name longer
// than any service's is refused.
func TestListServicesByName(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for _, s := range []string{"pay", "payroll", "orders"} {
		if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: s, Ip: "10.0.0.1", Port: 80}); err != nil {
			t.Fatal(err)
		}
	}
	names := func(pattern string) []string {
		resp, err := e.reg.ListServices(ctx, &pb.ListServicesRequest{Namespace: "public", Name: pattern})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range resp.Services {
			out = append(out, s.Service)
		}
		return out
	}
	for pattern, want := range map[string]string{"": "orders payroll pay", "pay": "pay", "pay*": "payroll pay", "*der*": "orders", "nope*": ""} {
		got := strings.Join(names(pattern), " ")
		// The store lists in key order; compare as sets.
		if !sameWords(got, want) {
			t.Errorf("name %q: %q, want %q", pattern, got, want)
		}
	}
	if r := e.do(t, "GET", "/v1/namespaces/public/services?name=pay*", ""); r.status != 200 || !strings.Contains(r.body, `"payroll"`) || strings.Contains(r.body, `"orders"`) {
		t.Errorf("REST ?name=pay*: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/namespaces/public/services?name="+strings.Repeat("x", 600), ""); r.status != 413 && r.status != 400 {
		t.Errorf("a too-long name: %d %s", r.status, r.body)
	}
}

func sameWords(a, b string) bool {
	m := map[string]int{}
	for _, w := range strings.Fields(a) {
		m[w]++
	}
	for _, w := range strings.Fields(b) {
		m[w]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// The status names the gateway that answered and the one that runs the
// health checks; the members list says which member is reachable.
func TestStatusNamesGateways(t *testing.T) {
	e := start(t, func(_ *raftstore.Config, c *gateway.Config) { c.GatewayID = "gw-under-test" })
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := pb.NewStatusServiceClient(e.conn).GetStatus(ctx, &pb.GetStatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Gateway != "gw-under-test" {
			t.Fatalf("status names gateway %q", st.Gateway)
		}
		if st.HealthRunner == "gw-under-test" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the only gateway never shows as the health runner: %q", st.HealthRunner)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ms, err := pb.NewClusterServiceClient(e.conn).ListMembers(ctx, &pb.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.Members) != 1 || !ms.Members[0].Reachable {
		t.Errorf("a single node's members: %v; it answered, so it is reachable", ms.Members)
	}
}

// A raw REST publish can be a gray release (grayLabels, grayIps,
// grayPercent); bad values are refused naming the parameter.
func TestRawGrayPublish(t *testing.T) {
	e := start(t)
	const path = "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml"
	if r := e.do(t, "PUT", path, "a: 1\n"); r.status != 200 {
		t.Fatal(r.status, r.body)
	}
	if r := e.do(t, "PUT", path+"?grayLabels=env%3Dcanary,zone%3Da&grayIps=10.0.0.5&grayPercent=10&message=try", "a: 2\n"); r.status != 200 {
		t.Fatalf("gray publish: %d %s", r.status, r.body)
	}
	g, err := e.cfg.GetGrayConfig(context.Background(), &pb.GetGrayConfigRequest{DataId: "app.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Content != "a: 2\n" || g.Rule.Labels["env"] != "canary" || g.Rule.Labels["zone"] != "a" || len(g.Rule.Ips) != 1 || g.Rule.Percent != 10 || g.Message != "try" {
		t.Errorf("gray as published: %v", g)
	}
	if r := e.do(t, "GET", path, ""); r.body != "a: 1\n" {
		t.Errorf("a client outside the rule reads %q", r.body)
	}
	// A rule that matches this client (its address): it reads the gray,
	// unless it asks for the release (as the console's editor does).
	if r := e.do(t, "PUT", path+"?grayIps=127.0.0.1", "a: 9\n"); r.status != 200 {
		t.Fatal(r.status, r.body)
	}
	if r := e.do(t, "GET", path, ""); r.body != "a: 9\n" {
		t.Errorf("a client the rule matches reads %q", r.body)
	}
	if r := e.do(t, "GET", path+"?release=true", "", "Accept", "application/json"); !strings.Contains(r.body, `"content":"a: 1\n"`) || !strings.Contains(r.body, `"gray":false`) {
		t.Errorf("?release=true reads %s", r.body)
	}
	for q, field := range map[string]string{"grayLabels=env": "grayLabels", "grayPercent=ten": "grayPercent", "grayPercent=101": "", "grayIps=not-an-ip": "", "gray=1": "gray"} {
		r := e.do(t, "PUT", path+"?"+q, "a: 3\n")
		if r.status != 400 {
			t.Errorf("?%s: %d %s", q, r.status, r.body)
			continue
		}
		if _, f := r.err(); field != "" && f != field {
			t.Errorf("?%s: field %q, want %q", q, f, field)
		}
	}
}

// The console's files: served at /ui/ when on, gzipped when asked, with a
// strict content security policy and a revalidating ETag; nothing when
// off.
func TestConsoleServed(t *testing.T) {
	on := start(t, func(_ *raftstore.Config, c *gateway.Config) { c.UI = true })
	off := start(t)
	r := on.do(t, "GET", "/ui/", "")
	if r.status != 200 || !strings.Contains(r.body, `<script type="module" src="app.js">`) {
		t.Fatalf("GET /ui/: %d %s", r.status, r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	tag := r.header.Get("ETag")
	if r := on.do(t, "GET", "/ui/app.js", "", "If-None-Match", tag); r.status != 200 {
		t.Errorf("another file's ETag matched app.js: %d", r.status)
	}
	if r := on.do(t, "GET", "/ui/", "", "If-None-Match", tag); r.status != http.StatusNotModified {
		t.Errorf("revalidation: %d", r.status)
	}
	req, _ := http.NewRequest("GET", on.base+"/ui/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("app.js with gzip accepted: %v", resp.Header)
	}
	for _, p := range []string{"/ui/../go.mod", "/ui/%2e%2e/go.mod", "/ui/static/index.html", "/ui//etc/passwd"} {
		req, _ := http.NewRequest("GET", on.base+p, nil)
		resp, err := (&http.Transport{}).RoundTrip(req) // no redirect followed
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(body), "module ") {
			t.Errorf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
	if r := on.do(t, "GET", "/ui/nope.js", ""); r.status != 404 {
		t.Errorf("a missing file: %d", r.status)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noRedirect.Get(on.base + "/ui"); err != nil || resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %v %v", resp, err)
	}
	if r := off.do(t, "GET", "/ui/", ""); r.status != 404 {
		t.Errorf("--ui=false: GET /ui/ %d", r.status)
	}
	var status map[string]any
	if r := on.do(t, "GET", "/v1/status", ""); json.Unmarshal([]byte(r.body), &status) != nil || status["backend"] != "raft" {
		t.Errorf("the API beside the console: %s", r.body)
	}
}

// WatchServices: the counts of many services on one stream, first as they
// are, then at each change; over REST as a console reads it.
func TestWatchServices(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	reg := func(svc, id string, healthy bool) {
		t.Helper()
		if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: svc, Id: id, Ip: "10.0.0.1", Port: 80, Healthy: &healthy}); err != nil {
			t.Fatal(err)
		}
	}
	reg("pay", "a", true)
	reg("orders", "a", false)
	events := e.restWatch(t, "/v1/namespaces/public/services:watch?services=DEFAULT_GROUP/pay&services=DEFAULT_GROUP/orders&services=DEFAULT_GROUP/absent")
	next := func() string {
		t.Helper()
		select {
		case ev := <-events:
			return fmt.Sprintf("%v %v/%v", ev["service"], ev["healthy"], ev["instances"])
		case <-time.After(5 * time.Second):
			t.Fatal("no summary within 5s")
			return ""
		}
	}
	first := []string{next(), next(), next()}
	if !sameWords(strings.Join(first, " "), "pay 1/1 orders 0/1 absent 0/0") {
		t.Errorf("first summaries: %v", first)
	}
	reg("pay", "b", false)
	if got := next(); got != "pay 1/2" {
		t.Errorf("after a registration: %s", got)
	}
	if _, err := e.reg.DeregisterInstance(ctx, &pb.DeregisterInstanceRequest{Service: "orders", Id: "a"}); err != nil {
		t.Fatal(err)
	}
	if got := next(); got != "orders 0/0" {
		t.Errorf("after a deregistration: %s", got)
	}
	for q, want := range map[string]int{"": 400, "?services=pay": 400, "?services=DEFAULT_GROUP/" + strings.Repeat("x", 600): 400} {
		if r := e.do(t, "GET", "/v1/namespaces/public/services:watch"+q, ""); r.status != want && r.status != 413 {
			t.Errorf("services:watch%s: %d %s", q, r.status, r.body)
		}
	}
	var many []string
	for i := range 101 {
		many = append(many, fmt.Sprintf("services=g/s%d", i))
	}
	if r := e.do(t, "GET", "/v1/namespaces/public/services:watch?"+strings.Join(many, "&"), ""); r.status != 400 {
		t.Errorf("101 services: %d %s", r.status, r.body)
	}
}

package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

const svcPath = "/v1/namespaces/public/groups/DEFAULT_GROUP/services/"
const cfgPath = "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"

// An ephemeral instance whose session stops heartbeating is gone within
// TTL + 1 s, and a watcher sees the delete.
func TestSessionExpiryReachesWatchers(t *testing.T) {
	e := start(t)
	r := e.do(t, "POST", "/v1/sessions", `{"ttl":"1s"}`)
	if r.status != 200 {
		t.Fatalf("create session: %d %s", r.status, r.body)
	}
	var sess struct{ ID string }
	sess.ID = strings.Split(strings.Split(r.body, `"id":"`)[1], `"`)[0]
	events := e.restWatch(t, svcPath+"pay/instances:watch")
	if ev := recv(t, events, 5*time.Second); ev["type"] != "RESET" {
		t.Fatalf("first event %v, want RESET", ev["type"])
	}
	r = e.do(t, "POST", svcPath+"pay/instances", `{"ip":"10.1.1.1","port":8080,"session":"`+sess.ID+`"}`)
	if r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	if ev := recv(t, events, 5*time.Second); ev["type"] != "PUT" {
		t.Fatalf("got %v, want PUT", ev["type"])
	}
	beat := time.Now()
	if r := e.do(t, "PUT", "/v1/sessions/"+sess.ID+"/keepalive", ""); r.status != 200 {
		t.Fatalf("keepalive: %d %s", r.status, r.body)
	}
	ev := recv(t, events, 4*time.Second)
	gone := time.Since(beat)
	if ev["type"] != "DELETE" {
		t.Fatalf("got %v, want DELETE", ev["type"])
	}
	t.Logf("instance gone %v after the last heartbeat (TTL 1s)", gone.Round(time.Millisecond))
	if gone > 2*time.Second {
		t.Fatalf("gone after %v, bound is TTL+1s", gone)
	}
	if r := e.do(t, "PUT", "/v1/sessions/"+sess.ID+"/keepalive", ""); r.status != 404 {
		t.Fatalf("keepalive of expired session: %d %s, want 404", r.status, r.body)
	}
}

// A config update reaches a watcher; a CAS with a stale revision gets 409.
func TestConfigWatchAndCAS(t *testing.T) {
	e := start(t)
	events := e.restWatch(t, cfgPath+"app.yaml:watch")
	if ev := recv(t, events, 5*time.Second); ev["type"] != "RESET" || ev["config"] != nil {
		t.Fatalf("first event %v, want RESET of an absent item", ev)
	}
	r := e.do(t, "PUT", cfgPath+"app.yaml?ifRevision=0", "port: 1\n", "Content-Type", "application/yaml")
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	rev1, _ := strconv.ParseInt(strings.Trim(r.header.Get("ETag"), `"`), 10, 64)
	ev := recv(t, events, 5*time.Second)
	if ev["type"] != "PUT" || ev["config"].(map[string]any)["content"] != "port: 1\n" {
		t.Fatalf("update event %v", ev)
	}
	r = e.do(t, "PUT", cfgPath+"app.yaml?ifRevision="+fmt.Sprint(rev1), "port: 2\n")
	if r.status != 200 {
		t.Fatalf("update at current revision: %d %s", r.status, r.body)
	}
	r = e.do(t, "PUT", cfgPath+"app.yaml?ifRevision="+fmt.Sprint(rev1), "port: 3\n")
	if code, field := r.err(); r.status != 409 || code != "CONFLICT" || field != "ifRevision" {
		t.Fatalf("stale CAS: %d %s", r.status, r.body)
	}
	r = e.do(t, "DELETE", cfgPath+"app.yaml?ifRevision="+fmt.Sprint(rev1), "")
	if r.status != 409 {
		t.Fatalf("stale CAS delete: %d %s", r.status, r.body)
	}
	r = e.do(t, "GET", cfgPath+"app.yaml", "")
	if r.body != "port: 2\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("raw get: %q %s", r.body, r.header.Get("Content-Type"))
	}
	tag := r.header.Get("ETag")
	if r := e.do(t, "GET", cfgPath+"app.yaml", "", "If-None-Match", tag); r.status != http.StatusNotModified {
		t.Fatalf("conditional get: %d", r.status)
	}
	r = e.do(t, "GET", cfgPath+"app.yaml", "", "Accept", "application/json")
	if !strings.Contains(r.body, `"content":"port: 2\n"`) || !strings.Contains(r.body, `"contentType":"yaml"`) {
		t.Fatalf("JSON envelope must carry text content as a string: %s", r.body)
	}
}

// A watch from a revision older than the history window gets a RESET with
// the full state; a watch from the revision a list returned misses nothing.
func TestWatchResetAndListThenWatch(t *testing.T) {
	e := start(t, func(s *raftstore.Config, g *gateway.Config) { s.History = 16; g.WatchHistory = 16 })
	ctx := context.Background()
	reg := func(svc string, port int32, meta string) int64 {
		resp, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: svc, Ip: "10.0.0.1", Port: port,
			Metadata: map[string]string{"m": meta}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Revision
	}
	old := reg("orders", 1, "a")
	for n := range 40 {
		reg("filler", 1, fmt.Sprint(n))
	}
	reg("orders", 2, "b")
	stream, err := e.reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Service: "orders", Revision: old})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil || ev.Type != pb.EventType_RESET || len(ev.Instances) != 2 {
		t.Fatalf("watch from compacted revision: %v %v, want RESET with 2 instances", ev, err)
	}

	// List-then-watch with concurrent writers, through the gateway.
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 20 {
				reg("busy", int32(100+w), fmt.Sprint(n))
			}
		}()
	}
	time.Sleep(2 * time.Millisecond)
	list, err := e.reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	view := map[string]string{}
	for _, i := range list.Instances {
		view[i.Id] = i.Metadata["m"]
	}
	ws, err := e.reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Service: "busy", Revision: list.Revision})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	final, _ := e.reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: "busy"})
	for rev := list.Revision; rev < final.Revision; {
		ev, err := ws.Recv()
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case pb.EventType_RESET:
			clear(view)
			for _, i := range ev.Instances {
				view[i.Id] = i.Metadata["m"]
			}
		case pb.EventType_PUT:
			view[ev.Instance.Id] = ev.Instance.Metadata["m"]
		}
		rev = ev.Revision
	}
	for _, i := range final.Instances {
		if view[i.Id] != "19" {
			t.Fatalf("subscriber saw %s at %q, store has %q", i.Id, view[i.Id], i.Metadata["m"])
		}
	}
}

// Bad input gets a 4xx with a message naming the field, and nothing is stored.
func TestBadInputRejected(t *testing.T) {
	e := start(t, func(_ *raftstore.Config, g *gateway.Config) { g.MaxContentSize = 1024 })
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"bad service name", "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/bad%20name/instances", `{"ip":"1.2.3.4","port":80}`, 400, "INVALID_ARGUMENT", "service"},
		{"bad namespace", "POST", "/v1/namespaces/a$b/groups/g/services/s/instances", `{"ip":"1.2.3.4","port":80}`, 400, "INVALID_ARGUMENT", "namespace"},
		{"bad port", "POST", svcPath + "s/instances", `{"ip":"1.2.3.4","port":0}`, 400, "INVALID_ARGUMENT", "port"},
		{"bad ip", "POST", svcPath + "s/instances", `{"ip":"not an ip","port":80}`, 400, "INVALID_ARGUMENT", "ip"},
		{"negative weight", "POST", svcPath + "s/instances", `{"ip":"1.2.3.4","port":80,"weight":-1}`, 400, "INVALID_ARGUMENT", "weight"},
		{"unknown session", "POST", svcPath + "s/instances", `{"ip":"1.2.3.4","port":80,"session":"nope"}`, 404, "SESSION_EXPIRED", "session"},
		{"malformed JSON", "POST", svcPath + "s/instances", `{"ip":`, 400, "INVALID_ARGUMENT", "body"},
		{"unknown field", "POST", svcPath + "s/instances", `{"ip":"1.2.3.4","prot":80}`, 400, "INVALID_ARGUMENT", "body"},
		{"bad ttl", "POST", "/v1/sessions", `{"ttl":"0.5s"}`, 400, "INVALID_ARGUMENT", "ttl"},
		{"oversized content", "PUT", cfgPath + "big", strings.Repeat("x", 1025), 413, "TOO_LARGE", "content"},
		{"binary content", "PUT", cfgPath + "bin", "\xff\xfe", 400, "INVALID_ARGUMENT", "content"},
		{"bad content type", "PUT", cfgPath + "t?type=exe", "x", 400, "INVALID_ARGUMENT", "contentType"},
		{"bad ifRevision", "PUT", cfgPath + "r?ifRevision=abc", "x", 400, "INVALID_ARGUMENT", "ifRevision"},
		{"bad dataId", "PUT", cfgPath + "a%2Fb", "x", 400, "INVALID_ARGUMENT", "dataId"},
		{"missing config", "GET", cfgPath + "absent", "", 404, "NOT_FOUND", ""},
		{"page size", "GET", "/v1/namespaces/public/services?pageSize=5000", "", 400, "INVALID_ARGUMENT", "pageSize"},
	} {
		r := e.do(t, tc.method, tc.path, tc.body)
		code, field := r.err()
		if r.status != tc.status || code != tc.code || field != tc.field {
			t.Errorf("%s: %d %s, want %d %s naming %q", tc.name, r.status, r.body, tc.status, tc.code, tc.field)
		}
	}
	// Nothing was stored.
	if r := e.do(t, "GET", "/v1/namespaces/public/services", ""); strings.Contains(r.body, `"service":"s"`) {
		t.Fatalf("a rejected registration was stored: %s", r.body)
	}
	if r := e.do(t, "GET", "/v1/namespaces/public/configs", ""); strings.Contains(r.body, "dataId") {
		t.Fatalf("a rejected config was stored: %s", r.body)
	}
	// The same errors reach Go callers as portable errors.
	_, err := e.reg.CreateSession(context.Background(), &pb.CreateSessionRequest{Ttl: durationpb.New(time.Millisecond)})
	if err = pb.Error(err); !errors.Is(err, model.ErrInvalidArgument) || model.FieldOf(err) != "ttl" {
		t.Fatalf("gRPC error: %v", err)
	}
}

func TestServicesPagingAndFilters(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for n := range 5 {
		cluster := "a"
		if n%2 == 1 {
			cluster = "b"
		}
		_, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: fmt.Sprintf("svc-%d", n), Ip: "10.0.0.1",
			Port: 80, Cluster: cluster})
		if err != nil {
			t.Fatal(err)
		}
		disabled := false
		if _, err := e.reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "svc-0", Ip: "10.0.0.2", Port: int32(81 + n),
			Cluster: cluster, Enabled: &disabled}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	req := &pb.ListServicesRequest{PageSize: 2}
	for {
		resp, err := e.reg.ListServices(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.Services {
			names = append(names, s.Service)
		}
		if req.PageToken = resp.NextPageToken; req.PageToken == "" {
			break
		}
	}
	if strings.Join(names, ",") != "svc-0,svc-1,svc-2,svc-3,svc-4" {
		t.Fatalf("paged services: %v", names)
	}
	r := e.do(t, "GET", svcPath+"svc-0/instances?healthyOnly=true&clusters=a", "")
	if strings.Count(r.body, `"id"`) != 1 {
		t.Fatalf("healthyOnly+clusters filter: %s", r.body)
	}
	r = e.do(t, "GET", svcPath+"svc-0/instances?clusters=a,b", "")
	if strings.Count(r.body, `"id"`) != 6 {
		t.Fatalf("clusters=a,b: %s", r.body)
	}
	// Instance ids contain a colon; the REST path still routes them.
	if r := e.do(t, "DELETE", svcPath+"svc-0/instances/10.0.0.2:81", ""); r.status != 200 {
		t.Fatalf("deregister by ip:port id: %d %s", r.status, r.body)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	e := start(t)
	for path, want := range map[string]string{
		"/healthz":      "ok",
		"/readyz":       "ready: raft",
		"/openapi.json": `"swagger"`,
		"/v1/status":    `"backend":"raft"`,
		"/metrics":      "junction_watch_subscribers",
	} {
		if r := e.do(t, "GET", path, ""); r.status != 200 || !strings.Contains(r.body, want) {
			t.Errorf("%s: %d, body lacks %q", path, r.status, want)
		}
	}
	if r := e.do(t, "GET", "/v1/nope", ""); r.status != 404 || !strings.Contains(r.body, `"code"`) {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
}

package gateway_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance/localcluster"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

// historyTargets are gateways over the built-in store, a built-in store
// cluster's follower (which forwards writes and history reads to the
// leader's gateway) and etcd.
func historyTargets() map[string]func(t *testing.T) *env {
	return map[string]func(t *testing.T) *env{
		"raft": func(t *testing.T) *env { return start(t) },
		"raft-3": func(t *testing.T) *env {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := localcluster.Start(ctx, t.TempDir(), 3, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			f, err := c.Follower(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return startOn(t, f.Store, gateway.DefaultConfig())
		},
		"etcd": func(t *testing.T) *env {
			ep, _ := servertest.Etcd(t)
			u, _ := url.Parse("etcd://" + ep)
			cfg, _ := etcd.ConfigFromURL(u)
			d, err := etcd.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return startOn(t, d, gateway.DefaultConfig())
		},
	}
}

// History, diff and rollback through the API: who changed an item, what
// changed, and a rollback that is a new version, guarded by
// compare-and-set; bad requests are refused and write nothing.
func TestConfigHistoryAPI(t *testing.T) {
	for name, open := range historyTargets() {
		t.Run(name, func(t *testing.T) {
			e := open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const id = "app.yaml"
			v1, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: id, Content: "replicas: 2\n", ContentType: model.ContentYAML, Message: "first"})
			if err != nil {
				t.Fatal(err)
			}
			// REST: the raw body, with a message.
			if r := e.do(t, "PUT", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"+id+"?message=scale+down", "replicas: 0\n"); r.status != 200 {
				t.Fatalf("REST put: %d %s", r.status, r.body)
			}
			h := history(t, e, id)
			if len(h) != 2 || h[0].Number != 2 || h[1].Number != 1 || h[0].Message != "scale down" || h[1].Message != "first" ||
				h[1].Op != "create" || h[0].Op != "update" || h[0].Content != "" || h[1].Revision != v1.Config.Revision {
				t.Fatalf("history, newest first: %v", h)
			}
			for _, v := range h { // access control is off: the author is the client's address
				if v.Author != "127.0.0.1" {
					t.Errorf("version %d is by %q, want the client's address", v.Number, v.Author)
				}
			}
			// diff: the last two by default; over REST too.
			d, err := e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: id})
			if err != nil {
				t.Fatal(err)
			}
			want := "--- app.yaml@1\n+++ app.yaml@2\n@@ -1 +1 @@\n-replicas: 2\n+replicas: 0\n"
			if d.Diff != want || d.From.Number != 1 || d.To.Number != 2 {
				t.Errorf("diff:\n%s\nwant:\n%s", d.Diff, want)
			}
			if r := e.do(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"+id+"/diff?from=2&to=1", ""); r.status != 200 || !strings.Contains(r.body, `-replicas: 0\n+replicas: 2`) {
				t.Errorf("REST diff 2→1: %d %s", r.status, r.body)
			}
			if r := e.do(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"+id+"/history/1", ""); r.status != 200 || !strings.Contains(r.body, `"content":"replicas: 2\n"`) {
				t.Errorf("REST version 1: %d %s", r.status, r.body)
			}
			// Rollback: refused at a stale revision, then a new version.
			stale := v1.Config.Revision
			if _, err := e.cfg.RollbackConfig(ctx, &pb.RollbackConfigRequest{DataId: id, Number: 1, IfRevision: &stale}); !errors.Is(pb.Error(err), model.ErrConflict) {
				t.Errorf("rollback at a stale revision: %v, want CONFLICT", err)
			}
			cur, err := e.cfg.GetConfig(ctx, &pb.GetConfigRequest{DataId: id})
			if err != nil {
				t.Fatal(err)
			}
			r := e.do(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"+id+"/rollback",
				`{"number":1,"ifRevision":"`+strconv.FormatInt(cur.Config.Revision, 10)+`"}`)
			if r.status != 200 {
				t.Fatalf("REST rollback: %d %s", r.status, r.body)
			}
			got, err := e.cfg.GetConfig(ctx, &pb.GetConfigRequest{DataId: id})
			if err != nil || got.Config.Content != "replicas: 2\n" || got.Config.ContentType != model.ContentYAML {
				t.Fatalf("after the rollback: %v (%v)", got, err)
			}
			h = history(t, e, id)
			if len(h) != 3 || h[0].Number != 3 || h[0].Message != "rollback to version 1" || h[0].Md5 != model.ContentMD5([]byte("replicas: 2\n")) {
				t.Errorf("the rollback's version: %v", h)
			}
			// A deleted item keeps its history; a rollback brings it back.
			if _, err := e.cfg.DeleteConfig(ctx, &pb.DeleteConfigRequest{DataId: id, Message: "retire"}); err != nil {
				t.Fatal(err)
			}
			h = history(t, e, id)
			if len(h) != 4 || h[0].Op != "delete" || h[0].Message != "retire" {
				t.Errorf("history after the delete: %v", h)
			}
			if _, err := e.cfg.RollbackConfig(ctx, &pb.RollbackConfigRequest{DataId: id, Number: 4}); !errors.Is(pb.Error(err), model.ErrInvalidArgument) {
				t.Errorf("rollback to a delete: %v, want INVALID_ARGUMENT", err)
			}
			if _, err := e.cfg.RollbackConfig(ctx, &pb.RollbackConfigRequest{DataId: id, Number: 2}); err != nil {
				t.Fatalf("rollback of a deleted item: %v", err)
			}
			badRequests(t, e, id, 5)
		})
	}
}

// badRequests checks the refusals of the history calls; the item has n
// versions before and after.
func badRequests(t *testing.T, e *env, id string, n int) {
	ctx := context.Background()
	field := func(err error) string {
		var fe *model.FieldError
		if errors.As(pb.Error(err), &fe) {
			return fe.Field
		}
		return ""
	}
	for _, c := range []struct {
		name  string
		call  func() error
		kind  error
		field string
	}{
		{"rollback to a version that does not exist", func() error {
			_, err := e.cfg.RollbackConfig(ctx, &pb.RollbackConfigRequest{DataId: id, Number: 99})
			return err
		}, model.ErrNotFound, "number"},
		{"rollback to version 0", func() error {
			_, err := e.cfg.RollbackConfig(ctx, &pb.RollbackConfigRequest{DataId: id})
			return err
		}, model.ErrInvalidArgument, "number"},
		{"rollback of an item without history", func() error {
			_, err := e.cfg.RollbackConfig(ctx, &pb.RollbackConfigRequest{DataId: "never.yaml", Number: 1})
			return err
		}, model.ErrNotFound, "number"},
		{"a version that does not exist", func() error {
			_, err := e.cfg.GetConfigVersion(ctx, &pb.GetConfigVersionRequest{DataId: id, Number: 99})
			return err
		}, model.ErrNotFound, "number"},
		{"diff to a negative version", func() error {
			_, err := e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: id, To: -1})
			return err
		}, model.ErrInvalidArgument, "to"},
		{"diff from a version that does not exist", func() error {
			_, err := e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: id, From: 99})
			return err
		}, model.ErrNotFound, "from"},
		{"diff of an item without history", func() error {
			_, err := e.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{DataId: "never.yaml"})
			return err
		}, model.ErrNotFound, ""},
		{"a message too long", func() error {
			_, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: id, Content: "x: 1\n", Message: strings.Repeat("m", 1025)})
			return err
		}, model.ErrTooLarge, "message"},
		{"a message with control characters", func() error {
			_, err := e.cfg.DeleteConfig(ctx, &pb.DeleteConfigRequest{DataId: id, Message: "a\x1b[2J"})
			return err
		}, model.ErrInvalidArgument, "message"},
		{"a message with a bidirectional override", func() error {
			_, err := e.cfg.DeleteConfig(ctx, &pb.DeleteConfigRequest{DataId: id, Message: "fix \u202egnp.exe"})
			return err
		}, model.ErrInvalidArgument, "message"},
	} {
		err := c.call()
		if !errors.Is(pb.Error(err), c.kind) || field(err) != c.field {
			t.Errorf("%s: %v (field %q), want %v naming %q", c.name, err, field(err), c.kind, c.field)
		}
	}
	if h := history(t, e, id); len(h) != n {
		t.Errorf("the refused requests changed the history: %d versions, want %d", len(h), n)
	}
	if r := e.do(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"+id+"/history/abc", ""); r.status != 400 {
		t.Errorf("REST version abc: %d %s", r.status, r.body)
	}
}

func history(t *testing.T, e *env, id string) []*pb.ConfigVersion {
	t.Helper()
	h, err := e.cfg.ListConfigHistory(context.Background(), &pb.ListConfigHistoryRequest{DataId: id})
	if err != nil {
		t.Fatal(err)
	}
	return h.Versions
}

// With access control off, a gateway takes the author a forwarding
// gateway names; the retention flags bound each item's history.
func TestHistoryRetentionAndNamedAuthors(t *testing.T) {
	e := start(t, func(_ *raftstore.Config, g *gateway.Config) {
		g.HistoryRetention = backends.Retention{Versions: 3, MaxAge: time.Hour}
	})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "junction-author", "follower-of-alice")
	for i := range 5 {
		if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "r.yaml", Content: "n: " + strconv.Itoa(i) + "\n"}); err != nil {
			t.Fatal(err)
		}
	}
	h := history(t, e, "r.yaml")
	if len(h) != 3 || h[0].Number != 5 || h[2].Number != 3 || h[0].Author != "follower-of-alice" {
		t.Errorf("a retention of 3 after 5 writes: %v", h)
	}
	// A name that could pass for another column of a table is not taken.
	forged := metadata.AppendToOutgoingContext(context.Background(), "junction-author", "alice  2026-01-01 delete")
	if _, err := e.cfg.PutConfig(forged, &pb.PutConfigRequest{DataId: "r.yaml", Content: "n: 9\n"}); err != nil {
		t.Fatal(err)
	}
	if h := history(t, e, "r.yaml"); h[0].Author != "127.0.0.1" {
		t.Errorf("an author with spaces: %q, want the client's address", h[0].Author)
	}
	cfg := gateway.DefaultConfig()
	cfg.HistoryRetention.Versions = 0
	var fe *model.FieldError
	if err := cfg.Validate(); !errors.As(err, &fe) || fe.Field != "config-history-versions" {
		t.Errorf("a retention of 0 versions: %v", err)
	}
}

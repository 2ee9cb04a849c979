package gateway_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

// A gray release published at one gateway reaches the matching clients of
// another over the same store, by read and by watch (the SDK's, with its
// labels; REST's, with its headers); the others keep the release; bad
// rules and a gray of nothing are refused.
func TestGrayReleaseAcrossGateways(t *testing.T) {
	one, two := twoGateways(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := one.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "v: 1\n", ContentType: model.ContentYAML}); err != nil {
		t.Fatal(err)
	}
	client := func(labels map[string]string) (*sdk.Client, chan sdk.ConfigChange) {
		c, err := sdk.New(ctx, sdk.WithAddrs(strings.TrimPrefix(two.base, "http://")), sdk.WithLabels(labels))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ch := make(chan sdk.ConfigChange, 20)
		if err := c.WatchConfig(ctx, "app.yaml", func(cc sdk.ConfigChange) { ch <- cc }); err != nil {
			t.Fatal(err)
		}
		if first := <-ch; string(first.Content) != "v: 1\n" || first.Gray {
			t.Fatalf("the first value: %+v", first)
		}
		return c, ch
	}
	canary, canaryCh := client(map[string]string{"env": "canary"})
	prod, prodCh := client(map[string]string{"env": "prod"})
	await := func(who string, ch chan sdk.ConfigChange, content string, gray bool) {
		t.Helper()
		for {
			select {
			case cc := <-ch:
				if string(cc.Content) == content && cc.Gray == gray {
					return
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s never got %q (gray %v)", who, content, gray)
			}
		}
	}

	if _, err := one.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "v: 2\n",
		Gray: &pb.GrayRule{Labels: map[string]string{"env": "canary"}}}); err != nil {
		t.Fatal(err)
	}
	await("the canary", canaryCh, "v: 2\n", true)
	if got, err := canary.GetConfig(ctx, "app.yaml"); err != nil || string(got.Content) != "v: 2\n" || !got.Gray {
		t.Errorf("the canary's read: %+v %v", got, err)
	}
	if got, err := prod.GetConfig(ctx, "app.yaml"); err != nil || string(got.Content) != "v: 1\n" || got.Gray {
		t.Errorf("the other client's read: %+v %v", got, err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", two.base+"/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml", nil)
	req.Header.Set("Junction-Client-Labels", "env=canary")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if b := readAll(resp); b != "v: 2\n" {
		t.Errorf("a REST canary reads %q", b)
	}
	select {
	case cc := <-prodCh:
		t.Errorf("the other client was sent %+v during the gray", cc)
	case <-time.After(300 * time.Millisecond):
	}
	// Promote at the other gateway: everyone has v: 2, the release.
	if _, err := two.cfg.PromoteGrayConfig(ctx, &pb.PromoteGrayConfigRequest{DataId: "app.yaml"}); err != nil {
		t.Fatal(err)
	}
	await("the other client", prodCh, "v: 2\n", false)
	await("the canary", canaryCh, "v: 2\n", false)
	// A second gray, aborted: the canary goes back.
	if _, err := one.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "app.yaml", Content: "v: 3\n",
		Gray: &pb.GrayRule{Labels: map[string]string{"env": "canary"}}}); err != nil {
		t.Fatal(err)
	}
	await("the canary", canaryCh, "v: 3\n", true)
	if r := one.do(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml/gray", ""); r.status != 200 || !strings.Contains(r.body, `"env":"canary"`) {
		t.Errorf("REST gray: %d %s", r.status, r.body)
	}
	if r := one.do(t, "DELETE", "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.yaml/gray", ""); r.status != 200 {
		t.Errorf("REST abort: %d %s", r.status, r.body)
	}
	await("the canary", canaryCh, "v: 2\n", false)

	for _, c := range []struct {
		name  string
		req   *pb.PutConfigRequest
		kind  error
		field string
	}{
		{"a gray of an item that does not exist", &pb.PutConfigRequest{DataId: "never.yaml", Content: "x: 1\n", Gray: &pb.GrayRule{Percent: 10}}, model.ErrNotFound, "gray"},
		{"a rule that chooses no one", &pb.PutConfigRequest{DataId: "app.yaml", Content: "x: 1\n", Gray: &pb.GrayRule{}}, model.ErrInvalidArgument, "gray"},
		{"a percent past 100", &pb.PutConfigRequest{DataId: "app.yaml", Content: "x: 1\n", Gray: &pb.GrayRule{Percent: 101}}, model.ErrInvalidArgument, "gray.percent"},
		{"an address that is none", &pb.PutConfigRequest{DataId: "app.yaml", Content: "x: 1\n", Gray: &pb.GrayRule{Ips: []string{"10.0.0.300"}}}, model.ErrInvalidArgument, "gray.ips"},
		{"a label that is none", &pb.PutConfigRequest{DataId: "app.yaml", Content: "x: 1\n", Gray: &pb.GrayRule{Labels: map[string]string{"a b": "c"}}}, model.ErrInvalidArgument, "gray.labels"},
		{"content that does not parse", &pb.PutConfigRequest{DataId: "app.yaml", Content: "x: [\n", Gray: &pb.GrayRule{Percent: 10}}, model.ErrInvalidArgument, "content"},
		{"the release's own content", &pb.PutConfigRequest{DataId: "app.yaml", Content: "v: 2\n", Gray: &pb.GrayRule{Percent: 10}}, model.ErrInvalidArgument, "content"},
	} {
		_, err := one.cfg.PutConfig(ctx, c.req)
		var fe *model.FieldError
		if !errors.Is(pb.Error(err), c.kind) || !errors.As(pb.Error(err), &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want %v naming %s", c.name, err, c.kind, c.field)
		}
	}
	if _, err := one.cfg.GetGrayConfig(ctx, &pb.GetGrayConfigRequest{DataId: "app.yaml"}); !errors.Is(pb.Error(err), model.ErrNotFound) {
		t.Errorf("the gray after the refusals: %v, want none", err)
	}
	if _, err := one.cfg.PromoteGrayConfig(ctx, &pb.PromoteGrayConfigRequest{DataId: "app.yaml"}); !errors.Is(pb.Error(err), model.ErrNotFound) {
		t.Errorf("promote with no gray: %v", err)
	}
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The edges of a gray release: a watch that resumes after an abort loses
// the gray; a promote over a release changed since is refused; a delete
// ends the gray; two gateways publishing at once leave one gray,
// served alike by both.
func TestGrayEdges(t *testing.T) {
	one, two := twoGateways(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	canary := metadata.AppendToOutgoingContext(ctx, "junction-client-labels", "env=canary")
	put := func(e *env, content string, gray bool) *pb.PutConfigResponse {
		t.Helper()
		req := &pb.PutConfigRequest{DataId: "edge.yaml", Content: content, ContentType: model.ContentYAML}
		if gray {
			req.Gray = &pb.GrayRule{Labels: map[string]string{"env": "canary"}}
		}
		r, err := e.cfg.PutConfig(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	read := func(e *env) string {
		t.Helper()
		r, err := e.cfg.GetConfig(canary, &pb.GetConfigRequest{DataId: "edge.yaml"})
		if err != nil {
			return "absent"
		}
		return r.Config.Content
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
		}
	}
	put(one, "v: 1\n", false)
	put(one, "v: 2\n", true)
	// The canary's watch sees the gray, then goes away; the gray is
	// aborted; the watch resumes from the revision it had.
	w, err := one.cfg.WatchConfig(canary, &pb.WatchConfigRequest{DataId: "edge.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := w.Recv()
	if err != nil || ev.Config.Content != "v: 2\n" || !ev.Config.Gray {
		t.Fatalf("the canary's first event: %v %v", ev, err)
	}
	if _, err := one.cfg.AbortGrayConfig(ctx, &pb.AbortGrayConfigRequest{DataId: "edge.yaml"}); err != nil {
		t.Fatal(err)
	}
	eventually("the other gateway sees the abort", func() bool { return read(two) == "v: 1\n" })
	w2, err := two.cfg.WatchConfig(canary, &pb.WatchConfigRequest{DataId: "edge.yaml", Revision: ev.Revision})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := w2.Recv(); err != nil || ev.Type != pb.EventType_RESET || ev.Config.Content != "v: 1\n" || ev.Config.Gray {
		t.Errorf("a watch resumed after the abort starts with %v %v, want a RESET to the release", ev, err)
	}
	// A promote over a release changed since the gray is refused.
	put(one, "v: 3\n", true)
	put(two, "v: 4\n", false)
	if _, err := one.cfg.PromoteGrayConfig(ctx, &pb.PromoteGrayConfigRequest{DataId: "edge.yaml"}); !errors.Is(pb.Error(err), model.ErrConflict) {
		t.Errorf("a promote over a newer release: %v, want CONFLICT", err)
	}
	if got, _ := one.cfg.GetConfig(ctx, &pb.GetConfigRequest{DataId: "edge.yaml"}); got.GetConfig().GetContent() != "v: 4\n" {
		t.Errorf("the refused promote wrote %v", got)
	}
	// A delete ends the gray; the item created again has none.
	if _, err := one.cfg.DeleteConfig(ctx, &pb.DeleteConfigRequest{DataId: "edge.yaml"}); err != nil {
		t.Fatal(err)
	}
	if _, err := one.cfg.GetGrayConfig(ctx, &pb.GetGrayConfigRequest{DataId: "edge.yaml"}); !errors.Is(pb.Error(err), model.ErrNotFound) {
		t.Errorf("the gray of a deleted item: %v", err)
	}
	put(two, "v: 5\n", false)
	eventually("the item created again has no gray", func() bool { return read(one) == "v: 5\n" && read(two) == "v: 5\n" })
	// Two publishers at once: both gateways end up serving the same gray.
	done := make(chan struct{}, 2)
	for i, e := range []*env{one, two} {
		go func() {
			defer func() { done <- struct{}{} }()
			_, _ = e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "edge.yaml", Content: "from: " + strconv.Itoa(i) + "\n",
				Gray: &pb.GrayRule{Labels: map[string]string{"env": "canary"}}})
		}()
	}
	<-done
	<-done
	g, err := one.cfg.GetGrayConfig(ctx, &pb.GetGrayConfigRequest{DataId: "edge.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	eventually("both gateways serve the gray the index names", func() bool { return read(one) == g.Content && read(two) == g.Content })
}

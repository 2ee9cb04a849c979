package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// Content of a structured type is parsed on publish, each format by its
// own parser: what does not parse is refused naming the line (and the
// column where the parser knows it), through gRPC and raw REST alike; the
// writer can force it; text is never parsed; an update that keeps the
// item's type is checked against that type.
func TestPublishValidatesFormats(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for _, c := range []struct {
		typ, good, bad, where string
	}{
		{model.ContentJSON, `{"a": [1, 2]}`, "{\n  \"a\": [1, 2,]\n}", "line 2, column"},
		{model.ContentYAML, "a:\n  - 1\n", "a: 1\nb: [1, 2\nc: 3\n", "line "},
		{model.ContentTOML, "a = 1\n[b]\nc = \"x\"\n", "a = 1\nb = = 2\n", "line 2, column"},
		{model.ContentXML, "<a><b>x</b></a>", "<a>\n<b>x</a>\n", "line 2"},
		{model.ContentProperties, "a=1\nb: 2\n", "a=1\nb=\\u12zz\n", "line 2"},
	} {
		if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "ok." + c.typ, Content: c.good, ContentType: c.typ}); err != nil {
			t.Errorf("valid %s: %v", c.typ, err)
		}
		_, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "bad." + c.typ, Content: c.bad, ContentType: c.typ})
		if !errors.Is(pb.Error(err), model.ErrInvalidArgument) || model.FieldOf(pb.Error(err)) != "content" || !strings.Contains(err.Error(), c.where) {
			t.Errorf("invalid %s: %v, want INVALID_ARGUMENT on content naming %q", c.typ, err, c.where)
		}
		if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "forced." + c.typ, Content: c.bad, ContentType: c.typ, NoValidate: true}); err != nil {
			t.Errorf("invalid %s with validation off: %v", c.typ, err)
		}
		// An update without a type keeps the item's, and is checked as it.
		if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "ok." + c.typ, Content: c.bad}); !errors.Is(pb.Error(err), model.ErrInvalidArgument) {
			t.Errorf("an untyped update of a %s item with invalid content: %v, want INVALID_ARGUMENT", c.typ, err)
		}
	}
	if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: "notes", Content: "{ not json", ContentType: model.ContentText}); err != nil {
		t.Errorf("text: %v", err)
	}
	// Raw REST: the body is the content; validate=false forces it.
	r := e.do(t, "PUT", cfgPath+"raw.json?type=json", `{"a":`, "Content-Type", "application/json")
	if code, field := r.err(); r.status != http.StatusBadRequest || code != "INVALID_ARGUMENT" || field != "content" || !strings.Contains(r.body, "line 1") {
		t.Errorf("raw PUT of invalid JSON: %d %s", r.status, r.body)
	}
	if r := e.do(t, "PUT", cfgPath+"raw.json?type=json&validate=false", `{"a":`); r.status != http.StatusOK {
		t.Errorf("raw PUT of invalid JSON with validate=false: %d %s", r.status, r.body)
	}
	if r := e.do(t, "PUT", cfgPath+"raw.json?validate=maybe", `{}`); r.status != http.StatusBadRequest {
		t.Errorf("validate=maybe: %d %s", r.status, r.body)
	}
}

// A config list searches by name pattern and by content, a page at a time:
// the pages cover every match once, in order.
func TestConfigSearch(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	for i := range 30 {
		id := fmt.Sprintf("app-%02d.yaml", i)
		if i%2 == 1 {
			id = fmt.Sprintf("db-%02d.yaml", i)
		}
		content := "replicas: 1\n"
		if i%3 == 0 {
			content = "timeout: 5s\n"
		}
		if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{DataId: id, Content: content, ContentType: model.ContentYAML}); err != nil {
			t.Fatal(err)
		}
	}
	search := func(name, contains string, size int32) []string {
		var got []string
		req := &pb.ListConfigsRequest{Name: name, Contains: contains, PageSize: size}
		for pages := 0; ; pages++ {
			resp, err := e.cfg.ListConfigs(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if size > 0 && len(resp.Configs) > int(size) {
				t.Fatalf("a page of %d, size %d", len(resp.Configs), size)
			}
			for _, c := range resp.Configs {
				got = append(got, c.DataId)
			}
			if resp.NextPageToken == "" || pages > 40 {
				return got
			}
			req.PageToken = resp.NextPageToken
		}
	}
	want := func(f func(i int) bool) []string {
		var out []string
		for i := range 30 {
			if !f(i) {
				continue
			}
			if i%2 == 1 {
				out = append(out, fmt.Sprintf("db-%02d.yaml", i))
			} else {
				out = append(out, fmt.Sprintf("app-%02d.yaml", i))
			}
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		name, contains string
		size           int32
		want           []string
	}{
		{"app*", "", 0, want(func(i int) bool { return i%2 == 0 })},
		{"app*", "", 4, want(func(i int) bool { return i%2 == 0 })},
		{"", "timeout", 3, want(func(i int) bool { return i%3 == 0 })},
		{"db-*", "timeout", 2, want(func(i int) bool { return i%2 == 1 && i%3 == 0 })},
		{"*-1?.yaml", "", 0, nil},
		{"app-04.yaml", "", 1, []string{"app-04.yaml"}},
	} {
		if got := search(c.name, c.contains, c.size); !slices.Equal(got, c.want) {
			t.Errorf("name %q contains %q pages of %d: %v, want %v", c.name, c.contains, c.size, got, c.want)
		}
	}
	if _, err := e.cfg.ListConfigs(ctx, &pb.ListConfigsRequest{PageToken: "garbage"}); !errors.Is(pb.Error(err), model.ErrInvalidArgument) {
		t.Errorf("a bad page token: %v", err)
	}
	r := e.do(t, "GET", "/v1/namespaces/public/configs?name=db-*&contains=timeout", "")
	if r.status != 200 || !strings.Contains(r.body, "db-03.yaml") || strings.Contains(r.body, "db-01.yaml") {
		t.Errorf("REST search: %d %s", r.status, r.body)
	}
}

package gateway_test

import (
	"context"
	"errors"
	"net/http"
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

package gateway_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// items are what the transfer tests export: several groups and types.
var transferItems = []struct{ group, id, typ, content string }{
	{"DEFAULT_GROUP", "app.yaml", model.ContentYAML, "replicas: 2\npool: {size: 10}\n"},
	{"DEFAULT_GROUP", "flags.json", model.ContentJSON, `{"dark": true, "beta": ["a", "b"]}`},
	{"billing", "db.properties", model.ContentProperties, "url=jdbc:postgresql://db/billing\nuser=billing\n"},
	{"billing", "notes", model.ContentText, "ünïcode, tabs\tand\nlines\n"},
	{"billing", "rules.toml", model.ContentTOML, "[limits]\nrate = 5\n"},
	{"billing", "layout.xml", model.ContentXML, "<layout><row/></layout>"},
}

func putAll(t *testing.T, e *env, ns string) {
	t.Helper()
	for _, it := range transferItems {
		if _, err := e.cfg.PutConfig(context.Background(), &pb.PutConfigRequest{Namespace: ns, Group: it.group, DataId: it.id,
			Content: it.content, ContentType: it.typ}); err != nil {
			t.Fatal(err)
		}
	}
}

// all reads every item of a namespace: group/dataId → the item.
func all(t *testing.T, e *env, ns string) map[string]*pb.Config {
	t.Helper()
	ctx := context.Background()
	list, err := e.cfg.ListConfigs(ctx, &pb.ListConfigsRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*pb.Config{}
	for _, s := range list.Configs {
		c, err := e.cfg.GetConfig(ctx, &pb.GetConfigRequest{Namespace: ns, Group: s.Group, DataId: s.DataId})
		if err != nil {
			t.Fatal(err)
		}
		out[s.Group+"/"+s.DataId] = c.Config
	}
	return out
}

// An export from one backend (etcd) imports into another (the built-in
// store) with equal bytes, types and md5s; a second import changes
// nothing; the REST forms carry the zip itself.
func TestExportImportAcrossBackends(t *testing.T) {
	from := historyTargets()["etcd"](t)
	to := start(t)
	ctx := context.Background()
	putAll(t, from, "team-a")
	exp, err := from.cfg.ExportConfigs(ctx, &pb.ExportConfigsRequest{Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if exp.Count != int32(len(transferItems)) {
		t.Fatalf("exported %d items, want %d", exp.Count, len(transferItems))
	}
	dry, err := to.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "moved", Archive: exp.Archive, DryRun: true})
	if err != nil || dry.Applied || dry.Format != "junction" || len(dry.Items) != len(transferItems) {
		t.Fatalf("dry run: %v (%v)", dry, err)
	}
	if got := all(t, to, "moved"); len(got) != 0 {
		t.Fatalf("a dry run wrote %d items", len(got))
	}
	imp, err := to.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "moved", Archive: exp.Archive, Message: "moved from etcd"})
	if err != nil || !imp.Applied {
		t.Fatalf("import: %v (%v)", imp, err)
	}
	src, dst := all(t, from, "team-a"), all(t, to, "moved")
	if len(dst) != len(src) {
		t.Fatalf("imported %d items, want %d", len(dst), len(src))
	}
	for k, s := range src {
		d := dst[k]
		if d == nil || d.Content != s.Content || d.ContentType != s.ContentType || d.Md5 != s.Md5 {
			t.Errorf("%s: imported %+v, exported %+v", k, d, s)
		}
	}
	if h, _ := to.cfg.ListConfigHistory(ctx, &pb.ListConfigHistoryRequest{Namespace: "moved", DataId: "app.yaml"}); len(h.GetVersions()) != 1 || h.Versions[0].Message != "moved from etcd" {
		t.Errorf("the import's version: %v", h)
	}
	again, err := to.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "moved", Archive: exp.Archive})
	if err != nil {
		t.Fatalf("a second import under abort, everything unchanged: %v", err)
	}
	for _, it := range again.Items {
		if it.Action != "unchanged" || it.Revision != 0 {
			t.Errorf("second import: %v", it)
		}
	}
	// REST: the zip itself, both ways.
	r := from.do(t, "GET", "/v1/namespaces/team-a/configs:export?group=billing", "")
	if r.status != 200 || r.header.Get("Content-Type") != "application/zip" {
		t.Fatalf("REST export: %d %s", r.status, r.header)
	}
	r = to.do(t, "POST", "/v1/namespaces/rest/configs:import?policy=skip", r.body, "Content-Type", "application/zip")
	if r.status != 200 || strings.Count(r.body, `"action":"create"`) != 4 {
		t.Fatalf("REST import of the billing group: %d %s", r.status, r.body)
	}
}

// zipOf builds an archive from name → content.
func zipOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		w, err := z.Create(entries[i])
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write([]byte(entries[i+1]))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A Nacos console's exports import: Nacos 2's (.metadata.yml gives the
// types) and Nacos 1's (.meta.yml, types from the extensions).
func TestImportNacosExports(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	v2 := zipOf(t,
		"DEFAULT_GROUP/app", "a: 1\n",
		"DEFAULT_GROUP/flags", `{"x": 1}`,
		"other/readme.txt", "hello",
		".metadata.yml", "metadata:\n- dataId: app\n  group: DEFAULT_GROUP\n  type: yaml\n  appName: ''\n  desc: ''\n"+
			"- dataId: flags\n  group: DEFAULT_GROUP\n  type: json\n- dataId: readme.txt\n  group: other\n  type: text\n")
	resp, err := e.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "from-nacos", Archive: v2})
	if err != nil || resp.Format != "nacos" {
		t.Fatalf("Nacos 2 export: %v (%v)", resp, err)
	}
	v1 := zipOf(t,
		"DEFAULT_GROUP/app.yaml", "a: 1\n",
		"DEFAULT_GROUP/db.properties", "k=v\n",
		".meta.yml", "DEFAULT_GROUP.app~yaml.app=orders\n")
	if resp, err = e.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "from-nacos1", Archive: v1}); err != nil || resp.Format != "nacos-v1" {
		t.Fatalf("Nacos 1 export: %v (%v)", resp, err)
	}
	for ns, want := range map[string]map[string]string{
		"from-nacos":  {"DEFAULT_GROUP/app": model.ContentYAML, "DEFAULT_GROUP/flags": model.ContentJSON, "other/readme.txt": model.ContentText},
		"from-nacos1": {"DEFAULT_GROUP/app.yaml": model.ContentYAML, "DEFAULT_GROUP/db.properties": model.ContentProperties},
	} {
		got := all(t, e, ns)
		for k, typ := range want {
			if got[k] == nil || got[k].ContentType != typ {
				t.Errorf("%s %s: %v, want type %s", ns, k, got[k], typ)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d items, want %d", ns, len(got), len(want))
		}
	}
}

// The policies: abort writes nothing when anything differs, skip leaves
// what differs, overwrite replaces it; bad archives are refused with a
// clear 4xx and write nothing.
func TestImportPoliciesAndBadArchives(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	putAll(t, e, "src")
	exp, err := e.cfg.ExportConfigs(ctx, &pb.ExportConfigsRequest{Namespace: "src"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cfg.PutConfig(ctx, &pb.PutConfigRequest{Namespace: "dst", DataId: "app.yaml", Content: "mine: true\n", ContentType: model.ContentYAML}); err != nil {
		t.Fatal(err)
	}
	_, err = e.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "dst", Archive: exp.Archive, Policy: pb.ImportPolicy_ABORT})
	if !errors.Is(pb.Error(err), model.ErrConflict) || !strings.Contains(err.Error(), "app.yaml") {
		t.Fatalf("abort with a conflict: %v", err)
	}
	if got := all(t, e, "dst"); len(got) != 1 || got["DEFAULT_GROUP/app.yaml"].Content != "mine: true\n" {
		t.Fatalf("an aborted import wrote: %v", got)
	}
	skip, err := e.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "dst", Archive: exp.Archive, Policy: pb.ImportPolicy_SKIP})
	if err != nil {
		t.Fatal(err)
	}
	if got := all(t, e, "dst"); len(got) != len(transferItems) || got["DEFAULT_GROUP/app.yaml"].Content != "mine: true\n" {
		t.Errorf("skip: %v, then %v", skip.Items, got)
	}
	if _, err := e.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "dst", Archive: exp.Archive, Policy: pb.ImportPolicy_OVERWRITE}); err != nil {
		t.Fatal(err)
	}
	if got := all(t, e, "dst"); got["DEFAULT_GROUP/app.yaml"].Content != transferItems[0].content {
		t.Errorf("overwrite left %q", got["DEFAULT_GROUP/app.yaml"].Content)
	}

	big := strings.Repeat("x", model.DefaultMaxContentSize+1)
	for _, c := range []struct {
		name    string
		archive []byte
		kind    error
		says    string
	}{
		{"not a zip", []byte("PK but not really"), model.ErrInvalidArgument, "not a zip"},
		{"a traversal", zipOf(t, "../../etc/passwd", "x"), model.ErrInvalidArgument, "not GROUP/DATA_ID"},
		{"an absolute path", zipOf(t, "/DEFAULT_GROUP/a", "x"), model.ErrInvalidArgument, "not GROUP/DATA_ID"},
		{"a deep path", zipOf(t, "g/a/b", "x"), model.ErrInvalidArgument, "not GROUP/DATA_ID"},
		{"a Windows path", zipOf(t, `g\..\a`, "x"), model.ErrInvalidArgument, "not GROUP/DATA_ID"},
		{"a dot step", zipOf(t, "g/./a", "x"), model.ErrInvalidArgument, "not GROUP/DATA_ID"},
		{"a bad name", zipOf(t, "g/a b", "x"), model.ErrInvalidArgument, "dataId"},
		{"an entry twice", zipOf(t, "g/a", "x", "g/a", "y"), model.ErrInvalidArgument, "twice"},
		{"an oversized entry", zipOf(t, "g/a", big), model.ErrTooLarge, "exceeds"},
		{"content that does not parse", zipOf(t, "g/a.json", "{nope"), model.ErrInvalidArgument, "a.json"},
		{"a manifest whose md5 is wrong", zipOf(t, "g/a", "x", "junction.json",
			`{"format":"junction-configs/1","items":[{"group":"g","dataId":"a","contentType":"text","md5":"00"}]}`), model.ErrInvalidArgument, "md5"},
		{"an entry the manifest does not list", zipOf(t, "g/a", "x", "g/b", "y", "junction.json",
			`{"format":"junction-configs/1","items":[{"group":"g","dataId":"a","contentType":"text","md5":"9dd4e461268c8034f5c8564e155c67a6"}]}`), model.ErrInvalidArgument, "g/b"},
		{"a manifest of another format", zipOf(t, "g/a", "x", "junction.json", `{"format":"v9"}`), model.ErrInvalidArgument, "manifest"},
	} {
		_, err := e.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: "bad", Archive: c.archive, Policy: pb.ImportPolicy_OVERWRITE})
		if !errors.Is(pb.Error(err), c.kind) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want %v saying %q", c.name, err, c.kind, c.says)
		}
	}
	if got := all(t, e, "bad"); len(got) != 0 {
		t.Errorf("refused imports wrote %v", got)
	}
	// Over REST: a body past the limit is 413, a bad policy 400; the
	// gateways' own namespace is neither exported nor imported.
	if r := e.do(t, "POST", "/v1/namespaces/bad/configs:import", strings.Repeat("x", 3<<20), "Content-Type", "application/zip"); r.status != 413 {
		t.Errorf("an oversized REST import: %d %s", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/namespaces/bad/configs:import?policy=merge", "x", "Content-Type", "application/zip"); r.status != 400 {
		t.Errorf("a bad policy: %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/namespaces/junction-system/configs:export", ""); r.status != 400 {
		t.Errorf("export of the system namespace: %d %s", r.status, r.body)
	}
	if _, err := e.cfg.ImportConfigs(ctx, &pb.ImportConfigsRequest{Namespace: model.SystemNamespace, Archive: zipOf(t, "acl/state", "{}")}); !errors.Is(pb.Error(err), model.ErrInvalidArgument) {
		t.Errorf("import into the system namespace: %v", err)
	}
}

package gateway_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// SetInstanceState over REST (PATCH of an instance) changes only the fields
// it names, at a revision when asked; bad values and stale revisions are
// refused naming their field, and a refused request changes nothing, its
// health check included.
func TestSetInstanceStatePatch(t *testing.T) {
	e := start(t, fastHealth)
	const inst = svcPath + "pay/instances/10.0.0.1:80"
	r := e.do(t, "POST", svcPath+"pay/instances", `{"ip":"10.0.0.1","port":80,"weight":1,"metadata":{"zone":"a"},`+
		`"check":{"kind":"tcp","target":"127.0.0.1:1","interval":"3600s"}}`)
	if r.status != 200 {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	type view struct {
		Instance struct {
			Weight   float64
			Healthy  bool
			Metadata map[string]string
			Revision string
		}
	}
	read := func(body string) view {
		var v view
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return v
	}
	first := read(r.body)

	r = e.do(t, "PATCH", inst, `{"weight":5,"metadata":{"entries":{"zone":"b"}}}`)
	got := read(r.body)
	if r.status != 200 || got.Instance.Weight != 5 || got.Instance.Metadata["zone"] != "b" || got.Instance.Healthy != first.Instance.Healthy {
		t.Fatalf("patch weight and metadata: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name, body  string
		status      int
		code, field string
	}{
		{"stale revision", `{"weight":7,"ifRevision":"` + first.Instance.Revision + `"}`, 409, "CONFLICT", "ifRevision"},
		{"stale revision removing the check", `{"removeCheck":true,"ifRevision":"` + first.Instance.Revision + `"}`, 409, "CONFLICT", "ifRevision"},
		{"negative weight", `{"weight":-1}`, 400, "INVALID_ARGUMENT", "weight"},
		{"weight too large", `{"weight":1e9}`, 400, "INVALID_ARGUMENT", "weight"},
		{"metadata key too long", `{"metadata":{"entries":{"` + strings.Repeat("k", 200) + `":"v"}}}`, 400, "INVALID_ARGUMENT", "metadata"},
		{"metadata not UTF-8", "{\"metadata\":{\"entries\":{\"k\":\"\xff\"}}}", 400, "INVALID_ARGUMENT", "body"},
		{"wrong type", `{"weight":"heavy"}`, 400, "INVALID_ARGUMENT", "body"},
	} {
		r := e.do(t, "PATCH", inst, tc.body)
		code, field := r.err()
		if r.status != tc.status || code != tc.code || field != tc.field {
			t.Errorf("%s: %d %s, want %d %s naming %q", tc.name, r.status, r.body, tc.status, tc.code, tc.field)
		}
	}
	if r := e.do(t, "PATCH", svcPath+"pay/instances/10.0.0.9:80", `{"weight":2}`); r.status != 404 {
		t.Errorf("patch of an absent instance: %d %s, want 404", r.status, r.body)
	}
	// Nothing refused changed anything: the check is still there.
	if r := e.do(t, "GET", inst+"/health", ""); r.status != 200 || !strings.Contains(r.body, `"check"`) {
		t.Fatalf("health after refused patches: %d %s", r.status, r.body)
	}
	r = e.do(t, "GET", svcPath+"pay/instances", "")
	if !strings.Contains(r.body, `"weight":5`) || !strings.Contains(r.body, `"zone":"b"`) {
		t.Fatalf("after refused patches: %s", r.body)
	}

	// A patch at the current revision applies; {} clears the metadata.
	r = e.do(t, "PATCH", inst, `{"metadata":{"entries":{}},"ifRevision":"`+got.Instance.Revision+`"}`)
	cleared := read(r.body)
	if r.status != 200 || len(cleared.Instance.Metadata) != 0 || cleared.Instance.Weight != 5 {
		t.Fatalf("patch at the current revision clearing metadata: %d %s", r.status, r.body)
	}
	if n, _ := strconv.ParseInt(cleared.Instance.Revision, 10, 64); n <= 0 {
		t.Fatalf("revision %q", cleared.Instance.Revision)
	}
}

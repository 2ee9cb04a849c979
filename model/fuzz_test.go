package model

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkRefusal fails unless err is a field error of a portable kind: what
// the REST and gRPC surfaces turn into a 400 naming the field.
func checkRefusal(t *testing.T, what string, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field == "" || (!errors.Is(err, ErrInvalidArgument) && !errors.Is(err, ErrTooLarge)) {
		t.Fatalf("%s: refused with %#v, want a field error of ErrInvalidArgument or ErrTooLarge", what, err)
	}
}

// checkName fails unless an accepted name can be a path segment in every
// store: ZooKeeper znodes and Consul's HTTP key paths treat "." and ".."
// specially, and none takes a separator, a NUL or bytes that are not UTF-8.
// Instance ids may also hold '#' (Nacos' own ids do), which drivers escape.
func checkName(t *testing.T, what, v string, maxLen int) {
	t.Helper()
	bad := "/\x00 \\?#%"
	if what == "instance id" {
		bad = "/\x00 \\?%"
	}
	if v == "" || len(v) > maxLen || v == "." || v == ".." || !utf8.ValidString(v) || strings.ContainsAny(v, bad) {
		t.Fatalf("%s %q accepted", what, v)
	}
}

// Every name, key, instance and content is either accepted and safe in
// every store, or refused with an error that names its field; nothing
// panics, and normalizing an accepted instance again changes nothing.
func FuzzValidate(f *testing.F) {
	f.Add("public", "DEFAULT_GROUP", "orders", "app.yaml", "10.0.0.1", "", "", 8080, 1.0, "zone", "a", []byte("k: v"))
	f.Add("..", ".", "a..b", "..", "::1", "..", "..", 1, 0.0, "", "", []byte{0xff})
	f.Add("a\x00b", "g/h", "s%2F", "d\\e", "host-name.example", "[::1]:80", "c", 65535, 10000.0, "k", "\xc3\x28", []byte("\x00"))
	f.Add(strings.Repeat("x", MaxNameLen+1), "é", "", "x", "999.1.1.1", "id#1@2", "DEFAULT", 0, -1.0, strings.Repeat("k", 200), "v", []byte(nil))
	f.Fuzz(func(t *testing.T, ns, group, name, dataID, ip, id, cluster string, port int, weight float64, mk, mv string, content []byte) {
		sk := ServiceKey{Namespace: ns, Group: group, Service: name}
		if err := sk.Validate(); err != nil {
			checkRefusal(t, "service key", err)
		} else {
			checkName(t, "namespace", ns, MaxNameLen)
			checkName(t, "group", group, MaxNameLen)
			checkName(t, "service", name, MaxNameLen)
		}
		ck := ConfigKey{Namespace: ns, Group: group, DataID: dataID}
		if err := ck.Validate(); err != nil {
			checkRefusal(t, "config key", err)
		} else {
			checkName(t, "dataId", dataID, MaxDataIDLen)
		}

		in := Instance{ID: id, IP: ip, Port: port, Cluster: cluster, Weight: weight, Healthy: true, Enabled: true}
		if mk != "" || mv != "" {
			in.Metadata = map[string]string{mk: mv}
		}
		if err := in.Normalize(); err != nil {
			checkRefusal(t, "instance", err)
		} else {
			checkName(t, "instance id", in.ID, MaxInstanceIDLen)
			checkName(t, "cluster", in.Cluster, MaxNameLen)
			if in.Port < 1 || in.Port > 65535 || !(in.Weight >= 0 && in.Weight <= MaxWeight) {
				t.Fatalf("instance %+v accepted", in)
			}
			for k, v := range in.Metadata {
				if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
					t.Fatalf("metadata %q=%q accepted", k, v)
				}
			}
			again := in.Clone()
			if err := again.Normalize(); err != nil || again.ID != in.ID || again.Cluster != in.Cluster ||
				!maps.Equal(again.Metadata, in.Metadata) {
				t.Fatalf("normalizing %+v again: %+v, %v", in, again, err)
			}
		}

		if err := ValidateContent(content, 64); err != nil {
			checkRefusal(t, "content", err)
		} else if len(content) > 64 || !utf8.Valid(content) {
			t.Fatalf("content %q accepted", content)
		}
		if err := ValidateContentType(mv); err != nil {
			checkRefusal(t, "content type", err)
		} else if !slices.Contains([]string{"", ContentText, ContentJSON, ContentYAML, ContentProperties, ContentXML, ContentTOML}, mv) {
			t.Fatalf("content type %q accepted", mv)
		}
	})
}

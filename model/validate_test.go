package model

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		in    string
		ok    bool
		field string
	}{
		{"orders", true, ""},
		{"a.b-c_d:e", true, ""},
		{"", false, "service"},
		{"has space", false, "service"},
		{"slash/x", false, "service"},
		{strings.Repeat("x", MaxNameLen), true, ""},
		{strings.Repeat("x", MaxNameLen+1), false, "service"},
	} {
		err := ValidateName("service", tc.in, MaxNameLen)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrInvalidArgument) || FieldOf(err) != tc.field) {
			t.Errorf("ValidateName(%q) error %v: want ErrInvalidArgument naming %q", tc.in, err, tc.field)
		}
	}
}

func TestInstanceNormalize(t *testing.T) {
	ok := Instance{IP: "10.0.0.1", Port: 8080, Weight: 1}
	if err := ok.Normalize(); err != nil {
		t.Fatal(err)
	}
	if ok.ID != "10.0.0.1:8080" || ok.Cluster != DefaultCluster {
		t.Fatalf("defaults not filled: %+v", ok)
	}
	v6 := Instance{IP: "::1", Port: 80}
	if err := v6.Normalize(); err != nil || v6.ID != "[::1]:80" {
		t.Fatalf("ipv6: %v %q", err, v6.ID)
	}
	host := Instance{IP: "svc-1.internal", Port: 80}
	if err := host.Normalize(); err != nil {
		t.Fatalf("host name rejected: %v", err)
	}
	for _, tc := range []struct {
		name  string
		in    Instance
		field string
	}{
		{"no ip", Instance{Port: 1}, "ip"},
		{"bad ip", Instance{IP: "not an ip!", Port: 1}, "ip"},
		{"port 0", Instance{IP: "1.2.3.4"}, "port"},
		{"port big", Instance{IP: "1.2.3.4", Port: 70000}, "port"},
		{"negative weight", Instance{IP: "1.2.3.4", Port: 1, Weight: -1}, "weight"},
		{"bad cluster", Instance{IP: "1.2.3.4", Port: 1, Cluster: "a b"}, "cluster"},
		{"bad id", Instance{IP: "1.2.3.4", Port: 1, ID: "a/b"}, "id"},
		{"ephemeral no session", Instance{IP: "1.2.3.4", Port: 1, Ephemeral: true}, "session"},
		{"persistent with session", Instance{IP: "1.2.3.4", Port: 1, Session: "s"}, "session"},
		{"empty metadata key", Instance{IP: "1.2.3.4", Port: 1, Metadata: map[string]string{"": "v"}}, "metadata"},
	} {
		in := tc.in
		err := in.Normalize()
		if !errors.Is(err, ErrInvalidArgument) || FieldOf(err) != tc.field {
			t.Errorf("%s: got %v, want invalid %q", tc.name, err, tc.field)
		}
	}
}

func TestValidateContent(t *testing.T) {
	if err := ValidateContent([]byte("a: 1\n"), 10); err != nil {
		t.Fatal(err)
	}
	err := ValidateContent(make([]byte, 11), 10)
	if !errors.Is(err, ErrTooLarge) || FieldOf(err) != "content" {
		t.Fatalf("oversized: %v", err)
	}
	if err := ValidateContent([]byte{0xff, 0xfe}, 10); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("binary content: %v", err)
	}
	if err := ValidateContentType("yaml"); err != nil {
		t.Fatal(err)
	}
	if err := ValidateContentType("exe"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad type: %v", err)
	}
	if err := ValidateTTL(100 * time.Millisecond); FieldOf(err) != "ttl" {
		t.Fatalf("short ttl: %v", err)
	}
}

func TestPrecondition(t *testing.T) {
	if !(Precondition{}).Holds(7) {
		t.Fatal("zero precondition must always hold")
	}
	if IfRevision(0).Holds(3) || !IfRevision(0).Holds(0) {
		t.Fatal("create-only precondition")
	}
	if IfRevision(3).Holds(4) || !IfRevision(3).Holds(3) {
		t.Fatal("update-if-revision precondition")
	}
}

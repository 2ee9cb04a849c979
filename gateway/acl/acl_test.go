package acl

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/model"
)

func mustPolicy(t *testing.T, text string) Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return p
}

// Each principal of the access-control matrix, against resources in two
// namespaces: the most specific rule decides, deny wins a tie and
// overrides a broader grant, write includes read, nothing is allowed by
// default, and a management token may do anything.
func TestDecisions(t *testing.T) {
	readA := mustPolicy(t, `
name: read-a
rules:
  - namespace: a
    service: "*"
    access: read
  - namespace: a
    config: "*"
    access: read
`)
	writeAG := mustPolicy(t, `
name: write-a-g
rules:
  - namespace: a
    group: g
    service: "*"
    access: write
  - namespace: a
    group: g
    config: "*"
    access: write
`)
	writePay := mustPolicy(t, `
name: write-pay
rules:
  - namespace: a
    service: "pay*"
    access: write
`)
	denyOverride := mustPolicy(t, `
name: deny-secrets
rules:
  - namespace: a
    config: "*"
    access: write
  - namespace: a
    group: g
    config: "secret*"
    access: deny
  - namespace: a
    group: g
    config: "secret*"
    access: write
`)
	principals := map[string]Principal{
		"none":       {AccessorID: "none"},
		"read-a":     NewPrincipal(Token{AccessorID: "r"}, []Policy{readA}),
		"write-a-g":  NewPrincipal(Token{AccessorID: "w"}, []Policy{writeAG}),
		"write-pay":  NewPrincipal(Token{AccessorID: "p"}, []Policy{writePay}),
		"deny":       NewPrincipal(Token{AccessorID: "d"}, []Policy{denyOverride}),
		"read+write": NewPrincipal(Token{AccessorID: "rw"}, []Policy{readA, writeAG}),
		"management": NewPrincipal(Token{AccessorID: "m", Management: true}, nil),
	}
	svc := func(ns, g, name string) Resource {
		return Resource{Kind: KindService, Namespace: ns, Group: g, Name: name}
	}
	cfg := func(ns, g, name string) Resource {
		return Resource{Kind: KindConfig, Namespace: ns, Group: g, Name: name}
	}
	cluster := Resource{Kind: KindCluster, Name: "members"}
	type cell struct {
		who  string
		a    Action
		r    Resource
		want bool
	}
	cells := []cell{
		{"none", ActRead, svc("a", "g", "orders"), false},
		{"none", ActWrite, cfg("a", "g", "app.yaml"), false},
		{"read-a", ActRead, svc("a", "g", "orders"), true},
		{"read-a", ActRead, cfg("a", "other", "app.yaml"), true},
		{"read-a", ActWrite, svc("a", "g", "orders"), false},
		{"read-a", ActRead, svc("b", "g", "orders"), false},
		{"read-a", ActRead, Resource{Kind: KindSession, Name: "s"}, false},
		{"write-a-g", ActWrite, svc("a", "g", "orders"), true},
		{"write-a-g", ActRead, cfg("a", "g", "app.yaml"), true},
		{"write-a-g", ActWrite, svc("a", "h", "orders"), false},
		{"write-a-g", ActWrite, svc("b", "g", "orders"), false},
		{"write-pay", ActWrite, svc("a", "DEFAULT_GROUP", "payments"), true},
		{"write-pay", ActWrite, svc("a", "DEFAULT_GROUP", "pa"), false},
		{"write-pay", ActWrite, svc("a", "DEFAULT_GROUP", "orders"), false},
		{"write-pay", ActWrite, svc("b", "DEFAULT_GROUP", "payments"), false},
		{"write-pay", ActWrite, cfg("a", "DEFAULT_GROUP", "payments"), false},
		{"deny", ActWrite, cfg("a", "g", "app.yaml"), true},
		{"deny", ActRead, cfg("a", "g", "secrets.yaml"), false}, // deny and write tie: deny
		{"deny", ActWrite, cfg("a", "h", "secrets.yaml"), true}, // the deny is for group g only
		{"read+write", ActWrite, svc("a", "g", "x"), true},      // write wins a tie with read
		{"read+write", ActWrite, svc("a", "h", "x"), false},
		{"read-a", ActRead, cluster, false},
		{"management", ActWrite, cluster, true},
		{"management", ActWrite, Resource{Kind: KindACL, Name: "tokens"}, true},
		{"management", ActWrite, svc("b", "g", "x"), true},
	}
	for _, c := range cells {
		p := principals[c.who]
		if got := p.Allowed(c.a, c.r); got != c.want {
			t.Errorf("%s may %s %s: %v, want %v", c.who, c.a, c.r, got, c.want)
		}
		err := p.Authorize(c.a, c.r)
		if (err == nil) != c.want || (err != nil && !errors.Is(err, model.ErrPermissionDenied)) {
			t.Errorf("Authorize(%s, %s, %s) = %v", c.who, c.a, c.r, err)
		}
	}
	// A denial names the token's accessor, the resource and the rule.
	err := principals["deny"].Authorize(ActRead, cfg("a", "g", "secrets.yaml"))
	for _, want := range []string{"token d", "read config:a/g/secrets.yaml", "a rule denies it", "line 7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("denial %q does not say %q", err, want)
		}
	}
}

// The most specific rule wins, dimension by dimension: namespace first,
// an exact name over any pattern, a longer literal over a shorter one.
func TestMostSpecificWins(t *testing.T) {
	p := NewPrincipal(Token{AccessorID: "x"}, []Policy{mustPolicy(t, `
name: layered
rules:
  - service: "*"
    access: write
  - namespace: prod
    service: "*"
    access: read
  - namespace: prod
    service: "pay*"
    access: write
  - namespace: prod
    service: "payroll*"
    access: deny
  - namespace: prod
    service: payroll-api
    access: read
`)})
	for name, want := range map[string]Access{"orders": Read, "payments": Write, "payroll-db": Deny, "payroll-api": Read} {
		if got, _ := decide(p.rules, Resource{Kind: KindService, Namespace: "prod", Group: "g", Name: name}); got != want {
			t.Errorf("prod service %s: %v, want %v", name, got, want)
		}
	}
	if got, _ := decide(p.rules, Resource{Kind: KindService, Namespace: "dev", Group: "g", Name: "payroll-db"}); got != Write {
		t.Errorf("dev service payroll-db: %v, want write", got)
	}
}

// A bad policy is refused naming the line of the rule at fault.
func TestBadPolicies(t *testing.T) {
	for text, want := range map[string]string{
		"name: p\nrules:\n  - service: x\n    access: admin\n":                                                        `line 3: access "admin"`,
		"name: p\nrules:\n  - namespace: a\n    access: read\n":                                                       "line 3: a rule names one of",
		"name: p\nrules:\n  - service: x\n    config: y\n    access: read\n":                                          "line 3: a rule names one kind",
		"name: p\nrules:\n  - service: x\n    access: read\n  - cluster: \"*\"\n    namespace: a\n    access: read\n": "line 5: cluster is not in a namespace",
		"name: p\nrules:\n  - session: x\n    group: g\n    access: read\n":                                           "line 3: session is not in a namespace or group",
		"name: p\nrules:\n  - service: \"a**\"\n    access: read\n":                                                   "line 3: service",
		"name: p\nrules:\n  - service: x\n    acess: read\n":                                                          "line 4",
		"name: p\nrules:\n  - service: \"a b\"\n    access: read\n":                                                   "line 3: service",
		"rules:\n  - service: x\n    access: read\n":                                                                  "name",
		"name: p\nrules: [\n": "rules",
	} {
		_, err := ParsePolicy([]byte(text))
		if err == nil || !errors.Is(err, model.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an invalid argument saying %q", text, err, want)
		}
	}
}

func TestPatternMatch(t *testing.T) {
	for _, c := range []struct {
		p    Pattern
		name string
		want bool
	}{
		{"pay", "pay", true}, {"pay", "payments", false}, {"pay*", "payments", true}, {"pay*", "pay", true},
		{"pay*", "xpay", false}, {"*", "", true}, {"*-api", "pay-api", true}, {"*-api", "pay-apix", false},
		{"a*b*c", "a-x-b-y-c", true}, {"a*b*c", "a-x-c-y-b", false}, {"a*a", "a", false},
	} {
		if got := c.p.Match(c.name); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.p, c.name, got, c.want)
		}
	}
}

// A token's secret is 256 random bits behind a recognisable prefix, kept
// only as a hash; only the right secret proves the token; expiry ends it.
func TestTokens(t *testing.T) {
	tok, secret, err := NewToken("ci", []string{"read-a"}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other, secret2, _ := NewToken("other", nil, time.Time{})
	if !WellFormed(secret) || !strings.HasPrefix(secret, SecretPrefix) || secret == secret2 || tok.AccessorID == other.AccessorID {
		t.Fatalf("secrets %q %q, accessors %s %s", secret, secret2, tok.AccessorID, other.AccessorID)
	}
	if strings.Contains(tok.SecretHash, strings.TrimPrefix(secret, SecretPrefix)) || len(tok.SecretHash) != 64 {
		t.Fatalf("the stored hash %q", tok.SecretHash)
	}
	if !tok.Proves(secret) || tok.Proves(secret2) || tok.Proves("") || tok.Proves(tok.SecretHash) {
		t.Error("a secret proves a token that is not its own, or its own does not")
	}
	for _, bad := range []string{"", "jct_", "Bearer " + secret, secret + "x", strings.TrimPrefix(secret, SecretPrefix), "jct_" + strings.Repeat("!", 43)} {
		if WellFormed(bad) {
			t.Errorf("%q is taken as well formed", bad)
		}
	}
	if tok.Expired(time.Now()) || !tok.Expired(time.Now().Add(2*time.Hour)) || other.Expired(time.Now().Add(100*365*24*time.Hour)) {
		t.Error("expiry")
	}
}

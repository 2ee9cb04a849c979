// Package acl is Junction's access control: policies made of rules over
// namespace × group × resource kind × name, tokens that hold policies, and
// the decision of whether a token may read or write a resource.
//
// A decision takes every rule of the token's policies that matches the
// resource; the most specific one wins (an exact name over a pattern, a
// longer literal over a shorter one, namespace first, then group, then
// name), and deny wins a tie. No matching rule denies: access control is
// deny by default. A write right includes the read right.
package acl

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/junctionhq/junction/model"
)

// Kind is the kind of resource a rule covers.
type Kind string

// Resource kinds. Services and configs live in a namespace and a group;
// sessions (named by their ID), the cluster's membership, snapshots and the
// ACL itself are global.
const (
	KindService  Kind = "service"
	KindConfig   Kind = "config"
	KindSession  Kind = "session"
	KindCluster  Kind = "cluster"
	KindACL      Kind = "acl"
	KindSnapshot Kind = "snapshot"
)

// Kinds lists every kind, in the order rules name them.
var Kinds = []Kind{KindService, KindConfig, KindSession, KindCluster, KindACL, KindSnapshot}

// scoped reports whether resources of the kind live in a namespace.
func (k Kind) scoped() bool { return k == KindService || k == KindConfig }

// grouped reports whether resources of the kind live in a group.
func (k Kind) grouped() bool { return k == KindService || k == KindConfig }

// Access is what a rule grants.
type Access int

// Accesses, from least to most.
const (
	// None is the absence of a grant: denied.
	None Access = iota
	// Read allows reading and watching.
	Read
	// Write allows reading and changing.
	Write
	// Deny refuses both, whatever broader rule grants them.
	Deny
)

// String returns read, write, deny or none.
func (a Access) String() string {
	return [...]string{"none", "read", "write", "deny"}[a]
}

func parseAccess(s string) (Access, bool) {
	switch s {
	case "read":
		return Read, true
	case "write":
		return Write, true
	case "deny":
		return Deny, true
	}
	return None, false
}

// Rule grants an access to the resources its patterns match.
type Rule struct {
	Kind Kind
	// Namespace, Group and Name are patterns: exact, or with * standing
	// for any run of characters ("pay*", "*"). Global kinds have no
	// namespace or group.
	Namespace, Group, Name Pattern
	Access                 Access
	// Line is where the rule starts in its policy's text (0: not parsed).
	Line int
}

// Policy is a named set of rules.
type Policy struct {
	Name        string
	Description string
	Rules       []Rule
}

// Pattern matches names: exactly, or with * standing for any run of
// characters.
type Pattern string

// Match reports whether name matches p.
func (p Pattern) Match(name string) bool {
	pat := string(p)
	star := strings.IndexByte(pat, '*')
	if star < 0 {
		return name == pat
	}
	if !strings.HasPrefix(name, pat[:star]) {
		return false
	}
	name, pat = name[star:], pat[star+1:]
	for {
		star = strings.IndexByte(pat, '*')
		if star < 0 { // the last literal ends the name
			return strings.HasSuffix(name, pat)
		}
		i := strings.Index(name, pat[:star])
		if i < 0 {
			return false
		}
		name, pat = name[i+star:], pat[star+1:]
	}
}

// specificity orders patterns: an exact one above any with a *, then more
// literal characters above fewer.
func (p Pattern) specificity() int {
	lit := len(strings.ReplaceAll(string(p), "*", ""))
	if !strings.Contains(string(p), "*") {
		return 1<<20 + lit
	}
	return lit
}

// validate checks a pattern of field.
func (p Pattern) validate(field string) error {
	if p == "" {
		return fmt.Errorf("%s: an empty pattern matches nothing (use \"*\" for any)", field)
	}
	if strings.Contains(string(p), "**") {
		return fmt.Errorf("%s: %q: use one * for any run of characters", field, p)
	}
	if lit := strings.ReplaceAll(string(p), "*", ""); lit != "" {
		if err := model.ValidateName(field, lit, model.MaxNameLen); err != nil {
			return fmt.Errorf("%s: %q is not a name pattern", field, p)
		}
	}
	return nil
}

// ruleText is a rule as written in YAML.
type ruleText struct {
	Namespace string `yaml:"namespace"`
	Group     string `yaml:"group"`
	Service   string `yaml:"service"`
	Config    string `yaml:"config"`
	Session   string `yaml:"session"`
	Cluster   string `yaml:"cluster"`
	ACL       string `yaml:"acl"`
	Snapshot  string `yaml:"snapshot"`
	Access    string `yaml:"access"`
}

// policyText is a policy as written in YAML.
type policyText struct {
	Name        string      `yaml:"name"`
	Description string      `yaml:"description"`
	Rules       []yaml.Node `yaml:"rules"`
}

// ParsePolicy reads a policy written in YAML:
//
//	name: payments-team
//	description: the payments services and their configs
//	rules:
//	  - namespace: prod
//	    group: "*"
//	    service: "pay*"
//	    access: write
//	  - namespace: prod
//	    group: DEFAULT_GROUP
//	    config: "*"
//	    access: read
//	  - cluster: "*"
//	    access: deny
//
// Each rule names one kind (service, config, session, cluster, acl or
// snapshot) with the pattern of the names it covers, and its access (read,
// write or deny). Services and configs take a namespace and a group; a
// namespace or group left out means "*". An
// invalid policy is refused with an error that names the line.
func ParsePolicy(text []byte) (Policy, error) {
	var pt policyText
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&pt); err != nil {
		return Policy{}, model.Invalid("rules", "%v", err)
	}
	p := Policy{Name: pt.Name, Description: pt.Description}
	if err := model.ValidateName("name", p.Name, model.MaxNameLen); err != nil {
		return Policy{}, err
	}
	for _, n := range pt.Rules {
		r, err := parseRule(&n)
		if err != nil {
			line := n.Line
			var le lineError
			if errors.As(err, &le) {
				line, err = le.line, le.err
			}
			return Policy{}, model.Invalid("rules", "line %d: %v", line, err)
		}
		p.Rules = append(p.Rules, r)
	}
	return p, nil
}

// lineError is an error at a line other than its rule's first.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// ruleFields are the keys a rule may have.
var ruleFields = map[string]bool{"namespace": true, "group": true, "service": true, "config": true, "session": true,
	"cluster": true, "acl": true, "snapshot": true, "access": true}

func parseRule(n *yaml.Node) (Rule, error) {
	if n.Kind != yaml.MappingNode {
		return Rule{}, errors.New("a rule is a mapping of kind, pattern and access")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !ruleFields[k.Value] {
			return Rule{}, lineError{k.Line, fmt.Errorf("unknown field %q (namespace, group, service, config, session, cluster, acl, snapshot, access)", k.Value)}
		}
	}
	var rt ruleText
	if err := n.Decode(&rt); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return Rule{}, errors.New(te.Errors[0])
		}
		return Rule{}, err
	}
	r := Rule{Line: n.Line}
	named := 0
	for k, v := range map[Kind]string{KindService: rt.Service, KindConfig: rt.Config, KindSession: rt.Session,
		KindCluster: rt.Cluster, KindACL: rt.ACL, KindSnapshot: rt.Snapshot} {
		if v != "" {
			r.Kind, r.Name = k, Pattern(v)
			named++
		}
	}
	switch {
	case named == 0:
		return Rule{}, errors.New("a rule names one of service, config, session, cluster, acl or snapshot")
	case named > 1:
		return Rule{}, errors.New("a rule names one kind of resource; write one rule per kind")
	}
	var ok bool
	if r.Access, ok = parseAccess(rt.Access); !ok {
		return Rule{}, fmt.Errorf("access %q is not read, write or deny", rt.Access)
	}
	r.Namespace, r.Group = Pattern(rt.Namespace), Pattern(rt.Group)
	switch {
	case !r.Kind.scoped() && (rt.Namespace != "" || rt.Group != ""):
		return Rule{}, fmt.Errorf("%s is not in a namespace or group: leave them out", r.Kind)
	}
	if r.Kind.scoped() && r.Namespace == "" {
		r.Namespace = "*"
	}
	if r.Kind.grouped() && r.Group == "" {
		r.Group = "*"
	}
	for field, p := range map[string]Pattern{"namespace": r.Namespace, "group": r.Group, string(r.Kind): r.Name} {
		if p == "" && (field == "namespace" || field == "group") {
			continue // a dimension the kind does not have
		}
		if err := p.validate(field); err != nil {
			return Rule{}, err
		}
	}
	return r, nil
}

// Resource is what a request touches.
type Resource struct {
	Kind      Kind
	Namespace string
	Group     string
	Name      string
}

// String returns the resource as kind:namespace/group/name.
func (r Resource) String() string {
	switch {
	case r.Kind.grouped():
		return fmt.Sprintf("%s:%s/%s/%s", r.Kind, r.Namespace, r.Group, r.Name)
	case r.Kind.scoped():
		return fmt.Sprintf("%s:%s/%s", r.Kind, r.Namespace, r.Name)
	}
	return fmt.Sprintf("%s:%s", r.Kind, r.Name)
}

// matches reports whether the rule covers the resource.
func (r Rule) matches(res Resource) bool {
	if r.Kind != res.Kind || !r.Name.Match(res.Name) {
		return false
	}
	if r.Kind.scoped() && !r.Namespace.Match(res.Namespace) {
		return false
	}
	return !r.Kind.grouped() || r.Group.Match(res.Group)
}

// moreSpecific compares two rules that match one resource: >0 when a is
// more specific than b.
func moreSpecific(a, b Rule) int {
	for _, d := range [][2]Pattern{{a.Namespace, b.Namespace}, {a.Group, b.Group}, {a.Name, b.Name}} {
		if c := d[0].specificity() - d[1].specificity(); c != 0 {
			return c
		}
	}
	return 0
}

// decide returns the access the rules give to res: that of the most
// specific matching rule, deny winning a tie; None when none matches.
func decide(rules []Rule, res Resource) (Access, *Rule) {
	var best *Rule
	for i := range rules {
		r := &rules[i]
		if !r.matches(res) {
			continue
		}
		if best == nil {
			best = r
			continue
		}
		switch c := moreSpecific(*r, *best); {
		case c > 0:
			best = r
		case c == 0 && (r.Access == Deny || (best.Access != Deny && r.Access > best.Access)):
			best = r
		}
	}
	if best == nil {
		return None, nil
	}
	return best.Access, best
}

// Request is one call another front end (the Nacos protocols) received,
// as the gateway's authorizer decides it.
type Request struct {
	// Method names the call in the audit log ("nacos/ConfigPublishRequest").
	Method string
	// Secret is the token secret the client sent; "" when it sent none.
	Secret string
	// Addr is the client's address: failed authentications are limited
	// per address.
	Addr string
	// Action and Resource are what the call does.
	Action   Action
	Resource Resource
	// AuthenticateOnly asks only whether the secret is a valid token's (a
	// login, or a list about to be filtered); Action and Resource are not
	// looked at.
	AuthenticateOnly bool
	// Quiet leaves a denial out of the audit log: a list that filters what
	// the caller may not see asks about every item.
	Quiet bool
}

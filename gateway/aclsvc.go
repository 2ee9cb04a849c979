package gateway

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// aclService serves AclService over the store's ACL record. Who may call
// what is the authorizer's business (its rules table), not this code's.
type aclService struct {
	pb.UnimplementedAclServiceServer
	s *Server
}

func tokenToPB(t acl.Token) *pb.Token {
	out := &pb.Token{AccessorId: t.AccessorID, Description: t.Description, Policies: t.Policies,
		Management: t.Management, Created: timestamppb.New(t.Created), CertIdentity: t.CertIdentity}
	if !t.Expires.IsZero() {
		out.Expires = timestamppb.New(t.Expires)
	}
	return out
}

func policyToPB(src acl.Source) *pb.Policy {
	out := &pb.Policy{Name: src.Name, Rules: src.Text}
	if p, err := acl.ParsePolicy([]byte(src.Text)); err == nil {
		out.Description = p.Description
	}
	return out
}

// state reads the ACL as the leader has it.
func (a *aclService) state(ctx context.Context) (acl.State, error) {
	st, _, _, err := a.s.acl.read(ctx, false)
	return st, err
}

// Bootstrap implements AclService.
func (a *aclService) Bootstrap(ctx context.Context, _ *pb.BootstrapRequest) (*pb.TokenSecret, error) {
	var t acl.Token
	var secret string
	err := a.s.acl.update(ctx, func(st *acl.State) error {
		var err error
		t, secret, err = st.DoBootstrap(time.Now())
		return err
	})
	if err != nil {
		return nil, err
	}
	a.s.log.Info("ACL bootstrapped: the first management token is created", "accessor", t.AccessorID)
	return &pb.TokenSecret{Token: tokenToPB(t), Secret: secret}, nil
}

// CreateToken implements AclService.
func (a *aclService) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.TokenSecret, error) {
	var expires time.Time
	if req.Ttl != nil {
		if err := req.Ttl.CheckValid(); err != nil || req.Ttl.AsDuration() <= 0 {
			return nil, model.Invalid("ttl", "must be a positive duration")
		}
		expires = time.Now().Add(req.Ttl.AsDuration()).UTC()
	}
	var t acl.Token
	var secret string
	err := a.s.acl.update(ctx, func(st *acl.State) error {
		var err error
		t, secret, err = st.AddToken(req.Description, req.Policies, expires, req.CertIdentity)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.TokenSecret{Token: tokenToPB(t), Secret: secret}, nil
}

// ListTokens implements AclService.
func (a *aclService) ListTokens(ctx context.Context, _ *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListTokensResponse{}
	for _, t := range st.Tokens {
		resp.Tokens = append(resp.Tokens, tokenToPB(t))
	}
	return resp, nil
}

func accessor(id string) error {
	if id == "" {
		return model.Invalid("accessorId", "is required")
	}
	return nil
}

// ReadToken implements AclService.
func (a *aclService) ReadToken(ctx context.Context, req *pb.ReadTokenRequest) (*pb.Token, error) {
	if err := accessor(req.AccessorId); err != nil {
		return nil, err
	}
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := st.Token(req.AccessorId)
	if !ok {
		return nil, fmt.Errorf("token %s: %w", req.AccessorId, model.ErrNotFound)
	}
	return tokenToPB(t), nil
}

// RevokeToken implements AclService.
func (a *aclService) RevokeToken(ctx context.Context, req *pb.RevokeTokenRequest) (*pb.RevokeTokenResponse, error) {
	if err := accessor(req.AccessorId); err != nil {
		return nil, err
	}
	err := a.s.acl.update(ctx, func(st *acl.State) error { return st.Revoke(req.AccessorId) })
	if err != nil {
		return nil, err
	}
	return &pb.RevokeTokenResponse{}, nil
}

// CreatePolicy implements AclService.
func (a *aclService) CreatePolicy(ctx context.Context, req *pb.CreatePolicyRequest) (*pb.Policy, error) {
	return a.putPolicy(ctx, req.Rules, "", true)
}

// UpdatePolicy implements AclService.
func (a *aclService) UpdatePolicy(ctx context.Context, req *pb.UpdatePolicyRequest) (*pb.Policy, error) {
	if req.Name == "" {
		return nil, model.Invalid("name", "is required")
	}
	return a.putPolicy(ctx, req.Rules, req.Name, false)
}

func (a *aclService) putPolicy(ctx context.Context, text, name string, create bool) (*pb.Policy, error) {
	if strings.TrimSpace(text) == "" {
		return nil, model.Invalid("rules", "is required: the policy in YAML (name, description, rules)")
	}
	var p acl.Policy
	err := a.s.acl.update(ctx, func(st *acl.State) error {
		var err error
		p, err = st.PutPolicy(text, name, create)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &pb.Policy{Name: p.Name, Description: p.Description, Rules: text}, nil
}

// ListPolicies implements AclService.
func (a *aclService) ListPolicies(ctx context.Context, _ *pb.ListPoliciesRequest) (*pb.ListPoliciesResponse, error) {
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListPoliciesResponse{}
	for _, src := range st.Policies {
		resp.Policies = append(resp.Policies, policyToPB(src))
	}
	slices.SortFunc(resp.Policies, func(x, y *pb.Policy) int { return strings.Compare(x.Name, y.Name) })
	return resp, nil
}

// ReadPolicy implements AclService.
func (a *aclService) ReadPolicy(ctx context.Context, req *pb.ReadPolicyRequest) (*pb.Policy, error) {
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	src, ok := st.Policy(req.Name)
	if !ok {
		return nil, fmt.Errorf("policy %q: %w", req.Name, model.ErrNotFound)
	}
	return policyToPB(src), nil
}

// DeletePolicy implements AclService.
func (a *aclService) DeletePolicy(ctx context.Context, req *pb.DeletePolicyRequest) (*pb.DeletePolicyResponse, error) {
	if err := a.s.acl.update(ctx, func(st *acl.State) error { return st.DeletePolicy(req.Name) }); err != nil {
		return nil, err
	}
	return &pb.DeletePolicyResponse{}, nil
}

// WhoAmI implements AclService.
func (a *aclService) WhoAmI(ctx context.Context, _ *pb.WhoAmIRequest) (*pb.Token, error) {
	c, _ := callerOf(ctx)
	if !a.s.auth.on {
		return &pb.Token{Description: "access control is off: every caller may do anything"}, nil
	}
	if c.p.Peer {
		return &pb.Token{AccessorId: acl.PeerAccessor, Description: "another gateway over this store", Management: true}, nil
	}
	st, err := a.state(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := st.Token(c.p.AccessorID)
	if !ok {
		return nil, fmt.Errorf("token %s: %w", c.p.AccessorID, model.ErrNotFound)
	}
	return tokenToPB(t), nil
}

// maxAccessChecks bounds one CheckAccess call.
const maxAccessChecks = 100

// CheckAccess implements AclService: each check is decided by the same
// function that authorizes the calls themselves.
func (a *aclService) CheckAccess(ctx context.Context, req *pb.CheckAccessRequest) (*pb.CheckAccessResponse, error) {
	if len(req.Checks) > maxAccessChecks {
		return nil, model.Invalid("checks", "%d checks; at most %d in one call", len(req.Checks), maxAccessChecks)
	}
	c, _ := callerOf(ctx)
	resp := &pb.CheckAccessResponse{Allowed: make([]bool, len(req.Checks))}
	for i, ch := range req.Checks {
		field := fmt.Sprintf("checks[%d]", i)
		kind := acl.Kind(ch.Kind)
		if !slices.Contains(acl.Kinds, kind) {
			return nil, model.Invalid(field+".kind", "%q is not one of %v", ch.Kind, acl.Kinds)
		}
		var act acl.Action
		switch ch.Action {
		case "read":
			act = acl.ActRead
		case "write":
			act = acl.ActWrite
		default:
			return nil, model.Invalid(field+".action", "%q is neither read nor write", ch.Action)
		}
		r := acl.Resource{Kind: kind, Namespace: ch.Namespace, Group: ch.Group, Name: ch.Name}
		if kind == acl.KindService || kind == acl.KindConfig {
			r.Namespace = cmp.Or(r.Namespace, model.DefaultNamespace)
			r.Group = cmp.Or(r.Group, model.DefaultGroup)
		}
		resp.Allowed[i] = !a.s.auth.on || c.p.Peer || c.p.Management || authorize(c.p, act, r) == nil
	}
	return resp, nil
}

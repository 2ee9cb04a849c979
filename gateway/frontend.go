package gateway

import (
	"context"
	"fmt"

	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// Authorize decides a call another front end over this gateway's store
// received (the Nacos protocols): the same authentication, failure limits,
// rules and audit log as the gateway's own calls. It returns nil when the
// call is allowed, and then done, which records a write's outcome in the
// audit log; otherwise an ErrUnauthenticated, ErrRateLimited or
// ErrPermissionDenied error, audited unless req.Quiet. With access control
// off every call is allowed.
func (s *Server) Authorize(ctx context.Context, req acl.Request) (done func(error), err error) {
	a := s.auth
	var auth []string
	if req.Secret != "" {
		auth = []string{"Bearer " + req.Secret}
	}
	c, err := a.authenticate(ctx, auth, nil, req.Addr)
	switch {
	case err != nil || !a.on:
	case c.p.Peer:
		// Gateways speak to each other over gRPC, never through another
		// front end: the peer secret is no client's token there.
		err = fmt.Errorf("the gateways' own secret is not a token: %w", model.ErrUnauthenticated)
	case req.AuthenticateOnly:
	case req.Resource.Kind == "":
		err = fmt.Errorf("a request names no resource: %w", model.ErrPermissionDenied)
	case req.Resource.Namespace == SystemNamespace && req.Resource.Group == aclKey.Group:
		err = fmt.Errorf("%s is the ACL's own record: %w", req.Resource, model.ErrPermissionDenied)
	default:
		err = authorize(c.p, req.Action, req.Resource)
	}
	if err != nil {
		if !req.Quiet {
			a.audit.denied(c, req.Method, req.Resource.String(), err)
		}
		return nil, err
	}
	if req.Action != acl.ActWrite {
		return func(error) {}, nil
	}
	return func(err error) { a.audit.wrote(c, req.Method, req.Resource.String(), nil, err) }, nil
}

// ProtectThreshold returns a service's protect threshold (0 to 1): below
// that share of healthy instances, queries return every instance.
func (s *Server) ProtectThreshold(ctx context.Context, svc model.ServiceKey) (float64, error) {
	rec, err := s.settings.get(ctx, svc.WithDefaults())
	return rec.ProtectThreshold, err
}

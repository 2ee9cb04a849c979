package gateway

import (
	"context"

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
	if err == nil && a.on && req.Resource != (acl.Resource{}) {
		if req.Resource.Namespace == SystemNamespace && req.Resource.Group == aclKey.Group {
			err = model.ErrPermissionDenied
		} else {
			err = authorize(c.p, req.Action, req.Resource)
		}
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

// AuthOn reports whether access control is on.
func (s *Server) AuthOn() bool { return s.auth.on }

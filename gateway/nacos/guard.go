package nacos

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// Access control is one decorator over each of the front end's two
// tables: guard over the gRPC request types (handlers), guardHTTP over
// the open API's routes (routes). Each decodes the request, names what it
// acts on, decides that with the authorizer, serves the request, records
// a write's outcome in the audit log and answers an error in the
// protocol's terms. A handler never decides its own request; the open
// entries (open, openHTTP) are the ones that read nothing of the store.
// TestNacosEveryRouteDecides sends every entry of both tables without a
// token.

// decide is the front end's one access decision: whether the request in
// ctx may take act on every one of res, or, with none, whether it
// carries a valid token at all (a list then filtered item by item with
// mayRead). done records a write's outcome. Without an authorizer (access
// control off) everything is allowed.
func (s *Server) decide(ctx context.Context, method string, act acl.Action, res []acl.Resource) (done func(error), err error) {
	if s.cfg.Authorizer == nil {
		return func(error) {}, nil
	}
	req := acl.Request{Method: "nacos/" + method, Secret: s.secretOfToken(secretOf(ctx)), Addr: hostOf(peerAddr(ctx))}
	if len(res) == 0 {
		req.AuthenticateOnly = true
		_, err := s.cfg.Authorizer.Authorize(ctx, req)
		return func(error) {}, err
	}
	dones := make([]func(error), 0, len(res))
	req.Action = act
	for _, r := range res {
		req.Resource = r
		d, err := s.cfg.Authorizer.Authorize(ctx, req)
		if err != nil {
			return nil, err
		}
		dones = append(dones, d)
	}
	return func(err error) {
		for _, d := range dones {
			d(err)
		}
	}, nil
}

// rpc is one request type of the gRPC protocol: handle answers it with
// the response's type and body.
type rpc struct {
	open   bool // needs no token: it reads nothing of the store
	handle func(ctx context.Context, s *Server, typ string, body []byte) (string, any)
}

// guard builds a request type whose body decodes into T: parse checks it
// and names what it acts on (K, for serve) and the resources act is
// decided on (none: a token is needed, and serve filters what it
// answers); serve answers an allowed request. An error from any of them is
// answered as resp with the protocol's code, and errUnregisteredConn as
// the ErrorResponse on which a client sets its connection up again.
func guard[T, K any](resp string, act acl.Action, parse func(*T) (K, []acl.Resource, error),
	serve func(context.Context, *Server, *T, K) (any, error)) rpc {
	return rpc{handle: func(ctx context.Context, s *Server, typ string, body []byte) (string, any) {
		var req T
		var what K
		var res []acl.Resource
		err := decode(body, &req)
		if err == nil {
			what, res, err = parse(&req)
		}
		var done func(error)
		if err == nil {
			done, err = s.decide(ctx, typ, act, res)
		}
		var out any
		if err == nil {
			out, err = serve(ctx, s, &req, what)
			done(err)
		}
		switch {
		case errors.Is(err, errUnregisteredConn):
			return "ErrorResponse", fail(errUnregistered, err.Error())
		case err != nil:
			return resp, failure(err)
		}
		return resp, out
	}}
}

// open builds a request type that needs no token.
func open(h func(context.Context, *Server) (string, any)) rpc {
	return rpc{open: true, handle: func(ctx context.Context, s *Server, _ string, _ []byte) (string, any) { return h(ctx, s) }}
}

// httpOp is one route of the open API.
type httpOp struct {
	open  bool // needs no token: it reads nothing of the store
	serve func(*Server, http.ResponseWriter, *http.Request)
}

// guardHTTP builds a route: parse reads the request's form and names what
// it acts on (K, for serve) and the resources act is decided on (none: a
// token is needed, and serve filters what it answers); serve answers an
// allowed request, or returns an error, answered with its status, having
// written nothing. A request held a while asks again with stillAllowed.
func guardHTTP[K any](act acl.Action, parse func(*http.Request) (K, []acl.Resource, error),
	serve func(*Server, http.ResponseWriter, *http.Request, K) error) httpOp {
	return httpOp{serve: func(s *Server, w http.ResponseWriter, r *http.Request) {
		method := r.Method + " " + r.URL.Path
		what, res, err := parse(r)
		var done func(error)
		if err == nil {
			done, err = s.decide(r.Context(), method, act, res)
		}
		if err == nil {
			again := func() error {
				_, err := s.decide(r.Context(), method, act, res)
				return err
			}
			err = serve(s, w, r.WithContext(context.WithValue(r.Context(), againKey{}, again)), what)
			done(err)
		}
		if err != nil {
			httpFail(w, err)
		}
	}}
}

// openHTTP builds a route that needs no token.
func openHTTP(h func(*Server, http.ResponseWriter, *http.Request)) httpOp {
	return httpOp{open: true, serve: h}
}

// againKey carries a guarded HTTP request's decision, to be made again.
type againKey struct{}

// stillAllowed decides a guarded request again: one held for a while (a
// long poll) must not answer what its token lost the right to meanwhile.
func stillAllowed(ctx context.Context) error {
	again, found := ctx.Value(againKey{}).(func() error)
	if !found { // fails closed: only a guarded request is decided again
		return fmt.Errorf("a request no route decided: %w", model.ErrPermissionDenied)
	}
	return again()
}

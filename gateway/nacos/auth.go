package nacos

import (
	"context"
	"net/http"
	"strings"

	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// Authorizer decides each request the front end serves: the gateway's
// one authorizer (gateway.Server), with its rules and its audit log.
type Authorizer interface {
	Authorize(ctx context.Context, req acl.Request) (done func(error), err error)
}

// secretKey carries a request's token secret: the accessToken a Nacos
// client got from /nacos/v1/auth/login and sends with every request.
type secretKey struct{}

func withSecret(ctx context.Context, secret string) context.Context {
	return context.WithValue(ctx, secretKey{}, secret)
}

func secretOf(ctx context.Context) string {
	s, _ := ctx.Value(secretKey{}).(string)
	return s
}

func serviceRes(k model.ServiceKey) acl.Resource {
	return acl.Resource{Kind: acl.KindService, Namespace: k.Namespace, Group: k.Group, Name: k.Service}
}

func configRes(k model.ConfigKey) acl.Resource {
	return acl.Resource{Kind: acl.KindConfig, Namespace: k.Namespace, Group: k.Group, Name: k.DataID}
}

// allow decides one request; done records a write's outcome. Without an
// authorizer (access control off) everything is allowed.
func (s *Server) allow(ctx context.Context, method string, act acl.Action, res acl.Resource) (done func(error), err error) {
	if s.cfg.Authorizer == nil {
		return func(error) {}, nil
	}
	return s.cfg.Authorizer.Authorize(ctx, acl.Request{Method: "nacos/" + method, Secret: secretOf(ctx), Addr: hostOf(peerAddr(ctx)), Action: act, Resource: res})
}

// authenticated checks that the request carries a valid token (when
// access control is on), before a list is filtered item by item.
func (s *Server) authenticated(ctx context.Context, method string) error {
	if s.cfg.Authorizer == nil {
		return nil
	}
	_, err := s.cfg.Authorizer.Authorize(ctx, acl.Request{Method: "nacos/" + method, Secret: secretOf(ctx), Addr: hostOf(peerAddr(ctx)), AuthenticateOnly: true})
	return err
}

// mayRead filters a list: a denial is no audit event there.
func (s *Server) mayRead(ctx context.Context, res acl.Resource) bool {
	if s.cfg.Authorizer == nil {
		return true
	}
	_, err := s.cfg.Authorizer.Authorize(ctx, acl.Request{Method: "nacos/list", Secret: secretOf(ctx), Addr: hostOf(peerAddr(ctx)),
		Action: acl.ActRead, Resource: res, Quiet: true})
	return err == nil
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

// httpSecret is an HTTP request's token: accessToken (query or form, as
// Nacos clients send it), or authorization: Bearer.
func httpSecret(r *http.Request) string {
	if t := r.Form.Get("accessToken"); t != "" {
		return t
	}
	if t := r.Header.Get("accessToken"); t != "" {
		return t
	}
	if v, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
		return v
	}
	return ""
}

// httpLogin is /nacos/v1/auth/login: the password is a Junction token's
// secret, and the accessToken the client then sends is that secret (the
// username is not checked: tokens have no users). Without access control
// any login succeeds.
func (s *Server) httpLogin(w http.ResponseWriter, r *http.Request) {
	secret := r.Form.Get("password")
	if err := s.authenticated(withSecret(r.Context(), secret), "login"); err != nil {
		httpFail(w, err)
		return
	}
	writeJSON(w, map[string]any{"accessToken": secret, "tokenTtl": 18000, "globalAdmin": false, "username": r.Form.Get("username")})
}

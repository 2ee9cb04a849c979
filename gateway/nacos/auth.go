package nacos

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// Authorizer decides each request the front end serves: the gateway's
// one authorizer (gateway.Server), with its rules and its audit log.
type Authorizer interface {
	Authorize(ctx context.Context, req acl.Request) (done func(error), err error)
}

// Logins hands out login handles in place of token secrets (the
// gateway's: gateway.Server is one).
type Logins interface {
	// LoginHandle returns a handle standing for secret until ttl passes.
	LoginHandle(secret string, ttl time.Duration) (string, error)
	// OpenLogin returns the secret a handle stands for, false when it is
	// not one or has expired; a plain secret is returned as it is.
	OpenLogin(handle string) (string, bool)
}

// secretOfToken is the token secret an accessToken stands for: a login
// handle opened (Config.Logins), or the secret itself; "" (no token) for a
// handle that is forged or expired.
func (s *Server) secretOfToken(token string) string {
	if s.cfg.Logins == nil || token == "" {
		return token
	}
	secret, ok := s.cfg.Logins.OpenLogin(token)
	if !ok {
		return ""
	}
	return secret
}

// secretKey carries a request's token: the accessToken a Nacos client got
// from /nacos/v1/auth/login and sends with every request, as it was sent
// (a login handle, or a secret). It is opened (secretOfToken) at each
// decision, so that a handle kept by a connection for its listens,
// subscriptions and instances stops working when it expires.
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

// mayRead filters a list: a denial is no audit event there.
func (s *Server) mayRead(ctx context.Context, res acl.Resource) bool {
	if s.cfg.Authorizer == nil {
		return true
	}
	_, err := s.cfg.Authorizer.Authorize(ctx, acl.Request{Method: "nacos/list", Secret: s.secretOfToken(secretOf(ctx)), Addr: hostOf(peerAddr(ctx)),
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
// secret (the username is not checked: tokens have no users), and the
// accessToken the client then sends is a handle standing for it for
// LoginTTL (Config.Logins), which clients log in again before. Without
// access control any login succeeds.
func (s *Server) httpLogin(w http.ResponseWriter, r *http.Request) {
	secret := r.Form.Get("password")
	if _, err := s.decide(withSecret(r.Context(), secret), "login", acl.ActRead, nil); err != nil {
		httpFail(w, err)
		return
	}
	token := secret
	if s.cfg.Logins != nil {
		h, err := s.cfg.Logins.LoginHandle(secret, s.cfg.LoginTTL)
		if err != nil {
			httpFail(w, err)
			return
		}
		token = h
	}
	writeJSON(w, map[string]any{"accessToken": token, "tokenTtl": int64(s.cfg.LoginTTL / time.Second), "globalAdmin": false,
		"username": r.Form.Get("username")})
}

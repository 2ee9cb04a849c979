package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
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

// The gray releases, for a front end over the same store: they live in
// the gateways' namespace, so that one published through either is served
// by both.

// PublishGray publishes content as key's gray release to the clients rule
// chooses, as PutConfig with a gray rule does: checked against the
// content type, over the release as it is now (model.ErrNotFound when the
// item does not exist). The author and message are ctx's
// (backends.WithChange). The caller authorizes it.
func (s *Server) PublishGray(ctx context.Context, key model.ConfigKey, content []byte, contentType string, rule model.GrayRule) error {
	ch := backends.ChangeFrom(ctx)
	_, err := (&configService{s: s}).publishGray(ctx, key, &pb.PutConfigRequest{Content: string(content), ContentType: contentType,
		Gray: pb.NewGrayRule(rule), Message: ch.Message}, cmp.Or(ch.Author, authorOf(ctx)))
	return err
}

// GrayConfig returns what client gets of release (nil: the item does not
// exist): key's gray release when it has one that chooses the client,
// and true; otherwise release.
func (s *Server) GrayConfig(key model.ConfigKey, release *model.Config, client model.GrayClient) (*model.Config, bool) {
	return s.grays.effective(key, release, client)
}

// GrayChanged returns a channel closed at the next change of key's gray
// release (published, promoted, aborted or ended with the item), as this
// gateway learns of it, and release, to call once no longer waiting on it.
// Take it before reading the item, so that no change slips in between.
func (s *Server) GrayChanged(key model.ConfigKey) (<-chan struct{}, func()) {
	ch, _, release := s.grays.changed(key)
	return ch, release
}

// ConfigDeleted ends the gray release of key, which was just deleted: a
// gray applies to the item it was published over, not to one created
// again.
func (s *Server) ConfigDeleted(ctx context.Context, key model.ConfigKey) {
	if s.grays.get(key) == nil {
		return
	}
	// The delete has happened: a client gone meanwhile does not keep
	// the gray release alive.
	if err := (&configService{s: s}).endGray(context.WithoutCancel(ctx), key, ""); err != nil && !errors.Is(err, model.ErrNotFound) {
		s.log.Warn("the deleted item's gray release stays (it applies to this item no more)", "config", key.String(), "err", err)
	}
}

// purposeLogin seals the login handles of a front end (LoginHandle).
const purposeLogin = "junction login handle"

// LoginHandle returns a handle that stands for the token secret until ttl
// has passed: what a front end answers a login with, so that the secret
// itself never travels in its clients' requests (Nacos clients put it in
// query strings, which proxies log). It is sealed under the store's peer
// secret, so every gateway over the store opens it, and is worth no more
// than the secret: a revoked token's handle opens to a secret that is
// refused. With access control off there is nothing to seal, and it is
// the secret itself.
func (s *Server) LoginHandle(secret string, ttl time.Duration) (string, error) {
	if !s.cfg.Auth {
		return secret, nil
	}
	h, ok := s.acl.seal(purposeLogin, strconv.FormatInt(time.Now().Add(ttl).UnixMilli(), 10)+" "+secret)
	if !ok {
		return "", fmt.Errorf("the store's peer secret is not known yet: %w", model.ErrUnavailable)
	}
	return h, nil
}

// OpenLogin returns the secret a handle from LoginHandle stands for, and
// whether it is one that has not expired. A value that is no handle (a
// secret sent as it is) is returned as it is, with true.
func (s *Server) OpenLogin(handle string) (string, bool) {
	if !s.cfg.Auth || !strings.HasPrefix(handle, sealedPrefix) {
		return handle, true
	}
	plain, ok := s.acl.open(purposeLogin, handle)
	if !ok {
		return "", false
	}
	at, secret, _ := strings.Cut(plain, " ")
	ms, err := strconv.ParseInt(at, 10, 64)
	if err != nil || time.Now().UnixMilli() >= ms {
		return "", false
	}
	return secret, true
}

var _ backends.Watches = (*Server)(nil)

// Watch opens a watch through the gateway's hub, for a front end over the
// same store: every watch of one service or config item, the API's and
// the front end's, shares one store watch.
func (s *Server) Watch(ctx context.Context, req backends.WatchRequest) (backends.Watcher, error) {
	var key topicKey
	switch {
	case req.Service != nil:
		key.svc = req.Service.WithDefaults()
	case req.Config != nil:
		key.cfg = req.Config.WithDefaults()
	default:
		return nil, model.Invalid("watch", "names neither a service nor a config item")
	}
	if req.FromRevision < 0 {
		return nil, model.Invalid("revision", "must not be negative")
	}
	return s.hub.subscribe(key, req.FromRevision), nil
}

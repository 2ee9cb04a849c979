package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// callerHeader carries, on a call one gateway forwards to another, the
// accessor ID of the caller the first gateway authorized: for the audit
// log only. It is believed only from a peer (a call proven with the
// store's peer secret); from anyone else it is ignored.
const callerHeader = "junction-caller"

// rule says what a method needs.
type rule struct {
	// open: no token needed (Bootstrap).
	open bool
	// any: any valid token (status, whoami; lists, which are filtered).
	any bool
	// management: the management token only, whatever policies grant: the
	// operation hands over the whole store, the ACL's record with it (a new
	// member receives the replica).
	management bool
	act        acl.Action
	// res names the resource the request touches.
	res func(req any) acl.Resource
	// in and out translate what the caller holds to what the store holds,
	// and back, for a caller under access control (session handles).
	in  func(a *authorizer, c caller, req any) error
	out func(a *authorizer, c caller, resp any) error
	// lost, for a filtered stream, says whether an ACL change took away
	// something the stream shows: before is the principal it was opened
	// with, now the token's current one. A PERMISSION_DENIED ends it.
	lost func(before, now acl.Principal, req any) error
}

type serviceRequest interface {
	GetNamespace() string
	GetGroup() string
	GetService() string
}

type configRequest interface {
	GetNamespace() string
	GetGroup() string
	GetDataId() string
}

func serviceResource(req any) acl.Resource {
	r := req.(serviceRequest)
	k := model.ServiceKey{Namespace: r.GetNamespace(), Group: r.GetGroup(), Service: r.GetService()}.WithDefaults()
	return acl.Resource{Kind: acl.KindService, Namespace: k.Namespace, Group: k.Group, Name: k.Service}
}

func configResource(req any) acl.Resource {
	r := req.(configRequest)
	k := model.ConfigKey{Namespace: r.GetNamespace(), Group: r.GetGroup(), DataID: r.GetDataId()}.WithDefaults()
	return acl.Resource{Kind: acl.KindConfig, Namespace: k.Namespace, Group: k.Group, Name: k.DataID}
}

// namespaceResource names every config of a request's namespace, for the
// audit of a call that writes many (an import).
func namespaceResource(req any) acl.Resource {
	r := req.(interface{ GetNamespace() string })
	return acl.Resource{Kind: acl.KindConfig, Namespace: cmp.Or(r.GetNamespace(), model.DefaultNamespace), Group: "*", Name: "*"}
}

func global(kind acl.Kind, name string) func(any) acl.Resource {
	return func(any) acl.Resource { return acl.Resource{Kind: kind, Name: name} }
}

func sessionResource(req any) acl.Resource {
	r := req.(interface{ GetId() string })
	return acl.Resource{Kind: acl.KindSession, Name: r.GetId()}
}

func read(res func(any) acl.Resource) rule { return rule{act: acl.ActRead, res: res} }
func managementOnly(r rule) rule           { r.management = true; return r }

func withIn(r rule, in func(*authorizer, caller, any) error) rule   { r.in = in; return r }
func withOut(r rule, out func(*authorizer, caller, any) error) rule { r.out = out; return r }

// Sessions under access control are handed out as handles: the session's
// ID sealed with the accessor ID of the token that created it. A session
// is kept alive, ended or given instances only by a call with a handle of
// the caller's own (the management token may also name a session by its
// ID), so that a token cannot end another's session, and its ephemeral
// instances, though instance listings show the session's ID.

// sealSession turns the session in a response into the caller's handle.
func sealSession(a *authorizer, c caller, resp any) error {
	s := resp.(*pb.Session)
	h, ok := a.acl.seal(purposeSession, c.p.AccessorID+"\x00"+s.Id)
	if !ok {
		return fmt.Errorf("the ACL is not loaded yet: %w", model.ErrUnavailable)
	}
	s.Id = h
	return nil
}

// openSession returns the session ID behind a handle of c's.
func (a *authorizer) openSession(c caller, field, handle string) (string, error) {
	if plain, ok := a.acl.open(purposeSession, handle); ok {
		if accessor, id, _ := strings.Cut(plain, "\x00"); accessor == c.p.AccessorID {
			return id, nil
		}
	} else if c.p.Management && !strings.HasPrefix(handle, sealedPrefix) {
		return handle, nil
	}
	// Another token's session, or none: alike to the caller.
	return "", &model.FieldError{Field: field, Reason: "unknown or expired session (or not this token's)", Kind: model.ErrSessionExpired}
}

func openSessionID(a *authorizer, c caller, req any) error {
	var id *string
	switch r := req.(type) {
	case *pb.KeepAliveSessionRequest:
		id = &r.Id
	case *pb.DeleteSessionRequest:
		id = &r.Id
	default:
		return nil
	}
	raw, err := a.openSession(c, "id", *id)
	if err == nil {
		*id = raw
	}
	return err
}

func openInstanceSession(a *authorizer, c caller, req any) error {
	r := req.(*pb.RegisterInstanceRequest)
	if r.Session == "" {
		return nil
	}
	raw, err := a.openSession(c, "session", r.Session)
	if err == nil {
		r.Session = raw
	}
	return err
}
func write(res func(any) acl.Resource) rule { return rule{act: acl.ActWrite, res: res} }

// rules is the one table of what every RPC needs. A method missing from it
// is refused to everyone (TestEveryMethodHasARule).
var rules = map[string]rule{
	pb.RegistryService_CreateSession_FullMethodName:      withOut(write(global(acl.KindSession, "")), sealSession),
	pb.RegistryService_KeepAliveSession_FullMethodName:   withIn(withOut(write(sessionResource), sealSession), openSessionID),
	pb.RegistryService_DeleteSession_FullMethodName:      withIn(write(sessionResource), openSessionID),
	pb.RegistryService_RegisterInstance_FullMethodName:   withIn(write(serviceResource), openInstanceSession),
	pb.RegistryService_DeregisterInstance_FullMethodName: write(serviceResource),
	pb.RegistryService_ListInstances_FullMethodName:      read(serviceResource),
	pb.RegistryService_WatchInstances_FullMethodName:     read(serviceResource),
	pb.RegistryService_ListServices_FullMethodName:       {any: true},                     // filtered by visible, as it pages
	pb.RegistryService_WatchServices_FullMethodName:      {any: true, lost: lostServices}, // filtered by visible
	pb.RegistryService_SetInstanceState_FullMethodName:   write(serviceResource),
	pb.RegistryService_GetInstanceHealth_FullMethodName:  read(serviceResource),
	pb.RegistryService_GetServiceSettings_FullMethodName: read(serviceResource),
	pb.RegistryService_PutServiceSettings_FullMethodName: write(serviceResource),

	pb.ConfigService_GetConfig_FullMethodName:           read(configResource),
	pb.ConfigService_PutConfig_FullMethodName:           write(configResource),
	pb.ConfigService_DeleteConfig_FullMethodName:        write(configResource),
	pb.ConfigService_ListConfigs_FullMethodName:         {any: true}, // filtered by visible
	pb.ConfigService_WatchConfig_FullMethodName:         read(configResource),
	pb.ConfigService_ListConfigHistory_FullMethodName:   read(configResource),
	pb.ConfigService_GetConfigVersion_FullMethodName:    read(configResource),
	pb.ConfigService_DiffConfig_FullMethodName:          read(configResource),
	pb.ConfigService_RollbackConfig_FullMethodName:      write(configResource),
	pb.ConfigService_ExportConfigs_FullMethodName:       {any: true}, // filtered by visible
	pb.ConfigService_ListConfigListeners_FullMethodName: read(configResource),
	pb.ConfigService_GetGrayConfig_FullMethodName:       read(configResource),
	pb.ConfigService_PromoteGrayConfig_FullMethodName:   write(configResource),
	pb.ConfigService_AbortGrayConfig_FullMethodName:     write(configResource),
	// An import writes many items: each is checked with mayWrite before
	// anything is written.
	pb.ConfigService_ImportConfigs_FullMethodName: {any: true, act: acl.ActWrite, res: namespaceResource},

	pb.StatusService_GetStatus_FullMethodName: {any: true},

	pb.ClusterService_ListMembers_FullMethodName:  read(global(acl.KindCluster, "members")),
	pb.ClusterService_AddMember_FullMethodName:    managementOnly(write(global(acl.KindCluster, "members"))),
	pb.ClusterService_RemoveMember_FullMethodName: managementOnly(write(global(acl.KindCluster, "members"))),

	pb.AclService_Bootstrap_FullMethodName:    {open: true, act: acl.ActWrite},
	pb.AclService_CreateToken_FullMethodName:  write(global(acl.KindACL, "tokens")),
	pb.AclService_ListTokens_FullMethodName:   read(global(acl.KindACL, "tokens")),
	pb.AclService_ReadToken_FullMethodName:    read(global(acl.KindACL, "tokens")),
	pb.AclService_RevokeToken_FullMethodName:  write(global(acl.KindACL, "tokens")),
	pb.AclService_CreatePolicy_FullMethodName: write(global(acl.KindACL, "policies")),
	pb.AclService_UpdatePolicy_FullMethodName: write(global(acl.KindACL, "policies")),
	pb.AclService_ListPolicies_FullMethodName: read(global(acl.KindACL, "policies")),
	pb.AclService_ReadPolicy_FullMethodName:   read(global(acl.KindACL, "policies")),
	pb.AclService_DeletePolicy_FullMethodName: write(global(acl.KindACL, "policies")),
	pb.AclService_WhoAmI_FullMethodName:       {any: true},
	pb.AclService_CheckAccess_FullMethodName:  {any: true}, // the caller's own rights

	// Any valid token opens the stream; each watch on it is admitted (see
	// admit) by its single-stream method's rule above.
	pb.WatchService_Watch_FullMethodName: {any: true},
}

// lostServices ends a WatchServices stream whose token no longer may read
// a service it showed.
func lostServices(before, now acl.Principal, req any) error {
	for _, ref := range req.(*pb.WatchServicesRequest).Services {
		group, svc, _ := strings.Cut(ref, "/")
		k := model.ServiceKey{Namespace: req.(*pb.WatchServicesRequest).Namespace, Group: group, Service: svc}.WithDefaults()
		r := acl.Resource{Kind: acl.KindService, Namespace: k.Namespace, Group: k.Group, Name: k.Service}
		if (before.Management || mayRead(before, r)) && !now.Management {
			if err := authorize(now, acl.ActRead, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// visible returns what a list answered in ctx may show: what the caller
// may read, never the ACL's own record, and nothing of the rest. The lists
// apply it as they page (ListServices reads on until its page is full of
// visible services), so that neither a page nor its page token says
// anything of what is hidden.
func visible(ctx context.Context) func(acl.Resource) bool {
	c, ok := callerOf(ctx)
	return func(r acl.Resource) bool {
		if r.Namespace == SystemNamespace && r.Group == aclKey.Group {
			return false
		}
		return !ok || !c.on || c.p.Management || mayRead(c.p, r)
	}
}

func mayRead(p acl.Principal, r acl.Resource) bool { return authorize(p, acl.ActRead, r) == nil }

// mayWrite decides one item of a call that writes many (an import), whose
// rule lets any caller in: the caller in ctx must be allowed to write r.
func mayWrite(ctx context.Context, r acl.Resource) error {
	if r.Namespace == SystemNamespace {
		return fmt.Errorf("%s is in the gateways' own namespace: %w", r, model.ErrPermissionDenied)
	}
	c, ok := callerOf(ctx)
	if !ok || !c.on || c.p.Management {
		return nil
	}
	return authorize(c.p, acl.ActWrite, r)
}

// authorize decides: the principal's policies, except that the gateways'
// own namespace is the management's alone (no pattern reaches it).
func authorize(p acl.Principal, a acl.Action, r acl.Resource) error {
	if r.Namespace == SystemNamespace && !p.Management {
		return fmt.Errorf("token %s may not %s %s: the %s namespace is the gateways' own: %w",
			p.AccessorID, a, r, SystemNamespace, model.ErrPermissionDenied)
	}
	return p.Authorize(a, r)
}

// caller is who a request comes from, as the authorizer found.
type caller struct {
	on      bool // access control is on: p decides
	p       acl.Principal
	secret  string   // to check the principal again while its watch runs
	certIDs []string // or the client certificate it came by
	addr    string   // the client's address
}

type callerKey struct{}

// callerOf returns the caller the authorizer put in ctx.
func callerOf(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok
}

// authorizer is the one enforcement point: every gRPC call (and so every
// REST call, which reaches the gRPC services in process) and the HTTP
// endpoints outside gRPC (snapshots, metrics) pass through it. It
// authenticates the caller's token, authorizes the request by the rules
// table, filters lists, ends watches whose right is gone, and writes the
// audit log.
type authorizer struct {
	on    bool
	acl   *aclCache
	audit *auditLog
	fails *failLimiter
	m     *metrics
	held  holds
	tls   *TLS // nil: no TLS, no client certificates
}

// clientAddr is the address a call comes from: its peer's, or for a REST
// call served in process, the one the HTTP server saw (x-forwarded-for,
// whose last entry the REST gateway sets from the connection itself).
func clientAddr(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if p.Addr.Network() != "bufconn" {
		return hostOf(p.Addr.String())
	}
	if xff := metadata.ValueFromIncomingContext(ctx, "x-forwarded-for"); len(xff) > 0 {
		parts := strings.Split(xff[len(xff)-1], ",")
		return hostOf(strings.TrimSpace(parts[len(parts)-1]))
	}
	return "in-process"
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// bearer returns the secret of an authorization value "Bearer SECRET".
func bearer(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", fmt.Errorf("no token: send one as \"authorization: Bearer SECRET\": %w", model.ErrUnauthenticated)
	case 1:
	default:
		return "", fmt.Errorf("more than one authorization value: %w", model.ErrUnauthenticated)
	}
	scheme, secret, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || secret == "" {
		return "", fmt.Errorf("the authorization value is not \"Bearer SECRET\": %w", model.ErrUnauthenticated)
	}
	return strings.TrimSpace(secret), nil
}

// authenticate finds who the call comes from. With access control off
// everyone is the anonymous caller.
func (a *authorizer) authenticate(ctx context.Context, auth, certIDs []string, addr string) (caller, error) {
	c := caller{addr: addr, on: a.on}
	if !a.on {
		return c, nil
	}
	var err error
	if len(auth) == 0 && len(certIDs) > 0 {
		// No token, a verified client certificate: the token bound to it.
		v, _ := a.acl.current()
		c.p, err = v.AuthenticateCert(certIDs, time.Now())
		c.certIDs = certIDs
	} else {
		var secret string
		if secret, err = bearer(auth); err == nil {
			c.secret = secret
			c.p, err = a.principal(ctx, secret, addr)
		}
	}
	if err != nil {
		a.m.authFailures.Inc()
		if !a.fails.failed(addr) {
			return c, fmt.Errorf("too many failed authentications from %s: wait a moment: %w", addr, model.ErrRateLimited)
		}
		return c, err
	}
	return c, nil
}

// principal authenticates secret against the cache, and once against the
// store itself when the cache does not know it (a token just created at
// another gateway) — unless addr has failed too often: its guesses cost
// the store nothing.
func (a *authorizer) principal(ctx context.Context, secret, addr string) (acl.Principal, error) {
	v, _ := a.acl.current()
	p, err := v.Authenticate(secret, time.Now())
	if err != nil && acl.WellFormed(secret) && a.fails.ok(addr) {
		p, err = a.acl.refresh(ctx).Authenticate(secret, time.Now())
	}
	return p, err
}

// check authenticates and authorizes a call of method with req (nil for a
// stream, whose request comes later).
func (a *authorizer) check(ctx context.Context, method string, req any) (caller, error) {
	auth := metadata.ValueFromIncomingContext(ctx, "authorization")
	c, err := a.authenticate(ctx, auth, certIdentitiesOf(ctx, a.tls), clientAddr(ctx))
	r, known := rules[method]
	if !a.on {
		if req != nil {
			err = a.authorizeReq(c, r, req)
		}
		return c, err
	}
	switch {
	case !known:
		return c, fmt.Errorf("%s is not served: %w", method, model.ErrPermissionDenied)
	case r.open && errors.Is(err, model.ErrUnauthenticated) && len(auth) == 0:
		return c, nil // bootstrap without a token
	case err != nil:
		return c, err
	}
	if c.p.Peer {
		if v := metadata.ValueFromIncomingContext(ctx, callerHeader); len(v) == 1 {
			c.p.AccessorID = v[0] // whom the peer serves, for the audit log
		}
	}
	if req != nil {
		err = a.authorizeReq(c, r, req)
	}
	return c, err
}

func (a *authorizer) authorizeReq(c caller, r rule, req any) error {
	if r.res == nil {
		return nil
	}
	res := r.res(req)
	if res.Namespace == SystemNamespace && res.Group == aclKey.Group && !c.p.Peer {
		// Token hashes and the peer secret: reached through AclService
		// only, by anyone, with access control on or off.
		return fmt.Errorf("%s is the ACL's own record: use the ACL API: %w", res, model.ErrPermissionDenied)
	}
	if !a.on || r.open || r.any {
		return nil
	}
	return authorizeRule(c.p, r, res)
}

// authorizeRule decides r for p on res.
func authorizeRule(p acl.Principal, r rule, res acl.Resource) error {
	if r.management && !p.Management {
		return fmt.Errorf("token %s may not %s %s: only the management token may (it reaches the whole store, the ACL with it): %w",
			p.AccessorID, r.act, res, model.ErrPermissionDenied)
	}
	return authorize(p, r.act, res)
}

func resourceOf(method string, req any) string {
	if r, ok := rules[method]; ok && r.res != nil && req != nil {
		return r.res(req).String()
	}
	return ""
}

// unary guards unary calls.
func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	r := rules[info.FullMethod]
	if !a.on {
		return a.unaryOff(ctx, r, req, info, handler)
	}
	c, err := a.check(ctx, info.FullMethod, req)
	if err != nil {
		a.audit.denied(c, info.FullMethod, resourceOf(info.FullMethod, req), err)
		return nil, err
	}
	translate := a.on && !c.p.Peer
	if translate && r.in != nil {
		if err := r.in(a, c, req); err != nil {
			a.audit.wrote(c, info.FullMethod, resourceOf(info.FullMethod, req), nil, err)
			return nil, err
		}
	}
	resp, err := handler(context.WithValue(ctx, callerKey{}, c), req)
	if err == nil && translate && r.out != nil {
		err = r.out(a, c, resp)
	}
	if r.act == acl.ActWrite && !c.p.Peer {
		a.audit.wrote(c, info.FullMethod, resourceOf(info.FullMethod, req), resp, err)
	}
	return resp, err
}

// unaryOff serves a call with access control off: only the ACL's own
// record is guarded, and writes are audited with the client's address.
func (a *authorizer) unaryOff(ctx context.Context, r rule, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.authorizeReq(caller{}, r, req); err != nil && !a.fromPeer(ctx) {
		c := a.anonymous(ctx)
		a.audit.denied(c, info.FullMethod, resourceOf(info.FullMethod, req), err)
		return nil, err
	}
	resp, err := handler(ctx, req)
	if r.act == acl.ActWrite && a.audit.w != nil {
		a.audit.wrote(a.anonymous(ctx), info.FullMethod, resourceOf(info.FullMethod, req), resp, err)
	}
	return resp, err
}

// fromPeer reports whether the call carries the store's peer secret: a
// follower's gateway forwarding its own ACL reads and writes.
func (a *authorizer) fromPeer(ctx context.Context) bool {
	secret, err := bearer(metadata.ValueFromIncomingContext(ctx, "authorization"))
	if err != nil {
		return false
	}
	v, _ := a.acl.current()
	p, err := v.Authenticate(secret, time.Now())
	return err == nil && p.Peer
}

// anonymous is the caller of a call with access control off.
func (a *authorizer) anonymous(ctx context.Context) caller {
	return caller{addr: clientAddr(ctx)}
}

// stream guards streaming calls (the watches): authorized when the request
// arrives, and ended with the denial once the token or its right is gone.
func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, err := a.check(ss.Context(), info.FullMethod, nil)
	if err != nil {
		a.audit.denied(c, info.FullMethod, "", err)
		return err
	}
	ctx, cancel := context.WithCancelCause(context.WithValue(ss.Context(), callerKey{}, c))
	defer cancel(nil)
	ctx = context.WithValue(ctx, streamGuardKey{}, &streamGuard{a: a, c: c})
	gs := &guardedStream{ServerStream: ss, ctx: ctx, a: a, c: c, method: info.FullMethod, cancel: cancel}
	err = handler(srv, gs)
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && ss.Context().Err() == nil {
		return cause // cut: the right is gone
	}
	return err
}

// guardedStream authorizes a stream's request as it is received, then
// watches the ACL for the loss of the right.
type guardedStream struct {
	grpc.ServerStream
	ctx    context.Context
	cancel context.CancelCauseFunc
	a      *authorizer
	c      caller
	method string
	once   bool
}

func (g *guardedStream) Context() context.Context { return g.ctx }

func (g *guardedStream) RecvMsg(m any) error {
	if err := g.ServerStream.RecvMsg(m); err != nil || g.once {
		return err
	}
	g.once = true
	r := rules[g.method]
	if err := g.a.authorizeReq(g.c, r, m); err != nil {
		g.a.audit.denied(g.c, g.method, resourceOf(g.method, m), err)
		return err
	}
	if g.a.on {
		g.a.hold(g.ctx, &held{c: g.c, method: g.method, r: r, req: m, cancel: g.cancel})
	}
	return nil
}

// streamGuardKey holds, in a guarded stream's context, what admit needs.
type streamGuardKey struct{}

type streamGuard struct {
	a *authorizer
	c caller
}

// admit authorizes one watch of a multiplexed stream (WatchService.Watch)
// as the single-stream call it stands for: method is that call's
// (WatchInstances, WatchConfig) and req its request. The rule and the
// guard are that method's, and the audit names it, so a watch is allowed
// and cut exactly as its own stream would be; a denial ends that watch
// alone. The
// watch's context ends with the denial as its cause once the right is
// gone; end must be called when the watch ends. Without the authorizer
// in ctx (a stream that did not pass through it) every watch is refused.
func admit(ctx context.Context, method string, req any) (watch context.Context, end context.CancelFunc, err error) {
	g, ok := ctx.Value(streamGuardKey{}).(*streamGuard)
	r, known := rules[method]
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("%s: the stream was not authorized: %w", method, model.ErrPermissionDenied)
	case !known:
		return nil, nil, fmt.Errorf("%s is not served: %w", method, model.ErrPermissionDenied)
	}
	c := g.c
	if g.a.on && !c.p.Peer && (c.secret != "" || len(c.certIDs) > 0) {
		// The stream may have opened long ago: the watch is judged by the
		// token's rights as they are now, as its own stream would be.
		p, err := g.a.current(c)
		if err != nil {
			g.a.audit.denied(c, method, resourceOf(method, req), err)
			return nil, nil, err
		}
		c.p = p
	}
	if err := g.a.authorizeReq(c, r, req); err != nil {
		g.a.audit.denied(c, method, resourceOf(method, req), err)
		return nil, nil, err
	}
	watch, cancel := context.WithCancelCause(ctx)
	if g.a.on {
		// The principal is the stream's, perhaps from long ago: hold
		// checks the watch again against the ACL as it is now, and a
		// watch refused by that ends before it starts.
		g.a.hold(watch, &held{c: c, method: method, r: r, req: req, cancel: cancel})
		if watch.Err() != nil {
			err := context.Cause(watch)
			cancel(nil)
			return nil, nil, err
		}
	}
	return watch, func() { cancel(nil) }, nil
}

// held is a running watch the authorizer may end: when the ACL changes or
// its token expires, it is checked again, and ended with the denial once
// its token is revoked or expired or its policies lose the right.
type held struct {
	c      caller
	method string
	r      rule
	req    any
	cancel context.CancelCauseFunc
	expiry *time.Timer // nil: the token does not expire
}

// holds are the running watches of one gateway. One goroutine (watchACL)
// checks them all again at each change of the ACL: a watch costs no
// goroutine of its own.
type holds struct {
	mu  sync.Mutex
	set map[*held]struct{}
}

// hold keeps the watch under guard until ctx ends.
func (a *authorizer) hold(ctx context.Context, h *held) {
	if h.c.p.Peer || (h.c.secret == "" && len(h.c.certIDs) == 0) {
		return
	}
	if !h.c.p.Expires.IsZero() {
		h.expiry = time.AfterFunc(time.Until(h.c.p.Expires), func() { a.recheck(h) })
	}
	a.held.mu.Lock()
	if a.held.set == nil {
		a.held.set = map[*held]struct{}{}
	}
	a.held.set[h] = struct{}{}
	a.held.mu.Unlock()
	context.AfterFunc(ctx, func() {
		a.held.mu.Lock()
		delete(a.held.set, h)
		a.held.mu.Unlock()
		if h.expiry != nil {
			h.expiry.Stop()
		}
	})
	// The token was authenticated when the stream opened, perhaps well
	// before its request came: check it again now that the watch is held,
	// against the ACL as it is.
	a.recheck(h)
}

// current authenticates c's token (or certificate) again, against the ACL
// as it is now.
func (a *authorizer) current(c caller) (acl.Principal, error) {
	v, _ := a.acl.current()
	if c.secret != "" {
		return v.Authenticate(c.secret, time.Now())
	}
	return v.AuthenticateCert(c.certIDs, time.Now())
}

// recheck ends h's watch if its right is gone.
func (a *authorizer) recheck(h *held) {
	p, err := a.current(h.c)
	if err == nil {
		err = a.authorizeReq(caller{p: p}, h.r, h.req)
	}
	if err == nil && h.r.lost != nil && !h.c.p.Peer {
		err = h.r.lost(h.c.p, p, h.req)
	}
	if err != nil {
		a.audit.denied(h.c, h.method, resourceOf(h.method, h.req), err)
		h.cancel(pb.Status(err).Err())
	}
}

// watchACL checks every running watch again at each change of the ACL,
// until ctx ends.
func (a *authorizer) watchACL(ctx context.Context) {
	_, changed := a.acl.current()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		// The next change's channel first: a change during the pass
		// below starts another pass.
		_, changed = a.acl.current()
		a.held.mu.Lock()
		all := make([]*held, 0, len(a.held.set))
		for h := range a.held.set {
			all = append(all, h)
		}
		a.held.mu.Unlock()
		for _, h := range all {
			a.recheck(h)
		}
	}
}

// guardHTTP guards an endpoint served outside gRPC (snapshots, metrics)
// with the same authentication, authorization and audit as r says.
func (a *authorizer) guardHTTP(r rule, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		res := r.res(nil)
		c, err := a.authenticate(req.Context(), req.Header.Values("Authorization"), requestIdentities(req, a.tls), hostOf(req.RemoteAddr))
		if err == nil && a.on {
			err = authorizeRule(c.p, r, res)
		}
		method := req.Method + " " + req.URL.Path
		if err != nil {
			a.audit.denied(c, method, res.String(), err)
			writeError(w, err)
			return
		}
		if r.act != acl.ActWrite {
			next(w, req.WithContext(context.WithValue(req.Context(), callerKey{}, c)))
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next(sw, req.WithContext(context.WithValue(req.Context(), callerKey{}, c)))
		var werr error
		if sw.status >= 300 {
			werr = fmt.Errorf("HTTP %d: %w", sw.status, httpKind(sw.status))
		}
		a.audit.wrote(c, method, res.String(), nil, werr)
	}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// httpKind is the portable error of an HTTP status, for the audit log.
func httpKind(code int) error {
	switch code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return model.ErrInvalidArgument
	case http.StatusNotImplemented:
		return model.ErrUnsupported
	case http.StatusServiceUnavailable:
		return model.ErrUnavailable
	}
	return errors.New("failed")
}

// failLimiter rate-limits failed authentications per client address:
// past a burst, a client's failures are answered RATE_LIMITED, and its
// unknown tokens are no longer looked up in the store. A valid token from
// the same address (behind one NAT or proxy) still works.
type failLimiter struct {
	rate  rate.Limit
	burst int

	mu  sync.Mutex
	per map[string]*rate.Limiter
}

// newFailLimiter allows perSecond failures a second per address, after a
// burst of four times as many.
func newFailLimiter(perSecond float64) *failLimiter {
	return &failLimiter{rate: rate.Limit(perSecond), burst: max(1, int(4*perSecond)), per: map[string]*rate.Limiter{}}
}

func (f *failLimiter) ok(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, found := f.per[addr]
	return !found || l.Tokens() >= 1
}

// failed counts a failure and reports whether it was within the limit.
func (f *failLimiter) failed(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, found := f.per[addr]
	if !found {
		if len(f.per) > 10000 { // forget the ones that have recovered
			for a, l := range f.per {
				if l.Tokens() >= float64(f.burst) {
					delete(f.per, a)
				}
			}
		}
		l = rate.NewLimiter(f.rate, f.burst)
		f.per[addr] = l
	}
	return l.Allow()
}

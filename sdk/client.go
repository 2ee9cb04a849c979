package sdk

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
)

// maxBackoff caps every retry delay of the client: reconnects, re-watches.
const maxBackoff = time.Second

// Client talks to one or more Junction gateways. It is safe for concurrent
// use; create one per process and Close it on shutdown.
type Client struct {
	opts options
	conn *grpc.ClientConn
	reg  pb.RegistryServiceClient
	cfg  pb.ConfigServiceClient
	log  *slog.Logger

	keeper registrar
	mux    muxer

	stop chan struct{}
	wg   sync.WaitGroup
}

type options struct {
	addrs      []string
	tls        *tls.Config
	namespace  string
	group      string
	sessionTTL time.Duration
	onState    func(State, error)
	logger     *slog.Logger
	cacheDir   string
	rpcTimeout time.Duration
	dial       []grpc.DialOption
	token      string
	clientID   string
	labels     map[string]string
}

// Option configures a Client.
type Option func(*options)

// WithAddrs sets the gateway addresses (HOST:PORT). The client uses the
// first that answers and fails over to the others. Default 127.0.0.1:7480.
func WithAddrs(addrs ...string) Option { return func(o *options) { o.addrs = addrs } }

// WithToken sends token, the secret of a Junction ACL token, with every
// call ("authorization: Bearer TOKEN"). Without TLS (WithTLS) it travels
// in clear: use that only over loopback or a network you trust.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// BearerToken returns the per-call credentials that send token as
// "authorization: Bearer TOKEN", for a connection made without New
// (grpc.WithPerRPCCredentials). They are allowed without TLS.
func BearerToken(token string) credentials.PerRPCCredentials { return bearerToken(token) }

type bearerToken string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// token may go over a plaintext loopback connection.
func (bearerToken) RequireTransportSecurity() bool { return false }

// WithClientID names the client to the gateways: ListConfigListeners (and
// `junction config listeners`) shows it for each of its watches. The
// default is HOSTNAME-PID-RANDOM.
func WithClientID(id string) Option { return func(o *options) { o.clientID = id } }

// WithLabels gives the client labels (at most 16; names and values of
// letters, digits and _ . : / -), shown with its watches by
// ListConfigListeners.
func WithLabels(labels map[string]string) Option {
	return func(o *options) { o.labels = maps.Clone(labels) }
}

// identity names the client on every call, in the headers the gateways
// read (junction-client-id, junction-client-labels).
type identity map[string]string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (i identity) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return i, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: the
// client's name is no secret.
func (identity) RequireTransportSecurity() bool { return false }

func newIdentity(o options) (identity, error) {
	if o.clientID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		o.clientID = fmt.Sprintf("%s-%d-%s", cmp.Or(host, "client"), os.Getpid(), hex.EncodeToString(b))
	}
	if err := model.ValidateClientID(o.clientID); err != nil {
		return nil, err
	}
	id := identity{model.ClientIDHeader: o.clientID}
	if len(o.labels) > model.MaxLabels {
		return nil, model.Invalid("labels", "%d labels; at most %d are allowed", len(o.labels), model.MaxLabels)
	}
	for k, v := range o.labels {
		if err := model.ValidateLabel(k, v); err != nil {
			return nil, err
		}
	}
	if len(o.labels) > 0 {
		id[model.ClientLabelsHeader] = model.FormatLabels(o.labels)
	}
	return id, nil
}

// WithTLS connects with TLS.
func WithTLS(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithNamespace sets the namespace used when a call names none (default public).
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithGroup sets the group used when a call names none (default DEFAULT_GROUP).
func WithGroup(g string) Option { return func(o *options) { o.group = g } }

// WithSessionTTL sets the TTL of the session that keeps this client's
// ephemeral instances alive (default 10s). The client heartbeats every TTL/3.
func WithSessionTTL(d time.Duration) Option { return func(o *options) { o.sessionTTL = d } }

// WithStateListener receives the registration state whenever it changes.
func WithStateListener(f func(State, error)) Option { return func(o *options) { o.onState = f } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithConfigCache keeps a copy of every configuration item read or watched
// in dir, so that Config.Get can answer from it, marked stale, while no
// gateway is reachable — an application can start with its last known
// configuration.
func WithConfigCache(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithRPCTimeout bounds each call the client makes on its own (heartbeats,
// re-registration); default TTL/3.
func WithRPCTimeout(d time.Duration) Option { return func(o *options) { o.rpcTimeout = d } }

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// New returns a client. It does not wait for a gateway: calls fail with
// model.ErrUnavailable while none answers, and registrations are kept and
// made as soon as one does.
func New(ctx context.Context, opts ...Option) (*Client, error) {
	o := options{addrs: []string{"127.0.0.1:7480"}, namespace: model.DefaultNamespace, group: model.DefaultGroup,
		sessionTTL: 10 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.addrs) == 0 {
		return nil, model.Invalid("addrs", "at least one gateway address is needed")
	}
	if err := model.ValidateTTL(o.sessionTTL); err != nil {
		return nil, err
	}
	if err := model.ValidateName("namespace", o.namespace, model.MaxNameLen); err != nil {
		return nil, err
	}
	if err := model.ValidateName("group", o.group, model.MaxNameLen); err != nil {
		return nil, err
	}
	if o.rpcTimeout <= 0 {
		o.rpcTimeout = o.sessionTTL / 3
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	// A static resolver with every address; pick_first fails over in order.
	r := manual.NewBuilderWithScheme("junction-gateways")
	addrs := make([]resolver.Address, len(o.addrs))
	for i, a := range o.addrs {
		addrs[i] = resolver.Address{Addr: a}
	}
	r.InitialState(resolver.State{Addresses: addrs})
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	dial := append([]grpc.DialOption{grpc.WithResolvers(r), grpc.WithTransportCredentials(creds),
		// Notice a dead path (a partition, a gateway that vanished) within seconds.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 5 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}),
		// Reconnect promptly after an outage: a registration's TTL is short.
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 2 * time.Second,
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff}}),
	}, o.dial...)
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearerToken(o.token)))
	}
	id, err := newIdentity(o)
	if err != nil {
		return nil, err
	}
	dial = append(dial, grpc.WithPerRPCCredentials(id))
	conn, err := grpc.NewClient(r.Scheme()+":///gateways", dial...)
	if err != nil {
		return nil, fmt.Errorf("junction sdk: %w", err)
	}
	c := &Client{opts: o, conn: conn, reg: pb.NewRegistryServiceClient(conn), cfg: pb.NewConfigServiceClient(conn),
		log: o.logger.With("component", "junction-sdk"), stop: make(chan struct{})}
	c.keeper.init(c)
	c.mux.c = c
	return c, nil
}

// Close deregisters the client's ephemeral instances (by closing its
// session), stops its subscriptions and closes the connection.
func (c *Client) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	c.wg.Wait()
	c.mux.close()
	err := c.keeper.close()
	return errors.Join(err, c.conn.Close())
}

// CallOption picks the namespace or group of one call.
type CallOption func(*callOptions)

type callOptions struct {
	namespace, group string
	ifRevision       *int64
	contentType      string
	stale            bool
	persistent       bool
	disabled         bool
	protectEmpty     bool
	noValidate       bool
	message          string
	check            *health.Check
}

// Message keeps msg, the reason for a change, with the version a
// PublishConfig, DeleteConfig or RollbackConfig makes.
func Message(msg string) CallOption { return func(o *callOptions) { o.message = msg } }

// NoValidate makes PublishConfig store content that does not parse as its
// content type (json, yaml, toml, xml, properties); by default the server
// refuses it with model.ErrInvalidArgument naming the line and column.
func NoValidate() CallOption { return func(o *callOptions) { o.noValidate = true } }

// InNamespace makes a call use namespace ns instead of the client's.
func InNamespace(ns string) CallOption { return func(o *callOptions) { o.namespace = ns } }

// InGroup makes a call use group g instead of the client's.
func InGroup(g string) CallOption { return func(o *callOptions) { o.group = g } }

// IfRevision makes a config write or delete conditional: it succeeds only if
// the item is at revision rev (0: only if it does not exist), and fails with
// model.ErrConflict otherwise.
func IfRevision(rev int64) CallOption { return func(o *callOptions) { o.ifRevision = &rev } }

// ContentType sets a published config's type (text, json, yaml, properties,
// xml, toml); by default the item keeps its type.
func ContentType(t string) CallOption { return func(o *callOptions) { o.contentType = t } }

// Stale allows a read to be served by a lagging replica.
func Stale() CallOption { return func(o *callOptions) { o.stale = true } }

// Persistent registers an instance that stays until deregistered, instead of
// one held alive by the client's session.
func Persistent() CallOption { return func(o *callOptions) { o.persistent = true } }

// Disabled registers an instance in maintenance: listed, but not enabled,
// so it is not selected and not resolved until registered again without it.
func Disabled() CallOption { return func(o *callOptions) { o.disabled = true } }

// WithHealthCheck gives a registered instance an active health check that
// the gateways run (HTTP, TCP or grpc.health.v1); its verdict becomes the
// instance's healthy flag. An empty Target defaults to the instance's
// address (http://IP:PORT/health for HTTP); zero durations and thresholds
// take the defaults of package health. The check stays with the instance
// until it is deregistered.
func WithHealthCheck(c health.Check) CallOption {
	return func(o *callOptions) { o.check = &c }
}

// ProtectEmpty makes a subscription keep its last non-empty instance list
// when the service suddenly has none (push-empty protection): consumers keep
// calling the last known providers rather than none. Snapshots say when
// protection is in force.
func ProtectEmpty() CallOption { return func(o *callOptions) { o.protectEmpty = true } }

func (c *Client) call(opts []CallOption) callOptions {
	o := callOptions{namespace: c.opts.namespace, group: c.opts.group}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func (o callOptions) service(name string) model.ServiceKey {
	return model.ServiceKey{Namespace: o.namespace, Group: o.group, Service: name}
}

// wireErr converts a gRPC error into a portable one (errors.Is works with
// the sentinels of package model); a gateway that cannot be reached is
// model.ErrUnavailable.
func wireErr(err error) error {
	if err == nil {
		return nil
	}
	err = pb.Error(err)
	if model.Kind(err) == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
	}
	return err
}

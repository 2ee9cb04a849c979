package consul

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/heldsessions"
	"github.com/junctionhq/junction/model"
)

func init() { backends.RegisterURL("consul", ConfigFromURL, Open) }

// Config configures the driver.
type Config struct {
	// Address is the agent's HTTP(S) API, HOST:PORT.
	Address    string
	Scheme     string // http or https
	Token      string
	Datacenter string
	// Prefix is the KV folder of configuration items.
	Prefix string
	// CheckTTL is the TTL of the Consul check that keeps an ephemeral
	// instance alive; the driver passes it every CheckTTL/3 while the
	// instance's Junction session lives. If the gateway dies, Consul marks
	// the instance critical after CheckTTL and deregisters it
	// DeregisterAfter later.
	CheckTTL        time.Duration
	DeregisterAfter time.Duration
	// WatchWait is how long one blocking query waits for a change.
	WatchWait time.Duration
	// WatchRate bounds the blocking queries per second of one watch.
	WatchRate int
	// ExpiryInterval is how often Junction session deadlines are checked.
	ExpiryInterval time.Duration
	TLS            api.TLSConfig
	// Logger receives the driver's logs; nil: slog.Default().
	Logger *slog.Logger
}

// ConfigFromURL reads a consul:// (or consul+https://) URL.
func ConfigFromURL(u *url.URL) (Config, error) {
	cfg := Config{Address: u.Host, Scheme: "http", Prefix: "junction", CheckTTL: 15 * time.Second,
		DeregisterAfter: time.Minute, WatchWait: 10 * time.Second, WatchRate: 100, ExpiryInterval: 100 * time.Millisecond}
	if u.Scheme == "consul+https" {
		cfg.Scheme = "https"
	}
	if cfg.Address == "" {
		return cfg, model.Invalid("backend", "consul:// needs the agent's HOST:PORT")
	}
	if u.User != nil {
		cfg.Token = u.User.Username()
	}
	for k, vs := range u.Query() {
		v := vs[0]
		switch k {
		case "token":
			cfg.Token = v
		case "dc", "datacenter":
			cfg.Datacenter = v
		case "prefix":
			v = strings.Trim(v, "/")
			if v == "" {
				return cfg, model.Invalid("prefix", "must name a KV folder")
			}
			cfg.Prefix = v
		case "tls":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, model.Invalid("tls", "%q is not true or false", v)
			}
			if b {
				cfg.Scheme = "https"
			}
		case "ca":
			cfg.TLS.CAFile, cfg.Scheme = v, "https"
		case "cert":
			cfg.TLS.CertFile, cfg.Scheme = v, "https"
		case "key":
			cfg.TLS.KeyFile, cfg.Scheme = v, "https"
		case "server-name":
			cfg.TLS.Address = v
		case "insecure-skip-verify":
			cfg.TLS.InsecureSkipVerify, _ = strconv.ParseBool(v)
		case "watch-wait":
			d, err := time.ParseDuration(v)
			if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
				return cfg, model.Invalid(k, "%q is not a duration between 100ms and 10m (Consul's limit)", v)
			}
			cfg.WatchWait = d
		case "watch-rate":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return cfg, model.Invalid(k, "%q is not a positive number of queries per second", v)
			}
			cfg.WatchRate = n
		case "check-ttl", "deregister-after":
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				return cfg, model.Invalid(k, "%q is not a duration of at least 1s", v)
			}
			if k == "check-ttl" {
				cfg.CheckTTL = d
			} else {
				if d < time.Minute {
					return cfg, model.Invalid(k, "Consul deregisters critical services after at least 1m, not %v", d)
				}
				cfg.DeregisterAfter = d
			}
		default:
			return cfg, model.Invalid(k, "unknown consul:// option; known: token, dc, prefix, tls, ca, cert, key, server-name, insecure-skip-verify, check-ttl, deregister-after, watch-wait, watch-rate")
		}
	}
	return cfg, nil
}

// Driver is the Consul backend.
type Driver struct {
	cfg       Config
	client    *api.Client
	transport *http.Transport
	node      string // the agent's node name
	log       *slog.Logger

	// writeID and writes number this driver's registrations (see
	// metaWrite).
	writeID    string
	writes     atomic.Uint64
	writeLocks [64]sync.Mutex

	// sessions: Junction sessions and the Consul services (ID → name) each
	// owns.
	sessions *heldsessions.Table[string, string]

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ backends.Backend = (*Driver)(nil)

// Open connects to a Consul agent and checks that its cluster has a leader.
func Open(ctx context.Context, cfg Config) (*Driver, error) {
	ac := api.DefaultNonPooledConfig()
	ac.Address, ac.Scheme, ac.Token, ac.Datacenter, ac.TLSConfig = cfg.Address, cfg.Scheme, cfg.Token, cfg.Datacenter, cfg.TLS
	// Blocking queries hold connections open; keep enough idle ones for
	// watches and writes side by side.
	ac.Transport.MaxIdleConnsPerHost = 64
	ac.Transport.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, model.Invalid("backend", "consul client: %v", err)
	}
	d := &Driver{cfg: cfg, client: client, transport: ac.Transport, log: cmp.Or(cfg.Logger, slog.Default()).With("backend", "consul"),
		sessions: heldsessions.New[string, string](), stop: make(chan struct{}), writeID: heldsessions.NewID()[:12]}
	for {
		leader, err := d.leader(ctx)
		if err == nil && leader != "" {
			break
		}
		if err == nil {
			err = errors.New("no leader elected")
		}
		select {
		case <-ctx.Done():
			if !errors.Is(err, model.ErrUnavailable) {
				err = fmt.Errorf("%w: %w", err, model.ErrUnavailable)
			}
			return nil, fmt.Errorf("consul at %s: %w", cfg.Address, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	self, err := client.Agent().Self()
	if err != nil {
		return nil, fmt.Errorf("consul agent: %w", mapErr(err))
	}
	if c, ok := self["Config"]; ok {
		d.node, _ = c["NodeName"].(string)
	}
	d.wg.Add(2)
	go d.expireSessions()
	go d.passChecks()
	return d, nil
}

func (d *Driver) leader(ctx context.Context) (string, error) {
	r, err := d.client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	return r, mapErr(err)
}

// mapErr turns a Consul client error into a portable one.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var se api.StatusError
	if errors.As(err, &se) {
		switch {
		case se.Code == http.StatusNotFound:
			return fmt.Errorf("%w: %v", model.ErrNotFound, err)
		case se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized:
			return fmt.Errorf("%w: %v", model.ErrPermissionDenied, err)
		case se.Code == http.StatusRequestEntityTooLarge:
			return fmt.Errorf("%w: %v", model.ErrTooLarge, err)
		case se.Code == http.StatusBadRequest:
			return fmt.Errorf("%w: %v", model.ErrInvalidArgument, err)
		case se.Code == http.StatusTooManyRequests || se.Code >= 500:
			return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
		}
		return fmt.Errorf("consul: %w", err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// Status codes outside StatusError (the client formats most of them
	// as "Unexpected response code: N (body)").
	msg := err.Error()
	switch {
	case strings.Contains(msg, "response code: 404"):
		return fmt.Errorf("%w: %v", model.ErrNotFound, err)
	case strings.Contains(msg, "response code: 403"), strings.Contains(msg, "Permission denied"), strings.Contains(msg, "ACL not found"):
		return fmt.Errorf("%w: %v", model.ErrPermissionDenied, err)
	case strings.Contains(msg, "response code: 413"), strings.Contains(msg, "too large"):
		return fmt.Errorf("%w: %v", model.ErrTooLarge, err)
	case strings.Contains(msg, "response code: 400"):
		return fmt.Errorf("%w: %v", model.ErrInvalidArgument, err)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || strings.Contains(msg, "response code: 5") || strings.Contains(msg, "response code: 429") {
		return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
	}
	return fmt.Errorf("consul: %w", err)
}

// CreateSession implements backends.Sessions. Sessions are held by the
// driver with their exact TTLs (Consul's own sessions have a 10s floor).
func (d *Driver) CreateSession(ctx context.Context, ttl time.Duration) (model.Session, int64, error) {
	if err := model.ValidateTTL(ttl); err != nil {
		return model.Session{}, 0, err
	}
	st, err := d.Status(ctx)
	if err != nil {
		return model.Session{}, 0, err
	}
	id := heldsessions.NewID()
	d.sessions.Add(id, ttl)
	return model.Session{ID: id, TTL: ttl}, st.Revision, nil
}

// KeepAlive implements backends.Sessions.
func (d *Driver) KeepAlive(_ context.Context, id string) (model.Session, error) {
	return d.sessions.KeepAliveSession(id)
}

// CloseSession implements backends.Sessions.
func (d *Driver) CloseSession(ctx context.Context, id string) (int64, error) {
	return d.sessions.CloseSession(id, func(services map[string]string) (int64, error) {
		return d.removeSession(ctx, services)
	})
}

// removeSession deregisters a session's instances and returns the revision
// after.
func (d *Driver) removeSession(ctx context.Context, services map[string]string) (int64, error) {
	var rev int64
	var errs []error
	for sid, name := range services {
		r, err := d.deregisterLocal(ctx, name, sid)
		if err != nil && !errors.Is(err, model.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		rev = max(rev, r)
	}
	return rev, errors.Join(errs...)
}

func (d *Driver) expireSessions() {
	defer d.wg.Done()
	d.sessions.Run(d.stop, d.cfg.ExpiryInterval, d.log, func(_ string, services map[string]string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := d.removeSession(ctx, services)
		return err
	})
}

// passChecks keeps the session checks of live sessions' instances passing.
func (d *Driver) passChecks() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.CheckTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.sessions.Each(func(_ string, _ time.Duration, services map[string]string) {
			for sid := range services {
				if err := d.client.Agent().UpdateTTL(sessionCheckPrefix+sid, "junction session alive", api.HealthPassing); err != nil {
					d.log.Debug("passing session check", "service", sid, "err", err)
				}
			}
		})
	}
}

// Status implements backends.Backend. The revision is Consul's catalog
// index.
func (d *Driver) Status(ctx context.Context) (backends.Status, error) {
	leader, err := d.leader(ctx)
	if err != nil {
		return backends.Status{}, err
	}
	if leader == "" {
		return backends.Status{}, fmt.Errorf("consul: no leader: %w", model.ErrUnavailable)
	}
	_, meta, err := d.client.Catalog().Services((&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return backends.Status{}, mapErr(err)
	}
	return backends.Status{Backend: "consul", Revision: int64(meta.LastIndex), Leader: leader, Capabilities: d.Capabilities()}, nil
}

// Capabilities reports what the driver provides on Consul.
func (d *Driver) Capabilities() backends.Capabilities {
	return backends.Capabilities{NativeSessions: false, NativeRevisions: true, ResumableWatch: false,
		LinearizableReads: true, NativeCAS: true, ConfigHistory: true, AtomicHistory: true}
}

// Close stops the driver. Its sessions' instances stay registered until
// Consul's backstop removes them (see the package documentation).
func (d *Driver) Close() error {
	select {
	case <-d.stop:
		return nil
	default:
	}
	close(d.stop)
	d.wg.Wait()
	d.transport.CloseIdleConnections()
	return nil
}

func (d *Driver) readOpts(ctx context.Context, o backends.ReadOptions) (*api.QueryOptions, model.Consistency) {
	q := &api.QueryOptions{RequireConsistent: !o.Stale, AllowStale: o.Stale}
	if o.Stale {
		return q.WithContext(ctx), model.Stale
	}
	return q.WithContext(ctx), model.Linearizable
}

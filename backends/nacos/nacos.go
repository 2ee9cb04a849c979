package nacos

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/heldsessions"
	"github.com/junctionhq/junction/model"
)

func init() { backends.RegisterURL("nacos", ConfigFromURL, Open) }

// Config configures the driver.
type Config struct {
	// Servers are the Nacos servers' HTTP addresses, HOST:PORT; the gRPC
	// port is the HTTP port + 1000, as every Nacos client assumes.
	Servers []string
	// PublicNamespace is the Nacos namespace id Junction's "public"
	// namespace maps onto ("": Nacos' own public namespace). Every other
	// Junction namespace maps onto the Nacos namespace of the same id,
	// but for Junction's own.
	PublicNamespace string
	// SystemNamespace is the Nacos namespace id Junction's own namespace
	// (junction-system: the driver's history, the gateways' records) maps
	// onto ("": junction-system). A server that keeps that id for itself
	// (Junction's own Nacos front end) needs another.
	SystemNamespace string
	Username        string
	Password        string
	AccessKey       string
	SecretKey       string
	// Timeout bounds one request to the server.
	Timeout time.Duration
	// WriteTimeout bounds how long a write waits for the server to serve
	// it (Nacos servers make writes visible asynchronously).
	WriteTimeout time.Duration
	// ExpiryInterval is how often Junction session deadlines are checked.
	ExpiryInterval time.Duration
	// WatchHistory is how many recent changes the driver keeps for watches
	// that resume from a revision it issued.
	WatchHistory int
	// LogLevel is the SDK's log level (debug, info, warn, error); its logs
	// go to CacheDir.
	LogLevel string
	// CAS is how a conditional update is made: CASNative (Nacos' casMd5,
	// atomic) or CASCheck (compare, then publish: not atomic, for servers
	// that drop casMd5, as Polaris 1.18.1 does). Create-only writes are
	// atomic either way.
	CAS string
	// ViewIdle is how long the driver keeps its view of a service or
	// config item (a subscription to the server, and the revisions it gave
	// out) that nothing watched, wrote or read through it: without a bound
	// a gateway would hold one for everything it ever touched. A revision
	// read from a dropped view no longer passes as current, so a
	// conditional write from a read that old conflicts, and is safe.
	// 0: 10 minutes.
	ViewIdle time.Duration
	// CacheDir holds the SDK's logs and caches; empty: a temporary
	// directory removed on Close.
	CacheDir string
	// Logger receives the driver's logs; nil: slog.Default().
	Logger *slog.Logger
}

// ConfigFromURL reads a nacos:// URL:
//
//	nacos://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...][?namespace=ID&access-key=K&secret-key=S&timeout=5s...]
func ConfigFromURL(u *url.URL) (Config, error) {
	cfg := Config{Timeout: 5 * time.Second, WriteTimeout: 10 * time.Second, ExpiryInterval: 100 * time.Millisecond,
		WatchHistory: 1000, LogLevel: "warn", CAS: CASNative}
	for _, s := range strings.Split(u.Host, ",") {
		if s == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return cfg, model.Invalid("backend", "nacos server %q is not HOST:PORT (the HTTP port, usually 8848)", s)
		}
		cfg.Servers = append(cfg.Servers, s)
	}
	if len(cfg.Servers) == 0 {
		return cfg, model.Invalid("backend", "nacos:// needs the server's HOST:PORT (the HTTP port, usually 8848)")
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	dur := func(k, v string, min time.Duration) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < min {
			return 0, model.Invalid(k, "%q is not a duration of at least %v", v, min)
		}
		return d, nil
	}
	var err error
	for k, vs := range u.Query() {
		v := vs[0]
		switch k {
		case "namespace":
			cfg.PublicNamespace = v
		case "username":
			cfg.Username = v
		case "password":
			cfg.Password = v
		case "access-key":
			cfg.AccessKey = v
		case "secret-key":
			cfg.SecretKey = v
		case "timeout":
			cfg.Timeout, err = dur(k, v, 100*time.Millisecond)
		case "write-timeout":
			cfg.WriteTimeout, err = dur(k, v, 100*time.Millisecond)
		case "expiry-interval":
			cfg.ExpiryInterval, err = dur(k, v, 10*time.Millisecond)
		case "watch-history":
			cfg.WatchHistory, err = strconv.Atoi(v)
			if err != nil || cfg.WatchHistory < 1 {
				err = model.Invalid(k, "%q is not a positive whole number", v)
			}
		case "log-level":
			switch v {
			case "debug", "info", "warn", "error":
				cfg.LogLevel = v
			default:
				err = model.Invalid(k, "%q is not debug, info, warn or error", v)
			}
		case "cas":
			if v != CASNative && v != CASCheck {
				err = model.Invalid(k, "%q is not %s or %s", v, CASNative, CASCheck)
			}
			cfg.CAS = v
		case "cache-dir":
			cfg.CacheDir = v
		case "view-idle":
			cfg.ViewIdle, err = dur(k, v, time.Second)
		case "system-namespace":
			if v == "" || v == model.DefaultNamespace {
				err = model.Invalid(k, "%q cannot hold Junction's own namespace", v)
			}
			cfg.SystemNamespace = v
		default:
			err = model.Invalid(k, "unknown nacos:// option; known: namespace, system-namespace, username, password, access-key, secret-key, timeout, write-timeout, expiry-interval, watch-history, cas, log-level, cache-dir, view-idle")
		}
		if err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// The ways of making a conditional update (Config.CAS).
const (
	CASNative = "native"
	CASCheck  = "check"
)

// Driver is the Nacos backend.
type Driver struct {
	cfg      Config
	log      *slog.Logger
	dir      string
	ownDir   bool
	clock    clock
	sessions *heldsessions.Table[instKey, owned]
	stop     chan struct{}
	done     sync.WaitGroup
	// writes serializes this driver's writes of one instance (striped), so
	// that a patch's read and write see no registration in between.
	writes [64]sync.Mutex
	// configWrites serializes this driver's changes of one configuration
	// item that keeps history (striped), so that their versions are
	// numbered in the order of the changes.
	configWrites [64]sync.Mutex
	// own holds the driver's recent writes of its history items.
	own ownItems
	// salt fills the low bits of the revisions the driver gives instance
	// changes: Nacos has no revisions, each driver makes its own, and two
	// drivers that saw one push in the same millisecond must not give it
	// the same revision, or a revision one driver issued could pass for
	// current at the other (a patch relayed between gateways, whose
	// precondition the relaying gateway checks).
	salt int64
	// casIgnored is set once the server has refused a casMd5 update of an
	// item whose content it still served as the one named (warnCASIgnored).
	casIgnored atomic.Bool

	mu      sync.Mutex
	closing bool // Close has begun
	closed  bool
	naming  map[string]naming_client.INamingClient // by Nacos namespace id
	configs map[string]config_client.IConfigClient
	views   map[model.ServiceKey]*view
	cviews  map[model.ConfigKey]*configView
	// dropping holds, by service or config key, the views being dropped
	// (dropIdleViews): a new view of the key waits for the channel, for
	// the SDK keeps one subscription per key, which the old view's
	// unsubscribe would otherwise end under the new one.
	dropping map[any]chan struct{}
	conns    map[string]*sessionConn // by session id
	hist     history
}

// keepAliveEnv is the setting through which nacos-sdk-go takes its gRPC
// keepalive interval. Its default, a ping a minute even without a stream,
// is more than Go gRPC servers allow (one every 5 minutes): Polaris closes
// such a connection with too_many_pings after about three minutes, and the
// client's requests stall while it reconnects. Unless the operator set it,
// the driver pings every 6 minutes; dead servers are still noticed within
// seconds by the SDK's own health-check requests.
const keepAliveEnv = "nacos.remote.grpc.keep.alive.millis"

// Open connects to the Nacos servers and checks that they answer.
func Open(ctx context.Context, cfg Config) (*Driver, error) {
	if _, set := os.LookupEnv(keepAliveEnv); !set {
		_ = os.Setenv(keepAliveEnv, "360000")
	}
	d := &Driver{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()).With("backend", "nacos"), dir: cfg.CacheDir,
		sessions: heldsessions.New[instKey, owned](), stop: make(chan struct{}),
		naming: map[string]naming_client.INamingClient{}, configs: map[string]config_client.IConfigClient{},
		views: map[model.ServiceKey]*view{}, cviews: map[model.ConfigKey]*configView{}, conns: map[string]*sessionConn{},
		dropping: map[any]chan struct{}{}}
	d.hist.window = cfg.WatchHistory
	if cfg.ViewIdle < 0 {
		return nil, model.Invalid("view-idle", "must not be negative, got %v", cfg.ViewIdle)
	}
	d.cfg.ViewIdle = cmp.Or(cfg.ViewIdle, defaultViewIdle)
	d.salt = 1 + rand.Int64N(1<<fpBits-1)
	d.clock.tick(0) // revisions start from now, not from 0
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "junction-nacos-")
		if err != nil {
			return nil, fmt.Errorf("nacos client cache: %w", err)
		}
		d.dir, d.ownDir = dir, true
	}
	if _, err := d.namingClient(ctx, d.nacosNamespace(model.DefaultNamespace)); err != nil {
		d.Close()
		return nil, err
	}
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		d.sessions.Run(d.stop, cfg.ExpiryInterval, d.log, d.expire)
	}()
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		d.watchConnections()
	}()
	d.done.Add(1)
	go func() {
		defer d.done.Done()
		d.dropIdleViews()
	}()
	return d, nil
}

// defaultViewIdle is Config.ViewIdle's default.
const defaultViewIdle = 10 * time.Minute

// Views returns how many services and config items the driver holds a
// view of (Config.ViewIdle bounds them).
func (d *Driver) Views() (services, configs int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.views), len(d.cviews)
}

var _ backends.Gauges = (*Driver)(nil)

// Gauges implements backends.Gauges.
func (d *Driver) Gauges() []backends.Gauge {
	return []backends.Gauge{
		{Name: "nacos_service_views", Help: "Services the nacos driver holds a view (a subscription) of.",
			Value: func() float64 { n, _ := d.Views(); return float64(n) }},
		{Name: "nacos_config_views", Help: "Config items the nacos driver holds a view of.",
			Value: func() float64 { _, n := d.Views(); return float64(n) }},
	}
}

// dropIdleViews forgets, a few times per Config.ViewIdle, the views
// nothing used for that long: no watch open, no write waiting to show, no
// read in flight. A view is used only through view and cview, which mark
// it under d.mu; the second look under d.mu catches a use meanwhile.
func (d *Driver) dropIdleViews() {
	t := time.NewTicker(min(d.cfg.ViewIdle/4, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-d.cfg.ViewIdle)
		d.mu.Lock()
		var views []*view
		var cviews []*configView
		for _, v := range d.views {
			if v.used.Before(cutoff) {
				views = append(views, v)
			}
		}
		for _, v := range d.cviews {
			if v.used.Before(cutoff) {
				cviews = append(cviews, v)
			}
		}
		d.mu.Unlock()
		views = slices.DeleteFunc(views, func(v *view) bool { return !v.idle() })
		cviews = slices.DeleteFunc(cviews, func(v *configView) bool { return !v.idle() })
		d.mu.Lock()
		views = slices.DeleteFunc(views, func(v *view) bool {
			if d.views[v.svc] != v || !v.used.Before(cutoff) {
				return true
			}
			delete(d.views, v.svc)
			d.dropping[v.svc] = make(chan struct{})
			return false
		})
		cviews = slices.DeleteFunc(cviews, func(v *configView) bool {
			if d.cviews[v.key] != v || !v.used.Before(cutoff) {
				return true
			}
			delete(d.cviews, v.key)
			d.dropping[v.key] = make(chan struct{})
			return false
		})
		d.mu.Unlock()
		dropped := func(key any) {
			d.mu.Lock()
			close(d.dropping[key])
			delete(d.dropping, key)
			d.mu.Unlock()
		}
		for _, v := range views {
			v.drop()
			dropped(v.svc)
		}
		for _, v := range cviews {
			v.drop()
			dropped(v.key)
		}
	}
}

// nacosNamespace maps a Junction namespace onto a Nacos namespace id.
func (d *Driver) nacosNamespace(ns string) string {
	switch {
	case ns == model.DefaultNamespace:
		return d.cfg.PublicNamespace
	case ns == model.SystemNamespace && d.cfg.SystemNamespace != "":
		return d.cfg.SystemNamespace
	}
	return ns
}

func (d *Driver) param(ns string) vo.NacosClientParam {
	cc := constant.ClientConfig{
		NamespaceId: ns, TimeoutMs: uint64(d.cfg.Timeout / time.Millisecond), NotLoadCacheAtStart: true,
		UpdateCacheWhenEmpty: true, DisableUseSnapShot: true, LogDir: d.dir, CacheDir: d.dir, LogLevel: d.cfg.LogLevel,
		Username: d.cfg.Username, Password: d.cfg.Password, AccessKey: d.cfg.AccessKey, SecretKey: d.cfg.SecretKey,
	}
	var sc []constant.ServerConfig
	for _, s := range d.cfg.Servers {
		host, port, _ := net.SplitHostPort(s)
		p, _ := strconv.ParseUint(port, 10, 64)
		sc = append(sc, *constant.NewServerConfig(host, p))
	}
	return vo.NacosClientParam{ClientConfig: &cc, ServerConfigs: sc}
}

// newNamingClient opens a naming client (one gRPC connection) and waits
// until its connection is up: the SDK connects in the background, and a
// request sent before then reports failure without an error.
func (d *Driver) newNamingClient(ctx context.Context, ns string) (naming_client.INamingClient, error) {
	c, err := clients.NewNamingClient(d.param(ns))
	if err != nil {
		return nil, fmt.Errorf("%w: nacos naming client: %v", model.ErrUnavailable, err)
	}
	for !c.ServerHealthy() {
		select {
		case <-ctx.Done():
			c.CloseClient()
			return nil, fmt.Errorf("%w: no connection to the nacos servers %s: %v", model.ErrUnavailable, strings.Join(d.cfg.Servers, ","), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return c, nil
}

// namingClient returns the shared naming client of a Nacos namespace.
func (d *Driver) namingClient(ctx context.Context, ns string) (naming_client.INamingClient, error) {
	d.mu.Lock()
	c, ok := d.naming[ns]
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: driver closed", model.ErrUnavailable)
	}
	if ok {
		return c, nil
	}
	c, err := d.newNamingClient(ctx, ns)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.naming[ns]; ok {
		go c.CloseClient()
		return old, nil
	}
	d.naming[ns] = c
	return c, nil
}

// configClient returns the shared config client of a Nacos namespace.
func (d *Driver) configClient(ns string) (config_client.IConfigClient, error) {
	d.mu.Lock()
	c, ok := d.configs[ns]
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: driver closed", model.ErrUnavailable)
	}
	if ok {
		return c, nil
	}
	c, err := clients.NewConfigClient(d.param(ns))
	if err != nil {
		return nil, fmt.Errorf("%w: nacos config client: %v", model.ErrUnavailable, err)
	}
	// The SDK starts the client's connection on its first request, without
	// a lock against requests made meanwhile: one request first, alone, and
	// outside the driver's lock, which it would hold for a round trip.
	_, _ = c.GetConfig(vo.ConfigParam{DataId: "junction-connect", Group: model.DefaultGroup})
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.configs[ns]; ok || d.closed {
		go c.CloseClient()
		if d.closed {
			return nil, fmt.Errorf("%w: driver closed", model.ErrUnavailable)
		}
		return old, nil
	}
	d.configs[ns] = c
	return c, nil
}

// Status reports the driver's revision and what it declares.
func (d *Driver) Status(ctx context.Context) (backends.Status, error) {
	c, err := d.namingClient(ctx, d.nacosNamespace(model.DefaultNamespace))
	if err != nil {
		return backends.Status{}, err
	}
	if !c.ServerHealthy() {
		return backends.Status{}, fmt.Errorf("%w: no connection to the nacos servers %s", model.ErrUnavailable, strings.Join(d.cfg.Servers, ","))
	}
	return backends.Status{Backend: "nacos", Revision: d.clock.current(), Capabilities: backends.Capabilities{
		NativeSessions: false, NativeRevisions: false, ResumableWatch: true, WatchHistory: d.cfg.WatchHistory,
		LinearizableReads: false, NativeCAS: d.cfg.CAS == CASNative, ConfigHistory: true, AtomicHistory: false,
	}}, nil
}

// Close deregisters nothing (ephemeral instances go with their
// connections) and closes every client.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return nil
	}
	d.closing = true
	d.mu.Unlock()
	// The changes under way, and the versions of those made, finish with
	// the clients still open: each holds its item's write lock until its
	// version's record is written. Changes that come later find the
	// driver closed.
	for i := range d.configWrites {
		d.configWrites[i].Lock()
	}
	d.mu.Lock()
	d.closed = true
	close(d.stop)
	naming, configs, conns := d.naming, d.configs, d.conns
	d.naming, d.configs, d.conns = map[string]naming_client.INamingClient{}, map[string]config_client.IConfigClient{}, map[string]*sessionConn{}
	views, cviews := d.views, d.cviews
	d.mu.Unlock()
	for i := range d.configWrites {
		d.configWrites[i].Unlock()
	}
	d.done.Wait()
	for _, v := range views {
		v.close()
	}
	for _, v := range cviews {
		v.close()
	}
	for _, c := range conns {
		c.close()
	}
	for _, c := range naming {
		c.CloseClient()
	}
	for _, c := range configs {
		c.CloseClient()
	}
	if d.ownDir {
		_ = os.RemoveAll(d.dir)
	}
	return nil
}

// clock derives revisions. Nacos has none, so the driver makes them: a
// revision is a tick in its high 43 bits (milliseconds since the epoch,
// or one more than the last tick when writes come faster) and, for
// configuration items, the first 20 bits of the content's MD5 in its low
// bits. Revisions grow across restarts of the driver as long as the clock
// does, and a configuration revision names its content, which is what
// Nacos' compare-and-set compares.
type clock struct {
	mu   sync.Mutex
	last int64 // last tick issued
	rev  int64 // largest revision issued
}

const fpBits = 20

func (c *clock) tick(fp int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := time.Now().UnixMilli()
	if t <= c.last {
		t = c.last + 1
	}
	c.last = t
	c.rev = t<<fpBits | fp
	return c.rev
}

// current is the largest revision issued so far.
func (c *clock) current() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev
}

// fingerprint is the part of a configuration revision that names content.
func fingerprint(md5hex string) int64 {
	sum := md5.Sum([]byte(md5hex))
	return int64(binary.BigEndian.Uint32(sum[:4]) >> (32 - fpBits))
}

// history keeps the driver-wide window of recent changes: a watch can
// resume from a revision no older than floor.
type history struct {
	mu     sync.Mutex
	window int
	revs   []int64
	floor  int64
}

func (h *history) add(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.revs = append(h.revs, rev)
	if len(h.revs) > h.window {
		h.floor = h.revs[0]
		h.revs = h.revs[1:]
	}
}

func (h *history) oldest() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.floor
}

// lockStripe takes the lock of the stripe name falls in and returns its
// unlock.
func lockStripe(stripes []sync.Mutex, name string) func() {
	h := fnv.New32a()
	h.Write([]byte(name))
	mu := &stripes[h.Sum32()%uint32(len(stripes))]
	mu.Lock()
	return mu.Unlock
}

// brief is an SDK error's message without the stack trace some of them
// carry.
func brief(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// sdkError turns an error of the SDK into a portable one.
func sdkError(op string, err error) error {
	if err == nil {
		return nil
	}
	msg := brief(err)
	switch {
	case strings.Contains(msg, "403") || strings.Contains(strings.ToLower(msg), "permission") || strings.Contains(strings.ToLower(msg), "unauthorized"):
		return fmt.Errorf("%w: nacos %s: %s", model.ErrPermissionDenied, op, msg)
	}
	return fmt.Errorf("%w: nacos %s: %s", model.ErrUnavailable, op, msg)
}

var errClosed = errors.New("nacos driver closed")

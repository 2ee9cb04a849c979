package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
)

// Junction keeps its own records — health checks, service settings and the
// health runner's lease — as configs of one namespace in the store, so that
// every gateway over the store sees them, whatever the store.
const (
	SystemNamespace = model.SystemNamespace
	checksGroup     = "health-checks"
	settingsGroup   = "service-settings"
	runnerGroup     = "health-runner"
)

// recordKey names the record of a service (and instance) by a digest of
// the names: fixed length and always a valid dataId.
func recordKey(group, prefix string, svc model.ServiceKey, id string) model.ConfigKey {
	h := sha256.Sum256([]byte(svc.Namespace + "\x00" + svc.Group + "\x00" + svc.Service + "\x00" + id))
	return model.ConfigKey{Namespace: SystemNamespace, Group: group, DataID: prefix + "-" + hex.EncodeToString(h[:20])}
}

func checkKey(svc model.ServiceKey, id string) model.ConfigKey {
	return recordKey(checksGroup, "check", svc, id)
}

func settingsKey(svc model.ServiceKey) model.ConfigKey {
	return recordKey(settingsGroup, "service", svc, "")
}

var leaseKey = model.ConfigKey{Namespace: SystemNamespace, Group: runnerGroup, DataID: "lease"}

// checkRecord is a health check as stored.
type checkRecord struct {
	Service model.ServiceKey `json:"service"`
	ID      string           `json:"id"`
	Check   health.Check     `json:"check"`
	// LastTransition is the result that decided the last transition.
	LastTransition *health.Result `json:"lastTransition,omitempty"`
}

// settingsRecord is a service's settings as stored.
type settingsRecord struct {
	Service          model.ServiceKey `json:"service"`
	ProtectThreshold float64          `json:"protectThreshold"`
}

// leaseRecord says which gateway runs the health checks.
type leaseRecord struct {
	Owner string `json:"owner"`
	// Renewals changes with every renewal so that every renewal is a write.
	Renewals int64 `json:"renewals"`
	// Lease is the owner's lease (it renews every third of it), so that a
	// gateway configured with a shorter one does not take over from an
	// owner that is still renewing. Empty in records of older gateways.
	Lease string `json:"lease,omitempty"`
}

// held is how long the lease must be seen unchanged before another gateway
// may take it over: the owner's lease, or own when the record does not say
// or says less.
func (l leaseRecord) held(own time.Duration) time.Duration {
	d, err := time.ParseDuration(l.Lease)
	if err != nil {
		return own
	}
	return max(own, d)
}

func readRecord[T any](ctx context.Context, b backends.Backend, key model.ConfigKey, v *T) (int64, error) {
	c, _, err := b.GetConfig(ctx, key, backends.ReadOptions{})
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(c.Content, v); err != nil {
		return 0, fmt.Errorf("record %s: %w", key.DataID, err)
	}
	return c.Revision, nil
}

func writeRecord(ctx context.Context, b backends.Backend, key model.ConfigKey, v any, cond model.Precondition) (int64, error) {
	content, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	c, err := b.PutConfig(ctx, model.Config{Key: key, Content: content, ContentType: model.ContentJSON}, cond)
	return c.Revision, err
}

// newGatewayID names this gateway in the runner's lease.
func newGatewayID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// healthRunner runs the health checks of every instance that has one. One
// gateway at a time runs them: the one holding the runner lease, a record
// in the store renewed by compare-and-set. Another gateway takes the lease
// over once it has seen it unchanged for a whole lease period by its own
// clock (so clocks need not agree), which bounds how long checks stop when
// the runner dies; the period is the longer of its own lease and the one
// the owner wrote in the record.
type healthRunner struct {
	b       backends.Backend
	checks  *recordSet
	patches *patcher
	id      string
	lease   time.Duration
	scan    time.Duration
	log     *slog.Logger
	metrics *health.Metrics

	mu       sync.Mutex
	leading  bool
	owner    string // the lease's owner as last seen
	monitors map[string]*runningCheck
	// absent says since when a check's instance has not been found (the
	// runner's reads may lag its registration on some stores).
	absent map[string]time.Time

	// Taking the lease over: its revision as last seen, and since when.
	seenRev   int64
	seenSince time.Time
	renewals  int64
	leaseRev  int64
	scans     int
}

// absentGrace is how long a check's instance must stay unseen before the
// runner takes the instance for gone and removes the check.
const absentGrace = 5 * time.Second

// reconcileEvery is how many scans pass between two reconciliations, which
// put the checks' verdict back on instances re-registered with another
// healthy flag (registrations carry healthy=true).
const reconcileEvery = 5

type runningCheck struct {
	// mu serializes the writes of the check's verdict (transitions and
	// reconciliation), so that one verdict is written once.
	mu      sync.Mutex
	rec     checkRecord
	rev     int64
	monitor *health.Monitor
	cancel  context.CancelFunc
	done    chan struct{}
}

func newHealthRunner(b backends.Backend, checks *recordSet, patches *patcher, cfg Config, log *slog.Logger, m *health.Metrics) *healthRunner {
	return &healthRunner{b: b, checks: checks, patches: patches, id: cfg.GatewayID, lease: cfg.HealthLease, scan: cfg.HealthScan, log: log.With("component", "health"),
		metrics: m, monitors: map[string]*runningCheck{}, absent: map[string]time.Time{}}
}

// run holds or watches the lease and, while holding it, keeps one monitor
// per check record, until ctx ends.
func (r *healthRunner) run(ctx context.Context) {
	defer r.release()
	renew := max(r.lease/3, 10*time.Millisecond)
	t := time.NewTimer(0)
	defer t.Stop()
	var lastRenew time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if !r.isLeading() || now.Sub(lastRenew) >= renew {
			r.contend(ctx)
			lastRenew = now
		}
		if r.isLeading() {
			if err := r.sync(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("health checks: reading the checks failed", "err", err)
			}
		}
		t.Reset(min(r.scan, renew))
	}
}

// release stops the checks and, when this gateway holds the lease, gives
// it up so that another gateway takes over at once instead of after the
// lease.
func (r *healthRunner) release() {
	r.stopAll()
	r.mu.Lock()
	leading, rev := r.leading, r.leaseRev
	r.leading = false
	r.mu.Unlock()
	if leading {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := r.b.DeleteConfig(ctx, leaseKey, model.IfRevision(rev)); err != nil {
			r.log.Debug("health checks: releasing the runner lease failed; it expires", "err", err)
		}
	}
}

func (r *healthRunner) isLeading() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leading
}

// contend renews the lease, or takes it when it is free or stale.
func (r *healthRunner) contend(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(r.lease/3, time.Second))
	defer cancel()
	var cur leaseRecord
	rev, err := readRecord(ctx, r.b, leaseKey, &cur)
	switch {
	case errors.Is(err, model.ErrNotFound):
		r.take(ctx, model.IfRevision(0), "free")
		return
	case err != nil:
		if r.isLeading() {
			// Unable to renew: stop before another gateway may take over.
			r.log.Warn("health checks: cannot renew the runner lease; stopping the checks", "err", err)
			r.setLeading(false, "")
		}
		return
	}
	r.mu.Lock()
	if cur.Owner != r.id && r.leading {
		r.mu.Unlock()
		r.log.Info("health checks: another gateway runs them now", "runner", cur.Owner)
		r.setLeading(false, cur.Owner)
		return
	}
	r.owner = cur.Owner
	if cur.Owner == r.id && r.leaseRev > rev {
		// A read behind this gateway's own last renewal (a store whose
		// reads lag, as Nacos' do): renew the lease as it was written,
		// not as it was read, or the renewal fails on a change that is
		// this gateway's own and the checks stop.
		rev = r.leaseRev
	}
	if rev != r.seenRev {
		r.seenRev, r.seenSince = rev, time.Now()
	}
	stale := time.Since(r.seenSince) > cur.held(r.lease)
	r.renewals = cur.Renewals
	r.mu.Unlock()
	switch {
	case cur.Owner == r.id:
		r.take(ctx, model.IfRevision(rev), "renew")
	case stale:
		r.take(ctx, model.IfRevision(rev), "stale")
	}
}

// take writes the lease with this gateway as its owner if cond holds.
func (r *healthRunner) take(ctx context.Context, cond model.Precondition, why string) {
	r.mu.Lock()
	rec := leaseRecord{Owner: r.id, Renewals: r.renewals + 1, Lease: r.lease.String()}
	r.mu.Unlock()
	rev, err := writeRecord(ctx, r.b, leaseKey, rec, cond)
	if err != nil {
		if r.isLeading() {
			r.log.Warn("health checks: lost the runner lease", "err", err)
			r.setLeading(false, "")
		}
		return
	}
	r.mu.Lock()
	r.seenRev, r.seenSince, r.leaseRev, r.renewals = rev, time.Now(), rev, rec.Renewals
	was := r.leading
	r.mu.Unlock()
	if !was {
		r.log.Info("health checks: this gateway runs them", "lease", why)
		r.setLeading(true, r.id)
	}
}

func (r *healthRunner) setLeading(leading bool, owner string) {
	r.mu.Lock()
	r.leading, r.owner = leading, owner
	r.mu.Unlock()
	if !leading {
		r.stopAll()
	}
}

// Runner returns the gateway that runs the checks, as last seen.
func (r *healthRunner) runner() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owner
}

// sync starts a monitor per new or changed check record and stops those
// whose record is gone.
func (r *healthRunner) sync(ctx context.Context) error {
	list, err := r.checks.list(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, c := range list {
		seen[c.Key.DataID] = true
		r.mu.Lock()
		cur, ok := r.monitors[c.Key.DataID]
		r.mu.Unlock()
		if ok && cur.rev == c.Revision {
			continue
		}
		var rec checkRecord
		rev, err := readRecord(ctx, r.b, c.Key, &rec)
		if errors.Is(err, model.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if ok && cur.rec.Check == rec.Check && cur.rec.Service == rec.Service && cur.rec.ID == rec.ID {
			cur.rev = rev // only the last transition changed (written by us)
			continue
		}
		r.stop(c.Key.DataID)
		r.start(ctx, c.Key, rec, rev)
	}
	r.mu.Lock()
	var gone []string
	for k := range r.monitors {
		if !seen[k] {
			gone = append(gone, k)
		}
	}
	for k := range r.absent {
		if !seen[k] {
			delete(r.absent, k)
		}
	}
	r.mu.Unlock()
	for _, k := range gone {
		r.stop(k)
	}
	if r.scans++; r.scans%reconcileEvery == 0 {
		r.reconcile(ctx)
	}
	return nil
}

// reconcile writes each monitor's verdict on its instance where they
// differ, once the monitor has probed.
func (r *healthRunner) reconcile(ctx context.Context) {
	r.mu.Lock()
	running := make([]*runningCheck, 0, len(r.monitors))
	for _, rc := range r.monitors {
		running = append(running, rc)
	}
	r.mu.Unlock()
	for _, rc := range running {
		if len(rc.monitor.History()) == 0 {
			continue
		}
		// Bounded: reconciling runs on the goroutine that renews the lease,
		// and a patch relayed to another gateway may wait.
		rctx, cancel := context.WithTimeout(ctx, r.lease/4)
		err := r.setHealthy(rctx, rc, rc.monitor.Healthy())
		cancel()
		if err != nil && ctx.Err() == nil && rctx.Err() == nil &&
			!errors.Is(err, model.ErrNotFound) && !errors.Is(err, model.ErrSessionExpired) {
			r.log.Warn("health checks: reconciling an instance failed", "service", rc.rec.Service.Service, "id", rc.rec.ID, "err", err)
		}
	}
}

// start runs a monitor of rec, starting from the instance's stored health.
func (r *healthRunner) start(ctx context.Context, key model.ConfigKey, rec checkRecord, rev int64) {
	inst, err := r.instance(ctx, rec)
	r.mu.Lock()
	since, seenAbsent := r.absent[key.DataID]
	if err == nil {
		delete(r.absent, key.DataID)
	} else if errors.Is(err, model.ErrNotFound) && !seenAbsent {
		since, r.absent[key.DataID] = time.Now(), time.Now()
	}
	r.mu.Unlock()
	if errors.Is(err, model.ErrNotFound) {
		// The instance is gone (an expired session, a deregistration
		// through another path): so is its check, once the instance has
		// stayed absent long enough to be sure this gateway's reads do not
		// merely lag its registration (Nacos serves reads from a cache).
		// Until then the next scans try again.
		if time.Since(since) >= absentGrace {
			_ = r.checks.remove(ctx, key, model.IfRevision(rev))
			r.mu.Lock()
			delete(r.absent, key.DataID)
			r.mu.Unlock()
		}
		return
	}
	if err != nil {
		r.log.Warn("health checks: reading an instance failed", "service", rec.Service.Service, "id", rec.ID, "err", err)
		return
	}
	mctx, cancel := context.WithCancel(context.Background())
	rc := &runningCheck{rec: rec, rev: rev, monitor: health.NewMonitor(rec.Check, inst.Healthy, r.metrics), cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	r.monitors[key.DataID] = rc
	r.mu.Unlock()
	changes := make(chan health.Transition, 1)
	go func() {
		defer close(rc.done)
		go rc.monitor.Run(mctx, changes)
		for {
			select {
			case <-mctx.Done():
				return
			case tr := <-changes:
				r.apply(mctx, key, rc, tr)
			}
		}
	}()
}

func (r *healthRunner) stop(dataID string) {
	r.mu.Lock()
	rc, ok := r.monitors[dataID]
	delete(r.monitors, dataID)
	r.mu.Unlock()
	if ok {
		rc.cancel()
		<-rc.done
	}
}

func (r *healthRunner) stopAll() {
	r.mu.Lock()
	var keys []string
	for k := range r.monitors {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.stop(k)
	}
}

// instance reads the checked instance.
func (r *healthRunner) instance(ctx context.Context, rec checkRecord) (model.Instance, error) {
	return findInstance(ctx, r.b, rec.Service, rec.ID)
}

// apply writes a transition: the record's last transition first (so that
// whoever sees the instance change finds why), then the instance's healthy
// flag, retrying until it is written or the check stops.
func (r *healthRunner) apply(ctx context.Context, key model.ConfigKey, rc *runningCheck, tr health.Transition) {
	rec := rc.rec
	last := tr.Last
	rec.LastTransition = &last
	if _, err := r.checks.put(ctx, key, rec, model.Precondition{}); err != nil && ctx.Err() == nil {
		r.log.Warn("health checks: recording a transition failed", "err", err)
	}
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := r.setHealthy(ctx, rc, tr.Healthy)
		if err == nil {
			r.log.Info("health check transition", "service", rc.rec.Service.Service, "id", rc.rec.ID, "healthy", tr.Healthy, "output", tr.Last.Output)
			return
		}
		if errors.Is(err, model.ErrNotFound) || errors.Is(err, model.ErrSessionExpired) {
			return // gone; sync drops the record
		}
		r.log.Warn("health checks: writing a transition failed; retrying", "service", rc.rec.Service.Service, "id", rc.rec.ID, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 5*time.Second)):
		}
	}
}

// setHealthy patches the instance's healthy flag, unless it already is set
// so. The patch keeps the instance's owner and the owner's other changes,
// whichever gateway holds its session.
func (r *healthRunner) setHealthy(ctx context.Context, rc *runningCheck, healthy bool) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	inst, err := r.instance(ctx, rc.rec)
	if err != nil || inst.Healthy == healthy {
		return err
	}
	_, err = r.patches.patch(ctx, rc.rec.Service, rc.rec.ID, model.InstancePatch{Healthy: &healthy})
	return err
}

// history returns the recent results of a check this gateway runs.
func (r *healthRunner) history(key model.ConfigKey) ([]health.Result, bool) {
	r.mu.Lock()
	rc, ok := r.monitors[key.DataID]
	r.mu.Unlock()
	if !ok {
		return nil, false
	}
	return rc.monitor.History(), true
}

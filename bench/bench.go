// Package bench loads a registry and configuration store with Junction's
// standard workloads and measures throughput and latency. The same workload
// runs through a Junction gateway (gRPC), through a Junction driver called
// in process, or through a store's own Go client, so that one run shows
// what each layer costs, side by side.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Workloads are the standard workloads, in the order reports list them.
var Workloads = []string{"register", "heartbeat", "instances", "config-put", "config-get", "watch-fanout", "mixed"}

// ErrUnsupported is returned by a client that has no equivalent of a
// workload (ZooKeeper has no explicit session heartbeat, for example).
var ErrUnsupported = errors.New("workload not supported by this client")

// Options shape a run.
type Options struct {
	// Concurrency is the number of concurrent callers.
	Concurrency int
	// Duration bounds each workload unless Total is set.
	Duration time.Duration
	// Total stops a workload after this many operations (0: use Duration).
	Total int64
	// Keys is the key space: distinct instances, sessions or configs.
	Keys int
	// ValueSize is the size of a config value in bytes.
	ValueSize int
	// Subscribers and Updates shape watch-fanout.
	Subscribers, Updates int
	// Service names the service (and prefixes the config ids) the
	// workloads use.
	Service string
	// Stale makes the reads (instances, config-get) stale ones: served by
	// the nearest replica, without proving they are current.
	Stale bool
	// MeasureMemory makes watch-fanout report this process's growth in
	// memory in use (heap and goroutine stacks) per subscriber: meaningful
	// when the gateway runs in process.
	MeasureMemory bool
	// ServerMemory, when set, reports the memory in use of a gateway in
	// another process (from its /metrics); watch-fanout then divides its
	// growth by the subscribers.
	ServerMemory func(ctx context.Context) (uint64, error)
	// Progress, when set, receives a live progress line each second.
	Progress io.Writer
}

// Op is one operation of a workload, made by caller worker.
type Op func(ctx context.Context, worker int) error

// Client runs workloads against one target.
type Client interface {
	// Prepare sets up what workload needs, outside the measurement, and
	// returns its operation and a cleanup. It returns ErrUnsupported for a
	// workload the client has no equivalent of. watch-fanout is not prepared
	// this way; see Fanout.
	Prepare(ctx context.Context, workload string, o Options) (Op, func(), error)
	// Close releases the client.
	Close() error
}

// Fanout is implemented by clients that can run watch-fanout: many
// subscribers of one service, each told of every change.
type Fanout interface {
	// Subscribe opens n subscribers of the fan-out service; each calls
	// arrived with the sequence label of every update it receives. It
	// returns once every subscriber is attached. Subscribers end with ctx.
	Subscribe(ctx context.Context, o Options, n int, arrived func(seq string)) error
	// Update makes one change carrying the label seq.
	Update(ctx context.Context, o Options, seq string) error
}

// Result is one workload's outcome.
type Result struct {
	Workload    string  `json:"workload"`
	Target      string  `json:"target"`
	Path        string  `json:"path,omitempty"`
	Concurrency int     `json:"concurrency"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"firstError,omitempty"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"opsPerSec"`
	P50Ms       float64 `json:"p50Ms"`
	P90Ms       float64 `json:"p90Ms"`
	P99Ms       float64 `json:"p99Ms"`
	MaxMs       float64 `json:"maxMs"`
	// Unsupported says why the client had no equivalent of the workload.
	Unsupported string `json:"unsupported,omitempty"`
	// Watch fan-out only.
	Subscribers       int     `json:"subscribers,omitempty"`
	Deliveries        int64   `json:"deliveries,omitempty"`
	MemPerSubscriberB float64 `json:"memPerSubscriberBytes,omitempty"`
	// EntriesPerAppend is, for the built-in store, how many log entries
	// each append to the (leader's) Raft log carried while the workload
	// ran: each append is one write and one fsync, so this is how many
	// client writes share an fsync.
	EntriesPerAppend float64 `json:"entriesPerLogAppend,omitempty"`
}

// Validate checks the options and names the offending one.
func (o Options) Validate() error {
	switch {
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return fmt.Errorf("concurrency %d is out of range 1..4096", o.Concurrency)
	case o.Duration <= 0 && o.Total <= 0:
		return errors.New("give a positive duration or total")
	case o.Keys < 1:
		return errors.New("keys must be at least 1")
	case o.ValueSize < 1:
		return errors.New("value size must be at least 1")
	case o.Subscribers < 1 || o.Updates < 1:
		return errors.New("subscribers and updates must be at least 1")
	case o.Service == "":
		return errors.New("a service name is needed")
	}
	return nil
}

// Run runs one workload with c. A client without an equivalent of the
// workload yields a Result with Unsupported set, not an error.
func Run(ctx context.Context, c Client, workload string, o Options) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	if !slices.Contains(Workloads, workload) {
		return Result{}, fmt.Errorf("unknown workload %q", workload)
	}
	if workload == "watch-fanout" {
		f, ok := c.(Fanout)
		if !ok {
			return Result{Workload: workload, Unsupported: "no fan-out equivalent"}, nil
		}
		return watchFanout(ctx, f, o)
	}
	op, cleanup, err := c.Prepare(ctx, workload, o)
	if errors.Is(err, ErrUnsupported) {
		return Result{Workload: workload, Unsupported: reason(err)}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("prepare %s: %w", workload, err)
	}
	defer cleanup()
	rec := &recorder{started: time.Now()}
	stop := startProgress(o.Progress, workload, rec)
	// Operations are not cut off at the end: the run stops issuing new ones
	// and lets those in flight finish.
	end := rec.started.Add(o.Duration)
	var issued atomic.Int64
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				if o.Total > 0 && issued.Add(1) > o.Total || o.Total <= 0 && time.Now().After(end) {
					return
				}
				start := time.Now()
				err := op(ctx, w)
				rec.add(time.Since(start), err)
			}
		})
	}
	wg.Wait()
	stop()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return rec.result(workload, o.Concurrency), nil
}

// watchFanout attaches o.Subscribers subscribers, then makes o.Updates
// changes one at a time, each timed from the start of its write to its
// arrival at every subscriber.
func watchFanout(ctx context.Context, f Fanout, o Options) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	arrivals := make(chan string, o.Subscribers*4)
	before, err := memoryInUse(ctx, o)
	if err != nil {
		return Result{}, err
	}
	if err := f.Subscribe(ctx, o, o.Subscribers, func(seq string) {
		select {
		case arrivals <- seq:
		case <-ctx.Done():
		}
	}); errors.Is(err, ErrUnsupported) {
		return Result{Workload: "watch-fanout", Unsupported: reason(err)}, nil
	} else if err != nil {
		return Result{}, fmt.Errorf("subscribe: %w", err)
	}
	after, err := memoryInUse(ctx, o)
	if err != nil {
		return Result{}, err
	}
	rec := &recorder{started: time.Now()}
	stop := startProgress(o.Progress, "watch-fanout", rec)
	defer stop()
	for u := range o.Updates {
		seq := fmt.Sprint(u)
		start := time.Now()
		if err := f.Update(ctx, o, seq); err != nil {
			return Result{}, fmt.Errorf("update %d: %w", u, err)
		}
		got := 0
		timeout := time.After(30 * time.Second)
		for got < o.Subscribers {
			select {
			case s := <-arrivals:
				if s == seq {
					got++
					rec.add(time.Since(start), nil)
				}
			case <-timeout:
				return Result{}, fmt.Errorf("update %d reached %d of %d subscribers in 30s", u, got, o.Subscribers)
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
		}
	}
	res := rec.result("watch-fanout", 1)
	res.Subscribers, res.Deliveries = o.Subscribers, res.Ops
	res.Ops = int64(o.Updates)
	res.OpsPerSec = float64(o.Updates) / res.Seconds
	if after > before {
		res.MemPerSubscriberB = float64(after-before) / float64(o.Subscribers)
	}
	return res, nil
}

// memoryInUse is the memory in use (heap and stacks) of the gateway under
// test: o.ServerMemory's answer, or this process's after a collection when
// o.MeasureMemory, or 0.
func memoryInUse(ctx context.Context, o Options) (uint64, error) {
	switch {
	case o.ServerMemory != nil:
		n, err := o.ServerMemory(ctx)
		if err != nil {
			return 0, fmt.Errorf("server memory: %w", err)
		}
		return n, nil
	case o.MeasureMemory:
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse, nil
	}
	return 0, nil
}

// reason is why a client declined a workload: the text of err after the
// ErrUnsupported it wraps.
func reason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrUnsupported.Error()+": ")
}

// recorder collects latencies and errors from concurrent workers.
type recorder struct {
	mu      sync.Mutex
	lat     []time.Duration
	ops     atomic.Int64
	errs    atomic.Int64
	first   atomic.Value
	started time.Time
}

func (r *recorder) add(d time.Duration, err error) {
	r.ops.Add(1)
	if err != nil {
		if r.errs.Add(1) == 1 {
			r.first.Store(err.Error())
		}
		return
	}
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

func (r *recorder) result(workload string, concurrency int) Result {
	secs := time.Since(r.started).Seconds()
	r.mu.Lock()
	lat := slices.Clone(r.lat)
	r.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	res := Result{Workload: workload, Concurrency: concurrency, Ops: r.ops.Load(), Errors: r.errs.Load(),
		Seconds: secs, OpsPerSec: float64(r.ops.Load()-r.errs.Load()) / secs,
		P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99), MaxMs: pct(1)}
	if s, ok := r.first.Load().(string); ok {
		res.FirstError = s
	}
	return res
}

// startProgress prints a live line to w each second until the returned
// function is called; a nil w prints nothing.
func startProgress(w io.Writer, workload string, r *recorder) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r\033[K")
				return
			case <-t.C:
				n := r.ops.Load()
				fmt.Fprintf(w, "\r\033[K%-12s %5.0fs  %9d ops  %8d/s  errors %d", workload, time.Since(r.started).Seconds(), n, n-last, r.errs.Load())
				last = n
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// ip spreads k over 10.0.0.0/8.
func ip(k int64) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }

// configID is the id of config k of a run.
func configID(o Options, k int) string { return fmt.Sprintf("%s-%d", o.Service, k) }

// mixed draws 60% instances, 20% config-get, 10% register, 10% config-put.
func mixed(ops map[string]Op, pick func() int) Op {
	return func(ctx context.Context, w int) error {
		switch x := pick(); {
		case x < 6:
			return ops["instances"](ctx, w)
		case x < 8:
			return ops["config-get"](ctx, w)
		case x < 9:
			return ops["register"](ctx, w)
		default:
			return ops["config-put"](ctx, w)
		}
	}
}

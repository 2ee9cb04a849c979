package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
)

// benchWorkloads are the workloads of `junction bench`, in the order the
// help lists them.
var benchWorkloads = []string{"register", "heartbeat", "instances", "config-put", "config-get", "watch-fanout", "mixed"}

type benchOpts struct {
	local       string
	concurrency int
	duration    time.Duration
	total       int64
	keys        int
	valueSize   int
	subscribers int
	updates     int
	service     string
}

// BenchResult is one workload's outcome, as `-o json` prints it.
type BenchResult struct {
	Workload    string  `json:"workload"`
	Target      string  `json:"target"`
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
	// Watch fan-out only.
	Subscribers        int     `json:"subscribers,omitempty"`
	Deliveries         int64   `json:"deliveries,omitempty"`
	HeapPerSubscriberB float64 `json:"heapPerSubscriberBytes,omitempty"`
}

func newBenchCmd(g *globals) *cobra.Command {
	o := benchOpts{}
	cmd := &cobra.Command{
		Use:   "bench WORKLOAD...",
		Short: "Load a Junction server and report throughput and latency",
		Long: `Runs workloads against a Junction server (--addr) or against a gateway it starts in
process over a backend (--local raft, or --local URL such as etcd://127.0.0.1:2379).

Workloads:
  register      register instances, each worker under its own session (--keys distinct instances)
  heartbeat     keep --keys sessions alive
  instances     list a service of 10 instances (a linearizable read)
  config-put    write --keys configs of --value-size bytes
  config-get    read --keys configs (linearizable)
  watch-fanout  --subscribers watchers of one service, --updates changes: delivery latency from the
                start of each write to its arrival at each subscriber, and (--local) heap per subscriber
  mixed         60% instances, 20% config-get, 10% register, 10% config-put
  all           every workload above, one after the other

A progress line goes to stderr each second; the table (or -o json) to stdout.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.output != "table" && g.output != "json" {
				return model.Invalid("output", "%q is not table or json", g.output)
			}
			workloads := args
			if len(args) == 1 && args[0] == "all" {
				workloads = benchWorkloads
			}
			for _, w := range workloads {
				if !slices.Contains(benchWorkloads, w) {
					return model.Invalid("workload", "%q is not one of %s or all", w, strings.Join(benchWorkloads, ", "))
				}
			}
			switch {
			case o.concurrency < 1 || o.concurrency > 4096:
				return model.Invalid("concurrency", "%d is out of range 1..4096", o.concurrency)
			case o.duration <= 0 && o.total <= 0:
				return model.Invalid("duration", "give a positive --duration or --total")
			case o.keys < 1:
				return model.Invalid("keys", "must be at least 1")
			case o.valueSize < 1 || o.valueSize > model.DefaultMaxContentSize:
				return model.Invalid("value-size", "%d is out of range 1..%d", o.valueSize, model.DefaultMaxContentSize)
			case o.subscribers < 1 || o.updates < 1:
				return model.Invalid("subscribers", "--subscribers and --updates must be at least 1")
			}
			ctx := cmd.Context()
			target, conn, stop, err := benchTarget(ctx, g, o.local)
			if err != nil {
				return err
			}
			defer stop()
			if o.service == "" {
				o.service = "bench-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
			}
			var results []BenchResult
			for _, w := range workloads {
				r, err := runBench(ctx, cmd.ErrOrStderr(), conn, g, o, w)
				if err != nil {
					return fmt.Errorf("%s: %w", w, err)
				}
				r.Target = target
				results = append(results, r)
			}
			return printBench(cmd.OutOrStdout(), g.output, results)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.local, "local", "", "start a gateway in process over this backend (raft for a temporary built-in store, or a backend URL) instead of using --addr")
	f.IntVarP(&o.concurrency, "concurrency", "c", 16, "concurrent callers")
	f.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "how long each workload runs")
	f.Int64Var(&o.total, "total", 0, "stop each workload after this many operations (0: run for --duration)")
	f.IntVar(&o.keys, "keys", 1000, "key space: distinct instances, sessions or configs")
	f.IntVar(&o.valueSize, "value-size", 256, "config value size in bytes")
	f.IntVar(&o.subscribers, "subscribers", 100, "watch-fanout: subscribers")
	f.IntVar(&o.updates, "updates", 100, "watch-fanout: changes to deliver")
	f.StringVar(&o.service, "service", "", "service name the workloads use (default: a fresh bench-N)")
	return cmd
}

// benchTarget connects to --addr, or starts a gateway over --local.
func benchTarget(ctx context.Context, g *globals, local string) (string, *grpc.ClientConn, func(), error) {
	if local == "" {
		conn, err := g.conn()
		if err != nil {
			return "", nil, nil, err
		}
		return g.addr, conn, func() { conn.Close() }, nil
	}
	var cleanup []func()
	stop := func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}
	raw := local
	if local == "raft" {
		dir, err := os.MkdirTemp("", "junction-bench")
		if err != nil {
			return "", nil, nil, err
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		raw = "raft://" + dir
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := backends.Open(octx, raw)
	if err != nil {
		stop()
		return "", nil, nil, err
	}
	cleanup = append(cleanup, func() { b.Close() })
	cfg := gateway.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := gateway.New(b, cfg)
	if err != nil {
		stop()
		return "", nil, nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stop()
		return "", nil, nil, err
	}
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, lis) }()
	cleanup = append(cleanup, func() { scancel(); <-done; srv.Close() })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		stop()
		return "", nil, nil, err
	}
	cleanup = append(cleanup, func() { conn.Close() })
	return "local gateway over " + strings.SplitN(raw, "?", 2)[0], conn, stop, nil
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

func (r *recorder) result(workload string, concurrency int) BenchResult {
	secs := time.Since(r.started).Seconds()
	r.mu.Lock()
	lat := slices.Clone(r.lat)
	r.mu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	res := BenchResult{Workload: workload, Concurrency: concurrency, Ops: r.ops.Load(), Errors: r.errs.Load(),
		Seconds: secs, OpsPerSec: float64(r.ops.Load()-r.errs.Load()) / secs,
		P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99), MaxMs: pct(1)}
	if s, ok := r.first.Load().(string); ok {
		res.FirstError = s
	}
	return res
}

// progress prints a live line to w each second until stop is closed.
func progress(w io.Writer, workload string, r *recorder, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := int64(0)
	for {
		select {
		case <-stop:
			fmt.Fprintf(w, "\r\033[K")
			return
		case <-t.C:
			n := r.ops.Load()
			fmt.Fprintf(w, "\r\033[K%-12s %5.0fs  %9d ops  %8d/s  errors %d", workload, time.Since(r.started).Seconds(), n, n-last, r.errs.Load())
			last = n
		}
	}
}

func runBench(ctx context.Context, stderr io.Writer, conn *grpc.ClientConn, g *globals, o benchOpts, workload string) (BenchResult, error) {
	reg, cfg := pb.NewRegistryServiceClient(conn), pb.NewConfigServiceClient(conn)
	value := strings.Repeat("x", o.valueSize)
	ip := func(k int64) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }
	register := func(ctx context.Context, name string, k int64, session string) error {
		_, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: g.namespace, Group: g.group, Service: name,
			Ip: ip(k), Port: 80, Session: session})
		return err
	}
	if workload == "watch-fanout" {
		return watchFanout(ctx, stderr, reg, g, o)
	}

	// Setup, outside the measurement.
	var sessions []string
	newSession := func() (string, error) {
		s, err := reg.CreateSession(ctx, &pb.CreateSessionRequest{Ttl: durationpb.New(30 * time.Second)})
		if err != nil {
			return "", err
		}
		return s.GetId(), nil
	}
	switch workload {
	case "register", "mixed":
		for range o.concurrency {
			id, err := newSession()
			if err != nil {
				return BenchResult{}, err
			}
			sessions = append(sessions, id)
		}
	case "heartbeat":
		for range o.keys {
			id, err := newSession()
			if err != nil {
				return BenchResult{}, err
			}
			sessions = append(sessions, id)
		}
	}
	if workload == "instances" || workload == "mixed" {
		for k := range int64(10) {
			if err := register(ctx, o.service+"-list", k, ""); err != nil {
				return BenchResult{}, err
			}
		}
	}
	if workload == "config-get" || workload == "mixed" {
		for k := range o.keys {
			if _, err := cfg.PutConfig(ctx, &pb.PutConfigRequest{Namespace: g.namespace, Group: g.group,
				DataId: o.service + "-" + strconv.Itoa(k), Content: value}); err != nil {
				return BenchResult{}, err
			}
		}
	}
	defer func() {
		for _, s := range sessions {
			_, _ = reg.DeleteSession(context.Background(), &pb.DeleteSessionRequest{Id: s})
		}
	}()

	var n atomic.Int64
	ops := map[string]func(ctx context.Context, worker int) error{
		"register": func(ctx context.Context, w int) error {
			return register(ctx, o.service, n.Add(1)%int64(o.keys), sessions[w])
		},
		"heartbeat": func(ctx context.Context, _ int) error {
			_, err := reg.KeepAliveSession(ctx, &pb.KeepAliveSessionRequest{Id: sessions[n.Add(1)%int64(len(sessions))]})
			return err
		},
		"instances": func(ctx context.Context, _ int) error {
			_, err := reg.ListInstances(ctx, &pb.ListInstancesRequest{Namespace: g.namespace, Group: g.group, Service: o.service + "-list"})
			return err
		},
		"config-put": func(ctx context.Context, _ int) error {
			_, err := cfg.PutConfig(ctx, &pb.PutConfigRequest{Namespace: g.namespace, Group: g.group,
				DataId: o.service + "-" + strconv.FormatInt(n.Add(1)%int64(o.keys), 10), Content: value})
			return err
		},
		"config-get": func(ctx context.Context, _ int) error {
			_, err := cfg.GetConfig(ctx, &pb.GetConfigRequest{Namespace: g.namespace, Group: g.group,
				DataId: o.service + "-" + strconv.Itoa(rand.IntN(o.keys))})
			return err
		},
	}
	ops["mixed"] = func(ctx context.Context, w int) error {
		switch x := rand.IntN(10); {
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
	op := ops[workload]
	rec := &recorder{started: time.Now()}
	stop := make(chan struct{})
	var pw sync.WaitGroup
	pw.Go(func() { progress(stderr, workload, rec, stop) })
	// Operations are not cut off at the end: the run stops issuing new ones
	// and lets those in flight finish.
	end := rec.started.Add(o.duration)
	var issued atomic.Int64
	var wg sync.WaitGroup
	for w := range o.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				if o.total > 0 && issued.Add(1) > o.total || o.total <= 0 && time.Now().After(end) {
					return
				}
				start := time.Now()
				err := op(ctx, w)
				rec.add(time.Since(start), err)
			}
		})
	}
	wg.Wait()
	close(stop)
	pw.Wait()
	if err := ctx.Err(); err != nil {
		return BenchResult{}, err
	}
	return rec.result(workload, o.concurrency), nil
}

// watchFanout opens o.subscribers watches of one service, then makes
// o.updates changes one at a time, each timed from the start of its write
// to its arrival at every subscriber.
func watchFanout(ctx context.Context, stderr io.Writer, reg pb.RegistryServiceClient, g *globals, o benchOpts) (BenchResult, error) {
	name := o.service + "-watch"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	arrivals := make(chan string, o.subscribers*4) // the "seq" metadata of each instance delivered
	var ready sync.WaitGroup
	errc := make(chan error, o.subscribers)
	for range o.subscribers {
		stream, err := reg.WatchInstances(ctx, &pb.WatchInstancesRequest{Namespace: g.namespace, Group: g.group, Service: name})
		if err != nil {
			return BenchResult{}, err
		}
		ready.Add(1)
		go func() {
			first := true
			for {
				ev, err := stream.Recv()
				if err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					if first {
						ready.Done()
					}
					return
				}
				if first {
					first = false
					ready.Done()
					continue // the initial RESET
				}
				for _, in := range append([]*pb.Instance{ev.GetInstance()}, ev.GetInstances()...) {
					if seq, ok := in.GetMetadata()["seq"]; ok {
						arrivals <- seq
					}
				}
			}
		}()
	}
	ready.Wait()
	select {
	case err := <-errc:
		return BenchResult{}, fmt.Errorf("subscriber: %w", err)
	default:
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	rec := &recorder{started: time.Now()}
	stop := make(chan struct{})
	var pw sync.WaitGroup
	pw.Go(func() { progress(stderr, "watch-fanout", rec, stop) })
	defer func() { close(stop); pw.Wait() }()
	for u := range o.updates {
		seq := strconv.Itoa(u)
		start := time.Now()
		if _, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Namespace: g.namespace, Group: g.group, Service: name,
			Ip: "10.255.0.1", Port: 80, Metadata: map[string]string{"seq": seq}}); err != nil {
			return BenchResult{}, err
		}
		got := 0
		timeout := time.After(30 * time.Second)
		for got < o.subscribers {
			select {
			case got1 := <-arrivals:
				if got1 == seq {
					got++
					rec.add(time.Since(start), nil)
				}
			case err := <-errc:
				return BenchResult{}, fmt.Errorf("subscriber: %w", err)
			case <-timeout:
				return BenchResult{}, fmt.Errorf("update %d reached %d of %d subscribers in 30s", u, got, o.subscribers)
			}
		}
	}
	res := rec.result("watch-fanout", 1)
	res.Subscribers, res.Deliveries = o.subscribers, res.Ops
	res.Ops = int64(o.updates)
	res.OpsPerSec = float64(o.updates) / res.Seconds
	if o.local != "" && after.HeapInuse > before.HeapInuse {
		res.HeapPerSubscriberB = float64(after.HeapInuse-before.HeapInuse) / float64(o.subscribers)
	}
	return res, nil
}

func printBench(w io.Writer, format string, results []BenchResult) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tops\terrors\tops/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.Workload, r.Ops, r.Errors, r.OpsPerSec, r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Workload == "watch-fanout" {
			fmt.Fprintf(w, "watch-fanout: %d subscribers, %d deliveries; latency is from the start of each write to its arrival at each subscriber", r.Subscribers, r.Deliveries)
			if r.HeapPerSubscriberB > 0 {
				fmt.Fprintf(w, "; heap %.1f KB per subscriber (client and server in one process)", r.HeapPerSubscriberB/1024)
			}
			fmt.Fprintln(w)
		}
		if r.Errors > 0 {
			fmt.Fprintf(w, "%s: %d errors, the first: %s\n", r.Workload, r.Errors, r.FirstError)
		}
	}
	if len(results) > 0 {
		fmt.Fprintf(w, "target: %s, %d concurrent callers\n", results[0].Target, results[0].Concurrency)
	}
	return nil
}

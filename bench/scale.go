package bench

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/ports"
)

// The scale run: how the built-in store's cost grows with what it holds.
// Each size is loaded into a fresh `junction server` process over its gRPC
// API, so that every figure is the server's alone: its resident memory,
// its snapshot, its restart, its latencies.

// ScaleSize is one size of the scale run: persistent instances spread
// evenly across services, and config items.
type ScaleSize struct {
	Instances, Services, Configs int
}

func (z ScaleSize) String() string {
	return fmt.Sprintf("%d/%d/%d", z.Instances, z.Services, z.Configs)
}

// ParseScaleSize reads INSTANCES/SERVICES/CONFIGS ("1000000/100000/100000").
func ParseScaleSize(v string) (ScaleSize, error) {
	f := strings.Split(v, "/")
	if len(f) != 3 {
		return ScaleSize{}, fmt.Errorf("%q is not INSTANCES/SERVICES/CONFIGS", v)
	}
	var n [3]int
	for i, s := range f {
		x, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
		if err != nil || x < 0 {
			return ScaleSize{}, fmt.Errorf("%q: %q is not a count", v, s)
		}
		n[i] = x
	}
	z := ScaleSize{Instances: n[0], Services: n[1], Configs: n[2]}
	if z.Services < 1 || z.Instances < z.Services {
		return ScaleSize{}, fmt.Errorf("%q: at least one service, and at least one instance per service", v)
	}
	return z, nil
}

// DefaultScaleSizes are the sizes: 10k, 100k and 1M instances
// across 1k, 10k and 100k services, with 10k, 10k and 100k config items.
var DefaultScaleSizes = []ScaleSize{{10_000, 1_000, 10_000}, {100_000, 10_000, 10_000}, {1_000_000, 100_000, 100_000}}

// ScaleOptions configure a scale run.
type ScaleOptions struct {
	// Binary is the junction binary the servers run.
	Binary string
	// Baseline, when set, is another junction binary (an earlier build)
	// loaded at each size right before Binary, for ratios from one run.
	Baseline string
	// BaselineName names the baseline in the report (a commit).
	BaselineName string
	// Sizes are loaded one after the other, each into a fresh server; an
	// empty store is measured first, as the baseline.
	Sizes []ScaleSize
	// Concurrency is how many callers load a store.
	Concurrency int
	// Samples is how many registers and instance lists are timed at each
	// size, one at a time.
	Samples int
	// Startups is how many starts of an empty store are timed.
	Startups int
	// ValueSize is each config item's size in bytes.
	ValueSize int
	// Fanouts are the watch fan-out sizes: subscribers of one service
	// over one gateway, each on a fresh server, Updates changes each.
	Fanouts []int
	Updates int
	// WatchedServices, when above 0, is how many services are watched at
	// once, by Watchers subscribers each, on each of WatchedStores, each
	// service written once a second for WatchedDuration.
	WatchedServices, Watchers int
	WatchedStores             []string
	WatchedDuration           time.Duration
	// CatchUps are the sizes a 3-node cluster is loaded with before a new
	// node joins it, its catch-up timed.
	CatchUps []ScaleSize
	// Progress receives a line every few seconds.
	Progress io.Writer
}

// ScalePoint is what one size measured.
type ScalePoint struct {
	Size ScaleSize
	// LoadSeconds is how long loading took, at Concurrency callers.
	LoadSeconds float64
	// RSS is the server's resident memory: empty, with the instances, and
	// with the configs too; Heap the heap in use (after a collection: live objects and their spans) at the
	// same points.
	RSSEmpty, RSSInstances, RSSLoaded    uint64
	HeapEmpty, HeapInstances, HeapLoaded uint64
	// SnapshotBytes and SnapshotSeconds are a full snapshot's (GET
	// /v1/snapshot, what `junction snapshot save` writes).
	SnapshotBytes   int64
	SnapshotSeconds float64
	// DataBytes is the data directory's size once loaded.
	DataBytes int64
	// RestartSeconds is from the restarted process's start to /readyz,
	// from the snapshot and the log's tail.
	RestartSeconds float64
	// RegisterP99 and ListP99 are in milliseconds: one register, and one
	// list of a service's instances, at a time.
	RegisterP50, RegisterP99, ListP50, ListP99 float64
	// ServicesSeconds is how long paging through every service took, in
	// ServicesPages pages of 1000.
	ServicesSeconds float64
	ServicesPages   int
}

// PerInstance is the resident memory each instance costs.
func (p ScalePoint) PerInstance() float64 {
	if p.Size.Instances == 0 {
		return 0
	}
	return float64(int64(p.RSSInstances)-int64(p.RSSEmpty)) / float64(p.Size.Instances)
}

// HeapPerInstance is the heap in use (after a collection) each instance costs.
func (p ScalePoint) HeapPerInstance() float64 {
	if p.Size.Instances == 0 {
		return 0
	}
	return float64(int64(p.HeapInstances)-int64(p.HeapEmpty)) / float64(p.Size.Instances)
}

// PerConfig is the resident memory each config item costs.
func (p ScalePoint) PerConfig() float64 {
	if p.Size.Configs == 0 {
		return 0
	}
	return float64(int64(p.RSSLoaded)-int64(p.RSSInstances)) / float64(p.Size.Configs)
}

// ScaleResult is a scale run's figures.
type ScaleResult struct {
	Options ScaleOptions
	// Startups are the seconds from an empty store's process start to
	// /readyz.
	Startups []float64
	// Points are the sizes', the empty store first.
	Points []ScalePoint
	// Fanout are the watch fan-out sizes'.
	Fanout []FanoutPoint
	// BaselineStartups, BaselinePoints and BaselineFanout are the
	// baseline binary's.
	BaselineStartups []float64
	BaselinePoints   []ScalePoint
	BaselineFanout   []FanoutPoint
	// MuxFanout are the fan-out sizes' on one gateway with the subscribers
	// carried by WatchService streams (Multiplexed), for this build only:
	// the baseline has no WatchService.
	MuxFanout []FanoutPoint
	// SpreadFanout and BaselineSpreadFanout are the fan-out sizes' over
	// two gateways of one store (nodes of a 3-node cluster).
	SpreadFanout, BaselineSpreadFanout []FanoutPoint
	// Watched and BaselineWatched are the many-services-watched runs',
	// one per store.
	Watched, BaselineWatched []WatchedPoint
	// CatchUp and BaselineCatchUp are the catch-up sizes'.
	CatchUp, BaselineCatchUp []CatchUpPoint
}

// FanoutPoint is what one watch fan-out size measured: the latency from
// the start of each write to its arrival at each subscriber (p50, p99;
// Max is the slowest last delivery), and the server's memory in use
// (heap and stacks, after a collection) per subscriber.
type FanoutPoint struct {
	Subscribers           int
	P50, P99, Max         float64 // milliseconds
	ServerBytesPerWatcher float64
}

// RunScale runs the scale run in dir.
func RunScale(ctx context.Context, dir string, o ScaleOptions) (ScaleResult, error) {
	if o.Concurrency < 1 || o.Samples < 1 || o.Startups < 1 {
		return ScaleResult{}, errors.New("concurrency, samples and startups must be at least 1")
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	res := ScaleResult{Options: o}
	startups := func(bin, name string) ([]float64, error) {
		var out []float64
		for i := range o.Startups {
			p, took, err := startScaleServer(ctx, bin, filepath.Join(dir, name+"-startup-"+strconv.Itoa(i)))
			if err != nil {
				return nil, err
			}
			p.stop()
			out = append(out, took.Seconds())
		}
		fmt.Fprintf(progress, "%s: empty store ready in %s (median of %d starts)\n", name, secs(median(out)), len(out))
		return out, nil
	}
	// builds are the binaries each measure runs with, side by side: the
	// baseline's first, when there is one.
	type build struct {
		bin, prefix string
		startups    *[]float64
		points      *[]ScalePoint
		fanout      *[]FanoutPoint
		spread      *[]FanoutPoint
		watched     *[]WatchedPoint
		catchUp     *[]CatchUpPoint
	}
	builds := []build{{o.Binary, "", &res.Startups, &res.Points, &res.Fanout, &res.SpreadFanout, &res.Watched, &res.CatchUp}}
	if o.Baseline != "" {
		builds = append([]build{{o.Baseline, "baseline-", &res.BaselineStartups, &res.BaselinePoints, &res.BaselineFanout,
			&res.BaselineSpreadFanout, &res.BaselineWatched, &res.BaselineCatchUp}}, builds...)
	}
	for _, b := range builds {
		out, err := startups(b.bin, cmp.Or(strings.TrimSuffix(b.prefix, "-"), "this build"))
		if err != nil {
			return res, err
		}
		*b.startups = out
	}
	for i, z := range append([]ScaleSize{{}}, o.Sizes...) {
		for _, b := range builds {
			p, err := scalePoint(ctx, b.bin, filepath.Join(dir, b.prefix+"size-"+strconv.Itoa(i)), z, o, progress)
			if err != nil {
				return res, fmt.Errorf("%s%s: %w", b.prefix, z, err)
			}
			*b.points = append(*b.points, p)
		}
	}
	for i, n := range o.Fanouts {
		for _, b := range builds {
			p, err := fanoutPoint(ctx, b.bin, filepath.Join(dir, b.prefix+"fanout-"+strconv.Itoa(i)), n, false, o, progress)
			if err != nil {
				return res, fmt.Errorf("%sfan-out to %d: %w", b.prefix, n, err)
			}
			*b.fanout = append(*b.fanout, p)
			if b.prefix == "" {
				p, err := fanoutPoint(ctx, b.bin, filepath.Join(dir, "mux-fanout-"+strconv.Itoa(i)), n, true, o, progress)
				if err != nil {
					return res, fmt.Errorf("fan-out to %d over multiplexed streams: %w", n, err)
				}
				res.MuxFanout = append(res.MuxFanout, p)
			}
			p, err = spreadFanoutPoint(ctx, b.bin, filepath.Join(dir, b.prefix+"spread-fanout-"+strconv.Itoa(i)), n, o, progress)
			if err != nil {
				return res, fmt.Errorf("%sfan-out to %d over two gateways: %w", b.prefix, n, err)
			}
			*b.spread = append(*b.spread, p)
		}
	}
	for _, store := range o.WatchedStores {
		if o.WatchedServices == 0 {
			break
		}
		for _, b := range builds {
			p, err := watchedPoint(ctx, b.bin, filepath.Join(dir, b.prefix+"watched-"+store), store, o, progress)
			if err != nil {
				return res, fmt.Errorf("%s%d services watched over %s: %w", b.prefix, o.WatchedServices, store, err)
			}
			*b.watched = append(*b.watched, p)
		}
	}
	for i, z := range o.CatchUps {
		for _, b := range builds {
			p, err := catchUpPoint(ctx, b.bin, filepath.Join(dir, b.prefix+"catch-up-"+strconv.Itoa(i)), z, o, progress)
			if err != nil {
				return res, fmt.Errorf("%scatch-up at %s: %w", b.prefix, z, err)
			}
			*b.catchUp = append(*b.catchUp, p)
		}
	}
	return res, nil
}

// fanoutPoint runs the watch-fanout workload against a fresh server: n
// subscribers of one service on one connection, each a stream of its own
// or, with mux, a watch of a multiplexed stream.
func fanoutPoint(ctx context.Context, bin, dir string, n int, mux bool, o ScaleOptions, progress io.Writer) (FanoutPoint, error) {
	srv, _, err := startScaleServer(ctx, bin, dir)
	if err != nil {
		return FanoutPoint{}, err
	}
	defer srv.stop()
	p, err := measureFanout(ctx, []*scaleServer{srv}, n, mux, o)
	if err != nil {
		return p, err
	}
	how := ""
	if mux {
		how = fmt.Sprintf(" (%d watches a stream)", WatchesPerStream)
	}
	fmt.Fprintf(progress, "%s, fan-out to %d%s: p99 %.1f ms, %.0f B per subscriber in the server\n", filepath.Base(bin), n, how, p.P99, p.ServerBytesPerWatcher)
	return p, nil
}

// spreadFanoutPoint runs the watch-fanout workload over two gateways of
// one store: a fresh 3-node cluster, half the subscribers on each of two
// of its nodes, the changes made through the first.
func spreadFanoutPoint(ctx context.Context, bin, dir string, n int, o ScaleOptions, progress io.Writer) (FanoutPoint, error) {
	c, err := startScaleCluster(ctx, bin, dir)
	if err != nil {
		return FanoutPoint{}, err
	}
	defer c.stop()
	p, err := measureFanout(ctx, c.nodes[:2], n, false, o)
	if err != nil {
		return p, err
	}
	fmt.Fprintf(progress, "%s, fan-out to %d over two gateways: p99 %.1f ms, %.0f B per subscriber in the servers\n", filepath.Base(bin), n, p.P99, p.ServerBytesPerWatcher)
	return p, nil
}

// measureFanout attaches n subscribers of one service spread evenly over
// the servers, one connection to each (with mux, as watches of
// multiplexed streams), makes the changes through the first, and measures
// delivery and the servers' memory in use together.
func measureFanout(ctx context.Context, servers []*scaleServer, n int, mux bool, o ScaleOptions) (FanoutPoint, error) {
	var gws spread
	for _, srv := range servers {
		cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return FanoutPoint{}, err
		}
		defer cc.Close()
		var f Fanout = NewGateway(cc, "", "")
		if mux {
			f = Multiplexed{f.(*Gateway)}
		}
		gws = append(gws, f)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the subscribers' streams
	r, err := watchFanout(ctx, gws, Options{Subscribers: n, Updates: o.Updates, Service: "fanout",
		ServerMemory: func(ctx context.Context) (uint64, error) {
			var sum uint64
			for _, srv := range servers {
				heap, stack, err := srv.inUse(ctx)
				if err != nil {
					return 0, err
				}
				sum += heap + stack
			}
			return sum, nil
		}})
	if err != nil {
		return FanoutPoint{}, err
	}
	return FanoutPoint{Subscribers: n, P50: r.P50Ms, P99: r.P99Ms, Max: r.MaxMs, ServerBytesPerWatcher: r.MemPerSubscriberB}, nil
}

// spread is a Fanout over gateways of one store: the subscribers split
// evenly between them, the changes made through the first.
type spread []Fanout

func (s spread) Subscribe(ctx context.Context, o Options, n int, arrived func(seq string)) error {
	for i, g := range s {
		k := n / len(s)
		if i < n%len(s) {
			k++
		}
		if err := g.Subscribe(ctx, o, k, arrived); err != nil {
			return err
		}
	}
	return nil
}

// Update makes the change through the first gateway. A cluster on two
// busy cores may lose its leader under tens of thousands of streams: the
// change is made again, as a client would, while the cluster elects one
// (up to 30 s), and its latency counts the wait.
func (s spread) Update(ctx context.Context, o Options, seq string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s[0].Update(ctx, o, seq)
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func scalePoint(ctx context.Context, bin, dir string, z ScaleSize, o ScaleOptions, progress io.Writer) (ScalePoint, error) {
	pt := ScalePoint{Size: z}
	srv, _, err := startScaleServer(ctx, bin, dir)
	if err != nil {
		return pt, err
	}
	defer srv.stop()
	if pt.RSSEmpty, pt.HeapEmpty, err = srv.memory(ctx); err != nil {
		return pt, err
	}
	cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return pt, err
	}
	defer cc.Close()
	reg, cfgs := pb.NewRegistryServiceClient(cc), pb.NewConfigServiceClient(cc)

	start := time.Now()
	perService := max(z.Instances/max(z.Services, 1), 1)
	if err := loadInstances(ctx, reg, z, o, progress); err != nil {
		return pt, err
	}
	pt.LoadSeconds = time.Since(start).Seconds()
	if pt.RSSInstances, pt.HeapInstances, err = srv.memory(ctx); err != nil {
		return pt, err
	}
	start = time.Now()
	if err := loadConfigs(ctx, cfgs, z, o, progress); err != nil {
		return pt, err
	}
	pt.LoadSeconds += time.Since(start).Seconds()
	if pt.RSSLoaded, pt.HeapLoaded, err = srv.memory(ctx); err != nil {
		return pt, err
	}

	// One at a time: what a caller waits, not what a crowd gets through.
	var regs, lists []float64
	for k := range o.Samples {
		t := time.Now()
		if _, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: "scale-probe", Ip: ip(int64(k)), Port: 81}); err != nil {
			return pt, fmt.Errorf("probe register: %w", err)
		}
		regs = append(regs, msSince(t))
		if z.Services > 0 {
			svc := scaleService((k * 7919) % z.Services)
			t = time.Now()
			r, err := reg.ListInstances(ctx, &pb.ListInstancesRequest{Service: svc})
			if err != nil {
				return pt, fmt.Errorf("probe list: %w", err)
			}
			lists = append(lists, msSince(t))
			if len(r.GetInstances()) != perService && z.Instances%z.Services == 0 {
				return pt, fmt.Errorf("%s has %d instances, want %d", svc, len(r.GetInstances()), perService)
			}
		}
	}
	pt.RegisterP50, pt.RegisterP99 = percentile(regs, 0.5), percentile(regs, 0.99)
	pt.ListP50, pt.ListP99 = percentile(lists, 0.5), percentile(lists, 0.99)

	t := time.Now()
	services := 0
	for token := ""; ; {
		r, err := reg.ListServices(ctx, &pb.ListServicesRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return pt, fmt.Errorf("list services: %w", err)
		}
		pt.ServicesPages++
		services += len(r.GetServices())
		if token = r.GetNextPageToken(); token == "" {
			break
		}
	}
	pt.ServicesSeconds = time.Since(t).Seconds()
	if want := z.Services + 1; services != want { // and scale-probe
		return pt, fmt.Errorf("paged through %d services, want %d", services, want)
	}

	t = time.Now()
	if pt.SnapshotBytes, err = srv.snapshot(ctx); err != nil {
		return pt, err
	}
	pt.SnapshotSeconds = time.Since(t).Seconds()

	srv.stop()
	pt.DataBytes = dirSize(dir)
	again, took, err := startScaleServer(ctx, bin, dir)
	if err != nil {
		return pt, fmt.Errorf("restart: %w", err)
	}
	defer again.stop()
	pt.RestartSeconds = took.Seconds()
	// What was loaded is there after the restart.
	if err := checkReplica(ctx, again.addr, z); err != nil {
		return pt, fmt.Errorf("after the restart: %w", err)
	}
	fmt.Fprintf(progress, "%s, %s: loaded in %s, %.0f B per instance resident, restart %s, register p99 %.2f ms\n",
		filepath.Base(bin), z, secs(pt.LoadSeconds), pt.PerInstance(), secs(pt.RestartSeconds), pt.RegisterP99)
	return pt, nil
}

func scaleService(i int) string { return "scale-" + strconv.Itoa(i) }

func scaleConfig(i int) string { return "scale-" + strconv.Itoa(i) + ".txt" }

// loadInstances registers a size's persistent instances, spread evenly
// across its services, from Concurrency callers.
func loadInstances(ctx context.Context, reg pb.RegistryServiceClient, z ScaleSize, o ScaleOptions, progress io.Writer) error {
	perService := max(z.Instances/max(z.Services, 1), 1)
	return parallel(ctx, z.Instances, o.Concurrency, progress, "instances", func(ctx context.Context, k int) error {
		_, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: scaleService(k / perService), Ip: ip(int64(k)), Port: 80})
		return err
	})
}

// loadConfigs puts a size's config items, of ValueSize bytes each.
func loadConfigs(ctx context.Context, cfgs pb.ConfigServiceClient, z ScaleSize, o ScaleOptions, progress io.Writer) error {
	value := strings.Repeat("v", o.ValueSize)
	return parallel(ctx, z.Configs, o.Concurrency, progress, "configs", func(ctx context.Context, k int) error {
		_, err := cfgs.PutConfig(ctx, &pb.PutConfigRequest{DataId: scaleConfig(k), Content: value})
		return err
	})
}

// parallel calls f for 0..n-1 from c callers, with a progress line every
// five seconds.
func parallel(ctx context.Context, n, c int, progress io.Writer, what string, f func(context.Context, int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, k); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				done.Add(1)
			}
		})
	}
	stop := make(chan struct{})
	go func() {
		start := time.Now()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				d := done.Load()
				fmt.Fprintf(progress, "  %s: %d/%d (%.0f/s)\n", what, d, n, float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	wg.Wait()
	close(stop)
	return first
}

// scaleServer is a `junction server` process on a data dir.
type scaleServer struct {
	cmd    *exec.Cmd
	addr   string
	exited chan error
	once   sync.Once
}

// startScaleServer starts a server on dir and returns once it is ready,
// with the time that took from the process's start.
func startScaleServer(ctx context.Context, bin, dir string) (*scaleServer, time.Duration, error) {
	addr, err := ports.Addr()
	if err != nil {
		return nil, 0, err
	}
	return launchScaleServer(ctx, bin, dir, addr, "--data-dir", dir)
}

// launchScaleServer starts a server listening on addr, with its store's
// arguments (its data dir, a cluster node's flags, a backend URL), logging
// to dir.log, and returns once it is ready, with the time that took from
// the process's start.
func launchScaleServer(ctx context.Context, bin, dir, addr string, extra ...string) (*scaleServer, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, 0, err
	}
	logPath := dir + ".log"
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, 0, err
	}
	defer log.Close()
	cmd := exec.Command(bin, append([]string{"server", "--listen", addr, "--pprof", "--log-level", "warn"}, extra...)...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	s := &scaleServer{cmd: cmd, addr: addr, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(readyTimeout)
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, time.Since(start), nil
			}
		}
		select {
		case err := <-s.exited:
			return nil, 0, fmt.Errorf("junction server exited before it was ready (%v): see %s", err, logPath)
		case <-ctx.Done():
			s.stop()
			return nil, 0, ctx.Err()
		case <-deadline:
			s.stop()
			return nil, 0, fmt.Errorf("junction server was not ready within %v: see %s", readyTimeout, logPath)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// readyTimeout bounds a server's start, from a large snapshot too.
const readyTimeout = 5 * time.Minute

// stop ends the server as systemd would: SIGTERM, then SIGKILL after a
// minute.
func (s *scaleServer) stop() {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(time.Minute):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
}

// memory returns the server's resident memory and its heap in use, after a
// collection.
func (s *scaleServer) memory(ctx context.Context) (rss, heap uint64, err error) {
	heap, _, err = s.inUse(ctx)
	return residentBytes(s.cmd.Process.Pid), heap, err
}

// inUse returns the server's heap and goroutine stacks in use, after a
// collection (asked for through /debug/pprof/heap?gc=1).
func (s *scaleServer) inUse(ctx context.Context) (heap, stack uint64, err error) {
	if err := s.get(ctx, "/debug/pprof/heap?gc=1", io.Discard); err != nil {
		return 0, 0, err
	}
	m, err := s.metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	return uint64(m["go_memstats_heap_inuse_bytes"]), uint64(m["go_memstats_stack_inuse_bytes"]), nil
}

// metrics reads the server's unlabelled metrics from its /metrics.
func (s *scaleServer) metrics(ctx context.Context) (map[string]float64, error) {
	var text strings.Builder
	if err := s.get(ctx, "/metrics", &text); err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for line := range strings.Lines(text.String()) {
		name, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			m[name] = f
		}
	}
	return m, nil
}

// snapshot reads a full snapshot, as `junction snapshot save` does, and
// returns its size.
func (s *scaleServer) snapshot(ctx context.Context) (int64, error) {
	var n countWriter
	err := s.get(ctx, "/v1/snapshot", &n)
	return int64(n), err
}

func (s *scaleServer) get(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

type countWriter int64

func (c *countWriter) Write(b []byte) (int, error) {
	*c += countWriter(len(b))
	return len(b), nil
}

// residentBytes is a process's resident memory (VmRSS), 0 where /proc
// does not say.
func residentBytes(pid int) uint64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), "VmRSS:"); found {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// percentile is v's q-quantile by the nearest rank: of 1000 samples, the
// 990th smallest is the p99.
func percentile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	rank := int(math.Ceil(q * float64(len(v))))
	return v[min(max(rank, 1), len(v))-1]
}

func median(v []float64) float64 { return percentile(v, 0.5) }

func secs(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.1f s", s)
}

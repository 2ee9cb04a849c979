package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/conformance/servers"
)

// WatchedPoint is what many services watched at once cost a gateway: each
// of Services services has Watchers subscribers, and each service is
// written once a second.
type WatchedPoint struct {
	// Store is the store under the gateway: raft (the built-in store, in
	// the gateway's process) or etcd (a server in the bench's process).
	Store              string
	Services, Watchers int
	// StoreWatches is the gateway's watches on its store once every
	// subscriber is attached (junction_watch_topics): one per service
	// when the subscribers of a service share one.
	StoreWatches int
	// BytesPerSubscriber is the gateway's memory in use (heap and stacks,
	// after a collection) per subscriber attached.
	BytesPerSubscriber float64
	// WritesPerSec is the writes made per second, against a target of
	// Services; CPU is the gateway process's CPU time per second while
	// they were delivered (1 is one core).
	WritesPerSec, CPU float64
	// Seconds is how long the writes ran.
	Seconds float64
	// P50 and P99 run from the start of a write to its arrival at each of
	// its service's subscribers, in milliseconds; Deliveries counts them.
	P50, P99   float64
	Deliveries int64
}

// watchedPoint starts a gateway over store, registers one instance in
// each of o.WatchedServices services, attaches o.Watchers subscribers to
// each, then rewrites every service's instance once a second for
// o.WatchedDuration.
func watchedPoint(ctx context.Context, bin, dir, store string, o ScaleOptions, progress io.Writer) (WatchedPoint, error) {
	pt := WatchedPoint{Store: store, Services: o.WatchedServices, Watchers: o.Watchers}
	args := []string{"--data-dir", dir}
	if store == "etcd" {
		etcd, err := servers.StartEtcd(dir + "-etcd")
		if err != nil {
			return pt, err
		}
		defer etcd.Stop()
		args = []string{"--backend", "etcd://" + etcd.Addr}
	}
	addr, _, err := addrPair()
	if err != nil {
		return pt, err
	}
	srv, _, err := launchScaleServer(ctx, bin, dir, addr, args...)
	if err != nil {
		return pt, err
	}
	defer srv.stop()
	cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return pt, err
	}
	defer cc.Close()
	reg := pb.NewRegistryServiceClient(cc)
	write := func(ctx context.Context, k int, seq string) error {
		_, err := reg.RegisterInstance(ctx, &pb.RegisterInstanceRequest{Service: watchedService(k), Ip: ip(int64(k)), Port: 80,
			Metadata: map[string]string{"seq": seq}})
		return err
	}
	n := o.WatchedServices
	if err := parallel(ctx, n, o.Concurrency, progress, "watched services", func(ctx context.Context, k int) error { return write(ctx, k, "-") }); err != nil {
		return pt, err
	}
	before, err := srvInUse(ctx, srv)
	if err != nil {
		return pt, err
	}

	// Every arrival of a write labelled seq at one of service k's
	// subscribers is timed from the write's start.
	var mu sync.Mutex
	started := map[[2]int]time.Time{} // service, round
	var lat []float64
	wctx, cancel := context.WithCancel(ctx)
	defer cancel() // the subscribers' streams
	var attach []pb.RegistryService_WatchInstancesClient
	for k := range n {
		for range o.Watchers {
			s, err := reg.WatchInstances(wctx, &pb.WatchInstancesRequest{Service: watchedService(k)})
			if err != nil {
				return pt, fmt.Errorf("watch %s: %w", watchedService(k), err)
			}
			attach = append(attach, s)
		}
	}
	for i, s := range attach {
		if _, err := s.Recv(); err != nil { // the RESET: attached
			return pt, fmt.Errorf("watch %s: %w", watchedService(i/o.Watchers), err)
		}
		k := i / o.Watchers
		go follow(s, func(seq string) {
			round, err := strconv.Atoi(seq)
			if err != nil {
				return
			}
			mu.Lock()
			if t, ok := started[[2]int{k, round}]; ok {
				lat = append(lat, msSince(t))
			}
			mu.Unlock()
		})
	}
	after, err := srvInUse(ctx, srv)
	if err != nil {
		return pt, err
	}
	if subs := n * o.Watchers; after > before {
		pt.BytesPerSubscriber = float64(after-before) / float64(subs)
	}
	m, err := srv.metrics(ctx)
	if err != nil {
		return pt, err
	}
	pt.StoreWatches = int(m["junction_watch_topics"])
	cpu0 := m["process_cpu_seconds_total"]

	// One write per service per second: round r's writes are spread over
	// its second, from Concurrency callers.
	start := time.Now()
	var writes int64
	var werr error
	for r := 0; time.Since(start) < o.WatchedDuration; r++ {
		if err := ctx.Err(); err != nil {
			return pt, err
		}
		round := time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		var once sync.Once
		for range 4 * o.Concurrency { // enough callers that the rate is the store's, not theirs
			wg.Go(func() {
				for {
					k := int(next.Add(1) - 1)
					if k >= n || ctx.Err() != nil {
						return
					}
					if due := round.Add(time.Duration(k) * time.Second / time.Duration(n)); time.Until(due) > 0 {
						time.Sleep(time.Until(due))
					}
					mu.Lock()
					started[[2]int{k, r}] = time.Now()
					mu.Unlock()
					if err := write(ctx, k, strconv.Itoa(r)); err != nil {
						once.Do(func() { werr = err })
						return
					}
				}
			})
		}
		wg.Wait()
		if werr != nil {
			return pt, fmt.Errorf("write: %w", werr)
		}
		writes += int64(n)
		if rest := time.Until(round.Add(time.Second)); rest > 0 {
			time.Sleep(rest)
		}
	}
	pt.Seconds = time.Since(start).Seconds()
	pt.WritesPerSec = float64(writes) / pt.Seconds
	// The last round's deliveries, for up to 10 s.
	want := writes * int64(o.Watchers)
	for wait := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		arrived := int64(len(lat))
		mu.Unlock()
		if arrived >= want || time.Since(wait) > 10*time.Second {
			break
		}
	}
	mu.Lock()
	got := slices.Clone(lat)
	mu.Unlock()
	if m, err = srv.metrics(ctx); err != nil {
		return pt, err
	}
	pt.CPU = (m["process_cpu_seconds_total"] - cpu0) / time.Since(start).Seconds()
	pt.Deliveries = int64(len(got))
	if pt.Deliveries < want {
		return pt, fmt.Errorf("%d of %d deliveries arrived", pt.Deliveries, want)
	}
	pt.P50, pt.P99 = percentile(got, 0.5), percentile(got, 0.99)
	fmt.Fprintf(progress, "%s over %s: %d services x %d subscribers, %.0f writes/s, %d store watches, CPU %.2f, p99 %.1f ms, %.0f B per subscriber\n",
		filepath.Base(bin), store, n, o.Watchers, pt.WritesPerSec, pt.StoreWatches, pt.CPU, pt.P99, pt.BytesPerSubscriber)
	return pt, nil
}

func watchedService(k int) string { return "watched-" + strconv.Itoa(k) }

func srvInUse(ctx context.Context, srv *scaleServer) (uint64, error) {
	heap, stack, err := srv.inUse(ctx)
	return heap + stack, err
}

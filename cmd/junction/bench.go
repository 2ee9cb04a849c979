package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/junctionhq/junction/bench"
	"github.com/junctionhq/junction/model"
)

func newBenchCmd(g *globals) *cobra.Command {
	var (
		o          bench.SuiteOptions
		local      []string
		report     string
		section    string
		cpuProfile string
		memProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench WORKLOAD...",
		Short: "Load a Junction server, or stores side by side, and report throughput and latency",
		Long: `Runs workloads against a Junction server (--addr), or against gateways it starts in
process over stores (--local): raft (a temporary built-in store), raft-3 (a three-node built-in
store cluster in process, loaded through its leader), etcd (embedded), zookeeper
and consul (started as child processes, as the conformance runner does), or a backend URL
for a store you run (etcd://10.0.0.1:2379). Several stores run one after the other, side
by side in one report.

--via chooses the paths a workload takes to each --local store: gateway (Junction's gRPC
API), auth (the same with access control on: a second gateway over the store, called with
a token holding a policy; the ACL of a new store is bootstrapped for it), driver (Junction's driver called in process: the gateway's cost without gRPC), client
(the store's own Go client doing the same work: clientv3, go-zookeeper, consul/api). Ratios
between them show what each layer costs.

Workloads:
  register      register instances, each caller under its own session (--keys distinct instances)
  heartbeat     keep --keys sessions alive
  instances     list a service of 10 instances (a linearizable read; --stale: a cached one)
  config-put    write --keys configs of --value-size bytes
  config-get    read --keys configs (linearizable; --stale: cached)
  watch-fanout  --subscribers watchers of one service, --updates changes: delivery latency from the
                start of each write to its arrival at each subscriber, and the gateway's memory
                (heap and stacks) per subscriber (--addr: from its /metrics; --local: this
                process, subscribers included)
  mixed         60% instances, 20% config-get, 10% register, 10% config-put
  all           every workload above, one after the other

A progress line goes to stderr each second; the table (or -o json) to stdout. --report FILE
rewrites the generated section of a Markdown file (make bench: docs/benchmarks.md).`,
		Example: `  junction bench all --local raft -d 5s
  junction bench register config-get --local raft,etcd,zookeeper,consul --via gateway,driver,client
  junction --addr 10.0.0.5:7480 bench instances -c 64 -d 30s`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if g.output != "table" && g.output != "json" {
				return model.Invalid("output", "%q is not table or json", g.output)
			}
			o.Workloads = args
			if len(args) == 1 && args[0] == "all" {
				o.Workloads = bench.Workloads
			}
			for _, w := range o.Workloads {
				if !slices.Contains(bench.Workloads, w) {
					return model.Invalid("workload", "%q is not one of %s or all", w, strings.Join(bench.Workloads, ", "))
				}
			}
			for _, p := range o.Paths {
				if !slices.Contains(bench.Paths, p) {
					return model.Invalid("via", "%q is not one of %s", p, strings.Join(bench.Paths, ", "))
				}
			}
			if o.Service == "" {
				o.Service = "bench-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
			}
			if err := o.Validate(); err != nil {
				return model.Invalid("options", "%v", err)
			}
			if o.ValueSize > model.DefaultMaxContentSize {
				return model.Invalid("value-size", "%d is over the limit of %d", o.ValueSize, model.DefaultMaxContentSize)
			}
			if len(local) == 0 && (report != "" || !slices.Equal(o.Paths, []string{"gateway"})) {
				return model.Invalid("local", "--report and --via auth/driver/client need --local stores")
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if memProfile != "" {
				defer func() {
					if werr := writeHeapProfile(memProfile); err == nil {
						err = werr
					}
				}()
			}
			ctx := cmd.Context()
			o.Progress = cmd.ErrOrStderr()
			var results []bench.Result
			var stores []*bench.Store
			if len(local) == 0 {
				conn, err := g.conn()
				if err != nil {
					return err
				}
				defer conn.Close()
				c := bench.NewGateway(conn, g.namespace, g.group)
				o.ServerMemory = bench.MemoryFromMetrics(g.addr)
				for _, w := range o.Workloads {
					r, err := bench.Run(ctx, c, w, o.Options)
					if err != nil {
						return fmt.Errorf("%s: %w", w, err)
					}
					r.Target, r.Path = g.addr, "gateway"
					results = append(results, r)
				}
			} else {
				tmp, err := os.MkdirTemp("", "junction-bench")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				defer func() {
					for _, s := range stores {
						s.Close()
					}
				}()
				for _, l := range local {
					var s *bench.Store
					if strings.Contains(l, "://") {
						s, err = bench.StoreFromURL(l)
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "starting %s\n", l)
						s, err = bench.StartStore(tmp, l)
					}
					if err != nil {
						return fmt.Errorf("%s: %w", l, err)
					}
					stores = append(stores, s)
				}
				o.Log = cmd.ErrOrStderr()
				if results, err = bench.RunSuite(ctx, stores, o); err != nil {
					return err
				}
			}
			if report != "" {
				var md strings.Builder
				if err := bench.Markdown(&md, results, bench.ReportMeta{Command: "junction " + strings.Join(os.Args[1:], " "),
					Stores: stores, Options: o, When: time.Now()}); err != nil {
					return err
				}
				if err := bench.UpdateFile(report, section, []byte(md.String())); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", report)
			}
			return printBench(cmd.OutOrStdout(), g.output, results)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&local, "local", nil, "stores to start gateways over in process, comma-separated: raft, raft-3, etcd, zookeeper, consul or backend URLs (instead of --addr)")
	f.StringSliceVar(&o.Paths, "via", []string{"gateway"}, "paths to each --local store: gateway, auth (the gateway with access control on), driver, client (comma-separated)")
	f.StringVar(&report, "report", "", "rewrite the generated section of this Markdown file with a side-by-side report (needs --local)")
	f.StringVar(&section, "report-section", "", "name of the generated section --report rewrites, for documents holding several runs (default: the main one)")
	f.IntVarP(&o.Concurrency, "concurrency", "c", 16, "concurrent callers")
	f.DurationVarP(&o.Duration, "duration", "d", 10*time.Second, "how long each workload runs")
	f.Int64Var(&o.Total, "total", 0, "stop each workload after this many operations (0: run for --duration)")
	f.IntVar(&o.Keys, "keys", 1000, "key space: distinct instances, sessions or configs")
	f.IntVar(&o.ValueSize, "value-size", 256, "config value size in bytes")
	f.IntVar(&o.Subscribers, "subscribers", 100, "watch-fanout: subscribers")
	f.IntVar(&o.Updates, "updates", 100, "watch-fanout: changes to deliver")
	f.BoolVar(&o.Stale, "stale", false, "instances and config-get make stale reads (served from the nearest replica's memory) instead of linearizable ones")
	f.StringVar(&o.Service, "service", "", "service name the workloads use, and prefix of their config ids (default: a fresh bench-N)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this process (with --local: gateway and load generator) to this file")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile of this process to this file at the end")
	cmd.AddCommand(newBenchScaleCmd())
	return cmd
}

func newBenchScaleCmd() *cobra.Command {
	var (
		o        bench.ScaleOptions
		sizes    []string
		catchUps []string
		fanouts  []string
		report   string
		section  string
		plots    string
	)
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Measure how the built-in store's cost grows with what it holds",
		Long: `Loads a fresh junction server (the built-in store, one node, a child process of this
command) at each size, one after the other, after an empty one, and measures it: resident
memory and heap in use per instance and per config, a full snapshot's size and time, the data
dir, restart to ready from the snapshot and the log's tail, register and instance-list
latency one call at a time, and paging through every service. It first times the start of
an empty store, and ends with watch fan-out (--fanouts subscribers of one service over one
gateway: delivery latency, and the server's memory per subscriber) and a new follower's
catch-up (a 3-node cluster loaded at each of --catch-up-sizes, then a fourth node joins it
with an empty data dir: the time until it has applied everything). Between them it watches
many services at once (--watched-services, each with --watchers subscribers and written once a
second, over each of --watched-stores: the gateway's store watches, CPU, memory and delivery
latency). A size is INSTANCES/SERVICES/CONFIGS: persistent instances spread evenly
across the services, and config items of --value-size bytes.

--report FILE rewrites the scale section of a Markdown file with the tables, and writes the
charts (SVG) into --plots, linked from it (make bench-scale: docs/benchmarks.md).`,
		Example: `  junction bench scale
  junction bench scale --sizes 10000/1000/1000,100000/10000/10000 --samples 200`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Sizes, o.CatchUps = nil, nil
			for _, v := range sizes {
				z, err := bench.ParseScaleSize(v)
				if err != nil {
					return model.Invalid("sizes", "%v", err)
				}
				o.Sizes = append(o.Sizes, z)
			}
			for _, v := range catchUps {
				if v == "none" {
					continue
				}
				z, err := bench.ParseScaleSize(v)
				if err != nil {
					return model.Invalid("catch-up-sizes", "%v", err)
				}
				o.CatchUps = append(o.CatchUps, z)
			}
			if o.Concurrency < 1 || o.Samples < 1 || o.Startups < 1 || o.ValueSize < 1 || o.Updates < 1 {
				return model.Invalid("options", "--concurrency, --samples, --startups, --value-size and --updates must be at least 1")
			}
			o.Fanouts = nil
			for _, v := range fanouts {
				if v == "none" {
					continue
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return model.Invalid("fanouts", "%q is not a number of subscribers", v)
				}
				o.Fanouts = append(o.Fanouts, n)
			}
			switch {
			case o.WatchedServices < 0:
				return model.Invalid("watched-services", "%d is negative", o.WatchedServices)
			case o.WatchedServices > 0 && o.Watchers < 1:
				return model.Invalid("watchers", "%d: at least one subscriber of each service", o.Watchers)
			case o.WatchedServices > 0 && o.WatchedDuration < time.Second:
				return model.Invalid("watched-duration", "%v: at least 1s", o.WatchedDuration)
			}
			for i, st := range o.WatchedStores {
				if st != "raft" && st != "etcd" {
					return model.Invalid("watched-stores", "%q is not raft or etcd", st)
				}
				if slices.Contains(o.WatchedStores[:i], st) {
					return model.Invalid("watched-stores", "%q is named twice", st)
				}
			}
			bin, err := os.Executable()
			if err != nil {
				return fmt.Errorf("this binary, to run the servers: %w", err)
			}
			o.Binary, o.Progress = bin, cmd.ErrOrStderr()
			given := o.Baseline
			if o.Baseline != "" {
				if o.Baseline, err = filepath.Abs(o.Baseline); err != nil {
					return err
				}
				if _, err := os.Stat(o.Baseline); err != nil {
					return model.Invalid("baseline", "%v", err)
				}
				if o.BaselineName == "" {
					o.BaselineName = filepath.Base(o.Baseline)
				}
			}
			tmp, err := os.MkdirTemp("", "junction-scale")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			r, err := bench.RunScale(cmd.Context(), tmp, o)
			if err != nil {
				return err
			}
			var names []string
			if report != "" {
				if plots == "" {
					plots = filepath.Join(filepath.Dir(report), "scale")
				}
				files, err := bench.ScalePlots(plots, r)
				if err != nil {
					return err
				}
				rel, err := filepath.Rel(filepath.Dir(report), plots)
				if err != nil {
					return err
				}
				for _, f := range files {
					names = append(names, filepath.ToSlash(filepath.Join(rel, f)))
				}
			}
			var md strings.Builder
			args := slices.Clone(os.Args[1:])
			for i, a := range args {
				if a == "" {
					args[i] = "''" // as typed
				}
			}
			command := "junction " + strings.Join(args, " ")
			if o.Baseline != "" { // no machine path in a report
				command = strings.ReplaceAll(command, given, "<a build of "+o.BaselineName+">")
			}
			if err := bench.ScaleMarkdown(&md, r, command, time.Now(), names); err != nil {
				return err
			}
			if report != "" {
				if err := bench.UpdateFile(report, section, []byte(md.String())); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s and %d charts in %s\n", report, len(names), plots)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), md.String())
			return err
		},
	}
	f := cmd.Flags()
	def := make([]string, len(bench.DefaultScaleSizes))
	for i, z := range bench.DefaultScaleSizes {
		def[i] = z.String()
	}
	f.StringSliceVar(&sizes, "sizes", def, "sizes to load, INSTANCES/SERVICES/CONFIGS, comma-separated")
	f.IntVarP(&o.Concurrency, "concurrency", "c", 32, "callers loading each store")
	f.IntVar(&o.Samples, "samples", 1000, "registers and instance lists timed at each size, one at a time")
	f.IntVar(&o.Startups, "startups", 10, "starts of an empty store timed")
	f.IntVar(&o.ValueSize, "value-size", 256, "each config item's size in bytes")
	f.StringSliceVar(&fanouts, "fanouts", []string{"1000", "10000", "50000"}, "watch fan-out sizes: subscribers of one service over one gateway (none: skip)")
	f.IntVar(&o.WatchedServices, "watched-services", 10000, "many services watched at once: how many, each written once a second (0: skip)")
	f.IntVar(&o.Watchers, "watchers", 5, "many services watched at once: subscribers of each")
	f.StringSliceVar(&o.WatchedStores, "watched-stores", []string{"raft", "etcd"}, "many services watched at once: the stores under the gateway, raft or etcd")
	f.DurationVar(&o.WatchedDuration, "watched-duration", 10*time.Second, "many services watched at once: how long the writes run")
	f.StringSliceVar(&catchUps, "catch-up-sizes", def, "sizes a 3-node cluster is loaded with before a new node joins it and catches up (none: skip)")
	f.IntVar(&o.Updates, "updates", 20, "watch fan-out: changes delivered at each size")
	f.StringVar(&report, "report", "", "rewrite the scale section of this Markdown file, and write the charts beside it")
	f.StringVar(&section, "report-section", "scale", "name of the generated section --report rewrites")
	f.StringVar(&plots, "plots", "", "directory the charts (SVG) go to (default: scale/ beside --report)")
	f.StringVar(&o.Baseline, "baseline", "", "another junction binary (an earlier build) loaded at each size right before this one, for ratios from one run")
	f.StringVar(&o.BaselineName, "baseline-name", "", "what the report calls the baseline (default: its file name)")
	return cmd
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}

func printBench(w io.Writer, format string, results []bench.Result) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	if err := bench.Text(w, results); err != nil {
		return err
	}
	if len(results) > 0 {
		fmt.Fprintf(w, "%d concurrent callers\n", results[0].Concurrency)
	}
	return nil
}

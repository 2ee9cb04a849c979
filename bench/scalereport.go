package bench

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ScaleGoals are issue 21's goals for the built-in store: figures for the
// benchmark to report against, never assertions.
var ScaleGoals = struct {
	StartupSeconds, BytesPerInstance, RestartSeconds, RegisterRatio float64
}{0.3, 1024, 10, 2}

// ScalePlots writes the scale run's charts into dir and returns their
// file names.
func ScalePlots(dir string, r ScaleResult) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sized := r.Points[1:]
	curve := func(f func(ScalePoint) float64) [][2]float64 {
		var pts [][2]float64
		for _, p := range sized {
			pts = append(pts, [2]float64{float64(p.Size.Instances), f(p)})
		}
		return pts
	}
	charts := map[string]Chart{}
	if len(sized) > 0 {
		empty := r.Points[0]
		charts["scale-memory.svg"] = Chart{Title: "Memory per instance", XLabel: "instances held", YLabel: "bytes per instance",
			Series: []Series{
				{Name: "resident (RSS)", Points: curve(ScalePoint.PerInstance)},
				{Name: "heap in use, after a collection", Points: curve(ScalePoint.HeapPerInstance)},
				{Name: "goal: 1 KB", Level: ScaleGoals.BytesPerInstance},
			}}
		charts["scale-restart.svg"] = Chart{Title: "Restart to ready, and a full snapshot", XLabel: "instances held", YLabel: "seconds",
			Series: []Series{
				{Name: "restart to /readyz", Points: curve(func(p ScalePoint) float64 { return p.RestartSeconds })},
				{Name: "full snapshot (GET /v1/snapshot)", Points: curve(func(p ScalePoint) float64 { return p.SnapshotSeconds })},
				{Name: "paging through every service", Points: curve(func(p ScalePoint) float64 { return p.ServicesSeconds })},
			}}
		charts["scale-latency.svg"] = Chart{Title: "One call at a time: p99", XLabel: "instances held", YLabel: "milliseconds",
			Series: []Series{
				{Name: "register p99", Points: curve(func(p ScalePoint) float64 { return p.RegisterP99 })},
				{Name: "instance list p99", Points: curve(func(p ScalePoint) float64 { return p.ListP99 })},
				{Name: "register p99, empty store", Level: empty.RegisterP99},
				{Name: "goal: 2x the empty store's", Level: ScaleGoals.RegisterRatio * empty.RegisterP99},
			}}
	}
	if len(r.Fanout) > 1 {
		var p99, mem [][2]float64
		for _, f := range r.Fanout {
			p99 = append(p99, [2]float64{float64(f.Subscribers), f.P99})
			mem = append(mem, [2]float64{float64(f.Subscribers), f.ServerBytesPerWatcher / 1024})
		}
		lat := []Series{{Name: "one gateway: write → delivery p99", Points: p99}}
		mems := []Series{{Name: "one gateway: heap and stacks per subscriber", Points: mem}}
		if len(r.MuxFanout) == len(r.Fanout) {
			var p99, mem [][2]float64
			for _, f := range r.MuxFanout {
				p99 = append(p99, [2]float64{float64(f.Subscribers), f.P99})
				mem = append(mem, [2]float64{float64(f.Subscribers), f.ServerBytesPerWatcher / 1024})
			}
			lat = append(lat, Series{Name: "one gateway, multiplexed streams: p99", Points: p99})
			mems = append(mems, Series{Name: "one gateway, multiplexed streams", Points: mem})
		}
		if len(r.SpreadFanout) == len(r.Fanout) {
			var p99, mem [][2]float64
			for _, f := range r.SpreadFanout {
				p99 = append(p99, [2]float64{float64(f.Subscribers), f.P99})
				mem = append(mem, [2]float64{float64(f.Subscribers), f.ServerBytesPerWatcher / 1024})
			}
			lat = append(lat, Series{Name: "two gateways of a 3-node cluster: p99", Points: p99})
			mems = append(mems, Series{Name: "two gateways of a 3-node cluster, together", Points: mem})
		}
		charts["scale-fanout-latency.svg"] = Chart{Title: "Watch fan-out: delivery", XLabel: "subscribers of one service",
			YLabel: "milliseconds", Series: append(lat, Series{Name: "goal: 1 s (one gateway)", Level: 1000})}
		charts["scale-fanout-memory.svg"] = Chart{Title: "Watch fan-out: server memory", XLabel: "subscribers of one service",
			YLabel: "KiB per subscriber", Series: append(mems, Series{Name: "goal: 8 KiB", Level: 8})}
	}
	if len(r.CatchUp) > 1 {
		var ready, caught [][2]float64
		for _, c := range r.CatchUp {
			ready = append(ready, [2]float64{float64(c.Size.Instances), c.ReadySeconds})
			caught = append(caught, [2]float64{float64(c.Size.Instances), c.CatchUpSeconds})
		}
		charts["scale-catchup.svg"] = Chart{Title: "A new follower joins a 3-node cluster", XLabel: "instances held", YLabel: "seconds",
			Series: []Series{
				{Name: "process start → everything applied", Points: caught},
				{Name: "process start → /readyz", Points: ready},
			}}
	}
	var names []string
	for _, name := range slices.Sorted(maps.Keys(charts)) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		err = charts[name].SVG(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	return names, nil
}

// ScaleMarkdown writes the scale run's report: its tables, the goals and
// the charts (plots, links relative to the report).
func ScaleMarkdown(w io.Writer, r ScaleResult, command string, when time.Time, plots []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Generated by `%s` on %s, %s. ", command, when.UTC().Format("2006-01-02"), hardware())
	if len(r.Points) > 1 {
		fmt.Fprintf(&b, "Each size is loaded into a fresh `junction server` "+
			"(the built-in store, one node) over its gRPC API by %d callers: persistent instances spread evenly across the services, then "+
			"config items of %d bytes. Memory is the server process's alone, after a collection. Registers and lists are timed one at a time (%d of each). ",
			r.Options.Concurrency, r.Options.ValueSize, r.Options.Samples)
	} else if len(r.CatchUp) > 0 {
		fmt.Fprintf(&b, "Each size is loaded by %d callers: persistent instances spread evenly across the services, then config items of %d bytes. ",
			r.Options.Concurrency, r.Options.ValueSize)
	}
	b.WriteString("The goals are issue 21's.\n\n")

	st := slices.Clone(r.Startups)
	slices.Sort(st)
	fmt.Fprintf(&b, "**Start-up** of an empty store, process start to `/readyz`, %d starts: median %s, fastest %s, slowest %s (goal: at most %s, %s).\n\n",
		len(st), secs(median(st)), secs(st[0]), secs(st[len(st)-1]), secs(ScaleGoals.StartupSeconds), met(median(st) <= ScaleGoals.StartupSeconds))

	if len(r.Points) > 1 {
		b.WriteString("| instances / services / configs | load | resident: empty → instances → configs | per instance: resident, heap | per config | full snapshot | data dir | restart to ready | register p50 / p99 | instance list p50 / p99 | every service, paged |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
		for i, p := range r.Points {
			size := "empty"
			if i > 0 {
				size = fmt.Sprintf("%s / %s / %s", thousands(float64(p.Size.Instances)), thousands(float64(p.Size.Services)), thousands(float64(p.Size.Configs)))
			}
			per, perCfg := "–", "–"
			if p.Size.Instances > 0 {
				per = fmt.Sprintf("%.0f B, %.0f B", p.PerInstance(), p.HeapPerInstance())
			}
			if p.Size.Configs > 0 {
				perCfg = fmt.Sprintf("%.0f B", p.PerConfig())
			}
			fmt.Fprintf(&b, "| %s | %s | %s → %s → %s | %s | %s | %s in %s | %s | %s | %s / %s ms | %s / %s ms | %s (%d pages) |\n",
				size, secs(p.LoadSeconds), mib(p.RSSEmpty), mib(p.RSSInstances), mib(p.RSSLoaded), per, perCfg,
				mib(uint64(p.SnapshotBytes)), secs(p.SnapshotSeconds), mib(uint64(p.DataBytes)), secs(p.RestartSeconds),
				ms(p.RegisterP50), ms(p.RegisterP99), ms(p.ListP50), ms(p.ListP99), secs(p.ServicesSeconds), p.ServicesPages)
		}
	}
	if len(r.Points) > 1 {
		big, empty := r.Points[len(r.Points)-1], r.Points[0]
		ratio := big.RegisterP99 / empty.RegisterP99
		fmt.Fprintf(&b, "\nAt the largest size, %s instances:\n", thousands(float64(big.Size.Instances)))
		fmt.Fprintf(&b, "- resident memory per instance %.0f B (goal: at most %.0f B, %s);\n", big.PerInstance(), ScaleGoals.BytesPerInstance, met(big.PerInstance() <= ScaleGoals.BytesPerInstance))
		fmt.Fprintf(&b, "- restart to ready %s (goal: at most %s, %s);\n", secs(big.RestartSeconds), secs(ScaleGoals.RestartSeconds), met(big.RestartSeconds <= ScaleGoals.RestartSeconds))
		fmt.Fprintf(&b, "- register p99 %s ms, **%.2f×** the empty store's %s ms (goal: at most %.0f×, %s).\n", ms(big.RegisterP99), ratio, ms(empty.RegisterP99), ScaleGoals.RegisterRatio, met(ratio <= ScaleGoals.RegisterRatio))
	}
	if len(r.BaselinePoints) == len(r.Points) && len(r.Points) > 1 {
		fmt.Fprintf(&b, "\n**Against the baseline** `%s`, in the same run (each size loaded into the baseline's server, then into this build's): "+
			"this build's figure ÷ the baseline's, so below 1× is better. Start-up: %s.\n\n", r.Options.BaselineName, ratioOf(median(r.Startups), median(r.BaselineStartups)))
		b.WriteString("| instances / services / configs | load | resident per instance | heap in use per instance | full snapshot | restart to ready | register p99 | instance list p99 | every service, paged |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		for i, p := range r.Points {
			if i == 0 {
				continue
			}
			q := r.BaselinePoints[i]
			fmt.Fprintf(&b, "| %s / %s / %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				thousands(float64(p.Size.Instances)), thousands(float64(p.Size.Services)), thousands(float64(p.Size.Configs)),
				ratioOf(p.LoadSeconds, q.LoadSeconds), ratioOf(p.PerInstance(), q.PerInstance()), ratioOf(p.HeapPerInstance(), q.HeapPerInstance()),
				ratioOf(p.SnapshotSeconds, q.SnapshotSeconds), ratioOf(p.RestartSeconds, q.RestartSeconds),
				ratioOf(p.RegisterP99, q.RegisterP99), ratioOf(p.ListP99, q.ListP99), ratioOf(p.ServicesSeconds, q.ServicesSeconds))
		}
	}
	if len(r.Fanout) > 0 {
		fmt.Fprintf(&b, "\n**Watch fan-out** over one gateway (a fresh server each): subscribers of one service on one connection, %d changes; "+
			"the latency runs from the start of each write to its arrival at each subscriber, the slowest being the last delivery of a change. "+
			"Memory is the server's heap and stacks after a collection, subscribers attached against none.\n\n", r.Options.Updates)
		spread := len(r.SpreadFanout) == len(r.Fanout)
		base := len(r.BaselineFanout) == len(r.Fanout)
		mux := len(r.MuxFanout) == len(r.Fanout)
		cols := []string{"subscribers", "p50", "p99", "slowest", "server memory per subscriber"}
		if base {
			cols = append(cols, "p99, ÷ baseline", "memory, ÷ baseline")
		}
		if mux {
			cols = append(cols, "multiplexed: p99", "multiplexed: memory per subscriber", "multiplexed ÷ streams: p99", "multiplexed ÷ streams: memory")
		}
		if spread {
			cols = append(cols, "two gateways: p99", "two gateways: memory per subscriber")
		}
		header(&b, cols)
		for i, f := range r.Fanout {
			fmt.Fprintf(&b, "| %s | %s ms | %s ms | %s ms | %.0f B |", thousands(float64(f.Subscribers)), ms(f.P50), ms(f.P99), ms(f.Max), f.ServerBytesPerWatcher)
			if base {
				q := r.BaselineFanout[i]
				fmt.Fprintf(&b, " %s | %s |", ratioOf(f.P99, q.P99), ratioOf(f.ServerBytesPerWatcher, q.ServerBytesPerWatcher))
			}
			if mux {
				q := r.MuxFanout[i]
				fmt.Fprintf(&b, " %s ms | %.0f B | %s | %s |", ms(q.P99), q.ServerBytesPerWatcher, ratioOf(q.P99, f.P99),
					ratioOf(q.ServerBytesPerWatcher, f.ServerBytesPerWatcher))
			}
			if spread {
				q := r.SpreadFanout[i]
				fmt.Fprintf(&b, " %s ms | %.0f B |", ms(q.P99), q.ServerBytesPerWatcher)
			}
			b.WriteString("\n")
		}
		if mux {
			fmt.Fprintf(&b, "\nMultiplexed, the same subscribers are watches carried %s to a `WatchService.Watch` stream, as one client following many services carries them, "+
				"on one connection; the ratios are to each subscriber on a stream of its own, in the same run.\n", thousands(WatchesPerStream))
		}
		if spread {
			b.WriteString("\nOver two gateways, the subscribers are split evenly between two nodes of a fresh 3-node cluster (one connection to each), " +
				"the changes are made through the first, and the memory is both nodes' together.\n")
		}
		big := r.Fanout[len(r.Fanout)-1]
		fmt.Fprintf(&b, "\nAt %s subscribers, each on a stream of its own: p99 %s ms (goal: at most 1 s, %s); %.0f B per subscriber in the server (goal: at most 8 KB, %s).\n",
			thousands(float64(big.Subscribers)), ms(big.P99), met(big.P99 <= 1000), big.ServerBytesPerWatcher, met(big.ServerBytesPerWatcher <= 8192))
		if mux {
			big := r.MuxFanout[len(r.MuxFanout)-1]
			fmt.Fprintf(&b, "Multiplexed: p99 %s ms (%s); %.0f B per subscriber (%s).\n",
				ms(big.P99), met(big.P99 <= 1000), big.ServerBytesPerWatcher, met(big.ServerBytesPerWatcher <= 8192))
		}
	}
	if len(r.Watched) > 0 {
		w := r.Watched[0]
		fmt.Fprintf(&b, "\n**Many services watched at once:** %s services, each with one instance and %d subscribers (%s watch streams "+
			"on one connection to one gateway); every service's instance is rewritten once a second for %s, so the target is %s writes/s. "+
			"Store watches are the gateway's (`junction_watch_topics`); CPU is the gateway process's, per second of writes (1.00 is one core); "+
			"memory is its heap and stacks per subscriber; latency runs from a write's start to its arrival at each subscriber.\n\n",
			thousands(float64(w.Services)), w.Watchers, thousands(float64(w.Services*w.Watchers)), secs(r.Options.WatchedDuration.Seconds()), thousands(float64(w.Services)))
		base := len(r.BaselineWatched) == len(r.Watched)
		cols := []string{"store", "store watches", "memory per subscriber", "writes/s", "gateway CPU", "deliveries", "p50", "p99"}
		if base {
			cols = append(cols, "writes/s, ÷ baseline", "memory, ÷ baseline", "CPU, ÷ baseline", "p99, ÷ baseline")
		}
		header(&b, cols)
		for i, w := range r.Watched {
			label := "built-in (in the gateway's process)"
			if w.Store == "etcd" {
				label = "etcd (embedded in the bench's process)"
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f B | %s | %.2f | %s | %s ms | %s ms |", label, thousands(float64(w.StoreWatches)), w.BytesPerSubscriber,
				thousands(w.WritesPerSec), w.CPU, thousands(float64(w.Deliveries)), ms(w.P50), ms(w.P99))
			if base {
				q := r.BaselineWatched[i]
				fmt.Fprintf(&b, " %s | %s | %s | %s |", ratioOf(w.WritesPerSec, q.WritesPerSec), ratioOf(w.BytesPerSubscriber, q.BytesPerSubscriber),
					ratioOf(w.CPU, q.CPU), ratioOf(w.P99, q.P99))
			}
			b.WriteString("\n")
		}
	}
	if len(r.CatchUp) > 0 {
		base := len(r.BaselineCatchUp) == len(r.CatchUp)
		b.WriteString("\n**A new follower's catch-up:** a 3-node cluster (fresh processes) is loaded through one of its nodes, " +
			"which forwards to the leader; then a fourth node joins it with an empty data dir (`--join`). " +
			"Its catch-up runs from its process start until its own status shows the cluster's revision; its replica is then read.\n\n")
		cols := []string{"instances / services / configs", "load, 3 nodes", "revision", "new node: /readyz", "new node: caught up"}
		if base {
			cols = append(cols, "caught up, ÷ baseline")
		}
		header(&b, cols)
		for i, c := range r.CatchUp {
			fmt.Fprintf(&b, "| %s / %s / %s | %s | %d | %s | %s |", thousands(float64(c.Size.Instances)), thousands(float64(c.Size.Services)),
				thousands(float64(c.Size.Configs)), secs(c.LoadSeconds), c.Revision, secs(c.ReadySeconds), secs(c.CatchUpSeconds))
			if base {
				fmt.Fprintf(&b, " %s |", ratioOf(c.CatchUpSeconds, r.BaselineCatchUp[i].CatchUpSeconds))
			}
			b.WriteString("\n")
		}
	}
	if len(plots) > 0 {
		b.WriteString("\n")
		for _, p := range plots {
			fmt.Fprintf(&b, "![%s](%s)\n", strings.TrimSuffix(filepath.Base(p), ".svg"), p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// header writes a Markdown table's header row and rule.
func header(b *strings.Builder, cols []string) {
	b.WriteString("| " + strings.Join(cols, " | ") + " |\n|" + strings.Repeat("---|", len(cols)) + "\n")
}

// ratioOf is a ÷ b, with b's figure beside it.
func ratioOf(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("**%.2f×**", a/b)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func mib(n uint64) string {
	if n < 10<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

package contract

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// gray checks contract line 12 through a backend that serves gray
// releases (a gateway): two clients watch one item, a canary the rule
// chooses and another; the gray reaches the canary, by read and by watch,
// and never the other; a promote reaches both; an abort sends the canary
// back to the release.
func gray(ctx context.Context, e *Env) Result {
	var c check
	g, ok := e.B.(backends.Gray)
	if !ok {
		return c.na("a driver serves no gray releases: the gateway keeps them, over any store (see the +gateway targets)")
	}
	b, key := e.B, ConfigKey("gray.yaml")
	canary := backends.WithClient(ctx, backends.Client{ID: "canary-1", Labels: map[string]string{"env": "canary"}})
	other := backends.WithClient(ctx, backends.Client{ID: "other-1", Labels: map[string]string{"env": "prod"}})
	rule := model.GrayRule{Labels: map[string]string{"env": "canary"}}
	if err := g.PublishGray(ctx, key, []byte("v: 0"), model.ContentYAML, rule); !errors.Is(err, model.ErrNotFound) {
		c.problem("a gray of an item that does not exist: %v, want ErrNotFound", err)
	}
	if _, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte("v: 1"), ContentType: model.ContentYAML}, model.Precondition{}); err != nil {
		return c.fatal("publish the release: %v", err)
	}
	watch := func(ctx context.Context) (backends.Watcher, error) {
		w, err := b.Watch(ctx, backends.WatchRequest{Config: &key})
		if err != nil {
			return nil, err
		}
		if ev, err := NextEvent(ctx, w, 10*time.Second); err != nil || ev.Config == nil || string(ev.Config.Content) != "v: 1" {
			w.Close()
			return nil, fmt.Errorf("the watch starts with %+v (%v), want the release", ev, err)
		}
		return w, nil
	}
	wc, err := watch(canary)
	if err != nil {
		return c.fatal("the canary's watch: %v", err)
	}
	defer wc.Close()
	wo, err := watch(other)
	if err != nil {
		return c.fatal("the other's watch: %v", err)
	}
	defer wo.Close()
	// quiet checks that w delivers nothing but content for a while.
	// await waits for w to deliver content and returns the time since
	// start, when the change was asked for.
	await := func(who string, w backends.Watcher, content string, start time.Time) time.Duration {
		for time.Since(start) < 10*time.Second {
			ev, err := NextEvent(ctx, w, 10*time.Second-time.Since(start))
			if err != nil {
				break
			}
			if ev.Config != nil && ev.Type != model.EventDelete && string(ev.Config.Content) == content {
				return time.Since(start)
			}
		}
		c.problem("%s's watch never delivered %q", who, content)
		return 0
	}
	quiet := func(who string, w backends.Watcher, not string, d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			ev, err := NextEvent(ctx, w, time.Until(end))
			if err != nil {
				return
			}
			if ev.Config != nil && string(ev.Config.Content) == not {
				c.problem("%s, whom the rule does not choose, was sent the gray content %q", who, not)
			}
		}
	}
	read := func(who string, ctx context.Context, want string) {
		got, _, err := b.GetConfig(ctx, key, backends.ReadOptions{})
		if err != nil || string(got.Content) != want {
			c.problem("%s reads %q (%v), want %q", who, got.Content, err, want)
		}
	}

	start := time.Now()
	if err := g.PublishGray(ctx, key, []byte("v: 2"), "", rule); err != nil {
		return c.fatal("publish the gray: %v", err)
	}
	c.fig("gray reaches its client", ms(await("the canary", wc, "v: 2", start)), "ms")
	read("the canary", canary, "v: 2")
	read("the other client", other, "v: 1")
	quiet("the other client", wo, "v: 2", e.dur(time.Second, 300*time.Millisecond))

	start = time.Now()
	promoted, err := g.PromoteGray(ctx, key)
	if err != nil {
		return c.fatal("promote: %v", err)
	}
	c.fig("promote reaches the others", ms(await("the other client", wo, "v: 2", start)), "ms")
	read("the other client, after the promote,", other, "v: 2")
	if vs, _, err := b.ConfigHistory(ctx, key, backends.ReadOptions{}); err != nil || len(vs) == 0 || vs[len(vs)-1].Revision != promoted.Revision {
		c.problem("the promote is not the history's last version: %v (%v), promoted at %d", vs, err, promoted.Revision)
	}

	if err := g.PublishGray(ctx, key, []byte("v: 3"), "", rule); err != nil {
		return c.fatal("publish a second gray: %v", err)
	}
	await("the canary", wc, "v: 3", time.Now())
	start = time.Now()
	if err := g.AbortGray(ctx, key); err != nil {
		return c.fatal("abort: %v", err)
	}
	c.fig("abort reaches its client", ms(await("the canary, after the abort,", wc, "v: 2", start)), "ms")
	read("the canary, after the abort,", canary, "v: 2")
	quiet("the other client", wo, "v: 3", e.dur(500*time.Millisecond, 200*time.Millisecond))
	if err := g.AbortGray(ctx, key); !errors.Is(err, model.ErrNotFound) {
		c.problem("abort with no gray release: %v, want ErrNotFound", err)
	}

	// A share of the clients, by their IDs: stable, and a share.
	if err := g.PublishGray(ctx, key, []byte("v: 4"), "", model.GrayRule{Percent: 50}); err != nil {
		return c.fatal("publish a 50%% gray: %v", err)
	}
	in := 0
	const clients = 40
	for i := range clients {
		cctx := backends.WithClient(ctx, backends.Client{ID: fmt.Sprintf("client-%d", i)})
		first, _, err1 := b.GetConfig(cctx, key, backends.ReadOptions{})
		again, _, err2 := b.GetConfig(cctx, key, backends.ReadOptions{})
		if err1 != nil || err2 != nil || string(first.Content) != string(again.Content) {
			c.problem("client-%d reads %q then %q (%v, %v): a share must be stable", i, first.Content, again.Content, err1, err2)
		}
		if string(first.Content) == "v: 4" {
			in++
		}
	}
	c.fig("clients in a 50% gray", float64(in)/clients*100, "%")
	if in == 0 || in == clients {
		c.problem("%d of %d clients are in a 50%% gray", in, clients)
	}
	if err := g.AbortGray(ctx, key); err != nil {
		c.problem("abort the 50%% gray: %v", err)
	}
	return c.done()
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"path"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/junctionhq/junction/backends/zookeeper"
)

// ZooKeeper drives ZooKeeper through go-zookeeper, the baseline for
// Junction over ZooKeeper: an instance is an ephemeral znode of the
// client's session, a config a znode; reads are made linearizable the way
// ZooKeeper's documentation says, with a sync before the read, as
// Junction's driver does by default.
type ZooKeeper struct {
	conn *zk.Conn
	root string
}

// NewZooKeeper connects to the ensemble cfg (the driver's configuration)
// names and waits for a session. Its znodes live under /junction-bench.
func NewZooKeeper(ctx context.Context, cfg zookeeper.Config) (*ZooKeeper, error) {
	conn, events, err := zk.Connect(cfg.Servers, cfg.SessionTimeout, zk.WithLogger(log.New(io.Discard, "", 0)), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("zookeeper client: %w", err)
	}
	for {
		select {
		case ev := <-events:
			if ev.State != zk.StateHasSession {
				continue
			}
			if cfg.Username != "" {
				if err := conn.AddAuth("digest", []byte(cfg.Username+":"+cfg.Password)); err != nil {
					conn.Close()
					return nil, err
				}
			}
			go func() { // drain session events
				for range events {
				}
			}()
			return &ZooKeeper{conn: conn, root: "/junction-bench"}, nil
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("zookeeper client: no session: %w", ctx.Err())
		}
	}
}

// Prepare implements Client.
func (z *ZooKeeper) Prepare(ctx context.Context, workload string, o Options) (Op, func(), error) {
	return prepare(ctx, z, workload, o)
}

// Close implements Client.
func (z *ZooKeeper) Close() error { z.conn.Close(); return nil }

func (z *ZooKeeper) supports(workload string) error {
	if workload == "heartbeat" {
		return fmt.Errorf("%w: a ZooKeeper session is kept alive by the client library's own pings", ErrUnsupported)
	}
	return nil
}

// upsert writes data at p, creating it (and its parents) when absent.
func (z *ZooKeeper) upsert(p string, data []byte, flags int32) error {
	for range 3 {
		_, err := z.conn.Set(p, data, -1)
		if !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		_, err = z.conn.Create(p, data, flags, zk.WorldACL(zk.PermAll))
		switch {
		case err == nil:
			return nil
		case errors.Is(err, zk.ErrNodeExists): // created meanwhile: set it
		case errors.Is(err, zk.ErrNoNode):
			if err := z.mkdirs(path.Dir(p)); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return fmt.Errorf("upsert %s: gave up after 3 tries", p)
}

func (z *ZooKeeper) mkdirs(p string) error {
	if p == "/" {
		return nil
	}
	if err := z.mkdirs(path.Dir(p)); err != nil {
		return err
	}
	_, err := z.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

func (z *ZooKeeper) instancePath(service string, k int64) string {
	return z.root + "/services/" + service + "/" + ip(k) + ":80"
}

func (z *ZooKeeper) newSession(context.Context) (string, error) { return "", nil }
func (z *ZooKeeper) closeSession(context.Context, string)       {}

func (z *ZooKeeper) register(_ context.Context, o Options, k int64, _ string) error {
	return z.upsert(z.instancePath(o.Service, k), fmt.Appendf(nil, `{"address":%q,"port":80}`, ip(k)), zk.FlagEphemeral)
}

func (z *ZooKeeper) keepAlive(context.Context, string) error { return ErrUnsupported }

func (z *ZooKeeper) seedList(_ context.Context, o Options, k int64) error {
	return z.upsert(z.instancePath(listService(o), k), fmt.Appendf(nil, `{"address":%q,"port":80}`, ip(k)), 0)
}

func (z *ZooKeeper) list(_ context.Context, o Options) error {
	dir := z.root + "/services/" + listService(o)
	if err := z.sync(o, dir); err != nil {
		return err
	}
	children, _, err := z.conn.Children(dir)
	if err != nil {
		return err
	}
	for _, c := range children {
		if _, _, err := z.conn.Get(dir + "/" + c); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return nil
}

func (z *ZooKeeper) putConfig(_ context.Context, o Options, k int, value string) error {
	return z.upsert(z.root+"/configs/"+configID(o, k), []byte(value), 0)
}

func (z *ZooKeeper) getConfig(_ context.Context, o Options, k int) error {
	p := z.root + "/configs/" + configID(o, k)
	if err := z.sync(o, p); err != nil {
		return err
	}
	_, _, err := z.conn.Get(p)
	return err
}

// sync makes the next read of p linearizable, unless o.Stale.
func (z *ZooKeeper) sync(o Options, p string) error {
	if o.Stale {
		return nil
	}
	_, err := z.conn.Sync(p)
	return err
}

// Subscribe implements Fanout: n one-shot data watches of one znode on the
// client's one session, each re-armed after it fires (ZooKeeper keeps one
// server-side watch per path and session and the client fans it out).
func (z *ZooKeeper) Subscribe(ctx context.Context, o Options, n int, arrived func(seq string)) error {
	p := z.instancePath(o.Service+"-watch", 0xff0001)
	if err := z.upsert(p, []byte("-"), 0); err != nil {
		return err
	}
	for range n {
		_, _, ch, err := z.conn.GetW(p)
		if err != nil {
			return err
		}
		go func() {
			for {
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
				var data []byte
				var err error
				for {
					if data, _, ch, err = z.conn.GetW(p); err == nil {
						break
					}
					if ctx.Err() != nil {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
				arrived(string(data))
			}
		}()
	}
	return nil
}

// Update implements Fanout.
func (z *ZooKeeper) Update(_ context.Context, o Options, seq string) error {
	_, err := z.conn.Set(z.instancePath(o.Service+"-watch", 0xff0001), []byte(seq), -1)
	return err
}

package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// Source says where a configuration value came from.
type Source string

// Sources of a Config.
const (
	// FromServer: read from a gateway just now.
	FromServer Source = "server"
	// FromCache: no gateway answered; this is the last value this process
	// (or an earlier run) saw, kept by WithConfigCache. It may be stale.
	FromCache Source = "cache"
)

// Config is a configuration item as the SDK returns it.
type Config struct {
	model.Config
	// Source says whether the value is fresh or the cached last known one.
	Source Source
	// Gray says the content is the item's gray release, which this client
	// matches (sdk.WithLabels, WithClientID); Revision and Version are the
	// release's.
	Gray bool
}

// Stale reports whether the value came from the cache.
func (c Config) Stale() bool { return c.Source == FromCache }

// GetConfig reads a configuration item. When no gateway answers and a
// cached copy exists (WithConfigCache), it returns that copy with Source
// FromCache instead of failing.
func (c *Client) GetConfig(ctx context.Context, dataID string, opts ...CallOption) (Config, error) {
	o := c.call(opts)
	key := model.ConfigKey{Namespace: o.namespace, Group: o.group, DataID: dataID}
	resp, err := c.cfg.GetConfig(ctx, &pb.GetConfigRequest{Namespace: key.Namespace, Group: key.Group, DataId: dataID, Stale: o.stale})
	if err = wireErr(err); err == nil {
		cfg := resp.Config.Model()
		c.cacheConfig(cfg)
		return Config{Config: cfg, Source: FromServer, Gray: resp.Config.Gray}, nil
	}
	if errors.Is(err, model.ErrNotFound) {
		c.uncacheConfig(key)
		return Config{}, err
	}
	if errors.Is(err, model.ErrUnavailable) {
		if cached, ok := c.cachedConfig(key); ok {
			c.log.Warn("gateway unreachable; serving cached configuration", "config", key.String(),
				"revision", cached.Revision, "err", err)
			return Config{Config: cached, Source: FromCache}, nil
		}
	}
	return Config{}, err
}

// PublishConfig writes a configuration item. With IfRevision it writes
// only if the item is still at that revision (0: only if it does not
// exist) and fails with model.ErrConflict otherwise.
func (c *Client) PublishConfig(ctx context.Context, dataID string, content []byte, opts ...CallOption) (model.Config, error) {
	o := c.call(opts)
	resp, err := c.cfg.PutConfig(ctx, &pb.PutConfigRequest{Namespace: o.namespace, Group: o.group, DataId: dataID,
		Content: string(content), ContentType: o.contentType, IfRevision: o.ifRevision, NoValidate: o.noValidate,
		Message: o.message})
	if err != nil {
		return model.Config{}, wireErr(err)
	}
	cfg := resp.Config.Model()
	c.cacheConfig(cfg)
	return cfg, nil
}

// DeleteConfig deletes a configuration item, optionally only at a revision
// (IfRevision).
func (c *Client) DeleteConfig(ctx context.Context, dataID string, opts ...CallOption) error {
	o := c.call(opts)
	_, err := c.cfg.DeleteConfig(ctx, &pb.DeleteConfigRequest{Namespace: o.namespace, Group: o.group, DataId: dataID,
		IfRevision: o.ifRevision, Message: o.message})
	if err = wireErr(err); err == nil {
		c.uncacheConfig(model.ConfigKey{Namespace: o.namespace, Group: o.group, DataID: dataID})
	}
	return err
}

// ConfigHistory lists the versions the item's history keeps, newest first,
// without their content: every publish and delete, with its author, time
// and message. A deleted item keeps its history.
func (c *Client) ConfigHistory(ctx context.Context, dataID string, opts ...CallOption) ([]model.ConfigVersion, error) {
	o := c.call(opts)
	resp, err := c.cfg.ListConfigHistory(ctx, &pb.ListConfigHistoryRequest{Namespace: o.namespace, Group: o.group,
		DataId: dataID, Stale: o.stale})
	if err != nil {
		return nil, wireErr(err)
	}
	out := make([]model.ConfigVersion, 0, len(resp.Versions))
	for _, v := range resp.Versions {
		out = append(out, v.Model())
	}
	return out, nil
}

// ConfigVersion reads version n of the item, with its content; it fails
// with model.ErrNotFound when the history does not keep it.
func (c *Client) ConfigVersion(ctx context.Context, dataID string, n int64, opts ...CallOption) (model.ConfigVersion, error) {
	o := c.call(opts)
	v, err := c.cfg.GetConfigVersion(ctx, &pb.GetConfigVersionRequest{Namespace: o.namespace, Group: o.group,
		DataId: dataID, Number: n, Stale: o.stale})
	if err != nil {
		return model.ConfigVersion{}, wireErr(err)
	}
	return v.Model(), nil
}

// DiffConfig returns a unified diff of the item's content between
// versions from and to; 0 picks the defaults: the newest for to, and the
// one before to for from.
func (c *Client) DiffConfig(ctx context.Context, dataID string, from, to int64, opts ...CallOption) (string, error) {
	o := c.call(opts)
	resp, err := c.cfg.DiffConfig(ctx, &pb.DiffConfigRequest{Namespace: o.namespace, Group: o.group, DataId: dataID,
		From: from, To: to, Stale: o.stale})
	if err != nil {
		return "", wireErr(err)
	}
	return resp.Diff, nil
}

// RollbackConfig publishes version n's content and type again, as a new
// version; with IfRevision only if the item is still at that revision.
func (c *Client) RollbackConfig(ctx context.Context, dataID string, n int64, opts ...CallOption) (model.Config, error) {
	o := c.call(opts)
	resp, err := c.cfg.RollbackConfig(ctx, &pb.RollbackConfigRequest{Namespace: o.namespace, Group: o.group, DataId: dataID,
		Number: n, IfRevision: o.ifRevision, Message: o.message})
	if err != nil {
		return model.Config{}, wireErr(err)
	}
	cfg := resp.Config.Model()
	c.cacheConfig(cfg)
	return cfg, nil
}

// ConfigChange is one change seen by WatchConfig.
type ConfigChange struct {
	Config
	// Deleted is true when the item no longer exists (Config holds its
	// last value, if known).
	Deleted bool
}

// WatchConfig calls fn with the item's current value, then after every
// change, until ctx ends. It reconnects on its own; while no gateway
// answers it does not call fn. fn runs on one goroutine, in order.
func (c *Client) WatchConfig(ctx context.Context, dataID string, fn func(ConfigChange), opts ...CallOption) error {
	o := c.call(opts)
	key := model.ConfigKey{Namespace: o.namespace, Group: o.group, DataID: dataID}
	if err := key.Validate(); err != nil {
		return err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		// Every (re)connection starts from the current value (revision 0):
		// a gateway reached after an interruption may serve a different
		// history. A value already delivered is not delivered twice.
		var last *ConfigChange
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			stream, err := c.cfg.WatchConfig(ctx, &pb.WatchConfigRequest{Namespace: key.Namespace, Group: key.Group,
				DataId: key.DataID})
			for err == nil {
				var ev *pb.ConfigEvent
				if ev, err = stream.Recv(); err != nil {
					break
				}
				backoff = 100 * time.Millisecond
				change := ConfigChange{Config: Config{Source: FromServer}}
				if ev.Config != nil {
					change.Config.Config, change.Gray = ev.Config.Model(), ev.Config.Gray
				} else {
					change.Config.Config = model.Config{Key: key, Revision: ev.Revision}
				}
				change.Deleted = ev.Type == pb.EventType_DELETE || ev.Config == nil
				if last != nil && last.Deleted == change.Deleted && (change.Deleted ||
					(last.Revision == change.Revision && last.MD5 == change.MD5)) {
					continue
				}
				if change.Deleted {
					c.uncacheConfig(key)
				} else {
					c.cacheConfig(change.Config.Config)
				}
				last = &change
				fn(change)
			}
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}()
	return nil
}

func (c *Client) cachePath(key model.ConfigKey) string {
	return filepath.Join(c.opts.cacheDir, key.Namespace, key.Group, key.DataID+".json")
}

// cacheConfig writes the item atomically (temp file + rename).
func (c *Client) cacheConfig(cfg model.Config) {
	if c.opts.cacheDir == "" {
		return
	}
	p := c.cachePath(cfg.Key)
	b, err := json.Marshal(cfg)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(p), 0o750)
	}
	if err == nil {
		tmp := fmt.Sprintf("%s.%d.tmp", p, time.Now().UnixNano())
		if err = os.WriteFile(tmp, b, 0o640); err == nil {
			err = os.Rename(tmp, p)
		}
	}
	if err != nil {
		c.log.Warn("config cache not written", "config", cfg.Key.String(), "err", err)
	}
}

func (c *Client) uncacheConfig(key model.ConfigKey) {
	if c.opts.cacheDir != "" {
		_ = os.Remove(c.cachePath(key))
	}
}

func (c *Client) cachedConfig(key model.ConfigKey) (model.Config, bool) {
	if c.opts.cacheDir == "" {
		return model.Config{}, false
	}
	b, err := os.ReadFile(c.cachePath(key))
	if err != nil {
		return model.Config{}, false
	}
	var cfg model.Config
	if json.Unmarshal(b, &cfg) != nil || cfg.Key != key {
		return model.Config{}, false
	}
	return cfg, true
}

package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// A client names itself in two headers, on every call: its ID and its
// labels (k=v,k=v). The SDK sends them (WithClientID, WithLabels); REST
// and CLI clients may. They are what the client says, never proof.
const (
	clientIDHeader     = model.ClientIDHeader
	clientLabelsHeader = model.ClientLabelsHeader
	listenersGroup     = "config-listeners"
	// maxPublished bounds the bytes of one gateway's record: what every
	// store takes in one value.
	maxPublished = 256 << 10
)

// clientInfo is who a call says it comes from.
type clientInfo struct {
	ID     string            `json:"clientId,omitempty"`
	Addr   string            `json:"address"`
	Labels map[string]string `json:"labels,omitempty"`
}

// clientOf reads the client's headers; what does not parse is left out.
func clientOf(ctx context.Context) clientInfo {
	c := clientInfo{Addr: clientAddr(ctx)}
	if v := metadata.ValueFromIncomingContext(ctx, clientIDHeader); len(v) == 1 && model.ValidateClientID(v[0]) == nil {
		c.ID = v[0]
	}
	if v := metadata.ValueFromIncomingContext(ctx, clientLabelsHeader); len(v) == 1 {
		c.Labels = parseLabels(v[0])
	}
	return c
}

// parseLabels reads k=v,k=v: at most model.MaxLabels valid labels;
// anything else is left out.
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && model.ValidateLabel(k, v) == nil && len(out) < model.MaxLabels {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// listener is one config watch a gateway serves.
type listener struct {
	Key      model.ConfigKey `json:"key"`
	Client   clientInfo      `json:"client"`
	Since    time.Time       `json:"since"`
	MD5      string          `json:"md5"`      // of the last value delivered ("" after a delete)
	Revision int64           `json:"revision"` // of the last event delivered
	Gateway  string          `json:"-"`        // set as it is read
}

// listenerRecord is what a gateway publishes of its watches in the store,
// so that any gateway over it can answer who watches an item.
type listenerRecord struct {
	Gateway string    `json:"gateway"`
	Updated time.Time `json:"updated"`
	// Beat is how often the gateway writes the record, changed or not:
	// one silent for three is taken for gone.
	Beat      time.Duration `json:"beat"`
	Truncated bool          `json:"truncated,omitempty"`
	Listeners []listener    `json:"listeners"`
}

// listeners tracks this gateway's config watches and publishes them.
type listeners struct {
	gateway string
	b       backends.Backend
	log     *slog.Logger
	every   time.Duration // how often a change is published
	beat    time.Duration // how often the record is written anyway

	mu      sync.Mutex
	m       map[uint64]*listener
	next    uint64
	changed bool
}

func newListeners(b backends.Backend, gateway string, every time.Duration, log *slog.Logger) *listeners {
	return &listeners{gateway: gateway, b: b, log: log.With("component", "listeners"), every: every,
		beat: max(30*time.Second, 10*every), m: map[uint64]*listener{}}
}

// add records a watch of key starting now and returns its id.
func (l *listeners) add(ctx context.Context, key model.ConfigKey) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	l.m[l.next] = &listener{Key: key, Client: clientOf(ctx), Since: time.Now().UTC()}
	l.changed = true
	return l.next
}

// delivered records what watch id has just been sent.
func (l *listeners) delivered(id uint64, e model.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.m[id]; w != nil {
		w.MD5, w.Revision = "", e.Revision
		if e.Config != nil && e.Type != model.EventDelete {
			w.MD5 = e.Config.MD5
		}
		l.changed = true
	}
}

func (l *listeners) remove(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, id)
	l.changed = true
}

// snapshot returns this gateway's watches and whether anything changed
// since the last one taken for publishing.
func (l *listeners) snapshot(publish bool) ([]listener, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]listener, 0, len(l.m))
	for _, id := range slices.Sorted(maps.Keys(l.m)) {
		w := *l.m[id]
		w.Client.Labels = maps.Clone(w.Client.Labels)
		out = append(out, w)
	}
	changed := l.changed
	if publish {
		l.changed = false
	}
	return out, changed
}

// recordKey is where the gateway's record lives.
func (l *listeners) recordKey() model.ConfigKey {
	h := sha256.Sum256([]byte(l.gateway))
	return model.ConfigKey{Namespace: SystemNamespace, Group: listenersGroup, DataID: "gateway-" + hex.EncodeToString(h[:20])}
}

// run publishes the watches every l.every when they changed, and every
// l.beat regardless (readers take a record older than three beats for a
// gateway that is gone); it removes the record when ctx ends.
func (l *listeners) run(ctx context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_, err := l.b.DeleteConfig(dctx, l.recordKey(), model.Precondition{})
			cancel()
			if err != nil && !errors.Is(err, model.ErrNotFound) {
				l.log.Debug("could not remove the listener record", "err", err)
			}
			return
		case <-t.C:
		}
		ws, changed := l.snapshot(true)
		if !changed && time.Since(last) < l.beat {
			continue
		}
		b := encodeListeners(listenerRecord{Gateway: l.gateway, Updated: time.Now().UTC(), Beat: l.beat, Listeners: ws})
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := l.b.PutConfig(wctx, model.Config{Key: l.recordKey(), Content: b, ContentType: model.ContentJSON}, model.Precondition{})
		cancel()
		if err != nil {
			l.mu.Lock()
			l.changed = true // try again at the next tick
			l.mu.Unlock()
			if ctx.Err() == nil {
				l.log.Warn("could not publish this gateway's config watches", "err", err)
			}
			continue
		}
		last = time.Now()
	}
}

// encodeListeners writes rec, leaving out the newest watches as long as
// it is over maxPublished bytes (Truncated says so).
func encodeListeners(rec listenerRecord) []byte {
	for {
		b, _ := json.Marshal(rec)
		if len(b) <= maxPublished || len(rec.Listeners) == 0 {
			return b
		}
		keep := len(rec.Listeners) * maxPublished / len(b) * 9 / 10
		rec.Listeners, rec.Truncated = rec.Listeners[:keep], true
	}
}

// of returns every gateway's watches of key: this one's as they are, the
// others' as they last published them (leaving out those that stopped).
func (l *listeners) of(ctx context.Context, key model.ConfigKey) ([]listener, []string, error) {
	own, _ := l.snapshot(false)
	out := slices.DeleteFunc(own, func(w listener) bool { return w.Key != key })
	for i := range out {
		out[i].Gateway = l.gateway
	}
	gateways := []string{l.gateway}
	opts := backends.ReadOptions{Stale: true}
	list, _, err := l.b.ListConfigs(ctx, SystemNamespace, listenersGroup, opts)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range list {
		if s.Key == l.recordKey() {
			continue
		}
		cfg, _, err := l.b.GetConfig(ctx, s.Key, opts)
		if errors.Is(err, model.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		var rec listenerRecord
		if json.Unmarshal(cfg.Content, &rec) != nil || time.Since(rec.Updated) > 3*cmp.Or(rec.Beat, l.beat) {
			continue // not a record, or its gateway is gone
		}
		gateways = append(gateways, rec.Gateway)
		for _, w := range rec.Listeners {
			if w.Key == key {
				w.Gateway = rec.Gateway
				out = append(out, w)
			}
		}
	}
	slices.SortFunc(out, func(a, b listener) int { return a.Since.Compare(b.Since) })
	return out, gateways, nil
}

func (c *configService) ListConfigListeners(ctx context.Context, req *pb.ListConfigListenersRequest) (*pb.ListConfigListenersResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	ws, gateways, err := c.s.listeners.of(ctx, key)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListConfigListenersResponse{Gateways: int32(len(gateways))}
	cur, info, err := c.s.b.GetConfig(ctx, key, backends.ReadOptions{})
	switch {
	case err == nil:
		resp.CurrentMd5, resp.Revision = cur.MD5, info.Revision
	case !errors.Is(err, model.ErrNotFound):
		return nil, err
	}
	for _, w := range ws {
		want := resp.CurrentMd5 // what the watch should have: the gray, where one chooses it
		if err == nil {
			eff, _ := c.s.grays.effective(key, &cur, model.GrayClient{ID: w.Client.ID, Labels: w.Client.Labels, IP: w.Client.Addr})
			want = eff.MD5
		}
		resp.Listeners = append(resp.Listeners, &pb.ConfigListener{ClientId: w.Client.ID, Address: w.Client.Addr,
			Labels: w.Client.Labels, Since: timestamppb.New(w.Since), Md5: w.MD5, Revision: w.Revision,
			UpToDate: w.MD5 == want, Gateway: w.Gateway})
	}
	return resp, nil
}

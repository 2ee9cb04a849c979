package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// patchesGroup holds the patches a gateway could not apply itself: on a
// store where only the driver holding an ephemeral instance's session may
// write it (Capabilities.PatchAnyOwner false), a patch another gateway
// makes is left here as a request, and the gateway holding the session
// applies it.
const patchesGroup = "instance-patches"

// patchKey names one request: of the instance, and unique, so that
// concurrent requests (the runner's, SetInstanceState's, two gateways')
// never overwrite each other.
func patchKey(svc model.ServiceKey, id string) model.ConfigKey {
	k := recordKey(patchesGroup, "patch", svc, id)
	var b [6]byte
	_, _ = rand.Read(b[:])
	k.DataID += "-" + hex.EncodeToString(b[:])
	return k
}

// patchRecord is a request to patch an instance.
type patchRecord struct {
	Service model.ServiceKey    `json:"service"`
	ID      string              `json:"id"`
	Patch   model.InstancePatch `json:"patch"`
	// At is when it was asked; the requester stops waiting after
	// patcher.wait, and a request nobody could apply is dropped after
	// staleRequest.
	At time.Time `json:"at"`
}

// readLag bounds how far a gateway's reads may lag a write another gateway
// made (Nacos servers serve from caches refreshed every second).
const readLag = 3 * time.Second

// staleRequest is how old a patch request gets before a gateway drops it:
// no gateway held the session (it expired, or its gateway is gone).
const staleRequest = time.Minute

// patcher applies instance patches: through the driver, and where the
// driver cannot (ErrNotOwner), through a request that the gateway holding
// the session applies. It is the one place the health runner and
// SetInstanceState write an instance.
type patcher struct {
	b        backends.Backend
	requests *recordSet
	log      *slog.Logger
	scan     time.Duration // how often relayed requests are looked for
	wait     time.Duration // how long a relayed request is waited for

	seen map[string]time.Time // requests this gateway cannot apply: since when (run's goroutine)
}

// patch applies p to the instance and returns it as stored.
func (p *patcher) patch(ctx context.Context, svc model.ServiceKey, id string, patch model.InstancePatch) (model.Instance, error) {
	inst, err := p.b.PatchInstance(ctx, svc, id, patch)
	if !errors.Is(err, backends.ErrNotOwner) {
		return inst, err
	}
	// The precondition is checked here, against this gateway's read: the
	// holder's revisions need not be this gateway's (Nacos' are each
	// driver's own), so the request carries none. A write between the two
	// is not caught: the relay is not atomic.
	if patch.Cond.Check {
		cur, err := findInstance(ctx, p.b, svc, id)
		if err != nil {
			return model.Instance{}, err
		}
		if !patch.Cond.Holds(cur.Revision) {
			return model.Instance{}, model.PatchConflict(patch, cur.Revision)
		}
		patch.Cond = model.Precondition{}
	}
	key := patchKey(svc, id)
	p.log.Debug("instance patches: asking the gateway holding the session", "service", svc, "id", id)
	if _, err := p.requests.put(ctx, key, patchRecord{Service: svc, ID: id, Patch: patch, At: time.Now()}, model.Precondition{}); err != nil {
		return model.Instance{}, fmt.Errorf("asking the gateway holding the session of %s to patch it: %w", id, err)
	}
	// However this ends, the request goes: a holder must not apply it after
	// the caller was told it failed.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = p.requests.remove(rctx, key, model.Precondition{})
	}()
	// Done once the instance shows the patch. A request that is gone while
	// the instance does not show it, for longer than this gateway's reads
	// may lag, was refused by the holder (or overwritten since).
	deadline := time.Now().Add(p.wait)
	var goneSince time.Time
	for tick := 20 * time.Millisecond; ; tick = min(2*tick, 200*time.Millisecond) {
		inst, err := findInstance(ctx, p.b, svc, id)
		if err != nil || patch.Shows(inst) {
			return inst, err
		}
		if goneSince.IsZero() {
			if _, _, err := p.b.GetConfig(ctx, key, backends.ReadOptions{}); errors.Is(err, model.ErrNotFound) {
				goneSince = time.Now()
			}
		} else if time.Since(goneSince) > readLag {
			return model.Instance{}, fmt.Errorf("instance %s changed again before the patch showed: %w", id, model.ErrConflict)
		}
		if time.Now().After(deadline) {
			return model.Instance{}, fmt.Errorf("the gateway holding the session of %s did not apply the patch within %v: %w", id, p.wait, model.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return model.Instance{}, ctx.Err()
		case <-time.After(tick):
		}
	}
}

// runIfNeeded applies, until ctx ends, the requests of other gateways for
// the instances whose sessions this gateway's driver holds, on a store
// whose drivers cannot patch any owner's instances.
func (p *patcher) runIfNeeded(ctx context.Context) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		st, err := p.b.Status(ctx)
		if err == nil {
			if st.Capabilities.PatchAnyOwner {
				return
			}
			break
		}
		if !sleepCtx(ctx, wait) {
			return
		}
	}
	p.run(ctx)
}

// run applies the requests of other gateways until ctx ends.
func (p *patcher) run(ctx context.Context) {
	p.seen = map[string]time.Time{}
	t := time.NewTicker(p.scan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.serve(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("instance patches: reading the requests failed", "err", err)
		}
	}
}

func (p *patcher) serve(ctx context.Context) error {
	list, err := p.requests.list(ctx)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, c := range list {
		live[c.Key.DataID] = true
		cfg, _, err := p.b.GetConfig(ctx, c.Key, backends.ReadOptions{})
		if errors.Is(err, model.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		rev := cfg.Revision
		var req patchRecord
		if err := json.Unmarshal(cfg.Content, &req); err != nil { // not a request a gateway wrote
			p.log.Warn("instance patches: dropping a request that does not decode", "record", c.Key.DataID, "err", err)
			_ = p.requests.remove(ctx, c.Key, model.IfRevision(rev))
			continue
		}
		_, err = p.b.PatchInstance(ctx, req.Service, req.ID, req.Patch)
		if err == nil {
			p.log.Debug("instance patches: applied another gateway's request", "service", req.Service, "id", req.ID, "asked", req.At)
		}
		switch {
		case errors.Is(err, backends.ErrNotOwner):
			// Another gateway's session, unless no gateway applied it for
			// long (by this gateway's clock: the requester's may differ).
			first, ok := p.seen[c.Key.DataID]
			if !ok {
				first = time.Now()
				p.seen[c.Key.DataID] = first
			}
			if time.Since(first) < staleRequest {
				continue
			}
		case err == nil, errors.Is(err, model.ErrNotFound), errors.Is(err, model.ErrConflict):
		default:
			p.log.Warn("instance patches: applying a request failed", "service", req.Service, "id", req.ID, "err", err)
			continue
		}
		_ = p.requests.remove(ctx, c.Key, model.IfRevision(rev))
	}
	for k := range p.seen {
		if !live[k] {
			delete(p.seen, k)
		}
	}
	return nil
}

// Package heldsessions keeps Junction sessions whose TTLs a driver enforces
// itself, for stores whose own sessions cannot carry them: ZooKeeper (one
// store session per connection) and Consul (a 10s floor). Each session owns
// resources (nodes, services) keyed by K; when a session expires the
// driver's remove function deletes them, and a removal that fails is
// retried until it succeeds, so that an outage of the store delays the
// cleanup but never skips it.
package heldsessions

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/junctionhq/junction/model"
)

// NewID returns a random session ID (32 hex digits).
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type session[K comparable, V any] struct {
	ttl      time.Duration
	deadline time.Time
	owned    map[K]V
}

// Table holds live sessions and expired ones whose resources are not all
// removed yet. The zero value is not usable; call New.
type Table[K comparable, V any] struct {
	mu    sync.Mutex
	live  map[string]*session[K, V]
	dying map[string]map[K]V
}

// New returns an empty table.
func New[K comparable, V any]() *Table[K, V] {
	return &Table[K, V]{live: map[string]*session[K, V]{}, dying: map[string]map[K]V{}}
}

// Add starts session id with ttl, expiring ttl from now.
func (t *Table[K, V]) Add(id string, ttl time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.live[id] = &session[K, V]{ttl: ttl, deadline: time.Now().Add(ttl), owned: map[K]V{}}
}

// KeepAlive moves a live session's deadline to ttl from now and returns
// its TTL; ok is false for an unknown or expired session.
func (t *Table[K, V]) KeepAlive(id string) (ttl time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.live[id]
	if !ok {
		return 0, false
	}
	s.deadline = time.Now().Add(s.ttl)
	return s.ttl, true
}

// Live reports whether session id is live.
func (t *Table[K, V]) Live(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.live[id]
	return ok
}

// Close ends a live session and returns what it owned for the caller to
// remove; ok is false for an unknown or expired session.
func (t *Table[K, V]) Close(id string) (owned map[K]V, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.live[id]
	if !ok {
		return nil, false
	}
	delete(t.live, id)
	return s.owned, true
}

// Own records that session id owns k (taking it from any other session)
// and reports whether the session is live; when it is not, k belongs to no
// session.
func (t *Table[K, V]) Own(id string, k K, v V) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.live {
		delete(s.owned, k)
	}
	s, ok := t.live[id]
	if ok {
		s.owned[k] = v
	}
	return ok
}

// Forget takes k from whichever live session owns it.
func (t *Table[K, V]) Forget(k K) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.live {
		delete(s.owned, k)
	}
}

// Owner returns the live session that owns k.
func (t *Table[K, V]) Owner(k K) (id string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, s := range t.live {
		if _, ok := s.owned[k]; ok {
			return id, true
		}
	}
	return "", false
}

// Owned returns a copy of what live session id owns; ok is false for an
// unknown or expired session.
func (t *Table[K, V]) Owned(id string) (owned map[K]V, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.live[id]
	if !ok {
		return nil, false
	}
	return maps.Clone(s.owned), true
}

// Each calls fn with a copy of every live session (in no order), outside
// the table's lock.
func (t *Table[K, V]) Each(fn func(id string, ttl time.Duration, owned map[K]V)) {
	type snap struct {
		id    string
		ttl   time.Duration
		owned map[K]V
	}
	t.mu.Lock()
	all := make([]snap, 0, len(t.live))
	for id, s := range t.live {
		all = append(all, snap{id, s.ttl, maps.Clone(s.owned)})
	}
	t.mu.Unlock()
	for _, s := range all {
		fn(s.id, s.ttl, s.owned)
	}
}

// Expire removes the sessions whose deadline passed, and retries the
// removals that failed before, with remove. A removal that fails is kept
// and retried at the next call; the first failure of a session is logged.
func (t *Table[K, V]) Expire(log *slog.Logger, remove func(id string, owned map[K]V) error) {
	now := time.Now()
	t.mu.Lock()
	due := maps.Clone(t.dying)
	for id, s := range t.live {
		if now.After(s.deadline) {
			due[id] = s.owned
			delete(t.live, id)
		}
	}
	t.mu.Unlock()
	for id, owned := range due {
		err := remove(id, owned)
		t.mu.Lock()
		if err != nil {
			if _, retrying := t.dying[id]; !retrying {
				log.Warn("expired session's resources not all removed; retrying", "session", id, "err", err)
			}
			t.dying[id] = owned
		} else {
			delete(t.dying, id)
		}
		t.mu.Unlock()
	}
}

// Run calls Expire every interval until stop is closed.
func (t *Table[K, V]) Run(stop <-chan struct{}, interval time.Duration, log *slog.Logger, remove func(id string, owned map[K]V) error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.Expire(log, remove)
		}
	}
}

// KeepAliveSession is backends.Sessions.KeepAlive over the table: the
// session with its TTL, or model.ErrUnknownSession.
func (t *Table[K, V]) KeepAliveSession(id string) (model.Session, error) {
	ttl, ok := t.KeepAlive(id)
	if !ok {
		return model.Session{}, model.ErrUnknownSession
	}
	return model.Session{ID: id, TTL: ttl}, nil
}

// CloseSession is backends.Sessions.CloseSession over the table: it ends a
// live session and hands what it owned to remove, which returns the store
// revision after; model.ErrUnknownSession for an unknown or expired
// session.
func (t *Table[K, V]) CloseSession(id string, remove func(owned map[K]V) (int64, error)) (int64, error) {
	owned, ok := t.Close(id)
	if !ok {
		return 0, model.ErrUnknownSession
	}
	return remove(owned)
}

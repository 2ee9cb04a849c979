package backends

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/junctionhq/junction/model"
)

// OpenFunc opens a backend from its parsed URL.
type OpenFunc func(ctx context.Context, u *url.URL) (Backend, error)

var (
	mu      sync.RWMutex
	drivers = map[string]OpenFunc{}
)

// Register makes a driver available under a URL scheme. Drivers call it from
// init; registering a scheme twice panics, as with database/sql.
func Register(scheme string, open OpenFunc) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := drivers[scheme]; dup {
		panic("backends: Register called twice for scheme " + scheme)
	}
	drivers[scheme] = open
}

// Schemes lists the registered URL schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(drivers))
	for s := range drivers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the backend a URL names, e.g. "raft://./junction-data". The
// driver package must be linked in (imported for its side effect).
func Open(ctx context.Context, rawURL string) (Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return nil, model.Invalid("backend", "%q is not a URL like raft://DIR or etcd://HOST:PORT", rawURL)
	}
	mu.RLock()
	open, ok := drivers[u.Scheme]
	mu.RUnlock()
	if !ok {
		return nil, model.Invalid("backend", "unknown scheme %q; known: %s", u.Scheme, strings.Join(Schemes(), ", "))
	}
	b, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open %s backend: %w", u.Scheme, err)
	}
	return b, nil
}

// RegisterURL registers a driver whose URL parses into a configuration C
// that its Open function takes, the common shape of every driver:
//
//	func init() { backends.RegisterURL("raft", ConfigFromURL, Open) }
func RegisterURL[C any, B Backend](scheme string, parse func(*url.URL) (C, error), open func(context.Context, C) (B, error)) {
	Register(scheme, func(ctx context.Context, u *url.URL) (Backend, error) {
		cfg, err := parse(u)
		if err != nil {
			return nil, err
		}
		b, err := open(ctx, cfg)
		if err != nil {
			return nil, err // not b: a nil *Driver in an interface is not nil
		}
		return b, nil
	})
}

package backends

import (
	"context"
	"fmt"
	"net/url"
	"os"
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

// secretOptions are the URL options that carry a store's credentials.
var secretOptions = []string{"password", "token", "secret-key"}

// Redact returns a backend URL with its credentials masked (the userinfo's
// password and the password, token and secret-key options), for logs and
// errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(a malformed URL)"
	}
	if u.User != nil {
		switch _, has := u.User.Password(); {
		case strings.HasPrefix(u.Scheme, "consul"):
			u.User = url.User("xxxxx") // consul://TOKEN@HOST: the name is the token
		case has:
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q := u.Query()
	for _, k := range secretOptions {
		if q.Has(k) {
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// readSecretFiles replaces each NAME-file option of u (password-file,
// token-file, secret-key-file) with NAME, read from that file, so that a
// credential need not be written in the URL, a unit file or a process
// listing.
func readSecretFiles(u *url.URL) error {
	q := u.Query()
	for _, k := range secretOptions {
		file := q.Get(k + "-file")
		if file == "" {
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return model.Invalid(k+"-file", "%v", err)
		}
		q.Del(k + "-file")
		q.Set(k, strings.TrimRight(string(b), "\r\n"))
	}
	u.RawQuery = q.Encode()
	return nil
}

// Open opens the backend a URL names, e.g. "raft://./junction-data". The
// driver package must be linked in (imported for its side effect).
// Credentials can come from files (password-file=, token-file=,
// secret-key-file=).
func Open(ctx context.Context, rawURL string) (Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return nil, model.Invalid("backend", "%q is not a URL like raft://DIR or etcd://HOST:PORT", Redact(rawURL))
	}
	if err := readSecretFiles(u); err != nil {
		return nil, err
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

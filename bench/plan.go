package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// primitives are the operations a client maps the workloads onto. Every
// client (gateway, driver, a store's own client) implements them; prepare
// builds the workloads from them, so that all clients do the same work.
type primitives interface {
	// supports returns ErrUnsupported, wrapped with the reason, for a
	// workload the client has no equivalent of.
	supports(workload string) error
	// newSession starts a session of the kind the client has (a Junction
	// session, an etcd lease, a Consul session).
	newSession(ctx context.Context) (string, error)
	closeSession(ctx context.Context, id string)
	// register creates or replaces instance k of o.Service, ephemeral under
	// session.
	register(ctx context.Context, o Options, k int64, session string) error
	keepAlive(ctx context.Context, session string) error
	// seedList registers persistent instance k of the listed service.
	seedList(ctx context.Context, o Options, k int64) error
	// list reads every instance of the listed service, linearizably unless
	// o.Stale.
	list(ctx context.Context, o Options) error
	putConfig(ctx context.Context, o Options, k int, value string) error
	// getConfig reads config k, linearizably unless o.Stale.
	getConfig(ctx context.Context, o Options, k int) error
}

// listService is the service the instances workload lists.
func listService(o Options) string { return o.Service + "-list" }

// listSize is how many instances the listed service has.
const listSize = 10

// prepare sets up workload on p and returns its operation.
func prepare(ctx context.Context, p primitives, workload string, o Options) (Op, func(), error) {
	need := map[string]bool{workload: true}
	if workload == "mixed" {
		need = map[string]bool{"register": true, "instances": true, "config-get": true, "config-put": true}
	}
	for w := range need {
		if err := p.supports(w); err != nil {
			return nil, nil, err
		}
	}
	var sessions []string
	cleanup := func() {
		for _, s := range sessions {
			p.closeSession(context.Background(), s)
		}
	}
	fail := func(err error) (Op, func(), error) { cleanup(); return nil, nil, err }
	nSessions := 0
	if need["register"] {
		nSessions = o.Concurrency
	}
	if need["heartbeat"] {
		nSessions = o.Keys
	}
	// Created by the callers together: one at a time, 100k sessions took
	// longer than their TTL, and the first had expired before the
	// workload began.
	sessions = make([]string, nSessions)
	var next atomic.Int64
	errs := make([]error, o.Concurrency)
	var wg sync.WaitGroup
	for c := range o.Concurrency {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(nSessions); i = next.Add(1) - 1 {
				if sessions[i], errs[c] = p.newSession(ctx); errs[c] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(fmt.Errorf("session: %w", err))
	}
	if need["instances"] {
		for k := range int64(listSize) {
			if err := p.seedList(ctx, o, k); err != nil {
				return fail(fmt.Errorf("seed instances: %w", err))
			}
		}
	}
	value := make([]byte, o.ValueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	if need["config-get"] {
		for k := range o.Keys {
			if err := p.putConfig(ctx, o, k, string(value)); err != nil {
				return fail(fmt.Errorf("seed configs: %w", err))
			}
		}
	}
	var n atomic.Int64
	ops := map[string]Op{
		"register": func(ctx context.Context, w int) error {
			return p.register(ctx, o, n.Add(1)%int64(o.Keys), sessions[w])
		},
		"heartbeat": func(ctx context.Context, _ int) error {
			return p.keepAlive(ctx, sessions[n.Add(1)%int64(len(sessions))])
		},
		"instances": func(ctx context.Context, _ int) error { return p.list(ctx, o) },
		"config-put": func(ctx context.Context, _ int) error {
			return p.putConfig(ctx, o, int(n.Add(1)%int64(o.Keys)), string(value))
		},
		"config-get": func(ctx context.Context, _ int) error { return p.getConfig(ctx, o, rand.IntN(o.Keys)) },
	}
	ops["mixed"] = mixed(ops, func() int { return rand.IntN(10) })
	return ops[workload], cleanup, nil
}

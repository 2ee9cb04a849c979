// Package sdk is the Go client of Junction: service registration that is
// never silently lost, subscriptions that never miss a change, weighted
// instance selection, configuration with compare-and-set and a local
// fallback, and a grpc-go resolver — over any store Junction runs on.
//
// # Connecting
//
// Create one Client per process and close it on shutdown:
//
//	c, err := sdk.New(ctx, sdk.WithAddrs("10.0.0.1:7480", "10.0.0.2:7480"))
//	defer c.Close()
//
// The client talks gRPC to the first gateway that answers and fails over to
// the others. Calls default to the namespace "public" and the group
// "DEFAULT_GROUP"; WithNamespace and WithGroup change the defaults, and
// InNamespace and InGroup change them for one call. Errors are the portable
// errors of package model: test them with errors.Is(err, model.ErrConflict),
// model.ErrNotFound, model.ErrUnavailable and so on.
//
// # Registering
//
// Register keeps an instance registered for as long as the client lives:
//
//	reg, err := c.Register(ctx, "orders", model.Instance{IP: "10.0.0.5", Port: 8080})
//
// The client owns one session with a TTL (WithSessionTTL, default 10s) and
// heartbeats it every TTL/3. If the process dies, the instance disappears
// within the TTL. If the session is lost while the process lives — the
// gateway restarted on a new store, a partition outlasted the TTL — the
// client creates a new session and registers every instance again on its
// own ("redo"); WithStateListener reports each transition (registered,
// disconnected, session-lost). Close ends the session, which deregisters
// everything at once. Persistent() registers an instance that stays until
// Deregister, without a session.
//
// # Subscribing
//
// Subscribe lists a service at a revision and watches from that same
// revision, so nothing that happens in between is missed. Each change
// produces a Snapshot — the whole current set plus what was added, updated
// and removed:
//
//	sub, err := c.Subscribe(ctx, "orders")
//	for snap := range sub.Updates() {
//		use(snap.Instances) // possibly empty: an empty set is always delivered
//	}
//
// Updates holds only the latest snapshot, so a slow consumer sees the
// current state rather than a backlog. When the server cannot prove it
// delivered every change it sends the full state (a RESET); the
// subscription applies it and the snapshot's diff stays exact. After an
// interruption the subscription lists again and resumes by itself.
// ProtectEmpty keeps the last non-empty set when a service suddenly has no
// instance at all, and says so in Snapshot.Protected. A client's
// subscriptions share the gateway's multiplexed watch streams
// (WatchService), a thousand to a stream, so following thousands of
// services costs a few streams; against a gateway without WatchService
// each subscription has a stream of its own.
//
// SelectOneHealthy picks a healthy, enabled instance in proportion to the
// weights, from a subscription's view (no call) or from a fresh list.
//
// # Configuration
//
// GetConfig, PublishConfig and DeleteConfig read and write configuration
// items; IfRevision makes a write conditional (0: create only) and a
// conflict is model.ErrConflict. WatchConfig calls a function with the
// current value and after every change. WithConfigCache keeps every value
// the process sees on disk: when no gateway answers, GetConfig returns the
// cached value with Source FromCache (Stale reports it), so an application
// can start with its last known configuration.
//
// # gRPC
//
// Resolver plugs Junction into grpc-go's name resolution:
//
//	conn, err := grpc.NewClient("junction:///public/DEFAULT_GROUP/orders",
//		grpc.WithResolvers(c.Resolver()), grpc.WithTransportCredentials(insecure.NewCredentials()))
//
// The connection follows the service through a subscription; only healthy,
// enabled instances become addresses.
package sdk

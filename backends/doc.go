// Package backends defines the contract every coordination store's driver
// implements, and Open, which picks a driver by the scheme of a backend URL
// (raft://, etcd://, zk://, consul://, nacos://).
//
// The contract, line by line (the conformance package checks each one):
//
//  1. Revisions: every read returns the store revision it reflects; every
//     write returns the revision it created; revisions only grow.
//  2. List-then-watch is atomic: a watch from revision R delivers every change
//     after R, so a caller that lists at R and watches from R misses nothing.
//  3. Watches are ordered, unique and gap-free, or they say so: when a driver
//     cannot prove it delivered every change it emits a RESET event carrying
//     the full current state and its revision.
//  4. Deletes are events and carry the last known value; an empty instance
//     set is delivered, never swallowed.
//  5. Sessions are honest: an ephemeral instance disappears within its
//     session's TTL plus a small bound after heartbeats stop.
//  6. Compare-and-set is available for configuration writes and deletes.
//  7. Reads are linearizable by default; callers may ask for stale reads and
//     are told which consistency they got.
//  8. Errors are the portable errors of package model, testable with errors.Is.
//  9. Health checks (run by the gateway over any store) turn an instance
//     unhealthy after fall × interval and back after rise × interval, each
//     transition delivered once.
//  10. An instance can be patched in place (healthy, enabled, weight,
//     metadata, optionally at a revision) through any driver: the patch
//     keeps the owner's other changes and never takes the instance from its
//     session, which still removes it on expiry. A store that lets only the
//     driver holding the session write an ephemeral instance says so
//     (Capabilities.PatchAnyOwner false, ErrNotOwner), and the gateway
//     holding the session applies the patch.
//  11. Every publish and every delete of a configuration item appends an
//     immutable version (History): numbered from 1 and never renumbered,
//     in the order of the changes, with its content, author and message;
//     a refused compare-and-set appends none, a rollback is a new version,
//     a deleted item keeps its history, and retention drops the oldest
//     versions and the expired. A store that cannot write the version in
//     the change's own transaction says so (Capabilities.AtomicHistory
//     false).
//  12. A gray release (a backend that serves them: Gray, the gateway's)
//     reaches, by read and by watch, the clients its rule chooses and
//     never the others; promoted, it is the release, as a new version;
//     aborted, its clients get the release again.
package backends

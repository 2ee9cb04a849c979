// Package nacos is Junction's driver for Nacos, on the official Go client
// github.com/nacos-group/nacos-sdk-go/v2 (Nacos 2.x gRPC, with the 1.x HTTP
// API for persistent instances). It is tested against Polaris 1.18.1, an
// independent server of the Nacos protocols; what the tests measure is
// labelled "Nacos protocol served by Polaris 1.18.1".
//
// Open it with a URL naming the servers' HTTP ports:
//
//	nacos://[USER:PASSWORD@]HOST:8848[,HOST:8848...]?namespace=ID&access-key=K&secret-key=S&timeout=5s
//
// Naming: a Junction namespace is the Nacos namespace of the same id
// ("public" is Nacos' public namespace, or the one ?namespace= names), a
// group is a groupName, a cluster a clusterName. Nacos identifies an
// instance by ip, port and cluster; the Junction id travels in the
// junction-id metadata key, and instances registered by plain Nacos
// clients read with the id ip:port (ip:port#cluster outside the DEFAULT
// cluster). Metadata keys a server adds (internal-nacos-*) are hidden.
//
// Sessions: Nacos ties an ephemeral instance to the connection that
// registered it. Every Junction session gets its own connection; the
// driver enforces the TTL, and on expiry deregisters the session's
// instances and closes the connection. If the gateway dies the connections
// go with it and the server removes the instances. Nacos 2 keeps one
// ephemeral instance of a service per connection, so a session holds at
// most one instance of each service.
//
// Revisions: Nacos has none. The driver derives them from a clock
// (milliseconds, kept growing) and, for configuration items, the first 20
// bits of the content's MD5: a configuration revision names a content.
// Versions are reported as 0, unknown.
//
// Reads: instances come from the driver's subscription to the service,
// fed by the server's pushes; configuration items are read from the
// server. Both show the writes the server acknowledged to this driver and
// does not serve yet. Reads are stale: Nacos serves no linearizable reads.
//
// Compare-and-set: an update at a revision is Nacos' casMd5 publish with
// the MD5 of the content read (cas=native), or, for servers that drop
// casMd5 (Polaris 1.18.1), a compare then an unconditional publish
// (cas=check, not atomic). Create-only is a casMd5 publish no content
// matches, atomic on both. Delete-if-revision compares, then deletes: a
// write landing in between is lost. Nacos cannot store empty content.
//
// Watches: the driver diffs each pushed snapshot against its view and
// emits PUT and DELETE events, keeping the last watch-history changes for
// watches that resume from a revision it issued. When the connection comes
// back after a break it subscribes again and delivers a RESET. Config
// watches use the SDK's listener.
package nacos

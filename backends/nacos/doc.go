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
// History: Nacos' own configuration history is written by the server
// after the fact and keeps neither Junction's author, nor a message, nor
// the content type, so the driver keeps its own, as configuration items
// of the group junction-config-history in the Nacos namespace of
// junction-system. Each item's history has a head, with the dataId
// DIGEST.head (DIGEST: the first 160 bits of the SHA-256 of the item's
// Nacos namespace, group and dataId, in hex), which numbers its versions
// and lists those retention keeps, and a record of each kept version,
// DIGEST.NUMBER (20 digits), which also holds the revision the driver gave
// the change. Once the server has acknowledged a change, the driver
// numbers its version on the head, by compare-and-set (create-only for a
// new head; a casMd5 publish under cas=native, retried while another
// writer gets in between; under cas=check only the driver's own writers
// are serialized), then writes the record, then deletes the records
// retention drops: the head first, so that a number is given out once. The
// version is written after the change returns to its caller, off its path;
// the item's next change through the driver, and a read of its history
// through the driver, wait for it. The
// history is not atomic with the change: a change whose version cannot be
// written stands, with a warning logged, and leaves a gap in its history;
// under cas=check two drivers changing one item within seconds of each
// other can give out one number twice. The driver reads the history items
// it wrote within the last seconds from its own copy, as the server may
// not serve them yet. A driver's changes of one item are serialized, so
// their versions come in the order of their revisions. The items of
// junction-system keep no history; the history's own items are left out
// of listings and refused to ordinary writes.
//
// Watches: the driver diffs each pushed snapshot against its view and
// emits PUT and DELETE events, keeping the last watch-history changes for
// watches that resume from a revision it issued. When the connection comes
// back after a break it subscribes again and delivers a RESET. Config
// watches use the SDK's listener.
package nacos

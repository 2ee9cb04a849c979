// Package zookeeper is Junction's driver for Apache ZooKeeper 3.5+, on
// github.com/go-zookeeper/zk.
//
// Open it with a URL:
//
//	zk://HOST:PORT[,HOST:PORT...]?root=/services&prefix=/junction&session-timeout=10s&username=U&password=P
//
// Layout:
//
//	ROOT/SERVICE/INSTANCE_ID                                public/DEFAULT_GROUP instances, Apache Curator
//	                                                        service-discovery JSON (what Spring Cloud Zookeeper reads)
//	PREFIX/services/NAMESPACE/GROUP/SERVICE/INSTANCE_ID     every other namespace and group, same format
//	PREFIX/configs/NAMESPACE/GROUP/DATA_ID                  {"content":...,"contentType":...,"md5":...}
//	PREFIX/config-history/NAMESPACE/GROUP/DATA_ID           the item's history head: {"last":N,"kept":[{"n":1,"e":EXPIRY_MS},...]}
//	PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/NUMBER    one version: {"number":N,"op":"update","content":...,"author":...}
//	PREFIX/sessions/SESSION_ID                              ephemeral record of a live Junction session
//
// Instances are Curator ServiceInstance records: name, id, address, port,
// registrationTimeUTC, serviceType (DYNAMIC for ephemeral, PERMANENT for
// persistent) and a Spring Cloud ZookeeperInstance payload whose metadata
// carries the user's metadata plus Junction's fields under "junction.*" keys
// (cluster, weight, enabled, healthy, session). Instances written by Curator
// or Spring Cloud are read back with defaults for what they lack.
//
// Sessions: a ZooKeeper session belongs to a connection, and one connection
// per Junction session would run into ZooKeeper's per-client connection cap.
// So the driver holds one ZooKeeper session and creates every ephemeral node
// on it; Junction sessions are kept by the driver with their exact TTLs, and
// an expired Junction session's nodes are deleted by the driver. If the
// gateway dies, ZooKeeper expires its session after session-timeout and
// removes the nodes: that is the backstop. When the ZooKeeper session itself
// expires and a new one begins, the driver re-creates every node of every
// live Junction session, replacing nodes still owned by the old session (the
// Curator/Dubbo "NodeExists" trap). A Junction session is served by the
// gateway that created it.
//
// Every publish and delete of an item outside junction-system appends a
// version (NUMBER zero-padded to 20 digits) in one multi with the change:
// the item's create, set or delete at the version read, the head's set at
// the version read (created, empty and then set, with the first version),
// the version's node and the deletes of the versions retention drops. So
// concurrent writers never give out one number twice, and a version's
// revision is its node's czxid, the zxid of the change.
//
// Revisions are zxids. A read reports the zxid of the last change to what
// it read; a delete event carries its parent's pzxid, an upper bound of the
// delete's own zxid. ZooKeeper keeps no history, so a watch from a revision
// older than the last change starts with a RESET; watches are one-shot and
// re-armed, and after every re-arm the driver proves from ZooKeeper's
// version counters (cversion, version) that it saw every change, emitting a
// RESET whenever it cannot. Default reads call sync first.
package zookeeper

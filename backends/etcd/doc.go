// Package etcd is Junction's driver for etcd v3, on the official client.
//
// Open it with a URL:
//
//	etcd://HOST:PORT[,HOST:PORT...]?prefix=/junction&username=U&password=P&tls=true&ca-file=F&cert-file=F&key-file=F&dial-timeout=5s
//
// Key layout (PREFIX defaults to /junction):
//
//	PREFIX/services/NAMESPACE/GROUP/SERVICE/INSTANCE_ID  → {"Op":0,"Addr":"IP:PORT","Metadata":{...the Junction instance...}}
//	PREFIX/configs/NAMESPACE/GROUP/DATA_ID               → {"content":"...","contentType":"yaml","md5":"...","created":"...","updated":"..."}
//	PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/head   → {"last":N,"kept":[{"n":1,"e":EXPIRY_MS},...]}
//	PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/v/N    → {"number":N,"op":"update","content":"...","author":"...","message":"...",...}
//
// Instance values follow etcd's naming/endpoints format, so grpc-go's etcd
// resolver reads a service at the target PREFIX/services/NAMESPACE/GROUP/SERVICE,
// and endpoints written there by etcd's endpoints.Manager are visible through
// Junction (id: the key's last segment; address from Addr).
//
// Sessions are leases: one lease per session, the session id is the lease id
// in hex, and ephemeral instances are attached to it. etcd rounds a TTL up to
// whole seconds and to its minimum lease TTL (by default 2s); CreateSession
// returns the TTL actually granted. Revisions are etcd's; a watch from a
// compacted revision starts with a RESET. Compare-and-set uses Txn on
// ModRevision; every publish and delete writes the item's next version and
// its head in the same Txn, guarded by the head's ModRevision, so that
// history is atomic with the change and a version's revision is its key's
// ModRevision.
package etcd

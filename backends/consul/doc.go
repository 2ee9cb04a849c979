// Package consul is Junction's driver for HashiCorp Consul, on the official
// client github.com/hashicorp/consul/api.
//
// Open it with a URL naming a Consul agent's HTTP API:
//
//	consul://HOST:PORT?token=T&dc=DC&prefix=junction&check-ttl=15s&deregister-after=1m&watch-wait=10s
//	consul+https://HOST:PORT?ca=CA.pem&cert=C.pem&key=K.pem
//
// Instances are Consul services registered through the agent, so they are
// first-class catalog entries: the health API, the UI and DNS see them. A
// Junction instance becomes the service NAME with ID
// junction:NAMESPACE:GROUP:NAME:INSTANCE_ID, a junction:NAMESPACE/GROUP tag,
// its metadata as service meta next to Junction's junction-* keys, its
// weight as Consul weights, a TTL check junction-health:ID holding its
// healthy flag, Consul's maintenance mode when it is disabled and, for
// ephemeral instances, a TTL check junction-session:ID. Services registered
// in Consul by other tools read as public/DEFAULT_GROUP instances.
//
// Sessions: Consul's own sessions have a 10s floor, so the driver keeps
// Junction sessions with their exact TTLs and deregisters an expired
// session's instances itself, while passing their session checks every
// check-ttl/3. If the gateway dies the checks lapse: Consul marks the
// instances critical after check-ttl and deregisters them deregister-after
// later (Consul's minimum is one minute, reaped every 30s). A session is
// served by the gateway that created it.
//
// Configs live in the KV store: the raw content at
// PREFIX/configs/NAMESPACE/GROUP/DATA_ID with Junction's version counter in
// the flags, and the content type and times at PREFIX/config-meta/…,
// written in the same transaction. Compare-and-set compares ModifyIndex.
//
// Every publish and delete of an item outside junction-system appends a
// version, in the same transaction as the change:
//
//	PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/head      {"last":N,"kept":[{"n":1,"e":EXPIRY_MS},...]}
//	PREFIX/config-history/NAMESPACE/GROUP/DATA_ID/v/NUMBER  {"number":N,"op":"update","content":"...","author":"...",...}
//
// NUMBER is zero-padded to 20 digits. The transaction writes the record,
// writes the head with a compare-and-set on the head's ModifyIndex (so
// that concurrent writers never give out one number twice) and deletes
// the versions retention drops; a version's revision is its record's
// ModifyIndex, the index of the change. A transaction holds at most 64
// operations, so a write that drops more than 56 versions lists the rest
// in the head as expired and deletes them in further transactions right
// after; reads return only what the head keeps. The history lives under
// the same PREFIX as the configs, so a token needs no other key policy.
//
// Revisions are Consul Raft indexes. Writes return once the catalog holds
// them. Reads are ?consistent unless stale is asked for. Watches are
// blocking queries, rate-limited per watch. A blocking query returns only
// the newest state, so a watch emits an event only when it can prove it saw
// every change: one changed instance per answer, a config version one
// higher than the last; anything else (several changes, a skipped version,
// a delete-and-recreate, an index that went backwards) is a RESET.
package consul

package model

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"
)

// Defaults for the isolation levels of the service model.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"
)

// ServiceKey names a service: namespace → group → service.
type ServiceKey struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Service   string `json:"service"`
}

// WithDefaults fills an empty namespace or group with its default.
func (k ServiceKey) WithDefaults() ServiceKey {
	if k.Namespace == "" {
		k.Namespace = DefaultNamespace
	}
	if k.Group == "" {
		k.Group = DefaultGroup
	}
	return k
}

// String returns namespace/group/service.
func (k ServiceKey) String() string { return k.Namespace + "/" + k.Group + "/" + k.Service }

// Instance is one endpoint of a service.
type Instance struct {
	ID        string            `json:"id"`
	IP        string            `json:"ip"`
	Port      int               `json:"port"`
	Cluster   string            `json:"cluster"`
	Weight    float64           `json:"weight"`
	Healthy   bool              `json:"healthy"`
	Enabled   bool              `json:"enabled"`
	Ephemeral bool              `json:"ephemeral"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	// Session owns an ephemeral instance: the instance is removed when the
	// session expires or is closed. Empty for persistent instances.
	Session string `json:"session,omitempty"`
	// Revision is the store revision that last changed the instance.
	Revision int64 `json:"revision"`
}

// DefaultInstanceID is the id an instance gets when none is given: ip:port.
func DefaultInstanceID(ip string, port int) string {
	return net.JoinHostPort(ip, strconv.Itoa(port))
}

// Clone returns a deep copy of the instance.
func (i Instance) Clone() Instance {
	i.Metadata = maps.Clone(i.Metadata)
	return i
}

// ConfigKey names a configuration item: namespace → group → dataId.
type ConfigKey struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	DataID    string `json:"dataId"`
}

// WithDefaults fills an empty namespace or group with its default.
func (k ConfigKey) WithDefaults() ConfigKey {
	if k.Namespace == "" {
		k.Namespace = DefaultNamespace
	}
	if k.Group == "" {
		k.Group = DefaultGroup
	}
	return k
}

// String returns namespace/group/dataId.
func (k ConfigKey) String() string { return k.Namespace + "/" + k.Group + "/" + k.DataID }

// Content types a configuration item may declare.
const (
	ContentText       = "text"
	ContentJSON       = "json"
	ContentYAML       = "yaml"
	ContentProperties = "properties"
	ContentXML        = "xml"
	ContentTOML       = "toml"
)

// Config is a configuration item.
type Config struct {
	Key         ConfigKey `json:"key"`
	Content     []byte    `json:"content"`
	ContentType string    `json:"contentType"`
	MD5         string    `json:"md5"`
	// Revision is the store revision that last changed the item; it is the
	// value compare-and-set preconditions compare against.
	Revision int64 `json:"revision"`
	// CreateRevision is the store revision that created the item.
	CreateRevision int64 `json:"createRevision"`
	// Version counts the writes to this item since it was created, from 1.
	Version int64     `json:"version"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// ContentMD5 returns the hex MD5 of content, the digest Nacos clients use.
func ContentMD5(content []byte) string {
	sum := md5.Sum(content)
	return hex.EncodeToString(sum[:])
}

// ConfigSummary describes a configuration item without its content.
type ConfigSummary struct {
	Key         ConfigKey `json:"key"`
	ContentType string    `json:"contentType"`
	MD5         string    `json:"md5"`
	Size        int       `json:"size"`
	Revision    int64     `json:"revision"`
	Version     int64     `json:"version"`
	Updated     time.Time `json:"updated"`
}

// Summary returns the summary of c.
func (c Config) Summary() ConfigSummary {
	return ConfigSummary{Key: c.Key, ContentType: c.ContentType, MD5: c.MD5, Size: len(c.Content),
		Revision: c.Revision, Version: c.Version, Updated: c.Updated}
}

// Session keeps ephemeral instances alive while its owner heartbeats.
type Session struct {
	ID  string        `json:"id"`
	TTL time.Duration `json:"ttl"`
}

// ServiceSummary describes a service in a listing.
type ServiceSummary struct {
	Key       ServiceKey `json:"key"`
	Instances int        `json:"instances"`
	Healthy   int        `json:"healthy"`
}

// Precondition guards a configuration write (compare-and-set). The zero value
// means unconditional.
type Precondition struct {
	// Check turns the precondition on.
	Check bool
	// Revision is the item's expected Revision; 0 means "must not exist".
	Revision int64
}

// IfRevision returns a precondition that holds when the item's revision is
// rev (0: the item must not exist).
func IfRevision(rev int64) Precondition { return Precondition{Check: true, Revision: rev} }

// Holds reports whether the precondition holds for an item currently at
// revision cur (0 when absent).
func (p Precondition) Holds(cur int64) bool { return !p.Check || p.Revision == cur }

// Consistency says how fresh a read is.
type Consistency string

// Consistency levels a read may get.
const (
	// Linearizable reads reflect every write acknowledged before they began.
	Linearizable Consistency = "linearizable"
	// Stale reads may lag behind the latest acknowledged writes.
	Stale Consistency = "stale"
)

// InstancePatch changes some fields of one instance in place. A nil field
// is left as it is; so are the fields a patch cannot name, and who owns the
// instance: an ephemeral instance stays with its session.
type InstancePatch struct {
	Healthy *bool    `json:"healthy,omitempty"`
	Enabled *bool    `json:"enabled,omitempty"`
	Weight  *float64 `json:"weight,omitempty"`
	// Metadata, when not nil, replaces the instance's metadata (JSON: null
	// leaves it, {} clears it).
	Metadata map[string]string `json:"metadata"`
	// Cond applies the patch only while the instance's Revision is
	// Cond.Revision (model.ErrConflict otherwise).
	Cond Precondition `json:"cond,omitzero"`
}

// Apply returns i with the patch applied.
func (p InstancePatch) Apply(i Instance) Instance {
	i = i.Clone()
	if p.Healthy != nil {
		i.Healthy = *p.Healthy
	}
	if p.Enabled != nil {
		i.Enabled = *p.Enabled
	}
	if p.Weight != nil {
		i.Weight = *p.Weight
	}
	if p.Metadata != nil {
		i.Metadata = maps.Clone(p.Metadata)
		if len(i.Metadata) == 0 {
			i.Metadata = nil
		}
	}
	return i
}

// Shows reports whether i shows every field the patch sets.
func (p InstancePatch) Shows(i Instance) bool {
	return (p.Healthy == nil || *p.Healthy == i.Healthy) && (p.Enabled == nil || *p.Enabled == i.Enabled) &&
		(p.Weight == nil || *p.Weight == i.Weight) && (p.Metadata == nil || maps.Equal(p.Metadata, i.Metadata))
}

// PatchConflict is the error of a patch whose precondition does not hold on
// an instance at revision cur.
func PatchConflict(p InstancePatch, cur int64) error {
	return &FieldError{Field: "ifRevision", Reason: fmt.Sprintf("the instance is at revision %d, not %d", cur, p.Cond.Revision), Kind: ErrConflict}
}

// SystemNamespace is the namespace where Junction keeps its own records
// (access control, health checks, service settings) as configs, so that
// every gateway over a store sees them. Its items keep no history.
const SystemNamespace = "junction-system"

// ConfigOp is what a version of a configuration item did.
type ConfigOp string

// The operations a version records.
const (
	OpCreate ConfigOp = "create"
	OpUpdate ConfigOp = "update"
	OpDelete ConfigOp = "delete"
)

// ConfigVersion is one immutable version in a configuration item's history:
// a publish, or a delete (which holds the content it removed).
type ConfigVersion struct {
	Key ConfigKey `json:"key"`
	// Number counts the item's versions from 1 and is never reused, not
	// even after the item is deleted and created again (Config.Version
	// starts again then).
	Number      int64    `json:"number"`
	Revision    int64    `json:"revision"`
	Op          ConfigOp `json:"op"`
	Content     []byte   `json:"content"`
	ContentType string   `json:"contentType"`
	MD5         string   `json:"md5"`
	// Author is who made the change: the accessor ID of the caller's
	// token, or the client's address when access control is off.
	Author  string    `json:"author,omitempty"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
}

// GrayRule chooses the clients of a gray release: those that match every
// criterion it sets (at least one is set).
type GrayRule struct {
	// Labels: clients that name themselves with every one of them.
	Labels map[string]string `json:"labels,omitempty"`
	// IPs: clients at one of these addresses.
	IPs []string `json:"ips,omitempty"`
	// Percent: a stable share of the clients (1 to 100), by a hash of the
	// client's ID and the item; a client without an ID is never in it.
	Percent int `json:"percent,omitempty"`
}

// GrayClient is what a gray rule looks at: who a client says it is, and
// where it connects from.
type GrayClient struct {
	ID     string
	Labels map[string]string
	IP     string
}

// Matches reports whether client c of item key is one the rule chooses.
func (r GrayRule) Matches(key ConfigKey, c GrayClient) bool {
	for k, v := range r.Labels {
		if c.Labels[k] != v {
			return false
		}
	}
	if len(r.IPs) > 0 && !slices.Contains(r.IPs, c.IP) {
		return false
	}
	if r.Percent > 0 {
		if c.ID == "" {
			return false
		}
		h := sha256.Sum256([]byte(key.String() + "\x00" + c.ID))
		if int(binary.BigEndian.Uint64(h[:8])%100) >= r.Percent {
			return false
		}
	}
	return true
}

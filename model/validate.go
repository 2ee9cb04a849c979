package model

import (
	"maps"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on names and values. Names follow Nacos' dataId/group rules so that
// every name Junction accepts is valid in every store it translates onto.
const (
	MaxNameLen          = 128
	MaxDataIDLen        = 256
	MaxInstanceIDLen    = 256
	MaxMetadataEntries  = 64
	MaxMetadataKeyLen   = 128
	MaxMetadataValueLen = 1024
	MaxWeight           = 10000
	MinSessionTTL       = time.Second
	MaxSessionTTL       = 24 * time.Hour
	// DefaultMaxContentSize is the default limit on a config's content.
	DefaultMaxContentSize = 1 << 20
)

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)
	hostRE     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	instanceRE = regexp.MustCompile(`^[A-Za-z0-9_.:@\[\]#-]+$`)
)

// ValidateName checks a namespace, group, service, cluster or dataId name.
func ValidateName(field, v string, maxLen int) error {
	switch {
	case v == "":
		return Invalid(field, "must not be empty")
	case len(v) > maxLen:
		return Invalid(field, "is %d characters long; at most %d are allowed", len(v), maxLen)
	case !nameRE.MatchString(v):
		return Invalid(field, "%q may contain only letters, digits, '_', '.', ':' and '-'", v)
	case v == "." || v == "..":
		return Invalid(field, "%q is not a name: stores take it for a path step", v)
	}
	return nil
}

// Validate checks every part of the key.
func (k ServiceKey) Validate() error {
	if err := ValidateName("namespace", k.Namespace, MaxNameLen); err != nil {
		return err
	}
	if err := ValidateName("group", k.Group, MaxNameLen); err != nil {
		return err
	}
	return ValidateName("service", k.Service, MaxNameLen)
}

// Validate checks every part of the key.
func (k ConfigKey) Validate() error {
	if err := ValidateName("namespace", k.Namespace, MaxNameLen); err != nil {
		return err
	}
	if err := ValidateName("group", k.Group, MaxNameLen); err != nil {
		return err
	}
	return ValidateName("dataId", k.DataID, MaxDataIDLen)
}

// ValidateInstanceID checks an instance id.
func ValidateInstanceID(id string) error {
	switch {
	case id == "":
		return Invalid("id", "must not be empty")
	case len(id) > MaxInstanceIDLen:
		return Invalid("id", "is %d characters long; at most %d are allowed", len(id), MaxInstanceIDLen)
	case !instanceRE.MatchString(id):
		return Invalid("id", "%q may contain only letters, digits and _ . : @ [ ] # -", id)
	case id == "." || id == "..":
		return Invalid("id", "%q is not an id: stores take it for a path step", id)
	}
	return nil
}

// Normalize fills defaults (id, cluster) and validates the instance. It does
// not check that the session exists; the backend does.
func (i *Instance) Normalize() error {
	if i.IP == "" {
		return Invalid("ip", "must not be empty")
	}
	if _, err := netip.ParseAddr(i.IP); err != nil && (len(i.IP) > 253 || !hostRE.MatchString(i.IP)) {
		return Invalid("ip", "%q is neither an IP address nor a host name", i.IP)
	}
	if i.Port < 1 || i.Port > 65535 {
		return Invalid("port", "%d is out of range 1..65535", i.Port)
	}
	if i.ID == "" {
		i.ID = DefaultInstanceID(i.IP, i.Port)
	}
	if err := ValidateInstanceID(i.ID); err != nil {
		return err
	}
	if i.Cluster == "" {
		i.Cluster = DefaultCluster
	}
	if err := ValidateName("cluster", i.Cluster, MaxNameLen); err != nil {
		return err
	}
	if math.IsNaN(i.Weight) || i.Weight < 0 || i.Weight > MaxWeight {
		return Invalid("weight", "%v is out of range 0..%d", i.Weight, MaxWeight)
	}
	if len(i.Metadata) > MaxMetadataEntries {
		return Invalid("metadata", "has %d entries; at most %d are allowed", len(i.Metadata), MaxMetadataEntries)
	}
	for k, v := range i.Metadata {
		if k == "" || len(k) > MaxMetadataKeyLen || !utf8.ValidString(k) {
			return Invalid("metadata", "key %q must be 1..%d bytes of UTF-8", k, MaxMetadataKeyLen)
		}
		if len(v) > MaxMetadataValueLen || !utf8.ValidString(v) {
			return Invalid("metadata", "value of %q must be at most %d bytes of UTF-8", k, MaxMetadataValueLen)
		}
	}
	switch {
	case i.Ephemeral && i.Session == "":
		return Invalid("session", "an ephemeral instance needs a session")
	case !i.Ephemeral && i.Session != "":
		return Invalid("session", "only ephemeral instances belong to a session")
	}
	return nil
}

// ValidateContent checks a config's content against the size limit (bytes).
// Content must be UTF-8 text, as in Nacos.
func ValidateContent(content []byte, limit int) error {
	if len(content) > limit {
		return TooLarge("content", len(content), limit)
	}
	if !utf8.Valid(content) {
		return Invalid("content", "must be UTF-8 text")
	}
	return nil
}

// ValidateContentType checks a content type; "" is accepted and means text.
func ValidateContentType(t string) error {
	switch t {
	case "", ContentText, ContentJSON, ContentYAML, ContentProperties, ContentXML, ContentTOML:
		return nil
	}
	return Invalid("contentType", "%q is not one of text, json, yaml, properties, xml, toml", t)
}

// ValidateTTL checks a session TTL.
func ValidateTTL(ttl time.Duration) error {
	if ttl < MinSessionTTL || ttl > MaxSessionTTL {
		return Invalid("ttl", "%v is out of range %v..%v", ttl, MinSessionTTL, MaxSessionTTL)
	}
	return nil
}

// Validate checks the values a patch sets, as Normalize checks an
// instance's.
func (p InstancePatch) Validate() error {
	probe := Instance{IP: "127.0.0.1", Port: 1, Weight: 1}
	probe = p.Apply(probe)
	return probe.Normalize()
}

// Clients name themselves to the gateways (an ID and labels) for the
// listener query; these bound what they may say.
var (
	clientIDRE = regexp.MustCompile(`^[A-Za-z0-9_.:@/+-]{1,128}$`)
	labelRE    = regexp.MustCompile(`^[A-Za-z0-9_.:/-]{1,63}$`)
)

// MaxLabels is how many labels a client may give itself.
const MaxLabels = 16

// The headers (gRPC metadata) a client names itself with.
const (
	ClientIDHeader     = "junction-client-id"
	ClientLabelsHeader = "junction-client-labels"
)

// FormatLabels writes labels as the ClientLabelsHeader carries them:
// k=v,k=v, sorted.
func FormatLabels(labels map[string]string) string {
	kv := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		kv = append(kv, k+"="+labels[k])
	}
	return strings.Join(kv, ",")
}

// ValidateClientID checks the name a client gives itself.
func ValidateClientID(id string) error {
	if !clientIDRE.MatchString(id) {
		return Invalid("clientId", "%q may contain only letters, digits and _ . : @ / + -, 1 to 128 of them", id)
	}
	return nil
}

// ValidateLabel checks one of a client's labels.
func ValidateLabel(name, value string) error {
	if !labelRE.MatchString(name) || !labelRE.MatchString(value) {
		return Invalid("labels", "%s=%s: names and values may contain only letters, digits and _ . : / -, 1 to 63 of them", name, value)
	}
	return nil
}

// Validate checks a gray rule: at least one criterion, labels and
// addresses that can match, a percent of 1 to 100.
func (r GrayRule) Validate() error {
	switch {
	case len(r.Labels) == 0 && len(r.IPs) == 0 && r.Percent == 0:
		return Invalid("gray", "a gray release needs labels, ips or a percent to choose its clients")
	case r.Percent < 0 || r.Percent > 100:
		return Invalid("gray.percent", "%d is out of range 1..100", r.Percent)
	case len(r.Labels) > MaxLabels:
		return Invalid("gray.labels", "%d labels; at most %d are allowed", len(r.Labels), MaxLabels)
	case len(r.IPs) > 1000:
		return Invalid("gray.ips", "%d addresses; at most 1000 are allowed", len(r.IPs))
	}
	for k, v := range r.Labels {
		if err := ValidateLabel(k, v); err != nil {
			return Invalid("gray.labels", "%v", err)
		}
	}
	for _, ip := range r.IPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return Invalid("gray.ips", "%q is not an IP address", ip)
		}
	}
	return nil
}

// Normalized returns the rule with its addresses in their canonical form
// (an IPv4-mapped IPv6 address as IPv4), as a client's address is given.
func (r GrayRule) Normalized() GrayRule {
	ips := make([]string, 0, len(r.IPs))
	for _, ip := range r.IPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			ip = a.Unmap().String()
		}
		ips = append(ips, ip)
	}
	if len(ips) > 0 {
		r.IPs = ips
	}
	return r
}

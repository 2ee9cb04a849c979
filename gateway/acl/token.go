package acl

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/junctionhq/junction/model"
)

// SecretPrefix starts every token secret, so that a secret pasted where it
// should not be (a log, a ticket, a repository) is easy to find and to
// scan for.
const SecretPrefix = "jct_"

// Token is a credential: a public accessor ID that names it (in lists and
// the audit log), and a secret that proves it, kept only as a hash.
type Token struct {
	// AccessorID names the token; it is not a secret.
	AccessorID string `json:"accessorId"`
	// SecretHash is the SHA-256 of the secret, hex-encoded. The secret is
	// 256 random bits: a slow hash would add nothing against guessing.
	SecretHash  string `json:"secretHash"`
	Description string `json:"description,omitempty"`
	// Policies are the names of the policies the token holds.
	Policies []string `json:"policies,omitempty"`
	// Management tokens may do anything, the ACL itself included.
	Management bool `json:"management,omitempty"`
	// Expires, when set, ends the token.
	Expires time.Time `json:"expires,omitzero"`
	// CertIdentity, when set, is a client certificate identity (CN=NAME,
	// DNS=NAME or URI=URI) that authenticates as this token over mutual
	// TLS, without the secret.
	CertIdentity string    `json:"certIdentity,omitempty"`
	Created      time.Time `json:"created"`
}

// NewToken returns a token holding policies, and its secret: shown once to
// whoever asked for the token, and never stored.
func NewToken(description string, policies []string, expires time.Time) (Token, string, error) {
	id := make([]byte, 16)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return Token{}, "", fmt.Errorf("acl: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Token{}, "", fmt.Errorf("acl: %w", err)
	}
	s := SecretPrefix + base64.RawURLEncoding.EncodeToString(secret)
	t := Token{AccessorID: formatUUID(id), SecretHash: hashSecret(s), Description: description, Policies: policies,
		Expires: expires, Created: time.Now().UTC()}
	return t, s, nil
}

// formatUUID formats 16 random bytes as a version 4 UUID.
func formatUUID(b []byte) string {
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// hashKey is the SHA-256 of a secret, the key a View finds tokens by.
type hashKey [sha256.Size]byte

// Proves reports whether secret is the token's, in constant time.
func (t Token) Proves(secret string) bool {
	h := hashSecret(secret)
	return subtle.ConstantTimeCompare([]byte(h), []byte(t.SecretHash)) == 1
}

// Expired reports whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.Expires.IsZero() && !now.Before(t.Expires)
}

// WellFormed reports whether s has the shape of a secret, before any
// lookup: a malformed one is refused without touching the store.
func WellFormed(s string) bool {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok || len(rest) != 43 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	// 43 characters carry 258 bits: the last one's two low bits are zero.
	return strings.IndexByte("AEIMQUYcgkosw048", rest[42]) >= 0
}

// Principal is who a request comes from, as authenticated: the token and
// the rules of its policies.
type Principal struct {
	// AccessorID names the token (never its secret).
	AccessorID string
	Management bool
	// Peer marks another gateway over the same store (a follower that
	// forwards a call it has authorized already).
	Peer bool
	// Expires is when the token stops working (zero: never).
	Expires time.Time
	rules   []Rule
}

// NewPrincipal is the principal of token t, holding policies (the ones
// t names, as found; a policy that is gone grants nothing).
func NewPrincipal(t Token, policies []Policy) Principal {
	p := Principal{AccessorID: t.AccessorID, Management: t.Management}
	for _, pol := range policies {
		p.rules = append(p.rules, pol.Rules...)
	}
	return p
}

// Action is what a request does to a resource.
type Action int

// Actions.
const (
	// ActRead reads or watches.
	ActRead Action = iota + 1
	// ActWrite creates, changes or removes.
	ActWrite
)

// String returns read or write.
func (a Action) String() string {
	if a == ActWrite {
		return "write"
	}
	return "read"
}

// Allowed reports whether the principal may do a to r.
func (p Principal) Allowed(a Action, r Resource) bool {
	if p.Management {
		return true
	}
	acc, _ := decide(p.rules, r)
	switch acc {
	case Write:
		return true
	case Read:
		return a == ActRead
	}
	return false
}

// Authorize returns nil when the principal may do a to r, and otherwise a
// PERMISSION_DENIED error that names the token's accessor, the action and
// the resource (never a secret), and the rule that decided when one did.
func (p Principal) Authorize(a Action, r Resource) error {
	if p.Allowed(a, r) {
		return nil
	}
	why := "no rule grants it"
	if acc, rule := decide(p.rules, r); rule != nil {
		why = fmt.Sprintf("a rule grants %s", acc)
		if acc == Deny {
			why = "a rule denies it"
		}
		if rule.Line > 0 {
			why += fmt.Sprintf(" (its policy's line %d)", rule.Line)
		}
	}
	return fmt.Errorf("token %s may not %s %s: %s: %w", p.AccessorID, a, r, why, model.ErrPermissionDenied)
}

// CertIdentities are the identities a verified client certificate
// carries, as tokens name them: CN=, then each DNS= and URI= name.
func CertIdentities(c *x509.Certificate) []string {
	var out []string
	if c.Subject.CommonName != "" {
		out = append(out, "CN="+c.Subject.CommonName)
	}
	for _, d := range c.DNSNames {
		out = append(out, "DNS="+d)
	}
	for _, u := range c.URIs {
		out = append(out, "URI="+u.String())
	}
	return out
}

// validCertIdentity checks an identity a token is bound to.
func validCertIdentity(id string) error {
	kind, name, ok := strings.Cut(id, "=")
	switch {
	case !ok || name == "" || (kind != "CN" && kind != "DNS" && kind != "URI"):
		return model.Invalid("certIdentity", "%q is not CN=NAME, DNS=NAME or URI=URI", id)
	case len(id) > 1024 || strings.ContainsAny(id, "\x00\n"):
		return model.Invalid("certIdentity", "is not a certificate identity")
	}
	return nil
}

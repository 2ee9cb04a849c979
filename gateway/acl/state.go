package acl

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/junctionhq/junction/model"
)

// State is the whole ACL of one store: its tokens, its policies, whether it
// was bootstrapped, and the secret its gateways prove themselves to each
// other with. The gateway keeps it as one record in the store, changed by
// compare-and-set, so that every change is atomic on every store and every
// gateway sees the same ACL.
type State struct {
	// Bootstrap is set once the first management token exists.
	Bootstrap *Bootstrap `json:"bootstrap,omitempty"`
	Tokens    []Token    `json:"tokens"`
	Policies  []Source   `json:"policies"`
	// PeerSecret authenticates one gateway's calls to another (a follower
	// forwarding to the leader). It never leaves the store and the
	// gateways' memory.
	PeerSecret string `json:"peerSecret"`
}

// Bootstrap records the bootstrap.
type Bootstrap struct {
	At time.Time `json:"at"`
	// ResetCode, passed to a server's --acl-bootstrap-reset, allows one
	// more bootstrap. A new code is drawn at each bootstrap, so a flag left
	// in a unit file resets nothing twice.
	ResetCode string `json:"resetCode"`
}

// Source is a policy as stored: its YAML, parsed again on load so that
// errors and decisions name the lines the author wrote.
type Source struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// PeerAccessor names the gateways' own principal in errors.
const PeerAccessor = "junction-peer"

// MaxTokens bounds the tokens one store keeps: the state is one record, and
// the smallest store limit on a record (Consul's 512 KiB) holds about this
// many with room to spare.
const MaxTokens = 1000

// MaxPolicies bounds the policies one store keeps, for the same reason.
const MaxPolicies = 200

// NewState returns an empty ACL with a fresh peer secret.
func NewState() (State, error) {
	secret, err := randomHex(32)
	if err != nil {
		return State{}, err
	}
	return State{PeerSecret: SecretPrefix + "peer_" + secret}, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("acl: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Decode reads a stored state.
func Decode(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("acl state does not decode: %w", err)
	}
	return s, nil
}

// Encode writes the state for storage.
func (s State) Encode() ([]byte, error) { return json.Marshal(s) }

// ErrAlreadyBootstrapped is the error of a second bootstrap.
var ErrAlreadyBootstrapped = &bootstrapped{}

type bootstrapped struct{ at, code string }

func (e *bootstrapped) Error() string {
	if e.at == "" {
		return "the ACL is already bootstrapped"
	}
	return "the ACL was bootstrapped at " + e.at + " already; to bootstrap again, restart a server with --acl-bootstrap-reset " +
		e.code + " (see \"Securing Junction\" in the README)"
}

// Is makes every such error match ErrAlreadyBootstrapped.
func (e *bootstrapped) Is(target error) bool { return target == ErrAlreadyBootstrapped }

// Unwrap makes it a conflict.
func (e *bootstrapped) Unwrap() error { return model.ErrConflict }

// DoBootstrap adds the first management token to s and returns it with its
// secret; it fails with ErrAlreadyBootstrapped once done.
func (s *State) DoBootstrap(now time.Time) (Token, string, error) {
	if s.Bootstrap != nil {
		return Token{}, "", &bootstrapped{at: s.Bootstrap.At.Format(time.RFC3339), code: s.Bootstrap.ResetCode}
	}
	t, secret, err := NewToken("bootstrap management token", nil, time.Time{})
	if err != nil {
		return Token{}, "", err
	}
	t.Management = true
	code, err := randomHex(8)
	if err != nil {
		return Token{}, "", err
	}
	s.Bootstrap = &Bootstrap{At: now.UTC(), ResetCode: code}
	s.Tokens = append(s.Tokens, t)
	return t, secret, nil
}

// ResetBootstrap allows one more bootstrap when code is the current
// bootstrap's reset code; the tokens stay.
func (s *State) ResetBootstrap(code string) error {
	if s.Bootstrap == nil {
		return model.Invalid("acl-bootstrap-reset", "the ACL is not bootstrapped: nothing to reset")
	}
	if subtle.ConstantTimeCompare([]byte(code), []byte(s.Bootstrap.ResetCode)) != 1 {
		return model.Invalid("acl-bootstrap-reset", "it is not the current bootstrap's reset code (a second bootstrap's error names it)")
	}
	s.Bootstrap = nil
	return nil
}

// AddToken adds a token holding existing policies, authenticated by its
// secret and, when certIdentity is set, by a client certificate carrying
// that identity.
func (s *State) AddToken(description string, policies []string, expires time.Time, certIdentity string) (Token, string, error) {
	if len(s.Tokens) >= MaxTokens {
		return Token{}, "", fmt.Errorf("this store keeps at most %d tokens: revoke some first: %w", MaxTokens, model.ErrTooLarge)
	}
	if len(description) > 1024 {
		return Token{}, "", model.TooLarge("description", len(description), 1024)
	}
	policies = slices.Compact(slices.Sorted(slices.Values(policies)))
	for _, p := range policies {
		if _, ok := s.policy(p); !ok {
			return Token{}, "", model.Invalid("policies", "no policy is named %q", p)
		}
	}
	if len(policies) == 0 {
		return Token{}, "", model.Invalid("policies", "a token holds at least one policy (a management token comes from bootstrap)")
	}
	if certIdentity != "" {
		if err := validCertIdentity(certIdentity); err != nil {
			return Token{}, "", err
		}
		if slices.ContainsFunc(s.Tokens, func(t Token) bool { return t.CertIdentity == certIdentity }) {
			return Token{}, "", fmt.Errorf("a token is bound to %s already: revoke it first: %w", certIdentity, model.ErrConflict)
		}
	}
	t, secret, err := NewToken(description, policies, expires)
	if err != nil {
		return Token{}, "", err
	}
	t.CertIdentity = certIdentity
	s.Tokens = append(s.Tokens, t)
	return t, secret, nil
}

// Token returns the token with the accessor ID.
func (s *State) Token(accessor string) (Token, bool) {
	i := slices.IndexFunc(s.Tokens, func(t Token) bool { return t.AccessorID == accessor })
	if i < 0 {
		return Token{}, false
	}
	return s.Tokens[i], true
}

// Revoke removes the token with the accessor ID.
func (s *State) Revoke(accessor string) error {
	n := len(s.Tokens)
	s.Tokens = slices.DeleteFunc(s.Tokens, func(t Token) bool { return t.AccessorID == accessor })
	if len(s.Tokens) == n {
		return fmt.Errorf("token %s: %w", accessor, model.ErrNotFound)
	}
	return nil
}

func (s *State) policy(name string) (int, bool) {
	i := slices.IndexFunc(s.Policies, func(p Source) bool { return p.Name == name })
	return i, i >= 0
}

// Policy returns the stored policy named name.
func (s *State) Policy(name string) (Source, bool) {
	if i, ok := s.policy(name); ok {
		return s.Policies[i], true
	}
	return Source{}, false
}

// MaxPolicyText bounds a policy's YAML.
const MaxPolicyText = 64 << 10

// PutPolicy parses text and stores it: as a new policy when create, else
// in place of the one it names (name, when not empty, must be that one).
func (s *State) PutPolicy(text, name string, create bool) (Policy, error) {
	if len(text) > MaxPolicyText {
		return Policy{}, model.TooLarge("rules", len(text), MaxPolicyText)
	}
	p, err := ParsePolicy([]byte(text))
	if err != nil {
		return Policy{}, err
	}
	if name != "" && p.Name != name {
		return Policy{}, model.Invalid("name", "the rules name the policy %q, not %q", p.Name, name)
	}
	i, exists := s.policy(p.Name)
	switch {
	case create && exists:
		return Policy{}, fmt.Errorf("policy %q already exists (update it instead): %w", p.Name, model.ErrConflict)
	case !create && !exists:
		return Policy{}, fmt.Errorf("policy %q: %w", p.Name, model.ErrNotFound)
	case create && len(s.Policies) >= MaxPolicies:
		return Policy{}, fmt.Errorf("this store keeps at most %d policies: %w", MaxPolicies, model.ErrTooLarge)
	case create:
		s.Policies = append(s.Policies, Source{Name: p.Name, Text: text})
	default:
		s.Policies[i].Text = text
	}
	return p, nil
}

// DeletePolicy removes a policy; tokens holding it lose what it granted.
func (s *State) DeletePolicy(name string) error {
	i, ok := s.policy(name)
	if !ok {
		return fmt.Errorf("policy %q: %w", name, model.ErrNotFound)
	}
	s.Policies = slices.Delete(s.Policies, i, i+1)
	return nil
}

// View is a state compiled for authentication: tokens by the hash of their
// secret, policies parsed.
type View struct {
	tokens map[hashKey]held // by the SHA-256 of their secret
	certs  map[string]held  // by the client certificate identity bound to them
	peer   string           // the peer secret's hash
	// Bootstrapped reports whether the ACL was bootstrapped.
	Bootstrapped bool
}

// Compile builds the view of s. A stored policy that no longer parses
// (written by a newer version) grants nothing; it is reported in bad.
func (s State) Compile() (v *View, bad []string) {
	v = &View{tokens: make(map[hashKey]held, len(s.Tokens)), certs: map[string]held{}, Bootstrapped: s.Bootstrap != nil}
	if s.PeerSecret != "" {
		v.peer = hashSecret(s.PeerSecret)
	}
	policies := make(map[string]Policy, len(s.Policies))
	for _, src := range s.Policies {
		p, err := ParsePolicy([]byte(src.Text))
		if err != nil {
			bad = append(bad, src.Name+": "+err.Error())
			continue
		}
		policies[src.Name] = p
	}
	for _, t := range s.Tokens {
		var k hashKey
		if n, err := hex.Decode(k[:], []byte(t.SecretHash)); err != nil || n != len(k) {
			bad = append(bad, "token "+t.AccessorID+": its secret's hash does not decode")
			continue
		}
		var pols []Policy
		for _, name := range t.Policies {
			if p, ok := policies[name]; ok {
				pols = append(pols, p)
			}
		}
		p := NewPrincipal(t, pols)
		p.Expires = t.Expires
		v.tokens[k] = held{t, p}
		if t.CertIdentity != "" {
			v.certs[t.CertIdentity] = held{t, p}
		}
	}
	return v, bad
}

// held is a token and its principal, compiled once.
type held struct {
	t Token
	p Principal
}

// AuthenticateCert returns the principal of the token bound to one of a
// verified client certificate's identities (CertIdentities), the first
// that one is; ErrUnauthenticated when none is, or it expired.
func (v *View) AuthenticateCert(identities []string, now time.Time) (Principal, error) {
	for _, id := range identities {
		h, ok := v.certs[id]
		if !ok {
			continue
		}
		if h.t.Expired(now) {
			return Principal{}, fmt.Errorf("token %s (bound to %s) expired at %s: %w", h.t.AccessorID, id, h.t.Expires.Format(time.RFC3339), model.ErrUnauthenticated)
		}
		return h.p, nil
	}
	return Principal{}, fmt.Errorf("no token is bound to the client certificate (%s): %w", strings.Join(identities, ", "), model.ErrUnauthenticated)
}

// Authenticate returns the principal whose secret is secret at now:
// ErrUnauthenticated when it is malformed, unknown (or revoked) or expired.
func (v *View) Authenticate(secret string, now time.Time) (Principal, error) {
	if !WellFormed(secret) && !strings.HasPrefix(secret, SecretPrefix+"peer_") {
		return Principal{}, fmt.Errorf("the token is malformed (a secret starts with %q): %w", SecretPrefix, model.ErrUnauthenticated)
	}
	if strings.HasPrefix(secret, SecretPrefix+"peer_") {
		if v.peer != "" && (Token{SecretHash: v.peer}).Proves(secret) {
			return Principal{AccessorID: PeerAccessor, Management: true, Peer: true}, nil
		}
		return Principal{}, fmt.Errorf("unknown peer secret: %w", model.ErrUnauthenticated)
	}
	h, ok := v.tokens[sha256.Sum256([]byte(secret))]
	if !ok {
		return Principal{}, fmt.Errorf("unknown token (never issued here, or revoked): %w", model.ErrUnauthenticated)
	}
	if h.t.Expired(now) {
		return Principal{}, fmt.Errorf("token %s expired at %s: %w", h.t.AccessorID, h.t.Expires.Format(time.RFC3339), model.ErrUnauthenticated)
	}
	return h.p, nil
}

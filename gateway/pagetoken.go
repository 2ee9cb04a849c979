package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/junctionhq/junction/model"
)

// sealedPrefix starts a page token that is sealed.
const sealedPrefix = "s."

// Purposes of sealed values: each has its own key, so that one kind of
// value is never accepted as another.
const (
	purposePage    = "junction page token"
	purposeSession = "junction session handle"
)

// sealPage returns the page token of a cursor. With access control on it
// is sealed (AES-GCM under a key drawn from the store's peer secret, so
// that every gateway over the store opens it): the cursor is the last
// service the page read, which the caller may not be allowed to see.
func (s *Server) sealPage(cursor string) string {
	if sealed, ok := s.acl.seal(purposePage, cursor); ok && s.cfg.Auth {
		return sealed
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursor))
}

// openPage returns the cursor of a page token sealPage made.
func (s *Server) openPage(token string) (string, error) {
	bad := model.Invalid("pageToken", "is not a token returned by a previous page")
	if s.cfg.Auth {
		cursor, ok := s.acl.open(purposePage, token)
		if !ok {
			return "", bad
		}
		return cursor, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", bad
	}
	return string(raw), nil
}

// seal seals plain for purpose under the store's peer secret; false
// before the secret is known.
func (c *aclCache) seal(purpose, plain string) (string, bool) {
	aead := c.cipher(purpose)
	if aead == nil {
		return "", false
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(plain), nil)), true
}

// open returns what seal sealed for purpose.
func (c *aclCache) open(purpose, sealed string) (string, bool) {
	aead := c.cipher(purpose)
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if aead == nil || !ok {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", false
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], nil)
	if err != nil {
		return "", false
	}
	return string(plain), true
}

// cipher is purpose's cipher, nil before the store has a peer secret.
func (c *aclCache) cipher(purpose string) cipher.AEAD {
	secret := c.peerSecret()
	if secret == "" {
		return nil
	}
	key := sha256.Sum256([]byte(purpose + "\x00" + secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil
	}
	return aead
}

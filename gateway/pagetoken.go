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

// sealPage returns the page token of a cursor. With access control on it
// is sealed (AES-GCM under a key drawn from the store's peer secret, so
// that every gateway over the store opens it): the cursor is the last
// service the page read, which the caller may not be allowed to see.
func (s *Server) sealPage(cursor string) string {
	aead := s.pageCipher()
	if aead == nil {
		return base64.RawURLEncoding.EncodeToString([]byte(cursor))
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(cursor), nil))
}

// openPage returns the cursor of a page token sealPage made.
func (s *Server) openPage(token string) (string, error) {
	bad := model.Invalid("pageToken", "is not a token returned by a previous page")
	aead := s.pageCipher()
	sealed, isSealed := strings.CutPrefix(token, sealedPrefix)
	if aead == nil || !isSealed {
		if s.cfg.Auth {
			return "", bad
		}
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil {
			return "", bad
		}
		return string(raw), nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", bad
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], nil)
	if err != nil {
		return "", bad
	}
	return string(plain), nil
}

// pageCipher is the page tokens' cipher, nil with access control off or
// before the store has a peer secret.
func (s *Server) pageCipher() cipher.AEAD {
	secret := s.acl.peerSecret()
	if !s.cfg.Auth || secret == "" {
		return nil
	}
	key := sha256.Sum256([]byte("junction page token\x00" + secret))
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

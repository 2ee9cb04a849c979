package raftstore

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

// The TLS transport refuses an address its peers cannot dial, and
// advertises a host name as given (certificates name it), on the port it
// bound.
func TestTLSLayerAdvertises(t *testing.T) {
	noCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errors.New("no certificate here") }
	pt := &PeerTLS{Server: &tls.Config{GetCertificate: noCert}, Client: func() *tls.Config { return &tls.Config{} }}
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "nonsense"} {
		if l, err := newTLSLayer(addr, pt); err == nil {
			l.Close()
			t.Errorf("%q was accepted", addr)
		}
	}
	l, err := newTLSLayer("localhost:0", pt)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if a := l.Addr().String(); !strings.HasPrefix(a, "localhost:") || strings.HasSuffix(a, ":0") {
		t.Errorf("advertised %q, want localhost:PORT", a)
	}
}

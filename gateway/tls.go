package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/junctionhq/junction/model"
)

// TLSFiles names the files of a server's TLS: its certificate and key,
// and the certificate authorities it trusts.
type TLSFiles struct {
	// CertFile and KeyFile are the server's certificate (chain) and key,
	// in PEM. The certificate serves the API and, in a cluster, proves
	// this node to the others (Raft transport, forwarding).
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the API require a client certificate
	// signed by one of its authorities (mutual TLS).
	ClientCAFile string
	// CAFile is the authority that signs the nodes' certificates in a
	// cluster: the Raft transport admits only peers it signed, and nodes
	// verify each other against it. A cluster with TLS needs it, apart from
	// ClientCAFile: a client's certificate must not make it a Raft peer.
	CAFile string
}

// Enabled reports whether TLS is configured.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" }

// Validate checks that the files come as a set.
func (f TLSFiles) Validate() error {
	switch {
	case !f.Enabled() && (f.ClientCAFile != "" || f.CAFile != ""):
		return model.Invalid("tls-cert", "--tls-client-ca and --tls-ca need --tls-cert and --tls-key")
	case f.Enabled() && (f.CertFile == "" || f.KeyFile == ""):
		return model.Invalid("tls-cert", "--tls-cert and --tls-key go together")
	}
	return nil
}

// TLS is a server's TLS material, reloaded without a restart: Reload reads
// the files again (on SIGHUP), and Watch does when they change. A reload
// that fails keeps what was loaded and says why.
type TLS struct {
	files TLSFiles
	log   *slog.Logger
	cur   atomic.Pointer[tlsMaterial]

	mu     sync.Mutex // one reload at a time
	failed string     // the stamp of files that did not load
}

type tlsMaterial struct {
	cert      *tls.Certificate
	clientCAs *x509.CertPool // the API's clients' authority; nil: no client certificate asked
	peerCAs   *x509.CertPool // the nodes' authority; nil: the system's roots
	apiCAs    *x509.CertPool // what the API admits: clients and nodes (nil: no certificate asked)
	samePool  bool           // the nodes' authority is the clients'
	stamp     string         // the files' sizes and times, to notice a change
}

// LoadTLS loads the files.
func LoadTLS(files TLSFiles, log *slog.Logger) (*TLS, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	t := &TLS{files: files, log: log.With("component", "tls")}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *TLS) stamp() string {
	s := ""
	for _, f := range []string{t.files.CertFile, t.files.KeyFile, t.files.ClientCAFile, t.files.CAFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%s:%d:%d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return s
}

func readPool(field, file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, model.Invalid(field, "%v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, model.Invalid(field, "%s holds no PEM certificate", file)
	}
	return pool, nil
}

// Reload reads the files again; on an error the loaded material stays.
func (t *TLS) Reload() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.reload()
	if err != nil {
		t.failed = t.stamp()
	}
	return err
}

func (t *TLS) reload() error {
	stamp := t.stamp()
	cert, err := tls.LoadX509KeyPair(t.files.CertFile, t.files.KeyFile)
	if err != nil {
		return model.Invalid("tls-cert", "%v", err)
	}
	clientCAs, err := readPool("tls-client-ca", t.files.ClientCAFile)
	if err != nil {
		return err
	}
	peerCAs, err := readPool("tls-ca", t.files.CAFile)
	if err != nil {
		return err
	}
	m := &tlsMaterial{cert: &cert, clientCAs: clientCAs, peerCAs: peerCAs, stamp: stamp}
	if clientCAs != nil {
		// Nodes forward to the leader's API with their own certificates.
		m.apiCAs = clientCAs
		if peerCAs != nil {
			m.apiCAs = clientCAs.Clone()
			caPEM, _ := os.ReadFile(t.files.CAFile)
			m.apiCAs.AppendCertsFromPEM(caPEM)
			clientPEM, _ := os.ReadFile(t.files.ClientCAFile)
			m.samePool = string(caPEM) == string(clientPEM)
		}
	}
	old := t.cur.Swap(m)
	if old != nil {
		t.log.Info("TLS certificates reloaded", "cert", t.files.CertFile)
	}
	return nil
}

// Watch reloads the files whenever they change, until ctx ends.
func (t *TLS) Watch(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		st, failed := t.stamp(), t.failed
		t.mu.Unlock()
		if st == t.cur.Load().stamp || st == failed {
			continue // unchanged, or the same files that failed already
		}
		if err := t.Reload(); err != nil {
			t.log.Error("TLS files changed but do not load; serving the previous ones", "err", err)
		}
	}
}

// ServerConfig is the configuration the API listens with: the current
// certificate, and the client certificate required when ClientCAFile is
// set. Both follow reloads.
func (t *TLS) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := t.cur.Load()
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"},
				Certificates: []tls.Certificate{*m.cert}}
			if m.apiCAs != nil {
				c.ClientCAs, c.ClientAuth = m.apiCAs, tls.RequireAndVerifyClientCert
			}
			return c, nil
		},
	}
}

// PeerServerConfig is the configuration a node's Raft transport listens
// with: the node's certificate, and a client certificate required of every
// peer, signed by the peers' authority.
func (t *TLS) PeerServerConfig() (*tls.Config, error) {
	switch m := t.cur.Load(); {
	case m.peerCAs == nil:
		return nil, model.Invalid("tls-ca", "a cluster with TLS needs --tls-ca: the authority of the nodes' certificates")
	case m.samePool:
		return nil, model.Invalid("tls-ca", "the nodes' authority (--tls-ca) must not be the clients' (--tls-client-ca): "+
			"any client certificate would make its holder a Raft peer")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := t.cur.Load()
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.cert},
				ClientCAs: m.peerCAs, ClientAuth: tls.RequireAndVerifyClientCert}, nil
		},
	}, nil
}

// ClientConfig is the configuration a node dials another with (a peer's
// Raft transport): it verifies the peer, name included, against the
// nodes' authority as loaded now, and presents the node's certificate as
// loaded at each handshake. Take a new one for each connection, so that a
// reload of the authority applies (Credentials does, for gRPC).
func (t *TLS) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    t.cur.Load().peerCAs,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.cur.Load().cert, nil
		},
	}
}

// Credentials are the gRPC transport credentials a node dials another's
// API with (forwarding to the leader, joining): TLS under ClientConfig,
// taken anew at each handshake.
func (t *TLS) Credentials() credentials.TransportCredentials { return reloadingCreds{t} }

// reloadingCreds build each handshake's credentials from the material
// loaded at that moment.
type reloadingCreds struct{ t *TLS }

func (r reloadingCreds) ClientHandshake(ctx context.Context, authority string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(r.t.ClientConfig()).ClientHandshake(ctx, authority, c)
}

func (r reloadingCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerOnly
}

func (r reloadingCreds) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(r.t.ClientConfig()).Info()
}

func (r reloadingCreds) Clone() credentials.TransportCredentials { return r }

func (r reloadingCreds) OverrideServerName(string) error { return nil }

// clientIdentities are the identities of a client certificate the API's
// clients' authority signed: a node's certificate, which the API also
// admits, names no token.
func (t *TLS) clientIdentities(cs tls.ConnectionState) []string {
	if t == nil {
		return nil
	}
	m := t.cur.Load()
	if m.clientCAs == nil || len(cs.PeerCertificates) == 0 {
		return nil
	}
	opts := x509.VerifyOptions{Roots: m.clientCAs, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return nil
	}
	return verifiedIdentities(cs)
}

package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

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
	// CAFile is the authority that signs the other nodes' certificates in
	// a cluster (default: ClientCAFile); with neither, the system's roots.
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
}

type tlsMaterial struct {
	cert      *tls.Certificate
	clientCAs *x509.CertPool // nil: no client certificate asked
	peerCAs   *x509.CertPool // nil: the system's roots
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
	stamp := t.stamp()
	cert, err := tls.LoadX509KeyPair(t.files.CertFile, t.files.KeyFile)
	if err != nil {
		return model.Invalid("tls-cert", "%v", err)
	}
	clientCAs, err := readPool("tls-client-ca", t.files.ClientCAFile)
	if err != nil {
		return err
	}
	peerFile := t.files.CAFile
	if peerFile == "" {
		peerFile = t.files.ClientCAFile
	}
	peerCAs, err := readPool("tls-ca", peerFile)
	if err != nil {
		return err
	}
	old := t.cur.Swap(&tlsMaterial{cert: &cert, clientCAs: clientCAs, peerCAs: peerCAs, stamp: stamp})
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
		if t.stamp() == t.cur.Load().stamp {
			continue
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
			if m.clientCAs != nil {
				c.ClientCAs, c.ClientAuth = m.clientCAs, tls.RequireAndVerifyClientCert
			}
			return c, nil
		},
	}
}

// PeerServerConfig is the configuration a node's Raft transport listens
// with: the node's certificate, and a client certificate required of every
// peer, signed by the peers' authority.
func (t *TLS) PeerServerConfig() (*tls.Config, error) {
	if t.cur.Load().peerCAs == nil {
		return nil, model.Invalid("tls-ca", "a cluster with TLS needs --tls-ca (or --tls-client-ca): the authority of the nodes' certificates")
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

// ClientConfig is the configuration a node dials another with (the
// leader's gateway, a peer's Raft transport, the member it joins): it
// verifies the peer against the peers' authority and presents the node's
// certificate.
func (t *TLS) ClientConfig() *tls.Config {
	m := t.cur.Load()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    m.peerCAs,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return t.cur.Load().cert, nil
		},
		// The roots follow a reload too: verify against the current ones.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPeer(cs, t.cur.Load().peerCAs)
		},
	}
}

// verifyPeer verifies a server's chain and name against roots, as the
// standard verification would with the roots of the moment.
func verifyPeer(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

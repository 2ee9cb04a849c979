package servers

import (
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EtcdServer is an etcd server embedded in this process. It can be stopped
// and started again on the same ports and data, for fault injection.
type EtcdServer struct {
	Addr string // client endpoint, HOST:PORT

	mu  sync.Mutex
	cfg *embed.Config
	e   *embed.Etcd
}

// StartEtcd starts an etcd server on free loopback ports with its data in
// dir; tune, if given, adjusts its configuration first (TLS, for instance:
// the client URLs' scheme and ClientTLSInfo).
func StartEtcd(dir string, tune ...func(*embed.Config)) (*EtcdServer, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "junction-test"
	cfg.Dir = dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cp)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pp)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	for _, f := range tune {
		f(cfg)
	}
	s := &EtcdServer{Addr: client.Host, cfg: cfg}
	return s, s.Start()
}

// Start starts the server (again, with its data) and waits until it serves.
func (s *EtcdServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		return errors.New("etcd is already running")
	}
	e, err := embed.StartEtcd(s.cfg)
	if err != nil {
		return fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		return errors.New("embedded etcd not ready within 20s")
	}
	s.e = e
	return nil
}

// Stop stops the server; its data stays for Start.
func (s *EtcdServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

// Server returns the running embedded server.
func (s *EtcdServer) Server() *embed.Etcd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e
}

package raftstore

import "github.com/hashicorp/raft"

// WithTransport returns cfg running on t instead of a TCP transport.
func WithTransport(cfg Config, t raft.Transport) Config {
	cfg.transport = t
	return cfg
}

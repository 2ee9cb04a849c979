package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/junctionhq/junction/backends"
	_ "github.com/junctionhq/junction/backends/consul" // consul:// driver
	_ "github.com/junctionhq/junction/backends/etcd"   // etcd:// driver
	_ "github.com/junctionhq/junction/backends/nacos"  // nacos:// driver
	"github.com/junctionhq/junction/backends/raftstore"
	_ "github.com/junctionhq/junction/backends/zookeeper" // zk:// driver
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/gateway/nacos"
	"github.com/junctionhq/junction/model"
)

func newServerCmd() *cobra.Command {
	cfg := gateway.DefaultConfig()
	var backendURL, dataDir, logLevel, logFormat, joinToken, measuredFile, measuredTarget, nacosListen, nacosGRPCListen string
	var insecureNoAuth, printConfig, checkConfig, closeSessions bool
	var configFile string
	var tlsFiles gateway.TLSFiles
	// Cluster flags, passed to the built-in store as raft:// options.
	clusterOpts := map[string]*string{"node-id": new(string), "raft-addr": new(string), "peers": new(string), "join": new(string),
		"heartbeat-timeout": new(string), "election-timeout": new(string)}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Junction server (default: the built-in store in ./junction-data)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				configFile = os.Getenv("JUNCTION_CONFIG")
			}
			// The server's own flags: not the client commands' (--addr, --token, ...).
			settings := cmd.NonInheritedFlags()
			origins, err := applySettings(settings, configFile, os.LookupEnv)
			if err != nil {
				return err
			}
			if printConfig {
				return printSettings(cmd.OutOrStdout(), settings)
			}
			level := new(slog.LevelVar)
			if err := setLevel(level, logLevel); err != nil {
				return err
			}
			opts := &slog.HandlerOptions{Level: level}
			var log *slog.Logger
			switch logFormat {
			case "text":
				log = slog.New(slog.NewTextHandler(os.Stderr, opts))
			case "json":
				log = slog.New(slog.NewJSONHandler(os.Stderr, opts))
			default:
				return model.Invalid("log-format", "%q is not text or json", logFormat)
			}
			slog.SetDefault(log)
			if backendURL == "" {
				backendURL = (&url.URL{Scheme: "raft", Path: dataDir}).String()
			} else if origins["data-dir"] == fromFlag {
				return model.Invalid("data-dir", "applies to the built-in store only; put the directory in --backend raft://DIR")
			} else if o := origins["data-dir"]; o != "" {
				// A deployment's default (the image's, the unit's), which
				// a store named on purpose overrides.
				log.Info("the data directory the "+string(o)+" sets is unused: --backend names the store", "backend", backends.Redact(backendURL))
			}
			if u, err := url.Parse(backendURL); err == nil {
				q := u.Query()
				for name, v := range clusterOpts {
					if !cmd.Flags().Changed(name) {
						continue
					}
					if u.Scheme != "raft" {
						return model.Invalid(name, "--%s applies to the built-in store (raft://) only", name)
					}
					q.Set(name, *v)
				}
				if q.Get("raft-addr") != "" && q.Get("node-id") == "" {
					q.Set("node-id", cfg.Listen) // followers reach the leader's API by its id
				}
				u.RawQuery = q.Encode()
				backendURL = u.String()
			}
			if err := checkExposure(cfg.Listen, cfg.Auth, insecureNoAuth); err != nil {
				return err
			}
			if cfg.Pprof && checkExposure(cfg.Listen, cfg.Auth, false) != nil {
				return model.Invalid("pprof", "the profiles show the process's memory: on %s, which other hosts reach, they need --auth", cfg.Listen)
			}
			nacosGRPC, err := nacosAddr(nacosListen, nacosGRPCListen)
			if err != nil {
				return err
			}
			for _, a := range []string{nacosGRPC, nacosListen} {
				if a == "" {
					continue
				}
				if err := checkExposure(a, cfg.Auth, insecureNoAuth); err != nil {
					return err
				}
			}
			if measuredFile != "" {
				kind := "raft"
				if u, err := url.Parse(backendURL); err == nil {
					kind = u.Scheme
					if kind == "zk" {
						kind = "zookeeper"
					}
				}
				m, err := loadMeasured(measuredFile, measuredTarget, kind)
				if err != nil {
					return err
				}
				cfg.Measured = m
			} else if measuredTarget != "" {
				return model.Invalid("guarantees-target", "applies with --guarantees only")
			}
			cfg.Build, cfg.Logger = build(), log
			if checkConfig {
				if err := checkSettings(backendURL, cfg); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "the settings are valid")
				return err
			}
			ctx := cmd.Context()
			openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if joinToken == "" {
				joinToken = os.Getenv("JUNCTION_TOKEN")
			}
			if tlsFiles.Enabled() || tlsFiles.Validate() != nil {
				t, err := gateway.LoadTLS(tlsFiles, log)
				if err != nil {
					return err
				}
				cfg.TLS = t
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					reload(log, level, configFile, origins["log-level"], cfg.TLS)
				}
			}()
			b, err := openBackend(openCtx, backendURL, joinToken, cfg.TLS)
			if err != nil {
				return err
			}
			defer b.Close()
			srv, err := gateway.New(b, cfg)
			if err != nil {
				return err
			}
			st, _ := b.Status(ctx)
			log.Info("backend ready", "backend", backends.Redact(backendURL), "revision", st.Revision, "leader", st.Leader)
			nacosDone := make(chan error, 1)
			serveCtx, stopServing := context.WithCancel(ctx)
			defer stopServing()
			if nacosGRPC != "" {
				nc := nacos.DefaultConfig()
				nc.Logger, nc.MaxContentSize, nc.HistoryRetention = log, cfg.MaxContentSize, cfg.HistoryRetention
				nc.Authorizer = srv // the gateway's one authorizer, rules and audit log
				nc.Thresholds = srv // and its service settings
				nc.Grays = srv      // and its gray releases
				nc.Logins = srv     // and its sealed login handles
				nc.Watches = srv    // and its hub: one store watch per service or item
				nc.CloseSessionsOnExit = closeSessions
				front := nacos.New(srv.Backend(), nc)
				var httpLis net.Listener
				if nacosListen != "" {
					if httpLis, err = net.Listen("tcp", nacosListen); err != nil {
						return fmt.Errorf("--nacos-listen: %w", err)
					}
				}
				lis, err := net.Listen("tcp", nacosGRPC)
				if err != nil {
					if httpLis != nil {
						httpLis.Close()
					}
					return fmt.Errorf("--nacos-grpc-listen: %w", err)
				}
				if cfg.TLS != nil {
					// As the API is served: tokens never cross the network
					// in clear, and a client certificate is asked for where
					// the API asks for one.
					lis = tls.NewListener(lis, cfg.TLS.ServerConfig())
					if httpLis != nil {
						httpLis = tls.NewListener(httpLis, cfg.TLS.ServerConfig())
					}
				}
				go func() { nacosDone <- front.Serve(serveCtx, lis, httpLis) }()
			}
			gwLis, err := srv.Listen()
			if err != nil {
				stopServing()
				if nacosGRPC != "" {
					<-nacosDone
				}
				return err
			}
			gwDone := make(chan error, 1)
			go func() { gwDone <- srv.Serve(serveCtx, gwLis) }()
			// The store is open and every listener is up: a Type=notify
			// unit is started. Once a signal ends ctx, it is stopping.
			if err := sdNotify("READY=1\nSTATUS=serving on " + gwLis.Addr().String()); err != nil {
				log.Warn("telling the service manager the server is ready", "err", err)
			}
			stopNotice := context.AfterFunc(ctx, func() { _ = sdNotify("STOPPING=1") })
			defer stopNotice()
			// Either front end failing stops both.
			var nerr error
			select {
			case err = <-gwDone:
				stopServing()
				if nacosGRPC != "" {
					nerr = <-nacosDone
				}
			case nerr = <-nacosDone:
				stopServing()
				err = <-gwDone
			}
			if err == nil && nerr != nil {
				err = fmt.Errorf("nacos: %w", nerr)
			}
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			log.Info("stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "read settings from this YAML file, keyed by these flags' names (env JUNCTION_CONFIG); a flag, then the environment (JUNCTION_ and the flag's name, such as JUNCTION_LISTEN), then the file, then the default")
	f.BoolVar(&printConfig, "print-config", false, "print the effective settings, as a file --config reads, with secrets redacted, and exit")
	f.BoolVar(&checkConfig, "check-config", false, "check the settings as the server does before it opens its store (a cluster node's too), say whether they hold, and exit")
	f.StringVar(&backendURL, "backend", "", "backend URL: raft://DIR, etcd://HOST:PORT, ... (default: raft://DATA_DIR)")
	f.StringVar(&dataDir, "data-dir", "junction-data", "data directory of the built-in store")
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address for gRPC and REST")
	f.IntVar(&cfg.MaxContentSize, "max-content-size", cfg.MaxContentSize, "largest config content accepted, in bytes")
	f.IntVar(&cfg.HistoryRetention.Versions, "config-history-versions", cfg.HistoryRetention.Versions, "versions of each config item its history keeps")
	f.DurationVar(&cfg.HistoryRetention.MaxAge, "config-history-max-age", cfg.HistoryRetention.MaxAge, "how long a config item's history keeps a version (also after the item is deleted)")
	f.BoolVar(&cfg.UI, "ui", true, "serve the web console at /ui/ on the API address")
	f.StringVar(&nacosListen, "nacos-listen", "", "serve the Nacos protocols for unmodified Nacos clients: the v1 HTTP open API on HOST:PORT, as clients are configured with, and the 2.x gRPC protocol on PORT+1000")
	f.StringVar(&nacosGRPCListen, "nacos-grpc-listen", "", "the Nacos gRPC protocol's address, instead of --nacos-listen's PORT+1000")
	f.StringVar(&measuredFile, "guarantees", "", "a report of junction conformance --format json: the status (and the console) show its figures beside the declared capabilities")
	f.StringVar(&measuredTarget, "guarantees-target", "", "the report's target to show (default: the backend's kind through the gateway, such as raft+gateway)")
	f.IntVar(&cfg.WatchHistory, "watch-history", cfg.WatchHistory, "events kept per watched key for lagging or resuming watchers")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug (every request logged), info, warn, error; set in --config, SIGHUP reloads it from the file")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "on SIGTERM or SIGINT, how long the calls under way have to finish (open watches end at once, and their clients reconnect elsewhere); a second signal exits at once")
	f.BoolVar(&closeSessions, "close-sessions-on-exit", false, "on exit, close the sessions of the Nacos clients' ephemeral instances, which then go at once; otherwise they outlive the server until they expire, so that clients reconnecting to another server keep them listed")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve Go's profiles at /debug/pprof/ on the API address (with --auth, to the management token only)")
	f.StringVar(clusterOpts["node-id"], "node-id", "", "cluster mode: this node's id, the API HOST:PORT the other nodes reach it at (default --listen; set it when --listen is 0.0.0.0)")
	f.StringVar(clusterOpts["raft-addr"], "raft-addr", "", "cluster mode: the address this node's Raft transport listens on")
	f.StringVar(clusterOpts["peers"], "peers", "", "cluster mode: the members a new cluster starts with, API-ADDR=RAFT-ADDR,… (this node included; its API address is --listen)")
	f.StringVar(clusterOpts["join"], "join", "", "cluster mode: the API address of a member of a running cluster to join (a new node only; a restarted member ignores it)")
	f.StringVar(clusterOpts["heartbeat-timeout"], "heartbeat-timeout", "500ms", "cluster mode: how long a follower waits for the leader before it calls an election")
	f.StringVar(clusterOpts["election-timeout"], "election-timeout", "500ms", "cluster mode: how long a candidate waits for votes")
	f.StringVar(&cfg.GatewayID, "gateway-id", "", "this gateway's name among those over the same store (default host/pid/random)")
	f.DurationVar(&cfg.HealthLease, "health-lease", cfg.HealthLease, "how long the gateway running the health checks holds its lease; another takes over after it is unchanged this long")
	f.DurationVar(&cfg.HealthScan, "health-scan", cfg.HealthScan, "how often the health checks, and the instance patches another gateway asks this one to apply, are looked for")
	f.DurationVar(&cfg.BodyTimeout, "body-timeout", cfg.BodyTimeout, "how long a REST request body may go without sending a byte")
	f.StringVar(&tlsFiles.CertFile, "tls-cert", "", "serve the API over TLS with this certificate (PEM); reloaded on SIGHUP or when the file changes")
	f.StringVar(&tlsFiles.KeyFile, "tls-key", "", "the key of --tls-cert (PEM)")
	f.StringVar(&tlsFiles.ClientCAFile, "tls-client-ca", "", "require API clients to present a certificate signed by this authority (mutual TLS)")
	f.StringVar(&tlsFiles.CAFile, "tls-ca", "", "cluster mode with TLS: the authority of the nodes' certificates, for the Raft transport and forwarding (required, and not --tls-client-ca's)")
	f.BoolVar(&cfg.Auth, "auth", false, "turn access control on: every request needs a token (bootstrap the first with `junction acl bootstrap`)")
	f.BoolVar(&insecureNoAuth, "insecure-no-auth", false, "allow listening on a non-loopback address with access control off")
	f.BoolVar(&cfg.MetricsPublic, "metrics-public", false, "with --auth, leave /metrics open (otherwise it needs a token that may read the cluster)")
	f.StringVar(&cfg.ACLBootstrapReset, "acl-bootstrap-reset", "", "allow one more `junction acl bootstrap`: the reset code a second bootstrap's error names")
	f.StringVar(&cfg.Audit.File, "audit-log", "", "write every write and every denial to this file, one JSON object a line")
	f.Float64Var(&cfg.AuthFailureRate, "auth-failure-rate", cfg.AuthFailureRate, "failed authentications a second allowed per client address (after a burst of 4×), then RATE_LIMITED")
	f.IntVar(&cfg.Audit.MaxSizeMB, "audit-log-max-size", cfg.Audit.MaxSizeMB, "rotate the audit log at this size, in MB")
	f.IntVar(&cfg.Audit.MaxBackups, "audit-log-backups", cfg.Audit.MaxBackups, "rotated audit logs kept")
	f.StringVar(&joinToken, "join-token", "", "cluster mode with --auth: the management token, for --join (env JUNCTION_TOKEN)")
	return cmd
}

// openBackend opens the backend rawURL names. A built-in store node that
// joins a cluster reaches the member it joins through the gateway's API
// client: the store itself speaks only Raft.
func openBackend(ctx context.Context, rawURL, joinToken string, t *gateway.TLS) (backends.Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "raft" {
		return backends.Open(ctx, rawURL)
	}
	rc, err := raftstore.ConfigFromURL(u)
	if err != nil {
		return nil, fmt.Errorf("open raft backend: %w", err)
	}
	rc.Joiner = gateway.Joiner(joinToken, t)
	if t != nil && rc.RaftAddr != "" {
		server, err := t.PeerServerConfig()
		if err != nil {
			return nil, err
		}
		rc.PeerTLS = &raftstore.PeerTLS{Server: server, Client: t.ClientConfig}
	}
	s, err := raftstore.Open(ctx, rc)
	if err != nil {
		return nil, fmt.Errorf("open raft backend: %w", err)
	}
	return s, nil
}

// checkExposure refuses to serve an address other hosts can reach with
// access control off, unless the operator says so.
// nacosAddr is where the Nacos gRPC protocol listens: grpcListen, or
// listen's port + 1000, where Nacos 2.x clients look for it; "" when
// neither is set.
func nacosAddr(listen, grpcListen string) (string, error) {
	if listen == "" && grpcListen == "" {
		return "", nil
	}
	if grpcListen != "" {
		if _, _, err := net.SplitHostPort(grpcListen); err != nil {
			return "", model.Invalid("nacos-grpc-listen", "%q is not HOST:PORT", grpcListen)
		}
		return grpcListen, nil
	}
	host, port, err := net.SplitHostPort(listen)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n < 1 || n > 65535-1000 {
		return "", model.Invalid("nacos-listen", "%q is not HOST:PORT with a port of at most %d (gRPC listens on PORT+1000)", listen, 65535-1000)
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1000)), nil
}

func checkExposure(listen string, auth, insecure bool) error {
	if auth || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return model.Invalid("listen", "%q is not HOST:PORT", listen)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return model.Invalid("listen", "%s is reachable from other hosts and access control is off: "+
		"pass --auth (and bootstrap a token with `junction acl bootstrap`), or --insecure-no-auth to serve it open anyway", listen)
}

// setLevel sets level to name (debug, info, warn or error).
func setLevel(level *slog.LevelVar, name string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(name)); err != nil {
		return model.Invalid("log-level", "%q is not debug, info, warn or error", name)
	}
	level.Set(l)
	return nil
}

// reload is what SIGHUP does: it reloads the TLS files (t, when the API
// serves TLS) and the log level, from the settings file when the level
// came from it or from the default (a level the command line or the
// environment set stays).
func reload(log *slog.Logger, level *slog.LevelVar, configFile string, from origin, t *gateway.TLS) {
	if t != nil {
		if err := t.Reload(); err != nil {
			log.Error("SIGHUP: the TLS files do not load; serving the previous ones", "err", err)
		}
	}
	switch {
	case configFile == "":
		log.Info("SIGHUP: no settings file (--config) to reload the log level from", "level", level.Level())
		return
	case from == fromFlag || from == fromEnv:
		log.Info("SIGHUP: the log level stays as the "+string(from)+" set it", "level", level.Level())
		return
	}
	name, ok, err := fileSetting(configFile, "log-level")
	if !ok {
		name = "info" // the default, as the file no longer sets it
	}
	if err == nil {
		err = setLevel(level, name)
	}
	if err != nil {
		log.Error("SIGHUP: the log level stays", "level", level.Level(), "err", err)
		return
	}
	log.Info("SIGHUP: reloaded", "level", level.Level())
}

// checkSettings checks what the server would open, without opening it:
// the gateway's settings, and a built-in store's URL with its cluster
// settings (a node's id, Raft address and members).
func checkSettings(backendURL string, cfg gateway.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	u, err := url.Parse(backendURL)
	if err != nil {
		return model.Invalid("backend", "%q is not a URL like raft://DIR or etcd://HOST:PORT", backends.Redact(backendURL))
	}
	if u.Scheme == "raft" {
		if _, err := raftstore.ConfigFromURL(u); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/conformance/guarantees"
	"github.com/junctionhq/junction/model"
)

func newConformanceCmd() *cobra.Command {
	var (
		backends  []string
		scenarios []string
		format    string
		out       string
		quick     bool
		via       string
	)
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Measure what each backend really guarantees and print the matrix",
		Long: `Runs the guarantee scenarios against each backend, under faults where the backend
allows them, and prints the matrix: one row per scenario, one column per backend, with
the figures measured.

Backends: raft (the built-in store, in process), raft-3 (a three-node built-in store
cluster in process, measured through a follower, its leader crashed mid-run), etcd
(embedded in the runner),
zookeeper (Debian's package, started by the runner), consul (the binary .ci/consul
builds, started by the runner), or NAME=URL for a store you run (etcd=etcd://10.0.0.1:2379,
zk=zk://10.0.0.2:2181, consul=consul://10.0.0.3:8500; process faults are then skipped).
Default: every backend this machine can run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch format {
			case "md", "json", "html":
			default:
				return model.Invalid("format", "%q is not md, json or html", format)
			}
			tmp, err := os.MkdirTemp("", "junction-conformance")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			var targets []*guarantees.Target
			defer func() {
				for _, t := range targets {
					t.Close()
				}
			}()
			local := backends
			if len(local) == 0 {
				local = guarantees.DefaultTargets
			}
			for _, b := range local {
				name, rawURL, external := strings.Cut(b, "=")
				var t []*guarantees.Target
				if external {
					if !strings.Contains(rawURL, "://") {
						scheme := map[string]string{"zookeeper": "zk"}[name]
						rawURL = cmp.Or(scheme, name) + "://" + rawURL
					}
					x, err := guarantees.ExternalTarget(name, rawURL)
					if err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
					t = []*guarantees.Target{x}
				} else if t, err = guarantees.LocalTargets(tmp, name); err != nil {
					if len(backends) > 0 {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "skipping %v\n", err)
				}
				targets = append(targets, t...)
			}
			if len(targets) == 0 {
				return errors.New("no backend to measure")
			}
			if via != "driver" && via != "gateway" && via != "both" {
				return model.Invalid("via", "%q is not driver, gateway or both", via)
			}
			var measured []*guarantees.Target
			for _, t := range targets {
				if via != "gateway" {
					measured = append(measured, t)
				}
				if via != "driver" {
					gw := guarantees.ThroughGateway(t)
					defer gw.Close() // runs before the deferred close of t
					measured = append(measured, gw)
				}
			}
			artifacts := out
			if artifacts == "" {
				artifacts = "."
			}
			rep, err := guarantees.Run(cmd.Context(), measured, guarantees.Options{Scenarios: scenarios, Quick: quick,
				Out: artifacts, Progress: cmd.ErrOrStderr(), Command: "junction " + redactArgs(os.Args[1:])})
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			switch format {
			case "md":
				err = rep.Markdown(&buf)
			case "json":
				err = rep.JSON(&buf)
			case "html":
				err = rep.HTML(&buf)
			}
			if err != nil {
				return err
			}
			failed := 0
			for _, r := range rep.Results {
				if r.Outcome.Verdict == guarantees.Fail {
					failed++
				}
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(buf.Bytes())
			} else {
				path := filepath.Join(out, "guarantees."+format)
				if err = os.MkdirAll(out, 0o750); err == nil {
					err = os.WriteFile(path, buf.Bytes(), 0o644)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", path)
			}
			if err == nil && failed > 0 {
				err = fmt.Errorf("%d scenario results failed (see the report)", failed)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&backends, "backend", nil, "backend to measure: raft, raft-3, etcd, zookeeper, consul, nacos (in a private network namespace), nacos-junction (Junction's own Nacos front end, through the nacos:// driver), or NAME=URL (repeatable)")
	f.StringSliceVar(&scenarios, "scenarios", nil, "scenarios to run (default all): "+scenarioNames())
	f.StringVar(&format, "format", "md", "report format: md, json or html")
	f.StringVar(&out, "out", "", "write DIR/guarantees.FORMAT (and failure artifacts) instead of standard output")
	f.BoolVar(&quick, "quick", false, "bounded run, as CI does")
	f.StringVar(&via, "via", "both", "measure the drivers directly, through the gateway's gRPC API, or both side by side")
	return cmd
}

func scenarioNames() string {
	var names []string
	for _, s := range guarantees.Scenarios() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// redactArgs joins a command line with the secrets of its store URLs
// (user:password@, token@) left out, for a report anyone may read.
func redactArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if !strings.Contains(a, "://") {
			continue
		}
		if name, u, ok := strings.Cut(a, "="); ok && !strings.Contains(name, "://") {
			out[i] = name + "=" + backends.Redact(u)
		} else {
			out[i] = backends.Redact(a)
		}
	}
	return strings.Join(out, " ")
}

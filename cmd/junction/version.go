package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/junctionhq/junction/gateway"
)

// versionText is what `junction version` and `junction --version` print.
func versionText(b gateway.BuildInfo) string {
	return fmt.Sprintf("junction %s\ncommit  %s\ndate    %s\ngo      %s\n", b.Version, b.Commit, b.Date, b.GoVersion)
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print this binary's version, commit, commit date and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := build()
			out := cmd.OutOrStdout()
			switch g.output {
			case "json":
				return json.NewEncoder(out).Encode(map[string]string{"version": b.Version, "commit": b.Commit, "date": b.Date, "goVersion": b.GoVersion})
			case "table":
				_, err := fmt.Fprint(out, versionText(b))
				return err
			}
			return fmt.Errorf("--output %q is not table or json", g.output)
		},
	}
}

// newReadyCmd is `junction ready`: the server's /readyz, as a command a
// container's health check runs (the image has no shell and no curl).
func newReadyCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "ready",
		Short: "Exit 0 when the server at --addr is ready (its /readyz), 1 otherwise",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tc, err := g.tlsConfig()
			if err != nil {
				return err
			}
			scheme := "http"
			if tc != nil {
				scheme = "https"
			}
			client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}
			resp, err := client.Get(scheme + "://" + g.addr + "/readyz")
			if err != nil {
				return fmt.Errorf("%s is not ready: %w", g.addr, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s is not ready: %s %s", g.addr, resp.Status, strings.TrimSpace(string(body)))
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s is ready\n", g.addr)
			return err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for the answer")
	return cmd
}

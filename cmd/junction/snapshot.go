package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newSnapshotCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "snapshot", Short: "Back up and restore the built-in store's whole state"}
	cmd.AddCommand(&cobra.Command{
		Use:   "save FILE",
		Short: "Save the server's whole state (a linearizable read) to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := snapshotCall(cmd.Context(), g, http.MethodGet, nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			// Written beside FILE, then renamed: FILE is never a partial snapshot.
			tmp, err := os.CreateTemp(filepath.Dir(args[0]), filepath.Base(args[0])+".tmp*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			n, err := io.Copy(tmp, resp.Body)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), args[0])
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved revision %s to %s (%d bytes)\n", resp.Header.Get("X-Junction-Revision"), args[0], n)
			return nil
		},
	}, &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the server's whole state with a saved snapshot",
		Long: `Replaces the whole state of the built-in store with FILE, a snapshot that
"junction snapshot save" wrote. Everything written since is gone; revisions keep
growing, and every watcher gets a RESET with the restored state. Sessions in the
snapshot get a fresh TTL; clients whose sessions are not in it register again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			resp, err := snapshotCall(cmd.Context(), g, http.MethodPut, f)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var out struct{ Revision string }
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s at revision %s\n", args[0], out.Revision)
			return nil
		},
	})
	return cmd
}

// snapshotCall makes a request of /v1/snapshot and returns the response
// when it succeeded, or the server's error.
func snapshotCall(ctx context.Context, g *globals, method string, body io.Reader) (*http.Response, error) {
	tc, err := g.tlsConfig()
	if err != nil {
		return nil, err
	}
	scheme, client := "http://", http.DefaultClient
	if tc != nil {
		scheme, client = "https://", &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	req, err := http.NewRequestWithContext(ctx, method, scheme+g.addr+"/v1/snapshot", body)
	if err != nil {
		return nil, err
	}
	if t := g.secret(); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, httpError(resp)
	}
	return resp, nil
}

// httpError turns a REST error body into an error.
func httpError(resp *http.Response) error {
	var body struct{ Code, Message, Field string }
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body) != nil || body.Message == "" {
		return fmt.Errorf("%s", resp.Status)
	}
	return fmt.Errorf("%s (%s)", body.Message, body.Code)
}

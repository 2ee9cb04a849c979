package main

import (
	"encoding/json"
	"fmt"

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
			b := gateway.ReadBuildInfo(version)
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

package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/junctionhq/junction/api/junction/v1"
)

func newConfigHistoryCmd(g *globals) *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "history DATA_ID",
		Short: "List an item's versions, newest first: who changed it, when and why",
		Long: "List the versions an item's history keeps, newest first: every publish and delete, with its\n" +
			"author (the token's accessor ID, or the client's address with access control off), time,\n" +
			"md5 and message. A deleted item keeps its history. See config get --version, config diff\n" +
			"and config rollback.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.cfg.ListConfigHistory(cmd.Context(), &pb.ListConfigHistoryRequest{Namespace: g.namespace,
				Group: g.group, DataId: args[0], Stale: stale})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "VERSION\tOP\tREVISION\tTIME\tAUTHOR\tTYPE\tSIZE\tMD5\tMESSAGE")
				for _, v := range resp.Versions {
					fmt.Fprintf(w, "%d\t%s\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", v.Number, v.Op, v.Revision,
						v.Time.AsTime().Local().Format(time.DateTime), v.Author, v.ContentType, v.Size, v.Md5, oneLine(v.Message))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read")
	return cmd
}

// oneLine keeps a message to its first line, for a table.
func oneLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " …"
		}
	}
	return s
}

func newConfigDiffCmd(g *globals) *cobra.Command {
	req := &pb.DiffConfigRequest{}
	cmd := &cobra.Command{
		Use:   "diff DATA_ID [--from N] [--to M]",
		Short: "Print a unified diff between two versions of an item (default: the last two)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			req.Namespace, req.Group, req.DataId = g.namespace, g.group, args[0]
			resp, err := c.cfg.DiffConfig(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) { _, _ = io.WriteString(w, resp.Diff) })
		},
	}
	cmd.Flags().Int64Var(&req.From, "from", 0, "the older version (default: the one before --to)")
	cmd.Flags().Int64Var(&req.To, "to", 0, "the newer version (default: the newest)")
	cmd.Flags().BoolVar(&req.Stale, "stale", false, "allow a stale read")
	return cmd
}

func newConfigRollbackCmd(g *globals) *cobra.Command {
	req := &pb.RollbackConfigRequest{}
	var ifRevision int64
	cmd := &cobra.Command{
		Use:   "rollback DATA_ID --to N [--if-revision R]",
		Short: "Publish version N's content and type again, as a new version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			req.Namespace, req.Group, req.DataId = g.namespace, g.group, args[0]
			if cmd.Flags().Changed("if-revision") {
				req.IfRevision = &ifRevision
			}
			resp, err := c.cfg.RollbackConfig(cmd.Context(), req)
			if err != nil {
				return err
			}
			resp.Config.Content = ""
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "rolled %s back to version %d's content at revision %d, md5 %s\n", args[0], req.Number,
					resp.Config.Revision, resp.Config.Md5)
			})
		},
	}
	cmd.Flags().Int64Var(&req.Number, "to", 0, "the version to roll back to (see config history)")
	cmd.Flags().Int64Var(&ifRevision, "if-revision", 0, "write only if the item is at this revision (0: only if absent)")
	cmd.Flags().StringVarP(&req.Message, "message", "m", "", "why (default: \"rollback to version N\")")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

package main

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
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

// oneLine keeps a message to its first line, tabs as spaces, for a table.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\t", " ")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
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
			return g.printRaw(cmd.OutOrStdout(), resp, resp.Diff)
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

func newConfigExportCmd(g *globals) *cobra.Command {
	var (
		file  string
		group string
	)
	cmd := &cobra.Command{
		Use:   "export [-g GROUP] [-f FILE]",
		Short: "Write a namespace's items (of one group with -g) as a zip that Junction and Nacos import",
		Long: "Write the items of the namespace (-n) as a zip: each item's content at GROUP/DATA_ID, Junction's\n" +
			"metadata (types, md5s, revisions) in junction.json and Nacos' in .metadata.yml, so that a Nacos\n" +
			"console imports it too. Without -g, every group. -f - (the default) writes to standard output.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			if cmd.Flags().Changed("group") {
				group = g.group
			}
			resp, err := c.cfg.ExportConfigs(cmd.Context(), &pb.ExportConfigsRequest{Namespace: g.namespace, Group: group},
				grpc.MaxCallRecvMsgSize(math.MaxInt32))
			if err != nil {
				return err
			}
			if file == "" || file == "-" {
				_, err = cmd.OutOrStdout().Write(resp.Archive)
				return err
			}
			if err := os.WriteFile(file, resp.Archive, 0o600); err != nil {
				return fmt.Errorf("write the export: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "exported %d items of %s at revision %d to %s\n", resp.Count, g.namespace, resp.Revision, file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "-", "write the zip to FILE")
	return cmd
}

func newConfigImportCmd(g *globals) *cobra.Command {
	req := &pb.ImportConfigsRequest{}
	var policy string
	cmd := &cobra.Command{
		Use:   "import FILE [--policy abort|skip|overwrite] [--dry-run]",
		Short: "Import a Junction export or a Nacos console export zip into the namespace",
		Long: "Import a zip written by config export, or by a Nacos console (Nacos 2 and 1 exports), into the\n" +
			"namespace (-n), and print what it changed: create, overwrite, skip, unchanged or conflict. An\n" +
			"item that exists with other content aborts the whole import (--policy abort, the default),\n" +
			"is left alone (skip) or replaced (overwrite). Every entry is checked before anything is\n" +
			"written; --dry-run only prints what the import would do.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, ok := pb.ImportPolicy_value[strings.ToUpper(policy)]
			if !ok || p == 0 {
				return fmt.Errorf("--policy %q: want abort, skip or overwrite", policy)
			}
			archive, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read the archive: %w", err)
			}
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			req.Namespace, req.Archive, req.Policy = g.namespace, archive, pb.ImportPolicy(p)
			resp, err := c.cfg.ImportConfigs(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ACTION\tGROUP\tDATA ID\tTYPE\tSIZE\tMD5")
				counts := map[string]int{}
				for _, it := range resp.Items {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", it.Action, it.Group, it.DataId, it.ContentType, it.Size, it.Md5)
					counts[it.Action]++
				}
				what := "imported"
				if !resp.Applied {
					what = "would import (dry run)"
				}
				fmt.Fprintf(w, "%s %d items of a %s export into %s: %d created, %d overwritten, %d skipped, %d unchanged, %d in conflict\n",
					what, len(resp.Items), resp.Format, g.namespace, counts["create"], counts["overwrite"], counts["skip"],
					counts["unchanged"], counts["conflict"])
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&policy, "policy", "abort", "what to do with an item that exists with other content: abort, skip or overwrite")
	f.BoolVar(&req.DryRun, "dry-run", false, "print what the import would do, write nothing")
	f.BoolVar(&req.NoValidate, "no-validate", false, "store content that does not parse as its type")
	f.StringVarP(&req.Message, "message", "m", "", "kept with the version each write makes (default: import)")
	return cmd
}

func newConfigListenersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "listeners DATA_ID",
		Short: "Show who watches an item, through every gateway over the store, and who has not picked up its last change",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.cfg.ListConfigListeners(cmd.Context(), &pb.ListConfigListenersRequest{Namespace: g.namespace,
				Group: g.group, DataId: args[0]})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "CLIENT\tADDRESS\tLABELS\tSINCE\tMD5\tUP TO DATE\tGATEWAY")
				for _, l := range resp.Listeners {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", cmp.Or(l.ClientId, "-"), l.Address, cmp.Or(model.FormatLabels(l.Labels), "-"),
						l.Since.AsTime().Local().Format(time.DateTime), cmp.Or(l.Md5, "-"), l.UpToDate, l.Gateway)
				}
				fmt.Fprintf(w, "%d watches through %d gateways; current md5 %s\n", len(resp.Listeners), resp.Gateways, cmp.Or(resp.CurrentMd5, "(absent)"))
			})
		},
	}
}

func newConfigGrayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "gray", Short: "Show, promote or abort an item's gray release (publish one with config put --gray)"}
	key := func(id string) (string, string, string) { return g.namespace, g.group, id }
	show := &cobra.Command{
		Use: "show DATA_ID", Short: "Print the gray release: its rule, then its content", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			ns, grp, id := key(args[0])
			r, err := c.cfg.GetGrayConfig(cmd.Context(), &pb.GetGrayConfigRequest{Namespace: ns, Group: grp, DataId: id})
			if err != nil {
				return err
			}
			return g.printRaw(cmd.OutOrStdout(), r, fmt.Sprintf("# gray of %s over revision %d, by %s: labels %s, ips %s, percent %d, md5 %s\n%s",
				id, r.ReleaseRevision, cmp.Or(r.Author, "-"), cmp.Or(model.FormatLabels(r.Rule.GetLabels()), "-"),
				cmp.Or(strings.Join(r.Rule.GetIps(), ","), "-"), r.Rule.GetPercent(), r.Md5, r.Content))
		},
	}
	var ifRevision int64
	var message string
	promote := &cobra.Command{
		Use: "promote DATA_ID", Short: "Make the gray release the release, as a new version", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			ns, grp, id := key(args[0])
			req := &pb.PromoteGrayConfigRequest{Namespace: ns, Group: grp, DataId: id, Message: message}
			if cmd.Flags().Changed("if-revision") {
				req.IfRevision = &ifRevision
			}
			resp, err := c.cfg.PromoteGrayConfig(cmd.Context(), req)
			if err != nil {
				return err
			}
			resp.Config.Content = ""
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "promoted the gray release of %s: version %d at revision %d, md5 %s\n", id, resp.Config.Version,
					resp.Config.Revision, resp.Config.Md5)
			})
		},
	}
	promote.Flags().Int64Var(&ifRevision, "if-revision", 0, "promote only if the release is at this revision")
	promote.Flags().StringVarP(&message, "message", "m", "", "why (default: \"promote the gray release\")")
	abort := &cobra.Command{
		Use: "abort DATA_ID", Short: "End the gray release: its clients get the release again", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			ns, grp, id := key(args[0])
			resp, err := c.cfg.AbortGrayConfig(cmd.Context(), &pb.AbortGrayConfigRequest{Namespace: ns, Group: grp, DataId: id})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) { fmt.Fprintf(w, "aborted the gray release of %s\n", id) })
		},
	}
	cmd.AddCommand(show, promote, abort)
	return cmd
}

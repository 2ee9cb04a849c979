package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/junctionhq/junction/api/junction/v1"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Read, write and watch configuration items"}
	cmd.AddCommand(newConfigGetCmd(g), newConfigPutCmd(g), newConfigDeleteCmd(g), newConfigListCmd(g), newConfigWatchCmd(g),
		newConfigHistoryCmd(g), newConfigDiffCmd(g), newConfigRollbackCmd(g), newConfigExportCmd(g), newConfigImportCmd(g),
		newConfigListenersCmd(g), newConfigGrayCmd(g))
	return cmd
}

func newConfigGetCmd(g *globals) *cobra.Command {
	var (
		stale   bool
		version int64
	)
	cmd := &cobra.Command{
		Use:   "get DATA_ID [--version N]",
		Short: "Print an item's content, or a past version's (with -o json: the item and its revision)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			cfg := c.cfg
			if cmd.Flags().Changed("version") {
				v, err := cfg.GetConfigVersion(cmd.Context(), &pb.GetConfigVersionRequest{Namespace: g.namespace, Group: g.group,
					DataId: args[0], Number: version, Stale: stale})
				if err != nil {
					return err
				}
				return g.printRaw(cmd.OutOrStdout(), v, v.Content)
			}
			resp, err := cfg.GetConfig(cmd.Context(), &pb.GetConfigRequest{Namespace: g.namespace, Group: g.group,
				DataId: args[0], Stale: stale})
			if err != nil {
				return err
			}
			return g.printRaw(cmd.OutOrStdout(), resp, resp.Config.Content)
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "allow a stale read")
	cmd.Flags().Int64Var(&version, "version", 0, "print version N of the item's history (see config history)")
	return cmd
}

func newConfigPutCmd(g *globals) *cobra.Command {
	req := &pb.PutConfigRequest{}
	var (
		file       string
		ifRevision int64
		gray       bool
		labels     map[string]string
		ips        []string
		percent    int32
	)
	cmd := &cobra.Command{
		Use:   "put DATA_ID [--file FILE]",
		Short: "Write an item from a file or standard input",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				content []byte
				err     error
			)
			if file == "" || file == "-" {
				content, err = io.ReadAll(cmd.InOrStdin())
			} else {
				content, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("read content: %w", err)
			}
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			cfg := c.cfg
			req.Namespace, req.Group, req.DataId, req.Content = g.namespace, g.group, args[0], string(content)
			if cmd.Flags().Changed("if-revision") {
				req.IfRevision = &ifRevision
			}
			if gray {
				req.Gray = &pb.GrayRule{Labels: labels, Ips: ips, Percent: percent}
			} else if len(labels) > 0 || len(ips) > 0 || percent != 0 {
				return fmt.Errorf("--labels, --ips and --percent choose the clients of a gray release: add --gray")
			}
			resp, err := cfg.PutConfig(cmd.Context(), req)
			if err != nil {
				return err
			}
			resp.Config.Content = "" // do not echo the content back
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				if gray {
					fmt.Fprintf(w, "published a gray release of %s over revision %d, md5 %s\n", args[0], resp.Config.Revision, resp.Config.Md5)
					return
				}
				fmt.Fprintf(w, "wrote %s (version %d) at revision %d, md5 %s\n", args[0], resp.Config.Version,
					resp.Config.Revision, resp.Config.Md5)
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "read the content from FILE (default: standard input)")
	f.StringVar(&req.ContentType, "type", "", "content type: text, json, yaml, properties, xml, toml")
	f.Int64Var(&ifRevision, "if-revision", 0, "write only if the item is at this revision (0: only if absent)")
	f.BoolVar(&req.NoValidate, "no-validate", false, "store content that does not parse as its type (json, yaml, toml, xml, properties)")
	f.StringVarP(&req.Message, "message", "m", "", "why: kept with the version this write makes")
	f.BoolVar(&gray, "gray", false, "publish as a gray release, to the clients --labels, --ips and --percent choose (see config gray)")
	f.StringToStringVar(&labels, "labels", nil, "with --gray: clients with every one of these labels (env=canary,zone=a)")
	f.StringSliceVar(&ips, "ips", nil, "with --gray: clients at one of these addresses")
	f.Int32Var(&percent, "percent", 0, "with --gray: a stable share of the clients, 1 to 100, by their IDs")
	return cmd
}

func newConfigDeleteCmd(g *globals) *cobra.Command {
	var (
		ifRevision int64
		message    string
	)
	cmd := &cobra.Command{
		Use:   "delete DATA_ID",
		Short: "Delete an item",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			cfg := c.cfg
			req := &pb.DeleteConfigRequest{Namespace: g.namespace, Group: g.group, DataId: args[0], Message: message}
			if cmd.Flags().Changed("if-revision") {
				req.IfRevision = &ifRevision
			}
			resp, err := cfg.DeleteConfig(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "deleted %s at revision %d\n", args[0], resp.Revision)
			})
		},
	}
	cmd.Flags().Int64Var(&ifRevision, "if-revision", 0, "delete only if the item is at this revision")
	cmd.Flags().StringVarP(&message, "message", "m", "", "why: kept with the version this delete makes")
	return cmd
}

func newConfigListCmd(g *globals) *cobra.Command {
	var all bool
	var name, contains string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the items of a namespace (of the group given with -g, or of all with --all-groups)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			cfg := c.cfg
			req := &pb.ListConfigsRequest{Namespace: g.namespace, Group: g.group, Name: name, Contains: contains, PageSize: 500}
			if all {
				req.Group = ""
			}
			resp := &pb.ListConfigsResponse{}
			for { // every page
				page, err := cfg.ListConfigs(cmd.Context(), req)
				if err != nil {
					return err
				}
				resp.Configs, resp.Revision = append(resp.Configs, page.Configs...), page.Revision
				if page.NextPageToken == "" {
					break
				}
				req.PageToken = page.NextPageToken
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "GROUP\tDATA ID\tTYPE\tSIZE\tVERSION\tREVISION\tMD5")
				for _, c := range resp.Configs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", c.Group, c.DataId, c.ContentType, c.Size, c.Version, c.Revision, c.Md5)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all-groups", false, "list every group of the namespace")
	cmd.Flags().StringVar(&name, "name", "", "only items whose data id matches: exact, or with * for any run of characters (\"app*\")")
	cmd.Flags().StringVar(&contains, "contains", "", "only items whose content contains this text")
	return cmd
}

func newConfigWatchCmd(g *globals) *cobra.Command {
	var rev int64
	cmd := &cobra.Command{
		Use:   "watch DATA_ID",
		Short: "Stream changes to an item (starts with its current value)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			cfg := c.cfg
			stream, err := cfg.WatchConfig(cmd.Context(), &pb.WatchConfigRequest{Namespace: g.namespace, Group: g.group,
				DataId: args[0], Revision: rev})
			if err != nil {
				return err
			}
			for {
				e, err := stream.Recv()
				if err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				text := fmt.Sprintf("%s\trevision %d", e.Type, e.Revision)
				switch {
				case e.Config == nil:
					text += "\t(absent)"
				default:
					text += fmt.Sprintf("\tversion %d md5 %s %d bytes", e.Config.Version, e.Config.Md5, len(e.Config.Content))
				}
				g.printLine(cmd.OutOrStdout(), e, text)
			}
		},
	}
	cmd.Flags().Int64Var(&rev, "revision", 0, "deliver every change after this revision (default: from now)")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the server's backend, revision, leader and capabilities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			st := c.st
			resp, err := st.GetStatus(cmd.Context(), &pb.GetStatusRequest{})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				c := resp.Capabilities
				fmt.Fprintf(w, "backend\t%s\nversion\t%s\nrevision\t%d\nleader\t%s\n", resp.Backend, resp.Version, resp.Revision, resp.Leader)
				if b := resp.Build; b != nil {
					fmt.Fprintf(w, "commit\t%s (%s, %s)\n", b.Commit, b.Date, b.GoVersion)
				}
				fmt.Fprintf(w, "native sessions\t%t\nnative revisions\t%t\nresumable watch\t%t (%d events)\nlinearizable reads\t%t\nnative CAS\t%t\nconfig history\t%t (atomic %t)\npatch any owner\t%t\n",
					c.NativeSessions, c.NativeRevisions, c.ResumableWatch, c.WatchHistory, c.LinearizableReads, c.NativeCas, c.ConfigHistory, c.AtomicHistory, c.PatchAnyOwner)
			})
		},
	}
}

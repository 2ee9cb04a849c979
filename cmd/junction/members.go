package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/junctionhq/junction/api/junction/v1"
)

func newMembersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "members", Short: "List, add and remove the members of a built-in store cluster"}
	call := func(cmd *cobra.Command, fn func(context.Context, pb.ClusterServiceClient) (*pb.ListMembersResponse, error)) error {
		conn, err := g.conn()
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := fn(cmd.Context(), pb.NewClusterServiceClient(conn))
		if err != nil {
			return err
		}
		return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ID\tRAFT ADDRESS\tVOTER\tLEADER")
			for _, m := range resp.Members {
				fmt.Fprintf(w, "%s\t%s\t%t\t%t\n", m.Id, m.RaftAddress, m.Voter, m.Leader)
			}
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the members as the node at --addr knows them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, c pb.ClusterServiceClient) (*pb.ListMembersResponse, error) {
				return c.ListMembers(ctx, &pb.ListMembersRequest{})
			})
		},
	}, &cobra.Command{
		Use:   "add ID RAFT-ADDR",
		Short: "Add a voting member: ID is its API address, RAFT-ADDR its --raft-addr",
		Long: `Adds a voting member. Start the new node with --raft-addr and no --peers
(or with --join, which does this for it); it catches up from the leader.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c pb.ClusterServiceClient) (*pb.ListMembersResponse, error) {
				return c.AddMember(ctx, &pb.AddMemberRequest{Id: args[0], RaftAddress: args[1]})
			})
		},
	}, &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a member; then stop its process",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c pb.ClusterServiceClient) (*pb.ListMembersResponse, error) {
				return c.RemoveMember(ctx, &pb.RemoveMemberRequest{Id: args[0]})
			})
		},
	})
	return cmd
}

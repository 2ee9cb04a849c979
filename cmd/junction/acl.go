package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

func newACLCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "acl", Short: "Manage access control: bootstrap, tokens and policies"}
	// call runs fn on an AclService client and prints its answer.
	call := func(cmd *cobra.Command, fn func(context.Context, pb.AclServiceClient) (proto.Message, error), table func(proto.Message, *tabwriter.Writer)) error {
		conn, err := g.conn()
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := fn(cmd.Context(), pb.NewAclServiceClient(conn))
		if err != nil {
			return err
		}
		return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) { table(resp, w) })
	}
	secretTable := func(m proto.Message, w *tabwriter.Writer) {
		ts := m.(*pb.TokenSecret)
		fmt.Fprintf(w, "AccessorID:\t%s\n", ts.Token.AccessorId)
		fmt.Fprintf(w, "SecretID:\t%s\n", ts.Secret)
		fmt.Fprintf(w, "Policies:\t%s\n", policiesOf(ts.Token))
		if ts.Token.Expires != nil {
			fmt.Fprintf(w, "Expires:\t%s\n", ts.Token.Expires.AsTime().Format(time.RFC3339))
		}
		fmt.Fprintln(w, "\nThe secret is shown this once: Junction keeps only its hash.")
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "bootstrap",
		Short: "Create the first management token (once per store)",
		Long: `Creates the first management token of a server run with --auth, and prints
its secret: shown this once, never again. It works once per store; if the
management token is lost, see "Securing Junction" in the README for the reset.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.Bootstrap(ctx, &pb.BootstrapRequest{})
			}, secretTable)
		},
	}, newTokenCmd(g, call, secretTable), newPolicyCmd(g, call))
	return cmd
}

type aclCall = func(*cobra.Command, func(context.Context, pb.AclServiceClient) (proto.Message, error), func(proto.Message, *tabwriter.Writer)) error

func policiesOf(t *pb.Token) string {
	if t.Management {
		return "(management)"
	}
	return strings.Join(t.Policies, ",")
}

func tokenTable(m proto.Message, w *tabwriter.Writer) {
	var list []*pb.Token
	switch v := m.(type) {
	case *pb.ListTokensResponse:
		list = v.Tokens
	case *pb.Token:
		list = []*pb.Token{v}
	}
	fmt.Fprintln(w, "ACCESSOR ID\tPOLICIES\tEXPIRES\tCERTIFICATE\tDESCRIPTION")
	for _, t := range list {
		exp := "never"
		if t.Expires != nil {
			exp = t.Expires.AsTime().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.AccessorId, policiesOf(t), exp, t.CertIdentity, t.Description)
	}
}

func newTokenCmd(_ *globals, call aclCall, secretTable func(proto.Message, *tabwriter.Writer)) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list, read and revoke tokens"}
	var description string
	var policies []string
	var ttl time.Duration
	var certIdentity string
	create := &cobra.Command{
		Use:   "create --policy NAME [--policy NAME...] [--description TEXT] [--ttl DURATION]",
		Short: "Create a token holding policies; its secret is printed once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pb.CreateTokenRequest{Description: description, Policies: policies, CertIdentity: certIdentity}
			if cmd.Flags().Changed("ttl") {
				if ttl <= 0 {
					return model.Invalid("ttl", "must be positive")
				}
				req.Ttl = durationpb.New(ttl)
			}
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.CreateToken(ctx, req)
			}, secretTable)
		},
	}
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	create.Flags().StringSliceVar(&policies, "policy", nil, "a policy the token holds (repeat, or comma-separate)")
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token works (default: until revoked)")
	create.Flags().StringVar(&certIdentity, "cert-identity", "", "also authenticate as this token a mutual TLS client whose certificate carries this identity: CN=NAME, DNS=NAME or URI=URI")
	cmd.AddCommand(create, &cobra.Command{
		Use:   "list",
		Short: "List the tokens (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.ListTokens(ctx, &pb.ListTokensRequest{})
			}, tokenTable)
		},
	}, &cobra.Command{
		Use:   "read ACCESSOR-ID",
		Short: "Show one token (use \"self\" for the one in --token)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				if args[0] == "self" {
					return c.WhoAmI(ctx, &pb.WhoAmIRequest{})
				}
				return c.ReadToken(ctx, &pb.ReadTokenRequest{AccessorId: args[0]})
			}, tokenTable)
		},
	}, &cobra.Command{
		Use:   "revoke ACCESSOR-ID",
		Short: "Revoke a token: every gateway refuses it within a second",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.RevokeToken(ctx, &pb.RevokeTokenRequest{AccessorId: args[0]})
			}, func(proto.Message, *tabwriter.Writer) { fmt.Fprintln(cmd.OutOrStdout(), "revoked", args[0]) })
		},
	})
	return cmd
}

// readRules reads a policy's YAML from a file, or from stdin for "-".
func readRules(cmd *cobra.Command, file string) (string, error) {
	if file == "" {
		return "", model.Invalid("file", "name the policy's YAML file with -f FILE (- for stdin)")
	}
	var r io.Reader = cmd.InOrStdin()
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", model.Invalid("file", "%v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	return string(b), err
}

func policyTable(m proto.Message, w *tabwriter.Writer) {
	switch v := m.(type) {
	case *pb.ListPoliciesResponse:
		fmt.Fprintln(w, "NAME\tDESCRIPTION")
		for _, p := range v.Policies {
			fmt.Fprintf(w, "%s\t%s\n", p.Name, p.Description)
		}
	case *pb.Policy:
		fmt.Fprint(w, strings.TrimSuffix(v.Rules, "\n")+"\n")
	}
}

func newPolicyCmd(_ *globals, call aclCall) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Create, list, read, update and delete policies",
		Long: `A policy is YAML: a name, a description and rules. Each rule names one kind
(service, config, session, cluster, acl or snapshot) with a name pattern
(exact, or with * for any run of characters), services and configs a
namespace and a group too, and an access: read, write or deny. The most
specific rule wins, deny wins a tie, and nothing is allowed by default.

  name: payments
  description: the payments team
  rules:
    - namespace: prod
      service: "pay*"
      access: write
    - namespace: prod
      group: DEFAULT_GROUP
      config: "*"
      access: read`}
	var file string
	create := &cobra.Command{
		Use:   "create -f FILE",
		Short: "Create a policy from its YAML (- for stdin)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			text, err := readRules(cmd, file)
			if err != nil {
				return err
			}
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.CreatePolicy(ctx, &pb.CreatePolicyRequest{Rules: text})
			}, func(m proto.Message, w *tabwriter.Writer) { fmt.Fprintln(w, "created policy", m.(*pb.Policy).Name) })
		},
	}
	update := &cobra.Command{
		Use:   "update NAME -f FILE",
		Short: "Replace a policy's rules; its tokens get them at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := readRules(cmd, file)
			if err != nil {
				return err
			}
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.UpdatePolicy(ctx, &pb.UpdatePolicyRequest{Name: args[0], Rules: text})
			}, func(m proto.Message, w *tabwriter.Writer) { fmt.Fprintln(w, "updated policy", m.(*pb.Policy).Name) })
		},
	}
	for _, c := range []*cobra.Command{create, update} {
		c.Flags().StringVarP(&file, "file", "f", "", "the policy's YAML file (- for stdin)")
	}
	cmd.AddCommand(create, update, &cobra.Command{
		Use:   "list",
		Short: "List the policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.ListPolicies(ctx, &pb.ListPoliciesRequest{})
			}, policyTable)
		},
	}, &cobra.Command{
		Use:   "read NAME",
		Short: "Print a policy's YAML",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.ReadPolicy(ctx, &pb.ReadPolicyRequest{Name: args[0]})
			}, policyTable)
		},
	}, &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a policy; tokens holding it lose what it granted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c pb.AclServiceClient) (proto.Message, error) {
				return c.DeletePolicy(ctx, &pb.DeletePolicyRequest{Name: args[0]})
			}, func(proto.Message, *tabwriter.Writer) { fmt.Fprintln(cmd.OutOrStdout(), "deleted policy", args[0]) })
		},
	})
	return cmd
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/health"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

func newServiceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "Register, list and watch service instances"}
	cmd.AddCommand(newRegisterCmd(g), newDeregisterCmd(g), newServicesCmd(g), newInstancesCmd(g), newWatchServiceCmd(g),
		newMaintenanceCmd(g), newHealthCmd(g), newSettingsCmd(g))
	return cmd
}

func parseMeta(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, model.Invalid("meta", "%q is not KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

func newRegisterCmd(g *globals) *cobra.Command {
	req := &pb.RegisterInstanceRequest{}
	var (
		meta     []string
		ttl      time.Duration
		weight   float64
		disabled bool
		check    = &pb.HealthCheck{}
		interval time.Duration
		timeout  time.Duration
	)
	cmd := &cobra.Command{
		Use:   "register SERVICE --ip IP --port PORT",
		Short: "Register an instance; with --ttl, hold it with a session until interrupted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Namespace, req.Group, req.Service = g.namespace, g.group, args[0]
			var err error
			if req.Metadata, err = parseMeta(meta); err != nil {
				return err
			}
			if ttl != 0 {
				if weight == 0 {
					return model.Invalid("weight", "an ephemeral registration (--ttl) takes a weight above 0; "+
						"take the instance out of rotation with `junction service maintenance`")
				}
				inst := model.Instance{ID: req.Id, IP: req.Ip, Port: int(req.Port), Cluster: req.Cluster, Weight: weight, Metadata: req.Metadata}
				var ck *health.Check
				if check.Kind != "" {
					ck = &health.Check{Kind: health.Kind(check.Kind), Target: check.Target, ExpectStatus: int(check.ExpectStatus),
						GRPCService: check.GrpcService, Interval: interval, Timeout: timeout, Rise: int(check.Rise), Fall: int(check.Fall)}
				}
				return holdRegistration(cmd, g, args[0], inst, ck, disabled, ttl)
			}
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			if cmd.Flags().Changed("weight") {
				req.Weight = &weight
			}
			enabled := !disabled
			req.Enabled = &enabled
			if check.Kind != "" {
				if interval != 0 {
					check.Interval = durationpb.New(interval)
				}
				if timeout != 0 {
					check.Timeout = durationpb.New(timeout)
				}
				req.Check = check
			}
			resp, err := c.reg.RegisterInstance(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "registered %s of %s at revision %d (persistent)\n", resp.Instance.Id, args[0], resp.Revision)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Ip, "ip", "", "instance IP address or host name (required)")
	f.Int32Var(&req.Port, "port", 0, "instance port (required)")
	f.StringVar(&req.Id, "id", "", "instance id (default ip:port)")
	f.StringVar(&req.Cluster, "cluster", "", "cluster (default DEFAULT)")
	f.Float64Var(&weight, "weight", 1, "weight, 0..10000")
	f.StringArrayVar(&meta, "meta", nil, "metadata KEY=VALUE (repeatable)")
	f.BoolVar(&disabled, "disabled", false, "register in maintenance (not enabled)")
	f.DurationVar(&ttl, "ttl", 0, "hold an ephemeral registration with a session of this TTL until interrupted")
	f.StringVar(&check.Kind, "check", "", "health check the gateways run: http, tcp or grpc")
	f.StringVar(&check.Target, "check-target", "", "check target: a URL (http, default http://IP:PORT/health) or HOST:PORT (default IP:PORT)")
	f.DurationVar(&interval, "check-interval", 0, "time between probes (default 5s)")
	f.DurationVar(&timeout, "check-timeout", 0, "probe timeout (default 2s)")
	f.Int32Var(&check.Rise, "check-rise", 0, "consecutive passes that make the instance healthy (default 2)")
	f.Int32Var(&check.Fall, "check-fall", 0, "consecutive failures that make it unhealthy (default 3)")
	f.Int32Var(&check.ExpectStatus, "check-status", 0, "http: the status that passes (default any 2xx)")
	f.StringVar(&check.GrpcService, "check-grpc-service", "", "grpc: the service to ask about (default the whole server)")
	_ = cmd.MarkFlagRequired("ip")
	_ = cmd.MarkFlagRequired("port")
	return cmd
}

// holdRegistration keeps an ephemeral instance registered through the SDK,
// which heartbeats its session and, when the session is lost, creates
// another and registers the instance again, until the command is
// interrupted; then it deregisters the instance.
func holdRegistration(cmd *cobra.Command, g *globals, service string, inst model.Instance, ck *health.Check, disabled bool, ttl time.Duration) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	c, err := sdk.New(ctx, sdk.WithAddrs(g.addr), sdk.WithNamespace(g.namespace), sdk.WithGroup(g.group), sdk.WithSessionTTL(ttl),
		sdk.WithStateListener(func(s sdk.State, err error) {
			if s == sdk.StateSessionLost || s == sdk.StateDisconnected {
				slog.Warn("registration "+s.String()+"; the client keeps trying", "err", err)
			}
		}))
	if err != nil {
		return err
	}
	defer c.Close()
	var opts []sdk.CallOption
	if disabled {
		opts = append(opts, sdk.Disabled())
	}
	if ck != nil {
		opts = append(opts, sdk.WithHealthCheck(*ck))
	}
	// The SDK retries an unreachable gateway for as long as it is given:
	// the first registration fails rather than waits.
	rctx, cancel := context.WithTimeout(ctx, max(10*time.Second, 2*ttl))
	reg, err := c.Register(rctx, service, inst, opts...)
	cancel()
	if err != nil {
		return fmt.Errorf("register %s at %s: %w", service, g.addr, err)
	}
	fmt.Fprintf(out, "registered %s of %s (ephemeral, session TTL %v); Ctrl-C to deregister\n", reg.Instance().ID, service, ttl)
	<-ctx.Done()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := reg.Deregister(dctx); err != nil {
		return fmt.Errorf("deregister on exit: %w", err)
	}
	fmt.Fprintln(out, "deregistered")
	return nil
}

func newDeregisterCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "deregister SERVICE ID",
		Short: "Remove an instance",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			reg := c.reg
			resp, err := reg.DeregisterInstance(cmd.Context(), &pb.DeregisterInstanceRequest{Namespace: g.namespace,
				Group: g.group, Service: args[0], Id: args[1]})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "deregistered %s at revision %d\n", args[1], resp.Revision)
			})
		},
	}
}

func newServicesCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the services of a namespace (of the group given with -g, or of all with --all-groups)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			reg := c.reg
			req := &pb.ListServicesRequest{Namespace: g.namespace, Group: g.group, PageSize: 1000}
			if all {
				req.Group = ""
			}
			out := &pb.ListServicesResponse{}
			for {
				resp, err := reg.ListServices(cmd.Context(), req)
				if err != nil {
					return err
				}
				out.Services = append(out.Services, resp.Services...)
				out.Revision = resp.Revision
				if req.PageToken = resp.NextPageToken; req.PageToken == "" {
					break
				}
			}
			return g.print(cmd.OutOrStdout(), out, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "GROUP\tSERVICE\tINSTANCES\tHEALTHY")
				for _, s := range out.Services {
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", s.Group, s.Service, s.Instances, s.Healthy)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all-groups", false, "list every group of the namespace")
	return cmd
}

func instanceRows(w *tabwriter.Writer, insts []*pb.Instance) {
	fmt.Fprintln(w, "ID\tADDRESS\tCLUSTER\tWEIGHT\tHEALTHY\tENABLED\tEPHEMERAL\tMETADATA")
	for _, i := range insts {
		var meta []string
		for k, v := range i.Metadata {
			meta = append(meta, k+"="+v)
		}
		fmt.Fprintf(w, "%s\t%s:%d\t%s\t%g\t%t\t%t\t%t\t%s\n", i.Id, i.Ip, i.Port, i.Cluster, i.Weight, i.Healthy,
			i.Enabled, i.Ephemeral, strings.Join(meta, ","))
	}
}

func newInstancesCmd(g *globals) *cobra.Command {
	req := &pb.ListInstancesRequest{}
	cmd := &cobra.Command{
		Use:   "instances SERVICE",
		Short: "List a service's instances",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			reg := c.reg
			req.Namespace, req.Group, req.Service = g.namespace, g.group, args[0]
			resp, err := reg.ListInstances(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				instanceRows(w, resp.Instances)
				stale := ""
				if resp.Staleness != nil {
					stale = fmt.Sprintf(", last heard from the leader %v ago", resp.Staleness.AsDuration().Round(time.Millisecond))
				}
				fmt.Fprintf(w, "(%d instances at revision %d, %s%s)\n", len(resp.Instances), resp.Revision, resp.Consistency, stale)
				if resp.Protected {
					fmt.Fprintln(w, "(protect threshold reached: every instance is listed, healthy or not)")
				}
			})
		},
	}
	cmd.Flags().BoolVar(&req.HealthyOnly, "healthy-only", false, "only healthy, enabled instances")
	cmd.Flags().StringSliceVar(&req.Clusters, "cluster", nil, "only these clusters")
	cmd.Flags().BoolVar(&req.Stale, "stale", false, "allow a stale read")
	return cmd
}

func newWatchServiceCmd(g *globals) *cobra.Command {
	var rev int64
	cmd := &cobra.Command{
		Use:   "watch SERVICE",
		Short: "Stream changes to a service's instances (starts with the current set)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			reg := c.reg
			stream, err := reg.WatchInstances(cmd.Context(), &pb.WatchInstancesRequest{Namespace: g.namespace,
				Group: g.group, Service: args[0], Revision: rev})
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
				if e.Type == pb.EventType_RESET {
					ids := make([]string, len(e.Instances))
					for n, i := range e.Instances {
						ids[n] = i.Id
					}
					text += fmt.Sprintf("\t%d instances: %s", len(e.Instances), strings.Join(ids, " "))
				} else if e.Instance != nil {
					text += fmt.Sprintf("\t%s (%s:%d weight %g healthy %t enabled %t)", e.Instance.Id, e.Instance.Ip,
						e.Instance.Port, e.Instance.Weight, e.Instance.Healthy, e.Instance.Enabled)
				}
				g.printLine(cmd.OutOrStdout(), e, text)
			}
		},
	}
	cmd.Flags().Int64Var(&rev, "revision", 0, "deliver every change after this revision (default: from now)")
	return cmd
}

func newMaintenanceCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "maintenance SERVICE ID on|off",
		Short: "Put an instance in maintenance (out of healthy-only queries) or back",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var enabled bool
			switch args[2] {
			case "on":
			case "off":
				enabled = true
			default:
				return model.Invalid("state", "%q is not on or off", args[2])
			}
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.reg.SetInstanceState(cmd.Context(), &pb.SetInstanceStateRequest{Namespace: g.namespace, Group: g.group,
				Service: args[0], Id: args[1], Enabled: &enabled})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), resp, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "%s of %s: maintenance %s (enabled=%v) at revision %d\n", args[1], args[0], args[2], enabled, resp.Revision)
			})
		},
	}
}

func newHealthCmd(g *globals) *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "health SERVICE ID",
		Short: "Show an instance's health check, its last transition and recent results",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			ctx := cmd.Context()
			if remove {
				if _, err := c.reg.SetInstanceState(ctx, &pb.SetInstanceStateRequest{Namespace: g.namespace, Group: g.group,
					Service: args[0], Id: args[1], RemoveCheck: true}); err != nil {
					return err
				}
			}
			h, err := c.reg.GetInstanceHealth(ctx, &pb.GetInstanceHealthRequest{Namespace: g.namespace, Group: g.group,
				Service: args[0], Id: args[1]})
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), h, func(w *tabwriter.Writer) {
				in := h.Instance
				fmt.Fprintf(w, "instance\t%s (%s:%d)\n", in.Id, in.Ip, in.Port)
				fmt.Fprintf(w, "healthy\t%v\nenabled\t%v\n", in.Healthy, in.Enabled)
				if h.Check == nil {
					fmt.Fprintln(w, "check\tnone")
					return
				}
				ck := h.Check
				fmt.Fprintf(w, "check\t%s %s every %v, timeout %v, rise %d, fall %d\n", ck.Kind, ck.Target,
					ck.Interval.AsDuration(), ck.Timeout.AsDuration(), ck.Rise, ck.Fall)
				fmt.Fprintf(w, "runner\t%s\n", h.Runner)
				if lt := h.LastTransition; lt != nil {
					fmt.Fprintf(w, "last transition\t%s %s: %s\n", lt.At.AsTime().Local().Format(time.DateTime), passFail(lt.Pass), lt.Output)
				}
				for _, r := range h.History {
					fmt.Fprintf(w, "  %s\t%s %v\t%s\n", r.At.AsTime().Local().Format("15:04:05.000"), passFail(r.Pass),
						r.Latency.AsDuration().Round(time.Microsecond), r.Output)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&remove, "remove-check", false, "remove the instance's health check first")
	return cmd
}

func passFail(pass bool) string {
	if pass {
		return "pass"
	}
	return "FAIL"
}

func newSettingsCmd(g *globals) *cobra.Command {
	var threshold float64
	cmd := &cobra.Command{
		Use:   "settings SERVICE",
		Short: "Show a service's settings, or set its protect threshold",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, err := g.dial()
			if err != nil {
				return err
			}
			defer done()
			var set *pb.ServiceSettings
			if cmd.Flags().Changed("protect-threshold") {
				set, err = c.reg.PutServiceSettings(cmd.Context(), &pb.PutServiceSettingsRequest{Namespace: g.namespace, Group: g.group,
					Service: args[0], Settings: &pb.ServiceSettings{ProtectThreshold: threshold}})
			} else {
				set, err = c.reg.GetServiceSettings(cmd.Context(), &pb.GetServiceSettingsRequest{Namespace: g.namespace, Group: g.group, Service: args[0]})
			}
			if err != nil {
				return err
			}
			return g.print(cmd.OutOrStdout(), set, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "protect threshold\t%g\n", set.ProtectThreshold)
			})
		},
	}
	cmd.Flags().Float64Var(&threshold, "protect-threshold", 0, "0..1: below this healthy share, healthy-only queries return every instance (0: off)")
	return cmd
}

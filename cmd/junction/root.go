package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

// version is set at build time with -ldflags "-X main.version=..."; commit
// and date too where the build has no git checkout to take them from (a
// container image's build).
var version, commit, date = "dev", "", ""

// build is this binary's build.
func build() gateway.BuildInfo { return gateway.ReadBuildInfo(version, commit, date) }

// globals are the flags every client command shares.
type globals struct {
	addr      string
	output    string
	namespace string
	group     string
	token     string
	// TLS to the server: the authority to verify it with, and a client
	// certificate for mutual TLS.
	caCert, cert, key string
	// Who the CLI says it is, as a client (gray releases choose by it).
	clientID     string
	clientLabels string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "junction",
		Short:         "One service-registry and configuration API over any coordination store",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetVersionTemplate(versionText(build()))
	addr := os.Getenv("JUNCTION_ADDR")
	if addr == "" {
		addr = gateway.DefaultListen
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.addr, "addr", addr, "server address (env JUNCTION_ADDR)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.StringVarP(&g.namespace, "namespace", "n", model.DefaultNamespace, "namespace")
	pf.StringVarP(&g.group, "group", "g", model.DefaultGroup, "group")
	// Not the environment's value as the default: --help would print it.
	pf.StringVar(&g.token, "token", "", "the secret of an ACL token, when access control is on (env JUNCTION_TOKEN)")
	pf.StringVar(&g.caCert, "cacert", os.Getenv("JUNCTION_CACERT"), "connect over TLS, verifying the server against this authority (PEM; env JUNCTION_CACERT)")
	pf.StringVar(&g.cert, "cert", os.Getenv("JUNCTION_CERT"), "a client certificate for mutual TLS (PEM; env JUNCTION_CERT)")
	pf.StringVar(&g.key, "key", os.Getenv("JUNCTION_KEY"), "the key of --cert (PEM; env JUNCTION_KEY)")
	pf.StringVar(&g.clientID, "client-id", "", "the client ID to name this CLI by (gray releases by percent, config listeners)")
	pf.StringVar(&g.clientLabels, "client-labels", "", "labels to name this CLI by, k=v,k=v (gray releases by label, config listeners)")
	root.AddCommand(newServerCmd(), newServiceCmd(g), newConfigCmd(g), newStatusCmd(g), newConformanceCmd(), newBenchCmd(g), newSnapshotCmd(g), newMembersCmd(g), newACLCmd(g), newVersionCmd(g), newReadyCmd(g))
	return root
}

// conn dials the server. Dialing is lazy: errors surface on the first call.
func (g *globals) conn() (*grpc.ClientConn, error) {
	if g.output != "table" && g.output != "json" {
		return nil, model.Invalid("output", "%q is not table or json", g.output)
	}
	creds := insecure.NewCredentials()
	tc, err := g.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if t := g.secret(); t != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(sdk.BearerToken(t)))
	}
	if g.clientID != "" || g.clientLabels != "" {
		var kv []string
		if g.clientID != "" {
			kv = append(kv, model.ClientIDHeader, g.clientID)
		}
		if g.clientLabels != "" {
			kv = append(kv, model.ClientLabelsHeader, g.clientLabels)
		}
		opts = append(opts, grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, kv...), method, req, reply, cc, o...)
		}), grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, kv...), desc, cc, method, o...)
		}))
	}
	return grpc.NewClient(g.addr, opts...)
}

// tlsConfig is the TLS to the server, nil without --cacert or --cert.
func (g *globals) tlsConfig() (*tls.Config, error) {
	if g.caCert == "" && g.cert == "" && g.key == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.caCert != "" {
		pem, err := os.ReadFile(g.caCert)
		if err != nil {
			return nil, model.Invalid("cacert", "%v", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, model.Invalid("cacert", "%s holds no PEM certificate", g.caCert)
		}
	}
	if g.cert != "" || g.key != "" {
		pair, err := tls.LoadX509KeyPair(g.cert, g.key)
		if err != nil {
			return nil, model.Invalid("cert", "--cert and --key: %v", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// secret is the token to send: --token, else JUNCTION_TOKEN.
func (g *globals) secret() string {
	if g.token != "" {
		return g.token
	}
	return os.Getenv("JUNCTION_TOKEN")
}

var jsonOut = protojson.MarshalOptions{EmitUnpopulated: true}

// print writes m as JSON when -o json, else calls table.
func (g *globals) print(w io.Writer, m proto.Message, table func(*tabwriter.Writer)) error {
	if g.output == "json" {
		b, err := jsonOut.Marshal(m)
		if err != nil {
			return err
		}
		// protojson varies its whitespace on purpose; print a stable form.
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "  "); err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, out.String())
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// printRaw writes m as JSON, or else text as it is: a content, a diff,
// which a table would realign at its tabs.
func (g *globals) printRaw(w io.Writer, m proto.Message, text string) error {
	if g.output == "json" {
		return g.print(w, m, nil)
	}
	_, err := io.WriteString(w, text)
	return err
}

// printLine writes one streamed message: compact JSON, or a line of text.
func (g *globals) printLine(w io.Writer, m proto.Message, text string) {
	if g.output == "json" {
		b, _ := jsonOut.Marshal(m)
		var out bytes.Buffer
		_ = json.Compact(&out, b)
		fmt.Fprintln(w, out.String())
		return
	}
	fmt.Fprintln(w, text)
}

// clients are the API clients of one connection.
type clients struct {
	reg pb.RegistryServiceClient
	cfg pb.ConfigServiceClient
	st  pb.StatusServiceClient
}

// dial connects to the server; close the connection with the returned func.
func (g *globals) dial() (clients, func(), error) {
	conn, err := g.conn()
	if err != nil {
		return clients{}, nil, err
	}
	return clients{pb.NewRegistryServiceClient(conn), pb.NewConfigServiceClient(conn), pb.NewStatusServiceClient(conn)},
		func() { conn.Close() }, nil
}

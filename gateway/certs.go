package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/soheilhy/cmux"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/junctionhq/junction/gateway/acl"
)

// certHeader carries, on a REST call served in process, the identities of
// the client certificate the HTTP server verified. It is believed only
// from the in-process connection (the REST gateway passes no client
// header on as metadata); from anyone else it is ignored.
const certHeader = "junction-cert-identity"

// tlsConnOf finds the TLS connection under c: the API's listener ends TLS
// before the connection is split between gRPC and HTTP.
func tlsConnOf(c net.Conn) (*tls.Conn, bool) {
	for {
		switch v := c.(type) {
		case *tls.Conn:
			return v, true
		case *cmux.MuxConn:
			c = v.Conn
		case *ackConn:
			c = v.Conn
		default:
			return nil, false
		}
	}
}

// verifiedIdentities are the identities of a verified client certificate.
func verifiedIdentities(cs tls.ConnectionState) []string {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return acl.CertIdentities(cs.VerifiedChains[0][0])
}

// tlsInfoCreds are the gRPC server's transport credentials: the TLS of a
// connection is the listener's, and these only report it, so that a call
// knows its client certificate. Connections without TLS (the in-process
// one) pass as they are.
type tlsInfoCreds struct{}

type plainInfo struct{ credentials.CommonAuthInfo }

func (plainInfo) AuthType() string { return "insecure" }

func (tlsInfoCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerOnly
}

func (tlsInfoCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if tc, ok := tlsConnOf(c); ok {
		return c, credentials.TLSInfo{State: tc.ConnectionState(),
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
	}
	return c, plainInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (tlsInfoCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c tlsInfoCreds) Clone() credentials.TransportCredentials { return c }

func (tlsInfoCreds) OverrideServerName(string) error { return nil }

type serverOnly struct{}

func (serverOnly) Error() string { return "server-side credentials only" }

var errServerOnly = serverOnly{}

// certIdentitiesOf are the client certificate identities of a gRPC call:
// its own connection's, or for a REST call served in process, the ones
// the HTTP server verified.
func certIdentitiesOf(ctx context.Context, t *TLS) []string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		return t.clientIdentities(info.State)
	}
	if p.Addr != nil && p.Addr.Network() == "bufconn" {
		return metadata.ValueFromIncomingContext(ctx, certHeader)
	}
	return nil
}

type tlsStateKey struct{}

// withConnTLS is the HTTP server's ConnContext: it keeps a connection's TLS
// state for the requests on it.
func withConnTLS(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := tlsConnOf(c); ok {
		return context.WithValue(ctx, tlsStateKey{}, tc)
	}
	return ctx
}

// requestIdentities are the verified client certificate identities of an
// HTTP request.
func requestIdentities(r *http.Request, t *TLS) []string {
	tc, ok := r.Context().Value(tlsStateKey{}).(*tls.Conn)
	if !ok {
		return nil
	}
	return t.clientIdentities(tc.ConnectionState())
}

// restMetadata passes a REST request's client certificate identities on
// to the gRPC services served in process.
func restMetadata(t *TLS) func(context.Context, *http.Request) metadata.MD {
	return func(_ context.Context, r *http.Request) metadata.MD {
		ids := requestIdentities(r, t)
		if len(ids) == 0 {
			return nil
		}
		return metadata.MD{certHeader: ids}
	}
}

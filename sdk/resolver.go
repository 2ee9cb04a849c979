package sdk

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"

	"github.com/junctionhq/junction/model"
)

// ResolverScheme is the scheme of gRPC targets resolved through Junction:
//
//	junction:///SERVICE                      (the client's namespace and group)
//	junction:///NAMESPACE/GROUP/SERVICE
const ResolverScheme = "junction"

// WeightKey is the endpoint attribute holding an instance's weight.
type WeightKey struct{}

// Resolver returns a grpc-go resolver.Builder that resolves junction:///
// targets through c and follows them with a subscription: pass it to
// grpc.NewClient with grpc.WithResolvers. Only healthy, enabled instances
// become addresses.
func (c *Client) Resolver() resolver.Builder { return &resolverBuilder{c: c} }

type resolverBuilder struct{ c *Client }

func (b *resolverBuilder) Scheme() string { return ResolverScheme }

func (b *resolverBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	parts := strings.Split(strings.Trim(target.URL.Path, "/"), "/")
	var opts []CallOption
	switch len(parts) {
	case 1:
	case 3:
		opts = append(opts, InNamespace(parts[0]), InGroup(parts[1]))
	default:
		return nil, model.Invalid("target", "%q is not junction:///SERVICE or junction:///NAMESPACE/GROUP/SERVICE", target.URL.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := b.c.Subscribe(ctx, parts[len(parts)-1], opts...)
	if err != nil {
		return nil, fmt.Errorf("junction resolver: %w", err)
	}
	r := &junctionResolver{sub: sub, cc: cc}
	go r.run()
	return r, nil
}

type junctionResolver struct {
	sub *Subscription
	cc  resolver.ClientConn
}

func (r *junctionResolver) run() {
	for {
		select {
		case snap := <-r.sub.Updates():
			var eps []resolver.Endpoint
			for _, i := range snap.Instances {
				if i.Healthy && i.Enabled && i.Weight > 0 {
					eps = append(eps, resolver.Endpoint{
						Addresses:  []resolver.Address{{Addr: net.JoinHostPort(i.IP, strconv.Itoa(i.Port))}},
						Attributes: attributes.New(WeightKey{}, i.Weight)})
				}
			}
			if len(eps) == 0 {
				r.cc.ReportError(fmt.Errorf("junction: no healthy instance of %s: %w", snap.Service, model.ErrNotFound))
				continue
			}
			_ = r.cc.UpdateState(resolver.State{Endpoints: eps})
		case <-r.sub.done:
			return
		}
	}
}

func (r *junctionResolver) ResolveNow(resolver.ResolveNowOptions) {}

func (r *junctionResolver) Close() { r.sub.Close() }

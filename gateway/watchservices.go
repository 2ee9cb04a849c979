package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// maxWatchedServices bounds one WatchServices stream: a page of a list.
const maxWatchedServices = 100

// WatchServices implements RegistryService: one hub subscription per
// service named, each folded into its counts, all sent on the one stream
// (a browser holds only a few streams per server at once).
func (r *registryService) WatchServices(req *pb.WatchServicesRequest, stream grpc.ServerStreamingServer[pb.ServiceSummary]) error {
	switch n := len(req.Services); {
	case n == 0:
		return model.Invalid("services", "name at least one GROUP/SERVICE")
	case n > maxWatchedServices:
		return model.Invalid("services", "%d services; at most %d on one stream", n, maxWatchedServices)
	}
	keep := visible(stream.Context())
	var keys []model.ServiceKey
	seen := map[model.ServiceKey]bool{}
	for _, ref := range req.Services {
		group, svc, ok := strings.Cut(ref, "/")
		if !ok {
			return model.Invalid("services", "%q is not GROUP/SERVICE", ref)
		}
		key, err := serviceKey(req.Namespace, group, svc)
		if err != nil {
			return err
		}
		if seen[key] || !keep(acl.Resource{Kind: acl.KindService, Namespace: key.Namespace, Group: key.Group, Name: key.Service}) {
			continue
		}
		seen[key] = true
		keys = append(keys, key)
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	subs := make([]*subscriber, len(keys))
	for i, key := range keys {
		subs[i] = r.s.hub.subscribe(topicKey{svc: key}, 0)
		defer subs[i].Close()
	}
	// Every store watch in place first, as one watch's stream waits for
	// its own (and as long): then the header says so.
	wait, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	for _, w := range subs {
		if err := w.Established(wait); err != nil {
			return fmt.Errorf("watch not established: %w: %v", model.ErrUnavailable, err)
		}
	}
	if err := stream.SendHeader(metadata.Pairs(WatchEstablishedHeader, "true")); err != nil {
		return err
	}
	out := make(chan *pb.ServiceSummary)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	for i, w := range subs {
		key := keys[i]
		wg.Go(func() {
			insts := map[string]bool{} // id → healthy
			var last *pb.ServiceSummary
			for {
				e, err := w.Next(ctx)
				if err != nil {
					cancel(err)
					return
				}
				switch e.Type {
				case model.EventReset:
					clear(insts)
					for _, in := range e.Instances {
						insts[in.ID] = in.Healthy
					}
				case model.EventPut:
					if e.Instance != nil {
						insts[e.Instance.ID] = e.Instance.Healthy
					}
				case model.EventDelete:
					if e.Instance != nil {
						delete(insts, e.Instance.ID)
					}
				}
				sum := &pb.ServiceSummary{Namespace: key.Namespace, Group: key.Group, Service: key.Service, Instances: int32(len(insts))}
				for _, h := range insts {
					if h {
						sum.Healthy++
					}
				}
				if last != nil && last.Instances == sum.Instances && last.Healthy == sum.Healthy {
					continue
				}
				last = sum
				select {
				case out <- sum:
				case <-ctx.Done():
					return
				}
			}
		})
	}
	for {
		select {
		case sum := <-out:
			if err := stream.Send(sum); err != nil {
				return err
			}
		case <-ctx.Done():
			if err := context.Cause(ctx); err != nil && stream.Context().Err() == nil {
				return err
			}
			return stream.Context().Err()
		}
	}
}

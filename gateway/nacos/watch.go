package nacos

import (
	"context"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// follow watches req after revision from and sends its events to out
// until ctx ends. A watch that fails is opened again, with a growing
// pause, from the last revision seen: what it missed arrives as events,
// or as a RESET where the store no longer has them. A read-side failure
// never ends what the connection holds.
func (s *Server) follow(ctx context.Context, req backends.WatchRequest, from int64, out chan<- model.Event) {
	pause := 100 * time.Millisecond
	for ctx.Err() == nil {
		req.FromRevision = from
		w, err := s.cfg.Watches.Watch(ctx, req)
		if err == nil {
			for {
				e, err := w.Next(ctx)
				if err != nil {
					break
				}
				pause = 100 * time.Millisecond
				if e.Type == model.EventReset && e.Revision <= from && from > 0 {
					continue // the state the caller has already
				}
				from = max(from, e.Revision)
				select {
				case out <- e:
				case <-ctx.Done():
					w.Close()
					return
				}
			}
			w.Close()
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Debug("a watch failed: opening it again", "err", err, "pause", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

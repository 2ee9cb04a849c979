package raftstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/internal/confighist"
	"github.com/junctionhq/junction/model"
)

// itemHistory is the versions the state machine keeps of one config item,
// oldest first: native history, appended in the same log entry as the
// change it records.
type itemHistory struct {
	Key      model.ConfigKey `json:"key"`
	Last     int64           `json:"last"`
	Versions []keptVersion   `json:"versions"`
}

// keptVersion is a version and when retention drops it.
type keptVersion struct {
	model.ConfigVersion
	Expires time.Time `json:"expires"`
}

// record appends the version of a change applied at rev and drops what the
// change's retention no longer keeps; the caller holds mu. It uses only
// what the log entry carries, so every replica keeps the same versions.
func (f *fsm) record(op model.ConfigOp, c model.Config, ch backends.Change, now time.Time, rev int64) {
	if !confighist.Tracked(c.Key) {
		return
	}
	r := ch.Retention.OrDefault()
	h := f.hist[c.Key]
	if h == nil {
		h = &itemHistory{Key: c.Key}
		f.hist[c.Key] = h
	}
	h.Last++
	h.Versions = slices.DeleteFunc(h.Versions, func(v keptVersion) bool { return !v.Expires.After(now) })
	h.Versions = append(h.Versions, keptVersion{ConfigVersion: model.ConfigVersion{Key: c.Key, Number: h.Last,
		Revision: rev, Op: op, Content: c.Content, ContentType: c.ContentType, MD5: model.ContentMD5(c.Content),
		Author: ch.Author, Message: ch.Message, Time: now}, Expires: now.Add(r.MaxAge)})
	if over := len(h.Versions) - r.Versions; over > 0 {
		h.Versions = slices.Delete(h.Versions, 0, over)
	}
}

// sweepEvery is how often, at most, a config write sweeps every item's
// history of its expired versions (sweep); a variable for the tests.
var sweepEvery = time.Minute

// sweep drops, from every item's history, the versions past their time at
// now, at most once every sweepEvery; the caller holds mu. Retention
// trims an item's history at each of its writes, so without a sweep the
// versions of an item never written again, a deleted one above all, would
// stay in memory past their time, unseen. Only the number given out last
// stays, so that a re-created item numbers on. now is a log entry's time,
// so replicas sweep alike; what they drop is hidden from reads already
// (live), so a replica restored from a snapshot, which sweeps on its own
// schedule, answers the same.
func (f *fsm) sweep(now time.Time) {
	if now.Sub(f.swept) < sweepEvery {
		return
	}
	f.swept = now
	for _, h := range f.hist {
		// Versions are oldest first, and retention's age rarely changes:
		// an item whose oldest is still kept is almost always kept whole.
		if len(h.Versions) > 0 && !h.Versions[0].Expires.After(now) {
			h.Versions = slices.DeleteFunc(h.Versions, func(v keptVersion) bool { return !v.Expires.After(now) })
			if len(h.Versions) == 0 {
				h.Versions = nil // and the array that held them
			}
		}
	}
}

// lastVersions returns the number each item's history gave out last; the
// caller holds mu.
func (f *fsm) lastVersions() map[model.ConfigKey]int64 {
	out := make(map[model.ConfigKey]int64, len(f.hist))
	for k, h := range f.hist {
		out[k] = h.Last
	}
	return out
}

// keepNumbering makes each item's history number on from at least last
// (a restored state that predates versions given out since); the caller
// holds mu.
func (f *fsm) keepNumbering(last map[model.ConfigKey]int64) {
	for k, n := range last {
		h := f.hist[k]
		if h == nil {
			h = &itemHistory{Key: k}
			f.hist[k] = h
		}
		h.Last = max(h.Last, n)
	}
}

// live returns the versions of key still kept at now; the caller holds mu.
func (f *fsm) live(key model.ConfigKey, now time.Time) []model.ConfigVersion {
	out := []model.ConfigVersion{}
	if h := f.hist[key]; h != nil {
		for _, v := range h.Versions {
			if v.Expires.After(now) {
				out = append(out, v.ConfigVersion)
			}
		}
	}
	return out
}

// ConfigHistory implements backends.History.
func (s *Store) ConfigHistory(_ context.Context, key model.ConfigKey, opts backends.ReadOptions) ([]model.ConfigVersion, backends.ReadInfo, error) {
	var out []model.ConfigVersion
	info, err := s.read(opts, func() { out = s.fsm.live(key, time.Now()) })
	return out, info, err
}

// ConfigVersion implements backends.History.
func (s *Store) ConfigVersion(ctx context.Context, key model.ConfigKey, number int64, opts backends.ReadOptions) (model.ConfigVersion, error) {
	var (
		v     model.ConfigVersion
		found bool
	)
	_, err := s.read(opts, func() {
		for _, lv := range s.fsm.live(key, time.Now()) {
			if lv.Number == number {
				v, found = lv, true
			}
		}
	})
	if err == nil && !found {
		err = fmt.Errorf("version %d of config %s: %w", number, key, model.ErrNotFound)
	}
	return v, err
}

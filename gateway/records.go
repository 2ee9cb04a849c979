package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// recordSet is a group of the gateways' records (health checks, patch
// requests) that every gateway enumerates: with ListConfigs where the
// store lists configuration items, otherwise through an index record that
// holds the group's keys (a Nacos server without the config search API,
// such as Polaris). A record enters the index before it is written and
// leaves it after it is deleted, so the index never lacks a record.
type recordSet struct {
	b     backends.Backend
	group string

	mu      sync.Mutex
	known   bool // whether the store lists, once asked
	indexed bool
}

func newRecordSet(b backends.Backend, group string) *recordSet { return &recordSet{b: b, group: group} }

// indexDataID names the index record; no record key has this form.
const indexDataID = "index"

func (s *recordSet) indexKey() model.ConfigKey {
	return model.ConfigKey{Namespace: SystemNamespace, Group: s.group, DataID: indexDataID}
}

// useIndex reports whether the group is enumerated through its index.
// Only a definite ErrUnsupported from ListConfigs selects the index.
func (s *recordSet) useIndex(ctx context.Context) (bool, error) {
	s.mu.Lock()
	known, indexed := s.known, s.indexed
	s.mu.Unlock()
	if known {
		return indexed, nil
	}
	_, _, err := s.b.ListConfigs(ctx, SystemNamespace, s.group, backends.ReadOptions{})
	switch {
	case errors.Is(err, model.ErrUnsupported):
		indexed = true
	case err != nil && !errors.Is(err, model.ErrNotFound):
		return false, err
	}
	s.mu.Lock()
	s.known, s.indexed = true, indexed
	s.mu.Unlock()
	return indexed, nil
}

// list returns the group's records with their revisions.
func (s *recordSet) list(ctx context.Context) ([]model.ConfigSummary, error) {
	indexed, err := s.useIndex(ctx)
	if err != nil {
		return nil, err
	}
	if !indexed {
		list, _, err := s.b.ListConfigs(ctx, SystemNamespace, s.group, backends.ReadOptions{})
		if errors.Is(err, model.ErrNotFound) {
			err = nil
		}
		return slices.DeleteFunc(list, func(c model.ConfigSummary) bool { return c.Key.DataID == indexDataID }), err
	}
	keys, _, err := s.readIndex(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]model.ConfigSummary, 0, len(keys))
	for _, k := range keys {
		c, _, err := s.b.GetConfig(ctx, model.ConfigKey{Namespace: SystemNamespace, Group: s.group, DataID: k}, backends.ReadOptions{})
		if errors.Is(err, model.ErrNotFound) {
			continue // being written, or its removal from the index failed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c.Summary())
	}
	return out, nil
}

func (s *recordSet) readIndex(ctx context.Context) (keys []string, rev int64, err error) {
	c, _, err := s.b.GetConfig(ctx, s.indexKey(), backends.ReadOptions{})
	if errors.Is(err, model.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if err := json.Unmarshal(c.Content, &keys); err != nil {
		return nil, 0, fmt.Errorf("the index of %s does not decode: %w", s.group, err)
	}
	return keys, c.Revision, nil
}

// updateIndex adds or removes a key, by compare-and-set on the index.
func (s *recordSet) updateIndex(ctx context.Context, key string, add bool) error {
	for ctx.Err() == nil {
		keys, rev, err := s.readIndex(ctx)
		if err != nil {
			return err
		}
		i, found := slices.BinarySearch(keys, key)
		switch {
		case add && found, !add && !found:
			return nil
		case add:
			keys = slices.Insert(keys, i, key)
		default:
			keys = slices.Delete(keys, i, i+1)
		}
		content, _ := json.Marshal(keys)
		_, err = s.b.PutConfig(ctx, model.Config{Key: s.indexKey(), Content: content, ContentType: model.ContentJSON}, model.IfRevision(rev))
		if !errors.Is(err, model.ErrConflict) {
			return err
		}
	}
	return ctx.Err()
}

// put writes a record (JSON) if cond holds.
func (s *recordSet) put(ctx context.Context, key model.ConfigKey, v any, cond model.Precondition) (int64, error) {
	if indexed, err := s.useIndex(ctx); err != nil {
		return 0, err
	} else if indexed {
		if err := s.updateIndex(ctx, key.DataID, true); err != nil {
			return 0, fmt.Errorf("indexing record %s: %w", key.DataID, err)
		}
		// A store whose compare-and-set is not atomic (Nacos without
		// native CAS, whose reads also lag) can lose a key another
		// gateway's update raced with: look again once reads have caught
		// up, and index the record again if it is still there.
		go s.recheck(key)
	}
	return writeRecord(ctx, s.b, key, v, cond)
}

func (s *recordSet) recheck(key model.ConfigKey) {
	time.Sleep(readLag)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	keys, _, err := s.readIndex(ctx)
	if err != nil || slices.Contains(keys, key.DataID) {
		return
	}
	if _, _, err := s.b.GetConfig(ctx, key, backends.ReadOptions{}); err == nil {
		_ = s.updateIndex(ctx, key.DataID, true)
	}
}

// remove deletes a record if cond holds; an absent record is no error.
func (s *recordSet) remove(ctx context.Context, key model.ConfigKey, cond model.Precondition) error {
	if _, err := s.b.DeleteConfig(ctx, key, cond); err != nil && !errors.Is(err, model.ErrNotFound) {
		return err
	}
	if indexed, err := s.useIndex(ctx); err != nil || !indexed {
		return err
	}
	if err := s.updateIndex(ctx, key.DataID, false); err != nil {
		return err
	}
	// Written again meanwhile (its put found the key still indexed): index
	// it again.
	if _, _, err := s.b.GetConfig(ctx, key, backends.ReadOptions{}); err == nil {
		return s.updateIndex(ctx, key.DataID, true)
	}
	return nil
}

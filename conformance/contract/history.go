package contract

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// history checks contract line 11: every publish and every delete appends
// one version, in the order of the changes; a refused compare-and-set adds
// nothing; a rollback (a publish of an old version's content) is a new
// version; a deleted item keeps its history; retention drops what it
// must.
func history(ctx context.Context, e *Env) Result {
	var c check
	b, key := e.B, ConfigKey("history.yaml")
	sctx, cancel := within(ctx, 10*time.Second)
	st, err := b.Status(sctx)
	cancel()
	if err != nil {
		return c.fatal("status: %v", err)
	}
	caps := st.Capabilities
	c.fig("declared atomic", b2f(caps.AtomicHistory), "")
	wide := backends.Retention{Versions: 1000, MaxAge: time.Hour}
	as := func(author, msg string) context.Context {
		return backends.WithChange(ctx, backends.Change{Author: author, Message: msg, Retention: wide})
	}
	// want is what the history must hold, by revision.
	type change struct {
		op      model.ConfigOp
		content string
		author  string
	}
	want := map[int64]change{}
	put := func(ctx context.Context, content string, cond model.Precondition, op model.ConfigOp, author string) (model.Config, error) {
		cfg, err := b.PutConfig(ctx, model.Config{Key: key, Content: []byte(content), ContentType: model.ContentYAML}, cond)
		if err == nil {
			want[cfg.Revision] = change{op, content, author}
		}
		return cfg, err
	}
	c1, err := put(as("alice", "first"), "a: 1", model.IfRevision(0), model.OpCreate, "alice")
	if err != nil {
		return c.fatal("create: %v", err)
	}
	if _, err := put(as("bob", "second"), "a: 2", model.IfRevision(c1.Revision), model.OpUpdate, "bob"); err != nil {
		return c.fatal("update: %v", err)
	}
	// Refused writes add nothing.
	if _, err := b.PutConfig(as("mallory", "stale"), model.Config{Key: key, Content: []byte("x: 0")}, model.IfRevision(c1.Revision)); !errors.Is(err, model.ErrConflict) {
		c.problem("update at a stale revision: %v, want ErrConflict", err)
	}
	if _, err := b.DeleteConfig(as("mallory", "stale"), key, model.IfRevision(c1.Revision)); !errors.Is(err, model.ErrConflict) {
		c.problem("delete at a stale revision: %v, want ErrConflict", err)
	}
	// Concurrent writers.
	writers, each := e.n(4, 3), e.n(10, 3)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			author := fmt.Sprintf("writer-%d", w)
			for n := range each {
				content := fmt.Sprintf("w: %d\nn: %d", w, n)
				cfg, err := b.PutConfig(as(author, ""), model.Config{Key: key, Content: []byte(content)}, model.Precondition{})
				if err != nil {
					errs <- fmt.Errorf("%s write %d: %w", author, n, err)
					return
				}
				mu.Lock()
				want[cfg.Revision] = change{model.OpUpdate, content, author}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return c.fatal("concurrent writes: %v", err)
	}
	// A rollback to version 1 is a new version with version 1's content.
	v1, err := b.ConfigVersion(ctx, key, 1, backends.ReadOptions{})
	if err != nil {
		return c.fatal("read version 1: %v", err)
	}
	if string(v1.Content) != "a: 1" || v1.Op != model.OpCreate || v1.Author != "alice" || v1.Message != "first" ||
		v1.Revision != c1.Revision || v1.MD5 != model.ContentMD5([]byte("a: 1")) || v1.ContentType != model.ContentYAML {
		c.problem("version 1 is %+v, want alice's create of a: 1 at revision %d, message first", v1, c1.Revision)
	}
	cur, _, err := b.GetConfig(ctx, key, backends.ReadOptions{})
	if err != nil {
		return c.fatal("read: %v", err)
	}
	rb, err := put(as("carol", "roll back to 1"), string(v1.Content), model.IfRevision(cur.Revision), model.OpUpdate, "carol")
	if err != nil {
		return c.fatal("rollback: %v", err)
	}
	del, err := b.DeleteConfig(as("dave", "gone"), key, model.IfRevision(rb.Revision))
	if err != nil {
		return c.fatal("delete: %v", err)
	}
	want[del] = change{model.OpDelete, "a: 1", "dave"}
	total := 2 + writers*each + 2

	vs, _, err := b.ConfigHistory(ctx, key, backends.ReadOptions{})
	if err != nil {
		return c.fatal("history of a deleted item: %v", err)
	}
	c.fig("versions", float64(len(vs)), "")
	for i, v := range vs { // the list may leave contents out
		full, err := b.ConfigVersion(ctx, key, v.Number, backends.ReadOptions{})
		if err != nil {
			return c.fatal("read version %d, which the history lists: %v", v.Number, err)
		}
		if full.Number != v.Number || full.Revision != v.Revision || full.Op != v.Op || full.Author != v.Author {
			c.problem("version %d reads as %+v, listed as %+v", v.Number, full, v)
		}
		vs[i] = full
	}
	complete, ordered := len(vs) == total, true
	seen := map[int64]bool{}
	for i, v := range vs {
		w, ok := want[v.Revision]
		switch {
		case v.Number != int64(i+1):
			c.problem("version %d of the history is numbered %d", i+1, v.Number)
		case !ok || seen[v.Revision]:
			c.problem("version %d is at revision %d, which no acknowledged change (or another version) has", v.Number, v.Revision)
			complete = false
		case w.op != v.Op || w.content != string(v.Content) || w.author != v.Author || v.MD5 != model.ContentMD5(v.Content):
			c.problem("version %d (revision %d) is %s %q by %q, want %s %q by %q", v.Number, v.Revision, v.Op, v.Content, v.Author, w.op, w.content, w.author)
		}
		seen[v.Revision] = true
		if i > 0 && v.Revision <= vs[i-1].Revision {
			ordered = false
		}
	}
	if len(vs) != total {
		c.problem("the history holds %d versions after %d acknowledged changes", len(vs), total)
	}
	c.fig("history complete", b2f(complete), "")
	c.fig("history in revision order", b2f(ordered), "")
	if !ordered {
		if caps.AtomicHistory {
			c.problem("the versions are not in the order of their revisions, on a store that declares atomic history")
		} else {
			c.note("concurrent writers' versions are not in the order of their revisions: the store records history after the change, as it declares")
		}
	}
	if len(vs) > 0 {
		last := vs[len(vs)-1]
		if last.Op != model.OpDelete || string(last.Content) != "a: 1" || last.Revision != del || last.Message != "gone" {
			c.problem("the last version is %s %q at %d (%q), want the delete at %d carrying a: 1", last.Op, last.Content, last.Revision, last.Message, del)
		}
		if rbv := vs[len(vs)-2]; rbv.Revision != rb.Revision || string(rbv.Content) != "a: 1" || rbv.Op != model.OpUpdate {
			c.problem("the rollback is version %d: %s %q at %d, want an update to a: 1 at %d", rbv.Number, rbv.Op, rbv.Content, rbv.Revision, rb.Revision)
		}
	}
	if _, err := b.ConfigVersion(ctx, key, int64(total+1), backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		c.problem("a version past the last: %v, want ErrNotFound", err)
	}
	// Created again, the item numbers on.
	again, err := put(as("erin", ""), "b: 1", model.IfRevision(0), model.OpCreate, "erin")
	if err != nil {
		return c.fatal("create again: %v", err)
	}
	if v, err := b.ConfigVersion(ctx, key, int64(total+1), backends.ReadOptions{}); err != nil || v.Op != model.OpCreate || v.Revision != again.Revision {
		c.problem("the item created again is version %+v (%v), want a create numbered %d at %d", v, err, total+1, again.Revision)
	}
	// Retention: by count, and by age. A gateway applies its own, whatever
	// a write's context says: there the driver-level runs check it.
	if e.Forwards || strings.HasPrefix(st.Backend, "gateway/") {
		c.note("retention is the gateway's own (its flags): checked on the drivers")
		return c.done()
	}
	rkey := ConfigKey("retained.yaml")
	keep3 := backends.WithChange(ctx, backends.Change{Retention: backends.Retention{Versions: 3, MaxAge: time.Hour}})
	for n := range 5 {
		if _, err := b.PutConfig(keep3, model.Config{Key: rkey, Content: fmt.Appendf(nil, "n: %d", n)}, model.Precondition{}); err != nil {
			return c.fatal("write %d with a retention of 3: %v", n, err)
		}
	}
	if vs, _, err := b.ConfigHistory(ctx, rkey, backends.ReadOptions{}); err != nil || len(vs) != 3 || vs[0].Number != 3 || string(vs[2].Content) != "n: 4" {
		c.problem("a retention of 3 versions after 5 writes keeps %s (%v), want versions 3 to 5", numbers(vs), err)
	}
	if _, err := b.ConfigVersion(ctx, rkey, 1, backends.ReadOptions{}); !errors.Is(err, model.ErrNotFound) {
		c.problem("a version retention dropped: %v, want ErrNotFound", err)
	}
	short := backends.WithChange(ctx, backends.Change{Retention: backends.Retention{Versions: 100, MaxAge: 200 * time.Millisecond}})
	akey := ConfigKey("aged.yaml")
	if _, err := b.PutConfig(short, model.Config{Key: akey, Content: []byte("x: 1")}, model.Precondition{}); err != nil {
		return c.fatal("write with a short retention: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if vs, _, err := b.ConfigHistory(ctx, akey, backends.ReadOptions{}); err != nil || len(vs) != 0 {
		c.problem("a version past its retention age is still listed: %s (%v)", numbers(vs), err)
	}
	return c.done()
}

func numbers(vs []model.ConfigVersion) string {
	out := "["
	for i, v := range vs {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprint(v.Number)
	}
	return out + "]"
}

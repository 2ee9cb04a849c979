package raftstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/faults"
	"github.com/junctionhq/junction/model"
)

type harness struct{ b *raftstore.Store }

func (h *harness) Backend(t *testing.T) backends.Backend { return h.b }
func (h *harness) HistoryWindow() int                    { return 64 }

func open(t *testing.T, dir string) *raftstore.Store {
	t.Helper()
	cfg := raftstore.DefaultConfig(dir)
	cfg.History = 64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := raftstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	s := open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	conformance.Run(t, &harness{b: s})
}

// A closed store can be opened again in the same process, with its data:
// Close releases every file lock (a metadata database left open makes a
// second open wait on its lock forever).
func TestReopenInProcess(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: "kept"}
	if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: []byte("v1")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	opened := make(chan *raftstore.Store, 1)
	go func() { opened <- open(t, dir) }()
	select {
	case s = <-opened:
	case <-time.After(20 * time.Second):
		t.Fatal("reopening the store in the same process hangs")
	}
	defer s.Close()
	got, _, err := s.GetConfig(ctx, key, backends.ReadOptions{})
	if err != nil || string(got.Content) != "v1" {
		t.Fatalf("after reopening: %q %v", got.Content, err)
	}
}

// A store whose log cannot be read (damaged as raft-wal v0.4.0 left a
// follower's log after a change of leader) is refused with an error that
// names the data directory and the recovery, instead of a panic in
// raft.NewRaft; a log that fails to open is refused the same way, and
// neither keeps a file locked.
func TestDamagedLogIsRefused(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, walDir string)
		cause  string
	}{
		{"a sealed segment without its index", func(t *testing.T, walDir string) {
			first, last, err := faults.SealLogWithoutIndex(walDir)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("entries %d to %d damaged", first, last)
		}, "sealed segment has no index block"},
		{"a log whose metadata cannot be read", func(t *testing.T, walDir string) {
			garbage := bytes.Repeat([]byte("not a bolt database "), 2048)
			if err := os.WriteFile(filepath.Join(walDir, "wal-meta.db"), garbage, 0o640); err != nil {
				t.Fatal(err)
			}
		}, "wal-meta.db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir)
			for i := range 20 {
				key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: fmt.Sprintf("k%d", i)}
				if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: []byte("v")}, model.Precondition{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, filepath.Join(dir, "wal"))
			for range 2 { // twice: the first attempt released its locks
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				s, err := raftstore.Open(octx, raftstore.DefaultConfig(dir))
				cancel()
				if err == nil {
					s.Close()
					t.Fatal("a damaged store opened")
				}
				var damaged *raftstore.DamagedError
				if !errors.Is(err, raftstore.ErrLogDamaged) || !errors.As(err, &damaged) || damaged.Dir != dir {
					t.Fatalf("err = %v, want a DamagedError for %s", err, dir)
				}
				for _, want := range []string{dir, tc.cause, "junction snapshot restore"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("the error does not say %q: %v", want, err)
					}
				}
			}
		})
	}
}

// A saved snapshot restores the state it saw: later changes are undone,
// revisions keep growing, watchers get a RESET with the restored state, and
// the restore survives a restart.
func TestSnapshotSaveRestore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders"}
	key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: "app"}
	inst := model.Instance{IP: "10.0.0.1", Port: 80, Weight: 1, Healthy: true, Enabled: true}
	_ = inst.Normalize()
	if _, err := s.Register(ctx, svc, inst); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: []byte("v1")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	savedRev, err := s.SaveSnapshot(ctx, &snap)
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the snapshot.
	if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: []byte("v2")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deregister(ctx, svc, inst.ID); err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, backends.WatchRequest{Service: &svc})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev, err := w.Next(ctx); err != nil || ev.Type != model.EventReset || len(ev.Instances) != 0 {
		t.Fatalf("first event %+v %v", ev, err)
	}
	before, _ := s.Status(ctx)
	rev, err := s.RestoreSnapshot(ctx, bytes.NewReader(snap.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rev <= before.Revision || rev <= savedRev {
		t.Errorf("restore at revision %d, after %d (snapshot %d): revisions must keep growing", rev, before.Revision, savedRev)
	}
	ev, err := w.Next(ctx)
	if err != nil || ev.Type != model.EventReset || len(ev.Instances) != 1 || ev.Revision < rev {
		t.Fatalf("the watcher after the restore: %+v %v", ev, err)
	}
	check := func(s *raftstore.Store) {
		t.Helper()
		got, _, err := s.GetConfig(ctx, key, backends.ReadOptions{})
		if err != nil || string(got.Content) != "v1" {
			t.Fatalf("config after the restore: %q %v", got.Content, err)
		}
		// The history is the snapshot's; version numbers never repeat.
		if vs, _, err := s.ConfigHistory(ctx, key, backends.ReadOptions{}); err != nil || len(vs) != 1 || string(vs[0].Content) != "v1" {
			t.Fatalf("history after the restore: %v %v", vs, err)
		}
		insts, _, err := s.Instances(ctx, svc, backends.ReadOptions{})
		if err != nil || len(insts) != 1 {
			t.Fatalf("instances after the restore: %v %v", insts, err)
		}
	}
	check(s)
	s.Close()
	s = open(t, dir)
	defer s.Close()
	check(s)

	for name, bad := range map[string]string{
		"not json":     "hello",
		"other format": `{"format":"etcd-snapshot","state":{}}`,
		"bad instance": `{"format":"junction-snapshot/1","state":{"services":[{"key":{"namespace":"public","group":"DEFAULT_GROUP","service":"x"},"instances":[{"id":"a","ip":"","port":1}]}]}}`,
	} {
		if _, err := s.RestoreSnapshot(ctx, strings.NewReader(bad)); !errors.Is(err, model.ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
	check(s) // a rejected restore changes nothing
	if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: []byte("v3")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if vs, _, _ := s.ConfigHistory(ctx, key, backends.ReadOptions{}); len(vs) != 2 || vs[1].Number != 3 {
		t.Errorf("after the restore, a write is version %v, want 3: version 2 was given out before it", numbers(vs))
	}
}

// A few large writes compact the log as many small ones do: a snapshot is
// taken once snapshot-bytes of entries were written, long before the
// entry threshold.
func TestSnapshotByLogSize(t *testing.T) {
	dir := t.TempDir()
	cfg := raftstore.DefaultConfig(dir)
	cfg.SnapshotThreshold, cfg.SnapshotBytes = 1_000_000, 64<<10
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := raftstore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	snapshots := func() int {
		es, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
		return len(es)
	}
	if n := snapshots(); n != 0 {
		t.Fatalf("%d snapshots before any write", n)
	}
	big := bytes.Repeat([]byte("x"), 8<<10)
	for i := range 12 { // 96 KiB of content in 12 entries
		key := model.ConfigKey{Namespace: "public", Group: "DEFAULT_GROUP", DataID: fmt.Sprintf("big-%d", i)}
		if _, err := s.PutConfig(ctx, model.Config{Key: key, Content: big}, model.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	for snapshots() == 0 {
		if ctx.Err() != nil {
			t.Fatal("no snapshot after 96 KiB of log entries with snapshot-bytes 64 KiB")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func numbers(vs []model.ConfigVersion) []int64 {
	out := make([]int64, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Number)
	}
	return out
}

// The versions of an item past their retention leave the state machine's
// memory within a sweep of the next config write of any item, even when
// the item itself is never written again (deleted); its last number stays,
// so a re-created item numbers on.
func TestExpiredVersionsAreSwept(t *testing.T) {
	defer raftstore.SweepEvery(50 * time.Millisecond)()
	s := open(t, t.TempDir())
	defer s.Close()
	ctx := context.Background()
	short := backends.WithChange(ctx, backends.Change{Retention: backends.Retention{Versions: 10, MaxAge: 2 * time.Second}})
	gone := model.ConfigKey{Namespace: "public", Group: "g", DataID: "gone"}
	for _, content := range []string{"a", "b"} {
		if _, err := s.PutConfig(short, model.Config{Key: gone, Content: []byte(content)}, model.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteConfig(short, gone, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := raftstore.StoredVersions(s, gone); n != 3 {
		t.Fatalf("%d versions stored after two puts and a delete, want 3", n)
	}
	other := model.ConfigKey{Namespace: "public", Group: "g", DataID: "other"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(60 * time.Millisecond)
		if _, err := s.PutConfig(ctx, model.Config{Key: other, Content: []byte("x")}, model.Precondition{}); err != nil {
			t.Fatal(err)
		}
		n, last := raftstore.StoredVersions(s, gone)
		if n == 0 {
			if last != 3 {
				t.Fatalf("the last number given out is %d after the sweep, want 3", last)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d expired versions of a deleted item still stored", n)
		}
	}
	if n, _ := raftstore.StoredVersions(s, other); n == 0 {
		t.Fatal("the sweep dropped versions still kept")
	}
	c, err := s.PutConfig(ctx, model.Config{Key: gone, Content: []byte("again")}, model.Precondition{})
	if err != nil {
		t.Fatal(err)
	}
	vs, _, err := s.ConfigHistory(ctx, gone, backends.ReadOptions{})
	if err != nil || len(vs) != 1 || vs[0].Number != 4 || vs[0].Revision != c.Revision || vs[0].Op != model.OpCreate {
		t.Fatalf("history of the re-created item: %+v (%v), want version 4, a create", vs, err)
	}
}

// Services pages through a namespace (or one group of it) in order, from
// after the previous page's last key, whatever else the store holds; a
// service whose last instance goes is gone from the pages, and one that
// comes back is listed again, also after a restart from a snapshot.
func TestServicesPages(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	var want []string
	for _, ns := range []string{"a", "b", "c"} {
		for _, g := range []string{"g1", "g2"} {
			for i := range 25 {
				svc := model.ServiceKey{Namespace: ns, Group: g, Service: fmt.Sprintf("svc-%02d", i)}
				if _, err := s.Register(ctx, svc, model.Instance{ID: "i", IP: "10.0.0.1", Port: 1, Healthy: i%2 == 0}); err != nil {
					t.Fatal(err)
				}
				if ns == "b" {
					want = append(want, g+"/"+svc.Service)
				}
			}
		}
	}
	if _, err := s.Deregister(ctx, model.ServiceKey{Namespace: "b", Group: "g1", Service: "svc-03"}, "i"); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(n string) bool { return n == "g1/svc-03" })
	page := func(s *raftstore.Store, group string, size int) []string {
		t.Helper()
		var got []string
		after := model.ServiceKey{Namespace: "b"}
		for {
			list, _, err := s.Services(ctx, "b", group, after, size, backends.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, sum := range list {
				var n int
				_, _ = fmt.Sscanf(sum.Key.Service, "svc-%d", &n)
				if sum.Instances != 1 || (sum.Healthy == 1) != (n%2 == 0) {
					t.Errorf("%s: %+v", sum.Key, sum)
				}
				got = append(got, sum.Key.Group+"/"+sum.Key.Service)
			}
			if len(list) < size || size == 0 {
				return got
			}
			after = list[len(list)-1].Key
		}
	}
	for _, size := range []int{0, 1, 7, 49, 100} {
		if got := page(s, "", size); !slices.Equal(got, want) {
			t.Fatalf("pages of %d: %v\nwant %v", size, got, want)
		}
	}
	if got := page(s, "g2", 10); !slices.Equal(got, want[24:]) {
		t.Fatalf("group g2: %v", got)
	}
	if err := raftstore.TakeSnapshot(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	if got := page(s, "", 10); !slices.Equal(got, want) {
		t.Fatalf("after a restart: %v", got)
	}
}

// The expiry loop expires what is not kept alive, keeps what is, and
// forgets the deadlines of sessions closed or expired: what it holds does
// not grow with the sessions that came and went.
func TestExpiryLoopForgetsEndedSessions(t *testing.T) {
	s := open(t, t.TempDir())
	ctx := context.Background()
	var ids []string
	for range 20 {
		sess, _, err := s.CreateSession(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	for _, id := range ids[:5] {
		if _, err := s.CloseSession(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	kept := ids[19]
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.KeepAlive(ctx, kept); err != nil {
			t.Fatalf("a session kept alive: %v", err)
		}
		if d, e := raftstore.ExpiryState(s); d == 1 && e == 0 {
			break
		}
		if time.Now().After(deadline) {
			d, e := raftstore.ExpiryState(s)
			t.Fatalf("expiry state: %d deadlines, %d expiring; want the kept session's alone", d, e)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, id := range ids[:19] {
		if _, err := s.KeepAlive(ctx, id); !errors.Is(err, model.ErrUnknownSession) {
			t.Errorf("session %s, closed or left to expire: %v", id, err)
		}
	}
}

// Each watched key has a log of its own while it is watched, so that a
// write wakes only its key's watches. A watch that starts from a revision
// before its key's log began (another watch of the key was already
// running) gets the events in between from the store's history, then the
// log's, each once and in order; from a revision older than the history,
// a RESET. The logs go away with the key's last watch, whether it is
// closed or its context ends (the watched_keys gauge).
func TestKeyedWatchLogs(t *testing.T) {
	s := open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "keyed"}
	other := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "other"}
	put := func(k model.ServiceKey, port int) int64 { return registerPort(ctx, t, s, k, port) }
	watched := func() float64 { return s.Gauges()[0].Value() }
	from := put(svc, 1)
	var revs []int64
	for i := range 5 {
		put(other, 100+i)
		revs = append(revs, put(svc, 2+i))
	}
	first, err := s.Watch(ctx, backends.WatchRequest{Service: &svc})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := first.Next(ctx); err != nil || e.Type != model.EventReset {
		t.Fatalf("first watch: %v %v, want a RESET", e, err)
	}
	for i := range 3 {
		put(other, 200+i)
		revs = append(revs, put(svc, 10+i))
	}
	if got := watched(); got != 1 {
		t.Errorf("watched keys %v, want 1", got)
	}
	// From before the key's log: 5 events from the history, 3 from the log.
	late, err := s.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: from})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range revs {
		e, err := late.Next(ctx)
		if err != nil || e.Type != model.EventPut || e.Revision != want || e.Service != svc {
			t.Fatalf("late watch: %v %v, want the PUT at %d", e, err, want)
		}
	}
	for _, want := range revs[5:] {
		if e, err := first.Next(ctx); err != nil || e.Revision != want {
			t.Fatalf("first watch: %v %v, want the PUT at %d", e, err, want)
		}
	}
	rev := put(svc, 20)
	for _, w := range []backends.Watcher{first, late} {
		if e, err := w.Next(ctx); err != nil || e.Revision != rev {
			t.Fatalf("after catching up: %v %v, want the PUT at %d", e, err, rev)
		}
	}
	// Older than the history (64 events): a RESET.
	for i := range 70 {
		put(other, 300+i)
	}
	old, err := s.Watch(ctx, backends.WatchRequest{Service: &svc, FromRevision: from})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := old.Next(ctx); err != nil || e.Type != model.EventReset || len(e.Instances) != 10 {
		t.Fatalf("from before the history: %v %v, want a RESET of 10 instances", e, err)
	}
	// Other keys' writes woke no watch of svc: nothing is pending.
	short, stop := context.WithTimeout(ctx, 200*time.Millisecond)
	if e, err := first.Next(short); err == nil {
		t.Errorf("first watch got %v after other keys' writes", e)
	}
	stop()
	first.Close()
	late.Close()
	wctx, end := context.WithCancel(ctx)
	if _, err := s.Watch(wctx, backends.WatchRequest{Service: &other}); err != nil {
		t.Fatal(err)
	}
	end() // never closed: its context ends
	old.Close()
	deadline := time.Now().Add(5 * time.Second)
	for watched() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := watched(); got != 0 {
		t.Errorf("watched keys %v once every watch ended, want 0", got)
	}
}

// A watched key's log keeps no more than the store's history does: a
// watch that left its key's events unread while the history moved on
// (1,100 writes to other keys, a history of 64) gets a RESET, as it did
// when watches read the history itself, not events the history dropped.
func TestKeyedLogsAreTrimmedWithTheHistory(t *testing.T) {
	s := open(t, t.TempDir())
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "quiet"}
	other := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "busy"}
	put := func(k model.ServiceKey, port int) { registerPort(ctx, t, s, k, port) }
	w, err := s.Watch(ctx, backends.WatchRequest{Service: &svc})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if e, err := w.Next(ctx); err != nil || e.Type != model.EventReset {
		t.Fatalf("%v %v, want a RESET", e, err)
	}
	for i := range 10 {
		put(svc, i) // left unread
	}
	for i := range 1100 {
		put(other, i%50)
	}
	put(svc, 99)
	e, err := w.Next(ctx)
	if err != nil || e.Type != model.EventReset || len(e.Instances) != 11 {
		t.Fatalf("a watch 1,100 writes behind a history of 64: %v %v, want a RESET of 11 instances", e, err)
	}
}

// registerPort registers instance PORT (10.0.0.1:PORT) of k and returns
// the revision.
func registerPort(ctx context.Context, t *testing.T, s *raftstore.Store, k model.ServiceKey, port int) int64 {
	t.Helper()
	rev, err := s.Register(ctx, k, model.Instance{ID: fmt.Sprint(port), IP: "10.0.0.1", Port: port, Healthy: true, Enabled: true, Weight: 1})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

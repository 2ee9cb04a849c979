package raftstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/junctionhq/junction/model"
)

// A frozen state is the state when it was frozen, however the live state
// changes while it is written (Persist runs beside Apply): the changed
// services' instance maps are copied, never changed under it.
func TestFrozenStateStaysAsItWas(t *testing.T) {
	f := newFSM(100)
	var index uint64
	apply := func(c command) {
		t.Helper()
		index++
		data, _ := json.Marshal(c)
		if r := f.Apply(&raft.Log{Index: index, Data: data}).(result); r.err != nil {
			t.Fatal(r.err)
		}
	}
	svc := func(name string) model.ServiceKey {
		return model.ServiceKey{Namespace: "ns", Group: "g", Service: name}
	}
	reg := func(s, id string, weight float64) {
		apply(command{Op: opRegister, Service: svc(s), Instance: &model.Instance{ID: id, IP: "10.0.0.1", Port: 1, Weight: weight, Healthy: true}})
	}
	reg("a", "i1", 1)
	reg("a", "i2", 1)
	reg("b", "j1", 1)
	apply(command{Op: opConfigPut, Config: &model.Config{Key: model.ConfigKey{Namespace: "ns", Group: "g", DataID: "x"}, Content: []byte("1")}, Now: time.Now()})

	fr := f.freeze()
	weight := 9.0
	apply(command{Op: opPatch, Service: svc("a"), ID: "i1", Patch: &model.InstancePatch{Weight: &weight}})
	apply(command{Op: opDeregister, Service: svc("a"), ID: "i2"})
	reg("b", "j2", 1)
	apply(command{Op: opDeregister, Service: svc("b"), ID: "j1"})
	reg("c", "k1", 1)
	apply(command{Op: opConfigPut, Config: &model.Config{Key: model.ConfigKey{Namespace: "ns", Group: "g", DataID: "x"}, Content: []byte("2")}, Now: time.Now()})

	state := func(fr *frozen) (string, snapshotData) {
		t.Helper()
		var buf bytes.Buffer
		if err := fr.writeJSON(&buf); err != nil {
			t.Fatal(err)
		}
		var d snapshotData
		if err := json.Unmarshal(buf.Bytes(), &d); err != nil {
			t.Fatalf("%v: %s", err, buf.Bytes())
		}
		var out []string
		for _, s := range d.Services {
			for _, i := range s.Instances {
				out = append(out, fmt.Sprintf("%s/%s:%d", s.Key.Service, i.ID, int(i.Weight)))
			}
		}
		for _, c := range d.Configs {
			out = append(out, c.Key.DataID+"="+string(c.Content))
		}
		return fmt.Sprint(out), d
	}
	if got, d := state(fr); got != "[a/i1:1 a/i2:1 b/j1:1 x=1]" || d.Applied != 4 {
		t.Errorf("frozen at 4: %s at %d", got, d.Applied)
	}
	if got, d := state(f.freeze()); got != "[a/i1:9 b/j2:1 c/k1:1 x=2]" || d.Applied != int64(index) {
		t.Errorf("live: %s at %d", got, d.Applied)
	}
	// And a snapshot restores what it froze.
	var buf bytes.Buffer
	if err := fr.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	g := newFSM(100)
	if err := g.Restore(nopCloser{&buf}); err != nil {
		t.Fatal(err)
	}
	if got := slices.Collect(func(yield func(string) bool) {
		for _, i := range g.instances(svc("a")) {
			yield(fmt.Sprintf("%s:%d", i.ID, int(i.Weight)))
		}
	}); fmt.Sprint(got) != "[i1:1 i2:1]" {
		t.Errorf("restored: %v", got)
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

// The entries kept from checkLog are served for raft's reads at start,
// never one the log has overwritten or deleted since: those come from the
// log itself.
func TestStartLogsServeOnlyWhatTheLogHolds(t *testing.T) {
	mem := raft.NewInmemStore()
	for i := uint64(1); i <= 10; i++ {
		if err := mem.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte(fmt.Sprint("v1-", i))}); err != nil {
			t.Fatal(err)
		}
	}
	l := &startLogs{LogStore: mem}
	if err := checkLog(l, raft.NewInmemSnapshotStore()); err != nil {
		t.Fatal(err)
	}
	if len(l.kept) != 10 {
		t.Fatalf("kept %d entries, want the 10 after the (absent) snapshot", len(l.kept))
	}
	// A leader of a later term overwrites 8.. (a follower's log after a
	// conflict), and 1..2 are compacted away.
	if err := l.StoreLogs([]*raft.Log{{Index: 8, Term: 2, Data: []byte("v2-8")}, {Index: 9, Term: 2, Data: []byte("v2-9")}}); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteRange(1, 2); err != nil {
		t.Fatal(err)
	}
	var e raft.Log
	for i, want := range map[uint64]string{3: "v1-3", 7: "v1-7", 8: "v2-8", 9: "v2-9"} {
		if err := l.GetLog(i, &e); err != nil || string(e.Data) != want {
			t.Errorf("entry %d: %q %v, want %q", i, e.Data, err, want)
		}
	}
	if err := l.GetLog(2, &e); err == nil {
		t.Errorf("entry 2, deleted: %q", e.Data)
	}
	// Once dropped, everything is read from the log: an entry changed
	// underneath (as only a test can) shows it.
	_ = mem.StoreLog(&raft.Log{Index: 5, Term: 1, Data: []byte("changed")})
	_ = l.GetLog(5, &e)
	if string(e.Data) != "v1-5" {
		t.Errorf("entry 5 while kept: %q", e.Data)
	}
	l.drop()
	_ = l.GetLog(5, &e)
	if string(e.Data) != "changed" {
		t.Errorf("entry 5 after drop: %q", e.Data)
	}
}

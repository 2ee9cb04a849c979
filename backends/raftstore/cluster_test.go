package raftstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/model"
)

// node is one member of a cluster run in this process on raft's in-memory
// transport, which the test cuts and heals.
type node struct {
	id, raftAddr string
	tr           *raft.InmemTransport
	s            *raftstore.Store
}

// startInmem starts n nodes as one cluster, without gateways: each store
// serves writes and linearizable reads only while it leads.
func startInmem(t *testing.T, n int) []*node {
	t.Helper()
	peers := map[string]string{}
	var nodes []*node
	for i := range n {
		nd := &node{id: fmt.Sprintf("127.0.0.1:%d", i+1), raftAddr: fmt.Sprintf("127.0.0.1:%d", 101+i)}
		_, nd.tr = raft.NewInmemTransport(raft.ServerAddress(nd.raftAddr))
		peers[nd.id] = nd.raftAddr
		nodes = append(nodes, nd)
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.tr.Connect(raft.ServerAddress(b.raftAddr), b.tr)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, nd := range nodes {
		cfg := raftstore.DefaultConfig(t.TempDir())
		cfg.History = 256
		cfg.NodeID, cfg.RaftAddr, cfg.Peers = nd.id, nd.raftAddr, peers
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			nd.s, errs[i] = raftstore.Open(ctx, raftstore.WithTransport(cfg, nd.tr))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.s.Close()
		}
	})
	return nodes
}

// cut isolates nd from every other node, in both directions.
func cut(nodes []*node, nd *node) {
	for _, o := range nodes {
		if o != nd {
			nd.tr.Disconnect(raft.ServerAddress(o.raftAddr))
			o.tr.Disconnect(raft.ServerAddress(nd.raftAddr))
		}
	}
}

// heal connects nd to every other node again.
func heal(nodes []*node, nd *node) {
	for _, o := range nodes {
		if o != nd {
			nd.tr.Connect(raft.ServerAddress(o.raftAddr), o.tr)
			o.tr.Connect(raft.ServerAddress(nd.raftAddr), nd.tr)
		}
	}
}

// leaderOf waits until one of nodes leads and can serve, and returns it.
func leaderOf(t *testing.T, nodes ...*node) *node {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, _, err := nd.s.Services(ctx, "leader-probe", "", model.ServiceKey{}, 1, backends.ReadOptions{})
			cancel()
			if err == nil {
				if st, _ := nd.s.Status(context.Background()); st.Leader == nd.id {
					return nd
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 10s")
	return nil
}

func ids(insts []model.Instance) string {
	var out []string
	for _, i := range insts {
		out = append(out, i.ID)
	}
	return strings.Join(out, ",")
}

// A leader cut off from the others can neither commit writes nor answer
// linearizable reads; the majority elects a new leader and goes on; a
// session kept alive through any node survives the change of leader, and
// one that is not expires through the new leader. After the cut heals,
// the old leader has the majority's writes and not its own uncommitted one.
func TestMinorityPartition(t *testing.T) {
	nodes := startInmem(t, 3)
	old := leaderOf(t, nodes...)
	var majority []*node
	for _, nd := range nodes {
		if nd != old {
			majority = append(majority, nd)
		}
	}
	ctx := context.Background()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders"}
	register := func(nd *node, id, session string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := nd.s.Register(ctx, svc, model.Instance{ID: id, IP: "10.0.0.1", Port: 80, Weight: 1, Healthy: true, Enabled: true,
			Ephemeral: session != "", Session: session})
		return err
	}
	kept, _, err := old.s.CreateSession(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dropped, _, err := old.s.CreateSession(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for id, sess := range map[string]string{"kept": kept.ID, "dropped": dropped.ID, "before": ""} {
		if err := register(old, id, sess, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// A client keeps its session alive through whichever node answers.
	stopKeepAlive := make(chan struct{})
	var kaWG sync.WaitGroup
	kaWG.Go(func() {
		for {
			for _, nd := range nodes {
				ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				_, _ = nd.s.KeepAlive(ctx, kept.ID)
				cancel()
			}
			select {
			case <-stopKeepAlive:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
	defer func() {
		select {
		case <-stopKeepAlive:
		default:
			close(stopKeepAlive)
		}
		kaWG.Wait()
	}()

	cut(nodes, old)
	cutAt := time.Now()

	// The minority: no write commits, no linearizable read, stale reads
	// answered and labelled stale.
	if err := register(old, "lost", "", 3*time.Second); !errors.Is(err, model.ErrUnavailable) {
		t.Fatalf("a write on the cut-off leader: %v, want UNAVAILABLE", err)
	}
	if _, _, err := old.s.Instances(ctx, svc, backends.ReadOptions{}); !errors.Is(err, model.ErrUnavailable) {
		t.Fatalf("a linearizable read on the cut-off leader: %v, want UNAVAILABLE", err)
	}
	stale, info, err := old.s.Instances(ctx, svc, backends.ReadOptions{Stale: true})
	if err != nil || info.Consistency != model.Stale {
		t.Fatalf("a stale read on the cut-off node: %v %+v", err, info)
	}
	t.Logf("cut-off leader: write and linearizable read refused, stale read answered (%s)", ids(stale))

	// The majority: a new leader serves writes.
	leader := leaderOf(t, majority...)
	elected := time.Since(cutAt)
	if err := register(leader, "after", "", 5*time.Second); err != nil {
		t.Fatalf("a write on the majority's leader: %v", err)
	}
	t.Logf("majority elected %s %v after the cut", leader.id, elected.Round(time.Millisecond))

	// Sessions: the kept one survives two TTLs under the new leader; the
	// dropped one expires, through the log.
	deadline := time.Now().Add(4 * time.Second)
	for {
		insts, _, err := leader.s.Instances(ctx, svc, backends.ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := ids(insts)
		if !strings.Contains(got, "kept") {
			t.Fatalf("the kept-alive session's instance is gone after the leader change: %s", got)
		}
		if !strings.Contains(got, "dropped") && time.Now().After(deadline) {
			if got != "after,before,kept" {
				t.Fatalf("majority sees %s, want after,before,kept", got)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Healed: the old leader catches up and the uncommitted write is gone.
	heal(nodes, old)
	want, _, err := leader.s.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; {
		got, _, err := old.s.Instances(ctx, svc, backends.ReadOptions{Stale: true})
		if err == nil && ids(got) == ids(want) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("old leader after healing: %s (%v), want %s", ids(got), err, ids(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("healed: the old leader converged on %s", ids(want))

	// A follower cut off: it refuses writes and linearizable reads, the
	// rest keep going.
	var follower *node
	for _, nd := range majority {
		if nd != leader {
			follower = nd
		}
	}
	cut(nodes, follower)
	if err := register(follower, "lost-2", "", 3*time.Second); !errors.Is(err, model.ErrUnavailable) {
		t.Fatalf("a write on a cut-off follower: %v, want UNAVAILABLE", err)
	}
	if _, _, err := follower.s.Instances(ctx, svc, backends.ReadOptions{}); !errors.Is(err, model.ErrUnavailable) {
		t.Fatalf("a linearizable read on a cut-off follower: %v, want UNAVAILABLE", err)
	}
	// Its stale reads say how long it has not heard from the leader.
	time.Sleep(1500 * time.Millisecond)
	if _, info, err := follower.s.Instances(ctx, svc, backends.ReadOptions{Stale: true}); err != nil ||
		info.Consistency != model.Stale || info.Staleness < 1500*time.Millisecond {
		t.Fatalf("a stale read on a follower cut off for 1.5s: %+v %v, want a staleness of at least 1.5s", info, err)
	} else {
		t.Logf("stale read on the cut-off follower: last heard from the leader %v ago", info.Staleness.Round(time.Millisecond))
	}
	rest := leaderOf(t, old, leader)
	if err := register(rest, "after-2", "", 5*time.Second); err != nil {
		t.Fatalf("a write on the majority without the follower: %v", err)
	}
}

// Cluster options are read from the URL, and bad ones are named.
func TestClusterOptions(t *testing.T) {
	u, _ := url.Parse("raft:///data?raft-addr=127.0.0.1:7490&node-id=127.0.0.1:7480&join=10.0.0.1:7480&heartbeat-timeout=1s&election-timeout=2s&trailing-logs=100")
	cfg, err := raftstore.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Join != "10.0.0.1:7480" || cfg.HeartbeatTimeout != time.Second || cfg.ElectionTimeout != 2*time.Second || cfg.TrailingLogs != 100 {
		t.Errorf("parsed %+v", cfg)
	}
	for raw, field := range map[string]string{
		"raft:///d?heartbeat-timeout=soon":                                  "heartbeat-timeout",
		"raft:///d?heartbeat-timeout=1s&election-timeout=500ms":             "election-timeout",
		"raft:///d?join=10.0.0.1:7480":                                      "node-id",
		"raft:///d?node-id=a:1&raft-addr=b:2&join=nowhere":                  "join",
		"raft:///d?node-id=a:1&raft-addr=b:2&join=c:3&peers=a:1=b:2":        "join",
		"raft:///d?trailing-logs=-1":                                        "trailing-logs",
		"raft:///d?node-id=0.0.0.0:7480&raft-addr=10.0.0.1:7490&join=c:3":   "node-id",
		"raft:///d?node-id=:7480&raft-addr=10.0.0.1:7490&join=c:3":          "node-id",
		"raft:///d?election-timeout=2s&heartbeat-timeout=2s&elections=fast": "elections",
	} {
		u, _ := url.Parse(raw)
		_, err := raftstore.ConfigFromURL(u)
		var fe *model.FieldError
		if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, model.ErrInvalidArgument) {
			t.Errorf("%s: %v, want an invalid %s", raw, err, field)
		}
	}
	// A single node lists itself and refuses to add members.
	s := open(t, t.TempDir())
	defer s.Close()
	ms, leader, err := s.Members(context.Background())
	if err != nil || len(ms) != 1 || !ms[0].Leader || leader != ms[0].ID {
		t.Fatalf("members of a single node: %+v %q %v", ms, leader, err)
	}
	if err := s.AddMember(context.Background(), "127.0.0.1:7481", "127.0.0.1:7491"); !errors.Is(err, model.ErrInvalidArgument) {
		t.Errorf("adding a member to a node running alone: %v", err)
	}
}

// A follower's store does not forward: writes, linearizable reads,
// keepalives and membership changes fail as UNAVAILABLE naming the leader,
// which Leader reports, so that the gateway above forwards them; stale
// reads are served, and WaitApplied returns once the follower has applied
// the leader's writes.
func TestFollowerNamesTheLeader(t *testing.T) {
	nodes := startInmem(t, 3)
	leader := leaderOf(t, nodes...)
	if id, self := leader.s.Leader(); id != leader.id || !self {
		t.Fatalf("the leader's Leader() = %q, %v", id, self)
	}
	var follower *node
	for _, nd := range nodes {
		if nd != leader {
			follower = nd
		}
	}
	// A follower learns the leader from its first heartbeat.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		id, self := follower.s.Leader()
		if id == leader.id && !self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a follower's Leader() = %q, %v, want %q, false", id, self, leader.id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc := model.ServiceKey{Namespace: "public", Group: "DEFAULT_GROUP", Service: "orders"}
	inst := model.Instance{ID: "a", IP: "10.0.0.1", Port: 80, Weight: 1, Healthy: true, Enabled: true}
	rev, err := leader.s.Register(ctx, svc, inst)
	if err != nil {
		t.Fatal(err)
	}
	sess, _, err := leader.s.CreateSession(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]error{}
	_, refused["Register"] = follower.s.Register(ctx, svc, inst)
	_, refused["PatchInstance"] = follower.s.PatchInstance(ctx, svc, "a", model.InstancePatch{Weight: new(100.0)})
	_, refused["Deregister"] = follower.s.Deregister(ctx, svc, "a")
	_, _, refused["CreateSession"] = follower.s.CreateSession(ctx, time.Second)
	_, refused["KeepAlive"] = follower.s.KeepAlive(ctx, sess.ID)
	_, refused["CloseSession"] = follower.s.CloseSession(ctx, sess.ID)
	_, refused["PutConfig"] = follower.s.PutConfig(ctx, model.Config{Key: model.ConfigKey{Namespace: "public", Group: "g", DataID: "d"}, Content: []byte("x")}, model.Precondition{})
	_, refused["DeleteConfig"] = follower.s.DeleteConfig(ctx, model.ConfigKey{Namespace: "public", Group: "g", DataID: "d"}, model.Precondition{})
	_, _, refused["Instances"] = follower.s.Instances(ctx, svc, backends.ReadOptions{})
	_, _, refused["ListConfigs"] = follower.s.ListConfigs(ctx, "public", "", backends.ReadOptions{})
	refused["AddMember"] = follower.s.AddMember(ctx, "127.0.0.1:9", "127.0.0.1:10")
	refused["RemoveMember"] = follower.s.RemoveMember(ctx, leader.id)
	for call, err := range refused {
		if !errors.Is(err, model.ErrUnavailable) || !strings.Contains(fmt.Sprint(err), leader.id) {
			t.Errorf("%s on a follower: %v, want UNAVAILABLE naming the leader %s", call, err, leader.id)
		}
	}
	if err := follower.s.WaitApplied(ctx, rev); err != nil {
		t.Fatalf("WaitApplied(%d) on a follower: %v", rev, err)
	}
	got, info, err := follower.s.Instances(ctx, svc, backends.ReadOptions{Stale: true})
	if err != nil || ids(got) != "a" || info.Revision < rev {
		t.Fatalf("a stale read on the follower after WaitApplied(%d): %s %+v %v", rev, ids(got), info, err)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := follower.s.WaitApplied(short, rev+1000); !errors.Is(err, model.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied for a revision never written: %v, want UNAVAILABLE after the deadline", err)
	}
}

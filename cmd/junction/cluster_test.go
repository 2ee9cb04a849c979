package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
	"github.com/junctionhq/junction/sdk"
)

// cluster is three `junction server` processes forming one built-in store.
type cluster struct {
	t     *testing.T
	addrs []string // API addresses, which are also the node ids
	args  [][]string
	nodes []*server
}

// startCluster starts three nodes; query holds extra raft:// options.
func startCluster(t *testing.T, query string) *cluster {
	c := &cluster{t: t}
	var raftAddrs, peers []string
	for range 3 {
		c.addrs = append(c.addrs, freeAddr(t))
		raftAddrs = append(raftAddrs, freeAddr(t))
	}
	for i := range 3 {
		peers = append(peers, c.addrs[i]+"="+raftAddrs[i])
	}
	base := t.TempDir()
	for i := range 3 {
		c.args = append(c.args, []string{"--backend", "raft://" + filepath.Join(base, "n"+strconv.Itoa(i)) + query, "--raft-addr", raftAddrs[i],
			"--peers", strings.Join(peers, ",")})
		c.nodes = append(c.nodes, launchServer(t, c.addrs[i], c.args[i]...))
	}
	for _, n := range c.nodes {
		n.waitReady(t)
	}
	return c
}

// restart starts node i again with its data.
func (c *cluster) restart(i int) {
	c.nodes[i] = launchServer(c.t, c.addrs[i], c.args[i]...)
	c.nodes[i].waitReady(c.t)
}

// leader returns the index of the node the cluster reports as leader,
// asking node via until it names one (an election may be under way).
func (c *cluster) leader(via int) int {
	c.t.Helper()
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if i, ok := c.leaderOf(via); ok {
			return i
		}
		if time.Since(start) > 10*time.Second {
			c.t.Fatalf("no leader in the status of node %d within 10s", via)
		}
	}
}

// leaderOf is the node that node via reports as leader, asked once.
func (c *cluster) leaderOf(via int) (int, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := statusOf(ctx, c.addrs[via])
	if err != nil {
		return -1, false
	}
	i := slices.Index(c.addrs, st.Leader)
	return i, i >= 0
}

func runCLI(t *testing.T, addr string, args ...string) (string, error) {
	out, err := exec.Command(binary(t), append([]string{"--addr", addr}, args...)...).CombinedOutput()
	return string(out), err
}

// Three processes: writes and linearizable reads through any node, the
// leader killed with SIGKILL and replaced, random nodes killed round after
// round with every acknowledged write read back from every node, and a
// restarted node catching up. JUNCTION_CLUSTER_ROUNDS sets the rounds
// (default 5 here; the closing note reports 20).
func TestClusterFailover(t *testing.T) {
	c := startCluster(t, "")
	acked := map[string]string{}
	write := func(via int, key, value string) error {
		code, err := put(c.addrs[via], key, value)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("PUT %s via %s: HTTP %d", key, c.addrs[via], code)
		}
		if err == nil {
			acked[key] = value
		}
		return err
	}
	for i := range 3 {
		if err := write(i, "through-"+strconv.Itoa(i), "v"); err != nil {
			t.Fatalf("a write through node %d: %v", i, err)
		}
	}

	// The leader dies: a new one serves writes.
	old := c.leader(0)
	c.nodes[old].kill()
	killed := time.Now()
	survivor := (old + 1) % 3
	for write(survivor, "after-leader-kill", "v") != nil {
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("no write accepted within 15s of killing the leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("leader %s killed: writes accepted again after %v", c.addrs[old], time.Since(killed).Round(time.Millisecond))
	// The members list says which node is down (what the console shows).
	if got := reachability(t, c.addrs[survivor]); got[c.addrs[old]] || !got[c.addrs[survivor]] || !got[c.addrs[3-old-survivor]] || len(got) != 3 {
		t.Errorf("with %s killed, the members' reachability reads %v", c.addrs[old], got)
	}
	c.restart(old)

	rounds := 5
	if v := os.Getenv("JUNCTION_CLUSTER_ROUNDS"); v != "" {
		rounds, _ = strconv.Atoi(v)
	}
	var worst time.Duration
	for r := range rounds {
		victim := rand.IntN(3)
		c.nodes[victim].kill()
		killed := time.Now()
		for k := range 20 {
			via := (victim + 1 + k%2) % 3
			key := fmt.Sprintf("round-%d-%d", r, k)
			for {
				if err := write(via, key, strconv.Itoa(r*100+k)); err == nil {
					break
				}
				if time.Since(killed) > 30*time.Second {
					t.Fatalf("round %d: no write accepted 30s after killing node %d", r, victim)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if k == 0 {
				worst = max(worst, time.Since(killed))
			}
		}
		c.restart(victim)
	}
	t.Logf("%d rounds of killing a random node: the first write after each kill took at most %v", rounds, worst.Round(time.Millisecond))

	// Every acknowledged write is there, read linearizably through every node.
	for i := range 3 {
		for key, want := range acked {
			out, err := runCLI(t, c.addrs[i], "config", "get", key)
			if err != nil || out != want {
				t.Fatalf("node %d: %s = %q (%v), want %q", i, key, out, err, want)
			}
		}
	}
	t.Logf("%d acknowledged writes, all read back through each of the 3 nodes", len(acked))
}

// statusOf is node addr's status (a local read).
func statusOf(ctx context.Context, addr string) (*pb.GetStatusResponse, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return pb.NewStatusServiceClient(conn).GetStatus(ctx, &pb.GetStatusRequest{})
}

// revision is the revision node addr has applied, -1 when it does not answer.
func revision(t *testing.T, addr string) int64 {
	t.Helper()
	st, err := statusOf(context.Background(), addr)
	if err != nil {
		return -1
	}
	return st.Revision
}

// waitRevision waits until node addr has applied rev and returns how long it took.
func waitRevision(t *testing.T, addr string, rev int64) time.Duration {
	t.Helper()
	start := time.Now()
	for revision(t, addr) < rev {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%s at revision %d, not %d, after 60s", addr, revision(t, addr), rev)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// checkKeys reads every key from node addr's own replica (stale reads).
func checkKeys(t *testing.T, addr string, keys map[string]string) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := pb.NewConfigServiceClient(conn)
	for k, want := range keys {
		r, err := cfg.GetConfig(context.Background(), &pb.GetConfigRequest{Namespace: "public", Group: "DEFAULT_GROUP", DataId: k, Stale: true})
		if err != nil || string(r.Config.Content) != want {
			t.Fatalf("%s: %s = %.80q (%v), want %.80q", addr, k, r.GetConfig().GetContent(), err, want)
		}
	}
}

// reachability is what node addr's members list says of each member:
// whether it could connect to it.
func reachability(t *testing.T, addr string) map[string]bool {
	t.Helper()
	out, err := runCLI(t, addr, "members", "list", "-o", "json")
	if err != nil {
		t.Fatalf("members list: %v\n%s", err, out)
	}
	var resp struct {
		Members []struct {
			ID        string
			Reachable bool
		}
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got := map[string]bool{}
	for _, m := range resp.Members {
		got[m.ID] = m.Reachable
	}
	return got
}

// members lists the members node addr knows, as "id=raft-addr" sorted.
func members(t *testing.T, addr string) []string {
	t.Helper()
	out, err := runCLI(t, addr, "members", "list", "-o", "json")
	if err != nil {
		t.Fatalf("members list: %v\n%s", err, out)
	}
	var resp struct {
		Members []struct {
			ID, RaftAddress string
			Voter           bool
		}
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var ms []string
	for _, m := range resp.Members {
		if !m.Voter {
			t.Fatalf("%s is not a voter", m.ID)
		}
		ms = append(ms, m.ID+"="+m.RaftAddress)
	}
	slices.Sort(ms)
	return ms
}

// A node killed while thousands of writes go on catches up when it comes
// back, from a snapshot (the leader keeps only 256 entries past its
// snapshots); a new node joins through a follower with --join and catches
// up the same way; members are listed, removed, and bad requests refused.
func TestClusterCatchUpAndMembership(t *testing.T) {
	c := startCluster(t, "?snapshot-threshold=1024&trailing-logs=256")
	lead := c.leader(0)
	lag, via := (lead+1)%3, (lead+2)%3
	c.nodes[lag].kill()

	const n, workers = 5000, 16
	keys := map[string]string{}
	for i := range n {
		keys[fmt.Sprintf("catch-up-%05d", i)] = strconv.Itoa(i)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fails []error
		next  = make(chan string)
	)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for k := range next {
				code, err := put(c.addrs[via], k, keys[k])
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("PUT %s: HTTP %d", k, code)
				}
				if err != nil {
					mu.Lock()
					fails = append(fails, err)
					mu.Unlock()
				}
			}
		})
	}
	for k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d writes failed, first: %v", len(fails), fails[0])
	}
	t.Logf("%d writes through a follower with node %s down: %v", n, c.addrs[lag], time.Since(start).Round(time.Millisecond))
	rev := revision(t, c.addrs[lead])

	restarted := time.Now()
	c.restart(lag)
	took := waitRevision(t, c.addrs[lag], rev)
	t.Logf("restarted node caught up to revision %d %v after its start (%v after it was ready)",
		rev, time.Since(restarted).Round(time.Millisecond), took.Round(time.Millisecond))
	checkKeys(t, c.addrs[lag], keys)

	// A fourth node joins through a follower.
	addr, raftAddr := freeAddr(t), freeAddr(t)
	joined := launchServer(t, addr, "--data-dir", filepath.Join(t.TempDir(), "n3"), "--raft-addr", raftAddr, "--join", c.addrs[via])
	joined.waitReady(t)
	want := []string{addr + "=" + raftAddr}
	for i := range 3 {
		want = append(want, c.addrs[i]+"="+c.args[i][3]) // args: --backend URL --raft-addr ADDR
	}
	slices.Sort(want)
	waitRevision(t, addr, rev)
	checkKeys(t, addr, map[string]string{"catch-up-00000": "0", "catch-up-04999": "4999"})
	if got := members(t, addr); !slices.Equal(got, want) || len(got) != 4 {
		t.Fatalf("members seen by the new node: %v, want %v", got, want)
	}
	if code, err := put(addr, "through-the-new-node", "v"); err != nil || code != http.StatusOK {
		t.Fatalf("a write through the joined node: %d %v", code, err)
	}

	// Removed again through another follower.
	if out, err := runCLI(t, c.addrs[lag], "members", "remove", addr); err != nil {
		t.Fatalf("members remove: %v\n%s", err, out)
	}
	joined.kill()
	if got := members(t, c.addrs[lead]); len(got) != 3 || slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, addr) }) {
		t.Fatalf("members after removing %s: %v", addr, got)
	}
	if code, err := put(c.addrs[lag], "after-remove", "v"); err != nil || code != http.StatusOK {
		t.Fatalf("a write after the removal: %d %v", code, err)
	}

	// The leader removed: the other two go on, the removed node says why
	// it refuses.
	if out, err := runCLI(t, c.addrs[via], "members", "remove", c.addrs[lead]); err != nil {
		t.Fatalf("members remove the leader: %v\n%s", err, out)
	}
	removedAt := time.Now()
	for {
		code, err := put(c.addrs[lag], "after-leader-removed", "v")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Since(removedAt) > 15*time.Second {
			t.Fatalf("no write accepted 15s after removing the leader: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("leader removed: the remaining two accept writes after %v", time.Since(removedAt).Round(time.Millisecond))
	if got := members(t, c.addrs[lag]); len(got) != 2 {
		t.Fatalf("members after removing the leader: %v", got)
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodPut, "http://"+c.addrs[lead]+"/v1/namespaces/public/groups/DEFAULT_GROUP/configs/on-removed-node",
			strings.NewReader("v"))
		resp, err := http.DefaultClient.Do(req)
		var out []byte
		if err == nil {
			out, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(out), "no longer a member") {
				break
			}
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("a write on the removed node: %v %q, want it refused as no longer a member", err, out)
		}
	}

	// Bad requests name what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"members", "remove", "127.0.0.1:1"}, "not found"},
		{[]string{"members", "add", "no-port", "127.0.0.1:1"}, "API address HOST:PORT"},
		{[]string{"members", "add", "127.0.0.1:1", c.args[lag][3]}, "is the Raft address of member"},
	} {
		out, err := runCLI(t, c.addrs[via], tc.args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: %v %q, want an error with %q", tc.args, err, out, tc.want)
		}
	}
}

// An SDK client given every node's address keeps its ephemeral instance
// registered while the leader, and then the node it is connected to, are
// killed: its keepalives fail over to another node, the new leader grants
// the session a fresh TTL, and no linearizable read in between misses it.
func TestSDKSessionAcrossLeaderChanges(t *testing.T) {
	c := startCluster(t, "")
	ctx := context.Background()
	quiet := sdk.WithLogger(slog.New(slog.DiscardHandler))
	client, err := sdk.New(ctx, sdk.WithAddrs(c.addrs...), sdk.WithSessionTTL(3*time.Second), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Register(ctx, "payments", model.Instance{IP: "10.1.0.1", Port: 9000}); err != nil {
		t.Fatal(err)
	}
	observer, err := sdk.New(ctx, sdk.WithAddrs(c.addrs...), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()

	var (
		reads, gaps atomic.Int64
		stop        = make(chan struct{})
		wg          sync.WaitGroup
	)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			insts, _, err := observer.Instances(rctx, "payments")
			cancel()
			if err != nil {
				continue // no leader for a moment: refused, not wrong
			}
			reads.Add(1)
			if len(insts) != 1 {
				gaps.Add(1)
			}
		}
	})

	lead := c.leader(0)
	c.nodes[lead].kill()
	time.Sleep(4 * time.Second) // longer than the TTL
	c.restart(lead)
	second := 0 // pick_first: the client talks to the first address it reaches
	if second == lead {
		second = 1
	}
	c.nodes[second].kill()
	time.Sleep(4 * time.Second)
	c.restart(second)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if gaps.Load() > 0 || reads.Load() < 50 {
		t.Fatalf("%d of %d linearizable reads missed the instance", gaps.Load(), reads.Load())
	}
	t.Logf("leader %s and node %s killed in turn: the instance was in all %d linearizable reads", c.addrs[lead], c.addrs[second], reads.Load())
}

package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cluster is three `junction server` processes forming one built-in store.
type cluster struct {
	t     *testing.T
	addrs []string // API addresses, which are also the node ids
	args  [][]string
	nodes []*server
}

func startCluster(t *testing.T) *cluster {
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
		c.args = append(c.args, []string{"--data-dir", filepath.Join(base, "n"+strconv.Itoa(i)), "--raft-addr", raftAddrs[i],
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

// leader returns the index of the node the cluster reports as leader.
func (c *cluster) leader(via int) int {
	out, err := runCLI(c.t, c.addrs[via], "status", "-o", "json")
	for i, a := range c.addrs {
		if err == nil && strings.Contains(out, `"leader": "`+a+`"`) {
			return i
		}
	}
	c.t.Fatalf("no leader in status: %v %s", err, out)
	return -1
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
	c := startCluster(t)
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

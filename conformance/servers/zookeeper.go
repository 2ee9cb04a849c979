package servers

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ZooKeeperJar is where Debian's zookeeper package installs the server.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// ZK is a ZooKeeper server running as a child process.
type ZK struct {
	Addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// ZooKeeper starts a standalone ZooKeeper on a free loopback port with a
// temporary data directory and returns it; it is killed when the test ends.
func ZooKeeper(t testing.TB) *ZK {
	t.Helper()
	java, err := exec.LookPath("java")
	if err != nil {
		unavailable(t, "zookeeper", "no java on PATH")
	}
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		unavailable(t, "zookeeper", "%s not found (apt-get install zookeeper)", ZooKeeperJar)
	}
	dir := t.TempDir()
	port := FreePort(t)
	cfg := filepath.Join(dir, "zoo.cfg")
	conf := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	z := &ZK{Addr: fmt.Sprintf("127.0.0.1:%d", port), log: &bytes.Buffer{}}
	z.cmd = exec.Command(java, "-Xmx256m", "-Dzookeeper.log.dir="+dir, "-Dzookeeper.root.logger=WARN,CONSOLE",
		"-cp", "/etc/zookeeper/conf:"+ZooKeeperJar, "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg)
	z.cmd.Stdout, z.cmd.Stderr = z.log, z.log
	if err := z.cmd.Start(); err != nil {
		unavailable(t, "zookeeper", "start: %v", err)
	}
	t.Cleanup(z.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if z.ruok() {
			return z
		}
		time.Sleep(50 * time.Millisecond)
	}
	z.Kill()
	unavailable(t, "zookeeper", "not serving on %s within 30s:\n%s", z.Addr, z.log)
	return nil
}

func (z *ZK) ruok() bool {
	c, err := net.DialTimeout("tcp", z.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ruok")); err != nil {
		return false
	}
	b := make([]byte, 4)
	n, _ := c.Read(b)
	return string(b[:n]) == "imok"
}

// Kill stops the server with SIGKILL.
func (z *ZK) Kill() {
	if z.cmd.Process != nil && z.cmd.ProcessState == nil {
		_ = z.cmd.Process.Signal(syscall.SIGKILL)
		_ = z.cmd.Wait()
	}
}

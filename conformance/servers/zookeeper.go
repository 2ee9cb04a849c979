package servers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ZooKeeperJar is where Debian's zookeeper package installs the server.
const ZooKeeperJar = "/usr/share/java/zookeeper.jar"

// ZK is a ZooKeeper server running as a child process. It can be killed,
// restarted on the same port and data, and paused, for fault injection.
type ZK struct {
	Addr string
	dir  string
	cfg  string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *bytes.Buffer
}

// Output returns what the server printed since it was last started; call it
// after Kill.
func (z *ZK) Output() string {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.log == nil {
		return ""
	}
	return z.log.String()
}

// StartZooKeeper starts a standalone ZooKeeper on a free loopback port with
// its data in dir.
func StartZooKeeper(dir string) (*ZK, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return nil, errors.New("no java on PATH")
	}
	if _, err := os.Stat(ZooKeeperJar); err != nil {
		return nil, fmt.Errorf("%s not found (apt-get install zookeeper)", ZooKeeperJar)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	z := &ZK{Addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, cfg: filepath.Join(dir, "zoo.cfg")}
	conf := fmt.Sprintf("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=*\nmaxClientCnxns=0\n", filepath.Join(dir, "data"), port)
	if err := os.WriteFile(z.cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return z, z.Start()
}

// Start starts the server (again) and waits until it serves.
func (z *ZK) Start() error {
	z.mu.Lock()
	z.log = &bytes.Buffer{}
	z.cmd = exec.Command("java", "-Xmx256m", "-Dzookeeper.log.dir="+z.dir, "-Dzookeeper.root.logger=WARN,CONSOLE",
		"-cp", "/etc/zookeeper/conf:"+ZooKeeperJar, "org.apache.zookeeper.server.quorum.QuorumPeerMain", z.cfg)
	z.cmd.Stdout, z.cmd.Stderr = z.log, z.log
	err := z.cmd.Start()
	z.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start zookeeper: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if z.serving() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	z.Kill()
	return fmt.Errorf("zookeeper not serving on %s within 30s:\n%s", z.Addr, z.log)
}

// serving reports whether the server answers requests. "ruok" answers as
// soon as the port is open, while the server may still drop or stall new
// sessions; "srvr" names the server's mode only once it serves.
func (z *ZK) serving() bool {
	c, err := net.DialTimeout("tcp", z.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	b, _ := io.ReadAll(c)
	return bytes.Contains(b, []byte("Mode: "))
}

// Kill stops the server with SIGKILL.
func (z *ZK) Kill() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd != nil && z.cmd.Process != nil && z.cmd.ProcessState == nil {
		_ = z.cmd.Process.Signal(syscall.SIGCONT)
		_ = z.cmd.Process.Signal(syscall.SIGKILL)
		_ = z.cmd.Wait()
	}
}

// Pause freezes the server (SIGSTOP); Resume thaws it.
func (z *ZK) Pause() error { return z.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (z *ZK) Resume() error { return z.signal(syscall.SIGCONT) }

func (z *ZK) signal(s syscall.Signal) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil || z.cmd.Process == nil || z.cmd.ProcessState != nil {
		return errors.New("zookeeper is not running")
	}
	return z.cmd.Process.Signal(s)
}

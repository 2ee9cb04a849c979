package servers

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// PolarisVersion is the Polaris release the nacos:// tests run against;
// .ci/polaris builds it from the Go module proxy. Polaris is an independent
// Go server that speaks the Nacos 1.x HTTP and 2.x gRPC protocols: what it
// measures is labelled "Nacos protocol served by Polaris", never "Nacos".
const PolarisVersion = "v1.18.1"

// NacosHTTPPort and NacosGRPCPort are where Polaris serves the Nacos
// protocols. They are fixed (gRPC is the HTTP port + 1000, as Nacos
// clients assume), which is why Polaris runs in a private network
// namespace: see InPrivateNetwork.
const (
	NacosHTTPPort = 8848
	NacosGRPCPort = 9848
)

// PrivateNetnsEnv marks a process already moved into a network namespace
// of its own (by servertest.InPrivateNetwork, or `make guarantees`).
const PrivateNetnsEnv = "JUNCTION_PRIVATE_NETNS"

// PolarisBinary finds the polaris-server binary and the configuration tree
// it ships: $JUNCTION_POLARIS (the binary, with conf/ beside it), or the
// cache that .ci/polaris fills.
func PolarisBinary() (bin, conf string, err error) {
	if p := os.Getenv("JUNCTION_POLARIS"); p != "" {
		return p, filepath.Join(filepath.Dir(p), "conf"), nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "junction", "bin", "polaris-server-"+PolarisVersion)
	conf = filepath.Join(dir, "junction", "polaris-"+PolarisVersion, "conf")
	if _, err := os.Stat(bin); err != nil {
		return "", "", errors.New("no polaris-server binary (run bash .ci/polaris, or set JUNCTION_POLARIS)")
	}
	return bin, conf, nil
}

// Polaris is a Polaris server running as a child process, serving the
// Nacos protocols on 127.0.0.1:8848 (HTTP) and :9848 (gRPC).
type Polaris struct {
	// Addr is the Nacos HTTP address; the gRPC port is its port + 1000.
	Addr string

	bin, dir string
	mu       sync.Mutex
	cmd      *exec.Cmd
	log      *bytes.Buffer
}

// StartPolaris starts Polaris with its configuration and data in dir and
// waits until both Nacos ports accept connections. It must run in a
// private network namespace (InPrivateNetwork): the ports are fixed.
func StartPolaris(dir string) (*Polaris, error) {
	if os.Getenv(PrivateNetnsEnv) != "1" {
		return nil, errors.New("Polaris listens on fixed ports and on UDP on every interface, so it runs only in a private network namespace: tests call servertest.InPrivateNetwork, `make guarantees` runs the runner under unshare --net (as root)")
	}
	bin, conf, err := PolarisBinary()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(conf, "polaris-server.yaml"))
	if err != nil {
		return nil, fmt.Errorf("polaris configuration: %w", err)
	}
	if err := os.CopyFS(filepath.Join(dir, "conf"), os.DirFS(conf)); err != nil {
		return nil, fmt.Errorf("copy polaris configuration: %w", err)
	}
	// Loopback only, a known self address, the store in dir.
	y := strings.ReplaceAll(string(raw), `listenIP: "0.0.0.0"`, `listenIP: "127.0.0.1"`)
	y = strings.Replace(y, "# self_address: 127.0.0.1", "self_address: 127.0.0.1", 1)
	y = regexp.MustCompile(`(?m)^(\s*)path: \./polaris\.bolt`).ReplaceAllString(y, "${1}path: "+filepath.Join(dir, "polaris.bolt"))
	if err := os.WriteFile(filepath.Join(dir, "conf", "polaris-server.yaml"), []byte(y), 0o640); err != nil {
		return nil, err
	}
	p := &Polaris{Addr: fmt.Sprintf("127.0.0.1:%d", NacosHTTPPort), bin: bin, dir: dir}
	return p, p.Start()
}

// Start starts the server (again, with its data) and waits until it serves.
func (p *Polaris) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = &bytes.Buffer{}
	cmd := exec.Command(p.bin, "start", "-c", filepath.Join("conf", "polaris-server.yaml"))
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = groupKilledWithParent()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start polaris: %w", err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range []int{NacosHTTPPort, NacosGRPCPort} {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				p.kill()
				return fmt.Errorf("polaris not serving on port %d within 30s: %v\n%s", port, err, p.log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// Kill stops the server with SIGKILL.
func (p *Polaris) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.kill()
}

func (p *Polaris) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// Pause freezes the server (SIGSTOP); Resume thaws it.
func (p *Polaris) Pause() error { return p.signal(syscall.SIGSTOP) }

// Resume thaws a paused server (SIGCONT).
func (p *Polaris) Resume() error { return p.signal(syscall.SIGCONT) }

func (p *Polaris) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return errors.New("polaris is not running")
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// Log is what the server wrote.
func (p *Polaris) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

package servers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ConsulVersion is the Consul release the tests run against; .ci/consul
// builds it from the Go module proxy.
const ConsulVersion = "v1.22.0"

// ConsulBinary finds the consul binary: $JUNCTION_CONSUL, the cache that
// .ci/consul fills, or consul on PATH.
func ConsulBinary() (string, error) {
	if p := os.Getenv("JUNCTION_CONSUL"); p != "" {
		return p, nil
	}
	if dir, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(dir, "junction", "bin", "consul-"+ConsulVersion)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("no consul binary (run bash .ci/consul, or set JUNCTION_CONSUL)")
}

// Consul is a single-server Consul agent running as a child process on
// free loopback ports: in dev mode (state in memory) or with a data
// directory, so that a restart keeps its state.
type Consul struct {
	// HTTPAddr is the HTTP API's HOST:PORT; DNSAddr the DNS server's.
	HTTPAddr, DNSAddr string
	// Token is the management token of an agent started with ACLs on
	// (StartConsulACL); it is how readiness is asked.
	Token string

	bin  string
	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// StartConsul starts a Consul agent and waits until it has a leader and its
// own node is in the catalog. With dir empty it runs in dev mode (a leader
// in well under a second, nothing kept); otherwise it is a bootstrapped
// single server keeping its data in dir (a leader in about two seconds).
func StartConsul(dir string) (*Consul, error) { return startConsul(dir, "") }

// StartConsulACL starts a dev-mode agent with ACLs on and the default
// policy deny: anonymous requests see and change nothing. management is
// its management token (a UUID).
func StartConsulACL(management string) (*Consul, error) {
	return startConsul("", management)
}

func startConsul(dir, management string) (*Consul, error) {
	bin, err := ConsulBinary()
	if err != nil {
		return nil, err
	}
	var ports [5]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	c := &Consul{HTTPAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), DNSAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]), bin: bin}
	c.args = []string{"agent", "-dev"}
	if dir != "" {
		c.args = []string{"agent", "-server", "-bootstrap-expect", "1", "-data-dir", dir, "-ui=false",
			"-hcl", "performance { raft_multiplier = 1 }"}
	}
	c.args = append(c.args, "-bind", "127.0.0.1", "-client", "127.0.0.1", "-node", "junction-test",
		"-http-port", fmt.Sprint(ports[0]), "-dns-port", fmt.Sprint(ports[1]), "-serf-lan-port", fmt.Sprint(ports[2]),
		"-serf-wan-port", fmt.Sprint(ports[3]), "-server-port", fmt.Sprint(ports[4]),
		"-grpc-port", "-1", "-grpc-tls-port", "-1", "-log-level", "warn")
	if management != "" {
		c.Token = management
		c.args = append(c.args, "-hcl", fmt.Sprintf(`acl { enabled = true default_policy = "deny" enable_token_persistence = true `+
			`tokens { initial_management = %q agent = %q } }`, management, management))
	}
	return c, c.Start()
}

// Start starts the agent (again: dev mode keeps no state) and waits until
// it serves.
func (c *Consul) Start() error {
	c.mu.Lock()
	c.log = &bytes.Buffer{}
	c.cmd = exec.Command(c.bin, c.args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	err := c.cmd.Start()
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("start consul: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c.ready() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Kill()
	return fmt.Errorf("consul not serving on %s within 30s:\n%s", c.HTTPAddr, c.Output())
}

func (c *Consul) ready() bool {
	get := func(path string) string {
		req, _ := http.NewRequest("GET", "http://"+c.HTTPAddr+path, nil)
		if c.Token != "" {
			req.Header.Set("X-Consul-Token", c.Token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return ""
		}
		return string(b)
	}
	leader := get("/v1/status/leader")
	return leader != "" && leader != `""` && strings.Contains(get("/v1/catalog/nodes"), "junction-test")
}

// Kill stops the agent with SIGKILL.
func (c *Consul) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil && c.cmd.Process != nil && c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGCONT)
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

// Output returns what the agent printed since it was last started; call it
// after Kill.
func (c *Consul) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.log == nil {
		return ""
	}
	return c.log.String()
}

// Pause freezes the agent (SIGSTOP).
func (c *Consul) Pause() error { return c.signal(syscall.SIGSTOP) }

// Resume continues a paused agent (SIGCONT).
func (c *Consul) Resume() error { return c.signal(syscall.SIGCONT) }

func (c *Consul) signal(s syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil || c.cmd.ProcessState != nil {
		return errors.New("consul is not running")
	}
	return c.cmd.Process.Signal(s)
}

// Package ports hands out loopback TCP ports to servers that must know
// their port before they listen: a cluster's node ids, a server restarted
// on its address, a child process's configuration. Listening on port 0,
// closing and binding again races with every other socket on the machine;
// these ports come from below the kernel's ephemeral range, where no
// connection's local port is ever assigned, and each is held for the life
// of the process by a lock file, so that concurrent test processes never
// pick the same one.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

var (
	mu   sync.Mutex
	held = map[int]*os.File{} // port → its lock, open until the process exits
)

// Free returns a port on 127.0.0.1 that nothing listens on now and that no
// other process using this package holds. The caller binds it; the port
// stays reserved for this process, across restarts of what listens on it.
func Free() (int, error) {
	// One directory per user: another user's locks could not be opened.
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("junction-ports-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("ports: %w", err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return 0, fmt.Errorf("ports: %s is not a directory", dir)
	}
	low, high := span()
	for range 1000 {
		p := low + rand.IntN(high-low)
		mu.Lock()
		_, mine := held[p]
		mu.Unlock()
		if mine {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			continue
		}
		if !lock(f) {
			f.Close()
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil { // another program's: try another
			f.Close()
			continue
		}
		l.Close()
		mu.Lock()
		held[p] = f
		mu.Unlock()
		return p, nil
	}
	return 0, errors.New("ports: no free port below the ephemeral range")
}

// Addr is Free as a 127.0.0.1:PORT address.
func Addr() (string, error) {
	p, err := Free()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

// span is the range ports are taken from: the 12000 ports below the
// kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range),
// or 20000–32000 where it cannot be read or leaves too little room.
func span() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if l, err := strconv.Atoi(f[0]); err == nil && l >= 13000 {
				return l - 12000, l
			}
		}
	}
	return 20000, 32000
}

// ListenPair listens on two loopback ports, the second offset above the
// first: a Nacos server's HTTP port and its gRPC port (offset 1000),
// where Nacos clients look for it. The ports are the kernel's, taken by
// listening, so no other socket can race for them.
func ListenPair(offset int) (first, second net.Listener, err error) {
	for range 20 {
		if first, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			continue
		}
		second, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first.Addr().(*net.TCPAddr).Port+offset))
		if err == nil {
			return first, second, nil
		}
		first.Close()
	}
	return nil, nil, fmt.Errorf("ports: no pair of free loopback ports PORT and PORT+%d: %w", offset, err)
}

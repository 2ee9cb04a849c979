package ports

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Ports are never handed out twice, by this process or by another one
// while this one holds them, and each can be bound.
func TestFreeIsExclusive(t *testing.T) {
	if os.Getenv("PORTS_CHILD") != "" {
		var out []string
		for range 50 {
			p, err := Free()
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			out = append(out, strconv.Itoa(p))
		}
		fmt.Println(strings.Join(out, " "))
		return
	}
	mine := map[int]bool{}
	for range 200 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if mine[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		mine[p] = true
		if low, high := span(); p < low || p >= high {
			t.Fatalf("port %d outside [%d, %d)", p, low, high)
		}
	}
	for p := range mine {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d cannot be bound: %v", p, err)
		}
		l.Close()
		break
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFreeIsExclusive$")
	cmd.Env = append(os.Environ(), "PORTS_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, f := range strings.Fields(strings.SplitN(string(out), "\n", 2)[0]) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("child printed %q", out)
		}
		if mine[p] {
			t.Fatalf("another process was handed port %d, which this one holds", p)
		}
	}
}

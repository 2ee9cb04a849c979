//go:build !linux

package servers

import "syscall"

// groupKilledWithParent starts a server in a process group of its own (so
// that its children are signalled with it); outside Linux nothing kills it
// when this process dies.
func groupKilledWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

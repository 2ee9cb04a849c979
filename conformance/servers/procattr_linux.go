package servers

import "syscall"

// groupKilledWithParent starts a server in a process group of its own (so
// that its children are signalled with it), killed if this process dies.
func groupKilledWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

//go:build unix

package ports

import (
	"os"
	"syscall"
)

// lock takes f's exclusive lock without waiting.
func lock(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

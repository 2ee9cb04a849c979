//go:build !unix

package ports

import "os"

// lock cannot lock across processes here: within the process, ports are
// still never handed out twice.
func lock(*os.File) bool { return true }

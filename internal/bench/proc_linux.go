//go:build linux

package bench

import "syscall"

// ownGroup starts a child in a process group of its own, with SIGKILL as
// its parent-death signal.
func ownGroup(attr *syscall.SysProcAttr) {
	attr.Setpgid = true
	attr.Pdeathsig = syscall.SIGKILL
}

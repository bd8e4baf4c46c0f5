package master_test

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// threadID is the calling OS thread's id.
func threadID() int {
	id, _, _ := unix.Syscall(unix.SYS_THREAD_SELFID, 0, 0, 0)
	return int(id)
}

// newSession starts a process in a session of its own, out of the
// worker's process group.
func newSession() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

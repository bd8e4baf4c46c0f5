package master_test

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// threadID is the calling OS thread's id.
func threadID() int { return unix.Gettid() }

// newSession starts a process in a session of its own, out of the
// worker's process group.
func newSession() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

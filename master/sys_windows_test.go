package master_test

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// threadID is the calling OS thread's id.
func threadID() int { return int(windows.GetCurrentThreadId()) }

// newSession starts a process in a process group of its own.
func newSession() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

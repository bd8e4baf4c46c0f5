//go:build windows

package bench

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// killPID kills process pid.
func killPID(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	defer p.Release()
	return p.Kill()
}

// killGroup kills process pid (Windows has no process group to kill).
func killGroup(pid int) error { return killPID(pid) }

// ownGroup starts a child in a process group of its own.
func ownGroup(attr *syscall.SysProcAttr) { attr.CreationFlags |= windows.CREATE_NEW_PROCESS_GROUP }

//go:build windows

package master

import (
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// What watching a worker process takes on Windows: its process handle.
// There is no parent-death signal and no lane: a worker learns of its
// master's death from its lease, and its own children are not taken
// along until a Job Object does it (not done yet).

// sysProcAttr starts a worker in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// killGroup kills worker pid.
func killGroup(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
		p.Release()
	}
}

// waitGone blocks until process pid has exited.
func waitGone(pid int) { waitProc(pid, nil) }

// waitExit blocks until process pid has exited and reports true; or
// until abandon, and reports false.
func (p *process) waitExit(pid int) bool {
	defer p.abandonR.Close()
	return waitProc(pid, p)
}

// waitProc waits for process pid to exit, looking every 20 ms whether p
// (if not nil) was abandoned; it reports whether pid exited.
func waitProc(pid int, p *process) bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(pid))
	if err != nil {
		return true // gone already
	}
	defer windows.CloseHandle(h)
	for {
		ev, err := windows.WaitForSingleObject(h, 20)
		if err != nil || ev == windows.WAIT_OBJECT_0 {
			return true
		}
		if p != nil && p.abandoned.Load() {
			return false
		}
	}
}

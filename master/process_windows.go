//go:build windows

package master

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// What a worker process takes on Windows: its process handle, to see it
// exit, and a Job Object of its own, which its children join as they
// start. The job is set to kill its processes when its last handle
// closes, and only the master holds one: when the master dies, for
// whatever reason, Windows kills the worker and everything it started,
// as a process group and the parent-death signal do on Linux. The
// worker also sees its lane end (a dialled one, package lane), and
// exits. Detach and Persist clear that limit: the worker then outlives
// the master.

// procSys is the worker's Job Object.
type procSys struct {
	job windows.Handle // 0 until started
}

// sysProcAttr starts a worker in a process group of its own (for
// console signals; the Job Object is what kills its children).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// started puts the worker process pid, just started, in a Job Object of
// its own that kills it, and the processes it starts, when the master's
// handle on it closes.
func (p *process) started(pid int) error {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return fmt.Errorf("job object: %w", err)
	}
	if err := killOnClose(job, true); err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("job object: kill on close: %w", err)
	}
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err == nil {
		err = windows.AssignProcessToJobObject(job, h)
		windows.CloseHandle(h)
	}
	if err != nil {
		windows.CloseHandle(job)
		return fmt.Errorf("job object: assign worker %d: %w", pid, err)
	}
	p.sys.job = job
	return nil
}

// killOnClose sets or clears the job's JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE.
func killOnClose(job windows.Handle, on bool) error {
	var info windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION
	if on {
		info.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	}
	_, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)))
	return err
}

// killGroup kills the worker's job, the worker and what it started; or,
// without a job, the worker alone.
func (p *process) killGroup(pid int) {
	if p.sys.job != 0 {
		windows.TerminateJobObject(p.sys.job, 1)
		return
	}
	if proc, err := os.FindProcess(pid); err == nil {
		proc.Kill()
		proc.Release()
	}
}

// outlive clears the job's kill on close: the worker, detached or
// persistent, outlives the master's handle.
func (p *process) outlive() {
	if p.sys.job != 0 {
		killOnClose(p.sys.job, false)
	}
}

// release closes the master's handle on the job, once the worker is
// killed or outlives the master.
func (p *process) release() {
	if p.sys.job != 0 {
		windows.CloseHandle(p.sys.job)
		p.sys.job = 0
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

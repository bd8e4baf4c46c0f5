//go:build darwin

package master

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// What watching a worker process takes on macOS: kqueue's EVFILT_PROC
// tells of an exit without reaping it. There is no parent-death signal:
// a worker learns of its master's death from its lane's EOF.

// sysProcAttr starts a worker in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// waitGone blocks until process pid, our child, has exited, without
// reaping it.
func waitGone(pid int) { waitProc(pid, -1) }

// waitExit blocks until process pid has exited, without reaping it, and
// reports true; or until abandon, and reports false.
func (p *process) waitExit(pid int) bool {
	defer p.abandonR.Close()
	return waitProc(pid, int(p.abandonR.Fd()))
}

// waitProc waits for process pid to exit, or, if abandon is not -1, for
// abandon to be readable (closed); it reports whether pid exited.
func waitProc(pid, abandon int) bool {
	kq, err := unix.Kqueue()
	if err != nil {
		return waitPoll(pid, abandon)
	}
	defer unix.Close(kq)
	changes := []unix.Kevent_t{{Ident: uint64(pid), Filter: unix.EVFILT_PROC, Flags: unix.EV_ADD | unix.EV_ONESHOT, Fflags: unix.NOTE_EXIT}}
	if abandon >= 0 {
		changes = append(changes, unix.Kevent_t{Ident: uint64(abandon), Filter: unix.EVFILT_READ, Flags: unix.EV_ADD})
	}
	if _, err := unix.Kevent(kq, changes, nil, nil); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return true // exited already
		}
		return waitPoll(pid, abandon)
	}
	events := make([]unix.Kevent_t, 2)
	for {
		n, err := unix.Kevent(kq, nil, events, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return waitPoll(pid, abandon)
		}
		for _, e := range events[:n] {
			if e.Filter == unix.EVFILT_PROC {
				return true
			}
		}
		return false // abandoned
	}
}

// waitPoll is waitProc where kqueue fails: a look for the process
// between short waits on abandon. A zombie still answers kill 0, so it
// asks the kernel for the process's state.
func waitPoll(pid, abandon int) bool {
	for {
		if kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid); err != nil || kp.Proc.P_pid != int32(pid) || kp.Proc.P_stat == 5 { // SZOMB
			return true
		}
		fds := []unix.PollFd{}
		if abandon >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(abandon), Events: unix.POLLIN})
		}
		if n, _ := unix.Poll(fds, 20); n > 0 {
			return false
		}
	}
}

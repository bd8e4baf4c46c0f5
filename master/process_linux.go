//go:build linux

package master

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// What watching a worker process takes on Linux: a pidfd, and waitid's
// WNOWAIT.

// sysProcAttr starts a worker in a process group of its own, with the
// parent-death signal.
func sysProcAttr() *syscall.SysProcAttr {
	// A signal worker.Main catches, not SIGKILL, on the master's death: the
	// worker then kills its whole process group, so that its own children
	// go too.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.Signal(parentDeathSignal())}
}

// waitGone blocks until process pid, our child, has exited, without
// reaping it.
func waitGone(pid int) {
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
}

// waitExit blocks until process pid has exited, without reaping it, and
// reports true; or until abandon, and reports false.
func (p *process) waitExit(pid int) bool {
	defer p.abandonR.Close()
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(p.abandonR.Fd()), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || fds[0].Revents != 0 {
				break
			}
			if fds[1].Revents != 0 {
				unix.Close(fd)
				return false
			}
		}
		unix.Close(fd)
		waitGone(pid)
		return true
	}
	// No pidfd (an old kernel, no file descriptor left): look for the exit
	// between short waits on the abandon pipe.
	fds := []unix.PollFd{{Fd: int32(p.abandonR.Fd()), Events: unix.POLLIN}}
	for {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err == nil && info.Signo != 0 {
			return true
		}
		if n, _ := unix.Poll(fds, 20); n > 0 {
			return false
		}
	}
}
